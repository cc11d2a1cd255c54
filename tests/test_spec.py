"""Loading campaign files: the model, the cross-section checks, the loader and the run plan."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from campaign_sync.destinations import REGISTRY
from campaign_sync.plan import BUCKETS, build_plan
from campaign_sync.spec.checks import Problem
from campaign_sync.spec.ids import dag_id_for
from campaign_sync.spec.loader import CampaignError, load_file, load_folder
from helpers import SAMPLE_CAMPAIGN, sample_doc, write_campaign

SAMPLE = "lifecycle_winback"
KNOWN_TYPES = ", ".join(sorted(REGISTRY))  # every destination module, found by the registry

Doc = dict[str, Any]


def load_error(folder: Path, doc: Doc | str, stem: str = "campaign") -> CampaignError:
    """Write ``doc`` and load it, expecting a CampaignError that names the file."""
    path = write_campaign(folder, stem, doc)
    with pytest.raises(CampaignError) as info:
        load_file(path)
    error = info.value
    assert error.path == path
    return error


def group(doc: Doc, sub: int, index: int) -> Doc:
    return doc["sub_audiences"][sub]["treatment_groups"][index]


# --- the sample -------------------------------------------------------------------------------


def test_sample_campaign_loads() -> None:
    campaign = load_file(SAMPLE_CAMPAIGN)

    assert campaign.name == SAMPLE
    assert dag_id_for(campaign.name) == "lifecycle_winback"
    assert [s.name for s in campaign.sub_audiences] == ["active", "cooling down", "at risk"]
    assert campaign.remaining is not None and campaign.remaining.name == "other at risk"
    assert list(campaign.destinations) == [
        "klaviyo",
        "attentive",
        "criteo",
        "tiktok",
        "facebook",
        "review_files",
        "journey_files",
        "winback_s3",
    ]
    assert campaign.schedule is not None and campaign.schedule.timezone == "America/New_York"


def test_sample_folder_loads_with_its_dag_id() -> None:
    result = load_folder(SAMPLE_CAMPAIGN.parent)

    assert result.errors == []
    assert [(c.path, c.dag_id) for c in result.campaigns] == [(SAMPLE_CAMPAIGN, SAMPLE)]


# --- one wrong thing per file: (mutation, expected problems) ----------------------------------


def _set(path: str, value: Any) -> Callable[[Doc], None]:
    """A mutation setting a dotted path; integers index lists."""
    keys = [int(k) if k.isdigit() else k for k in path.split(".")]

    def mutate(doc: Doc) -> None:
        target: Any = doc
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value

    return mutate


def _drop_table_use_sql(doc: Doc) -> None:
    del doc["source"]["table"]
    doc["source"]["sql"] = "SELECT * FROM merged_customers"


def _neither_sql_nor_table(doc: Doc) -> None:
    del doc["source"]["table"]


def _sql_and_table(doc: Doc) -> None:
    doc["source"]["sql"] = "SELECT * FROM merged_customers"


def _sql_with_include(doc: Doc) -> None:
    del doc["source"]["table"]
    doc["source"]["sql"] = "SELECT * FROM merged_customers"
    doc["source"]["exclude"] = []  # include alone is enough to be refused


def _sql_two_statements(doc: Doc) -> None:
    _drop_table_use_sql(doc)
    doc["source"].update(include=[], exclude=[], sql="SELECT 1; DROP TABLE merged_customers")


def _percentages_80(doc: Doc) -> None:
    group(doc, 0, 1)["percentage"] = 80


def _three_decimals(doc: Doc) -> None:
    group(doc, 1, 0)["percentage"] = 10.125
    group(doc, 1, 1)["percentage"] = 89.875


def _undeclared_destination(doc: Doc) -> None:
    group(doc, 1, 1)["destinations"].append("braze")


def _control_with_destination(doc: Doc) -> None:
    group(doc, 2, 0)["destinations"] = ["klaviyo"]


def _end_before_start(doc: Doc) -> None:
    doc["schedule"]["end_date"] = "2026-11-01"


def _end_and_max_runs(doc: Doc) -> None:
    doc["schedule"]["end_date"] = "2027-01-01"
    doc["schedule"]["max_runs"] = 4


def _max_runs_once(doc: Doc) -> None:
    doc["schedule"]["cron"] = "@once"
    doc["schedule"]["max_runs"] = 4


def _max_runs_manual(doc: Doc) -> None:
    del doc["schedule"]["cron"]
    doc["schedule"]["max_runs"] = 4


def _attribute_twice(doc: Doc) -> None:
    doc["destinations"]["klaviyo"]["attributes"]["secondary_email"] = "email"


def _live_platform(name: str, label: str) -> tuple[Callable[[Doc], None], list[Problem]]:
    """Live delivery without a connection: credentials only ever come from one."""

    def mutate(doc: Doc) -> None:
        doc["destinations"][name]["dry_run"] = False
        doc["destinations"][name].pop("conn_id", None)

    return mutate, [Problem(f"destinations.{name}.conn_id", f"{label} needs an Airflow conn_id")]


def _template(value: str) -> Callable[[Doc], None]:
    return _set("destinations.review_files.options.file_template", value)


TEMPLATE_FIELD = "destinations.review_files.options.file_template"

CASES: dict[str, tuple[Callable[[Doc], None], list[Problem]]] = {
    "unknown top-level key": (_set("colour", "red"), [Problem("colour", "unknown key")]),
    "unknown nested key": (
        _set("sub_audiences.0.treatment_groups.1.colour", "red"),
        [Problem("sub_audiences[0].treatment_groups[1].colour", "unknown key")],
    ),
    "unknown schedule key": (
        _set("schedule.every", "week"),
        [Problem("schedule.every", "unknown key")],
    ),
    "percentages sum to 90": (
        _percentages_80,
        [
            Problem(
                "sub_audiences[0].treatment_groups",
                "treatment group percentages sum to 90, not 100",
            )
        ],
    ),
    "remaining percentages sum to 50": (
        _set("remaining.treatment_groups.0.percentage", 50),
        [Problem("remaining.treatment_groups", "treatment group percentages sum to 50, not 100")],
    ),
    "percentage with 3 decimals": (
        _three_decimals,
        [
            Problem(
                f"sub_audiences[1].treatment_groups[{i}].percentage",
                "Decimal input should have no more than 2 decimal places",
            )
            for i in (0, 1)
        ],
    ),
    "percentage of zero": (
        _set("sub_audiences.0.treatment_groups.0.percentage", 0),
        [
            Problem(
                "sub_audiences[0].treatment_groups[0].percentage", "Input should be greater than 0"
            )
        ],
    ),
    "unknown destination type": (
        _set("destinations.criteo.type", "mailchimp"),
        [
            Problem(
                "destinations.criteo.type",
                f"unknown destination type 'mailchimp'; known: {KNOWN_TYPES}",
            )
        ],
    ),
    "undeclared destination": (
        _undeclared_destination,
        [
            Problem(
                "sub_audiences[1].treatment_groups[1].destinations[5]",
                "unknown destination 'braze' (declared: klaviyo, attentive, criteo, tiktok, "
                "facebook, review_files, journey_files, winback_s3)",
            )
        ],
    ),
    "control group with destinations": (
        _control_with_destination,
        [
            Problem(
                "sub_audiences[2].treatment_groups[0]",
                "a control group receives nothing: remove its destinations",
            )
        ],
    ),
    "destination listed twice": (
        _set("sub_audiences.0.treatment_groups.1.destinations", ["criteo", "criteo"]),
        [Problem("sub_audiences[0].treatment_groups[1]", "a destination is listed twice")],
    ),
    "treatment group name starting with _": (
        _set("sub_audiences.1.treatment_groups.1.name", "_treatment"),
        [Problem("sub_audiences[1].treatment_groups[1].name", "must not start with '.' or '_'")],
    ),
    "remaining treatment group name starting with _": (
        _set("remaining.treatment_groups.0.name", "_email"),
        [Problem("remaining.treatment_groups[0].name", "must not start with '.' or '_'")],
    ),
    "sub-audience name starting with _": (
        _set("sub_audiences.2.name", "_at risk"),
        [Problem("sub_audiences[2].name", "must not start with '.' or '_'")],
    ),
    # The remaining sub-audience is a sub-audience too (same ids, same manifest entries).
    "remaining sub-audience name starting with _": (
        _set("remaining.name", "_rest"),
        [Problem("remaining.name", "must not start with '.' or '_'")],
    ),
    "sub-audience ids collide": (
        _set("sub_audiences.0.name", "At Risk"),
        [
            Problem(
                "sub_audiences[2].name",
                "'at risk' clashes with sub-audience 'At Risk' (same id 'at_risk')",
            )
        ],
    ),
    "remaining id collides with a sub-audience": (
        _set("remaining.name", "Cooling Down"),
        [
            Problem(
                "remaining.name",
                "'Cooling Down' clashes with sub-audience 'cooling down' (same id 'cooling_down')",
            )
        ],
    ),
    "treatment group ids collide": (
        _set("sub_audiences.0.treatment_groups.1.name", "Control"),
        [
            Problem(
                "sub_audiences[0].treatment_groups[1].name",
                "'Control' clashes with 'control' (same id 'active__control')",
            )
        ],
    ),
    "source with sql and table": (
        _sql_and_table,
        [Problem("source", "give exactly one of sql or table")],
    ),
    "source with neither sql nor table": (
        _neither_sql_nor_table,
        [Problem("source", "give exactly one of sql or table")],
    ),
    "source sql with include": (
        _sql_with_include,
        [Problem("source", "include/exclude apply to table; put conditions in the sql instead")],
    ),
    "source sql with two statements": (
        _sql_two_statements,
        [Problem("source.sql", "must be one SELECT statement")],
    ),
    "condition with ;": (
        _set("sub_audiences.1.condition", "lifecycle_status = 'x'; DROP TABLE merged_customers"),
        [Problem("sub_audiences[1].condition", "must be a single SQL expression (no ';')")],
    ),
    "include with ;": (
        _set("source.include", ["TRUE; DROP TABLE merged_customers"]),
        [Problem("source.include", "must be a single SQL expression (no ';')")],
    ),
    "blank condition": (
        _set("sub_audiences.0.condition", "   "),
        [Problem("sub_audiences[0].condition", "must be a non-empty SQL boolean expression")],
    ),
    "bad cron": (
        _set("schedule.cron", "61 6 * * 1"),
        [Problem("schedule.cron", "'61 6 * * 1' is not a valid cron expression")],
    ),
    "unknown preset": (
        _set("schedule.cron", "@fortnightly"),
        [
            Problem(
                "schedule.cron",
                "unknown preset '@fortnightly'; use one of @once, @hourly, @daily, @weekly, "
                "@monthly, @quarterly, @yearly",
            )
        ],
    ),
    "bad timezone": (
        _set("schedule.timezone", "Mars/Olympus_Mons"),
        [
            Problem(
                "schedule.timezone",
                "unknown timezone 'Mars/Olympus_Mons'; use an IANA name such as America/New_York",
            )
        ],
    ),
    "end_date before start_date": (
        _end_before_start,
        [Problem("schedule", "end_date is before start_date")],
    ),
    "end_date with max_runs": (
        _end_and_max_runs,
        [Problem("schedule", "give end_date or max_runs, not both")],
    ),
    "max_runs with @once": (
        _max_runs_once,
        [Problem("schedule", "max_runs needs a recurring cron schedule")],
    ),
    "max_runs without cron": (
        _max_runs_manual,
        [Problem("schedule", "max_runs needs a recurring cron schedule")],
    ),
    "attribute mapped twice": (
        _attribute_twice,
        [Problem("destinations.klaviyo.attributes", "destination attribute(s) email mapped twice")],
    ),
    "reserved attribute name": (
        _set("destinations.review_files.attributes.surname", "__surname"),
        [
            Problem(
                "destinations.review_files.attributes",
                "attribute names starting with '__' are reserved: ['__surname']",
            )
        ],
    ),
    "live klaviyo": _live_platform("klaviyo", "Klaviyo"),
    "live attentive": _live_platform("attentive", "Attentive"),
    "live criteo": _live_platform("criteo", "Criteo"),
    "live tiktok": _live_platform("tiktok", "TikTok Ads"),
    "live facebook": _live_platform("facebook", "Facebook Ads"),
    "template with ..": (
        _template("{dag_id}/../{run_id}.{ext}"),
        [
            Problem(
                TEMPLATE_FIELD,
                "template '{dag_id}/../{run_id}.{ext}' must not contain '.' or '..' path segments",
            )
        ],
    ),
    "template starting with ..": (
        _template("../{dag_id}.{ext}"),
        [
            Problem(
                TEMPLATE_FIELD,
                "template '../{dag_id}.{ext}' must not contain '.' or '..' path segments",
            )
        ],
    ),
    "absolute template": (
        _template("/etc/{dag_id}.{ext}"),
        [Problem(TEMPLATE_FIELD, "template '/etc/{dag_id}.{ext}' must be a relative path")],
    ),
    "windows drive template": (
        _template("C:/out/{dag_id}.{ext}"),
        [Problem(TEMPLATE_FIELD, "template 'C:/out/{dag_id}.{ext}' must be a relative path")],
    ),
    "unknown placeholder": (
        _template("{dag_id}/{customer}.{ext}"),
        [
            Problem(
                TEMPLATE_FIELD,
                "unknown placeholder(s) customer; allowed: campaign, dag_id, destination, ext, "
                "file_number, run_date, run_id, sub_audience, treatment_group",
            )
        ],
    ),
    "unknown local option": (
        _set("destinations.review_files.options.compression", "zstd"),
        [Problem("destinations.review_files.options.compression", "unknown key")],
    ),
    "unknown klaviyo option": (
        _set("destinations.klaviyo.options", {"list": "winback"}),
        [Problem("destinations.klaviyo.options.list", "unknown key")],
    ),
    "bad local format": (
        _set("destinations.review_files.options.format", "xlsx"),
        [Problem("destinations.review_files.options.format", "Input should be 'csv' or 'parquet'")],
    ),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_bad_campaign_names_file_campaign_and_field(tmp_path: Path, case: str) -> None:
    mutate, expected = CASES[case]
    doc = sample_doc()
    mutate(doc)

    error = load_error(tmp_path, doc)

    assert error.campaign == SAMPLE
    assert error.problems == expected
    assert error.describe().splitlines() == [
        f"{error.path}: campaign '{SAMPLE}': {p.field}: {p.message}" for p in expected
    ]
    assert str(error) == error.describe()


def test_every_problem_is_reported_not_only_the_first(tmp_path: Path) -> None:
    doc = sample_doc()
    doc["colour"] = "red"
    doc["schedule"]["timezone"] = "Nowhere/Special"
    group(doc, 0, 1)["percentage"] = 80

    error = load_error(tmp_path, doc)

    assert {p.field for p in error.problems} == {
        "colour",
        "schedule.timezone",
        "sub_audiences[0].treatment_groups",
    }


def test_cross_section_problems_are_all_reported(tmp_path: Path) -> None:
    doc = sample_doc()
    doc["destinations"]["criteo"]["type"] = "mailchimp"
    doc["destinations"]["klaviyo"]["dry_run"] = False
    del doc["destinations"]["klaviyo"]["conn_id"]
    group(doc, 0, 1)["destinations"].append("braze")

    error = load_error(tmp_path, doc)

    assert [p.field for p in error.problems] == [
        "sub_audiences[0].treatment_groups[1].destinations[5]",
        "destinations.klaviyo.conn_id",
        "destinations.criteo.type",
    ]


def test_yaml_syntax_error_keeps_the_readable_name(tmp_path: Path) -> None:
    text = 'name: "Spring Sale"  # seasonal\nsource: {conn_id: warehouse\nsub_audiences: []\n'

    error = load_error(tmp_path, text, "spring")

    assert error.campaign == "Spring Sale"
    assert len(error.problems) == 1
    problem = error.problems[0]
    assert problem.field == ""
    assert problem.message.startswith("YAML error: ")
    assert "line 2" in problem.message
    assert error.describe().startswith(f"{error.path}: campaign 'Spring Sale': YAML error: ")


def test_yaml_syntax_error_is_described_on_one_line_per_problem(tmp_path: Path) -> None:
    # describe() promises "one line per problem: file: campaign 'name': field: message";
    # PyYAML's messages span several lines, so every line must still carry file and campaign.
    text = "name: broken yaml\nsource: {conn_id: warehouse\n"

    error = load_error(tmp_path, text, "broken")

    lines = error.describe().splitlines()
    assert len(lines) == len(error.problems) == 1
    assert lines[0].startswith(f"{error.path}: campaign 'broken yaml': YAML error: ")


def test_yaml_syntax_error_without_a_name_line(tmp_path: Path) -> None:
    error = load_error(tmp_path, "source: {conn_id: warehouse\n", "nameless")

    assert error.campaign is None
    assert error.describe().startswith(f"{error.path}: campaign (name unreadable): YAML error: ")


def test_yaml_list_is_not_a_campaign(tmp_path: Path) -> None:
    error = load_error(tmp_path, "- name: a\n- name: b\n", "listed")

    assert error.campaign is None
    assert error.problems == [Problem("", "a campaign file must be a YAML mapping (key: value)")]
    assert error.describe() == (
        f"{error.path}: campaign (name unreadable): "
        "a campaign file must be a YAML mapping (key: value)"
    )


def test_empty_file_is_not_a_campaign(tmp_path: Path) -> None:
    error = load_error(tmp_path, "", "empty")

    assert error.problems == [Problem("", "a campaign file must be a YAML mapping (key: value)")]


def test_undecodable_file(tmp_path: Path) -> None:
    path = tmp_path / "binary.yaml"
    path.write_bytes(b"name: \xff\xfe\x00\n")

    with pytest.raises(CampaignError) as info:
        load_file(path)

    assert info.value.path == path
    assert info.value.campaign is None
    assert len(info.value.problems) == 1
    assert info.value.problems[0].field == ""
    assert info.value.problems[0].message.startswith("cannot read file: ")


def test_non_string_name_is_reported_without_a_campaign_name(tmp_path: Path) -> None:
    doc = sample_doc()
    doc["name"] = 42

    error = load_error(tmp_path, doc)

    assert error.campaign is None
    assert error.problems == [Problem("name", "Input should be a valid string")]


def test_missing_required_sections(tmp_path: Path) -> None:
    doc = sample_doc()
    del doc["source"]
    del doc["sub_audiences"]

    error = load_error(tmp_path, doc)

    assert error.problems == [
        Problem("source", "Field required"),
        Problem("sub_audiences", "Field required"),
    ]


def test_attribute_source_column_must_be_an_identifier(tmp_path: Path) -> None:
    doc = sample_doc()
    doc["destinations"]["review_files"]["attributes"]["first name"] = "first_name"

    error = load_error(tmp_path, doc)

    assert len(error.problems) == 1
    problem = error.problems[0]
    assert problem.message == "String should match pattern '^[A-Za-z_][A-Za-z0-9_]*$'"
    # The field names the offending key, as a clean dotted path (no pydantic "[key]" marker).
    assert problem.field.startswith("destinations.review_files.attributes")
    assert "first name" in problem.field
    assert "[key]" not in problem.field


def test_aware_end_date_after_start_in_real_time_is_valid(tmp_path: Path) -> None:
    # 10:00+05:00 is 05:00 UTC: an end at 08:00 UTC is three hours after the start.
    doc = sample_doc()
    doc["schedule"]["start_date"] = "2026-11-02T10:00:00+05:00"
    doc["schedule"]["end_date"] = "2026-11-02T08:00:00+00:00"

    campaign = load_file(write_campaign(tmp_path, "aware_ok", doc))

    assert campaign.schedule is not None and campaign.schedule.end_date is not None


def test_aware_end_date_before_start_in_real_time_is_refused(tmp_path: Path) -> None:
    # 10:00+05:00 is 05:00 UTC, four hours before a 09:00 UTC start, whatever the wall clock says.
    doc = sample_doc()
    doc["schedule"]["start_date"] = "2026-11-02T09:00:00+00:00"
    doc["schedule"]["end_date"] = "2026-11-02T10:00:00+05:00"

    error = load_error(tmp_path, doc)

    assert error.problems == [Problem("schedule", "end_date is before start_date")]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"end_date": "2026-11-02"}, "end_date"),
        ({"cron": "@daily", "max_runs": 3}, "max_runs"),
        ({"cron": "*/15 * * * *"}, "cron"),
        ({"cron": "@once"}, "cron"),
        ({"timezone": "Europe/Paris"}, "timezone"),
    ],
)
def test_valid_schedules(tmp_path: Path, changes: dict[str, Any], field: str) -> None:
    doc = sample_doc()
    doc["schedule"].update(changes)

    campaign = load_file(write_campaign(tmp_path, "scheduled", doc))

    assert campaign.schedule is not None
    assert str(getattr(campaign.schedule, field)) == str(changes[field])


def test_valid_sql_source_drops_a_trailing_semicolon(tmp_path: Path) -> None:
    doc = sample_doc()
    doc["source"] = {
        "conn_id": "warehouse",
        "sql": "  SELECT * FROM merged_customers WHERE email_opt_in ;  ",
    }

    campaign = load_file(write_campaign(tmp_path, "sql", doc))

    assert campaign.source.sql == "SELECT * FROM merged_customers WHERE email_opt_in"
    assert campaign.source.table is None


# --- folders ----------------------------------------------------------------------------------


def _named(name: str) -> Doc:
    doc = sample_doc()
    doc["name"] = name
    return doc


def test_load_folder_keeps_good_files_when_one_is_bad(tmp_path: Path) -> None:
    good = write_campaign(tmp_path, "a_good", _named("Good One"))
    bad_doc = _named("Bad One")
    bad_doc["colour"] = "red"
    bad = write_campaign(tmp_path, "b_bad", bad_doc)
    later = write_campaign(tmp_path, "c_good", _named("Good Two"))

    result = load_folder(tmp_path)

    assert [(c.path, c.campaign.name, c.dag_id) for c in result.campaigns] == [
        (good, "Good One", "good_one"),
        (later, "Good Two", "good_two"),
    ]
    assert len(result.errors) == 1
    error = result.errors[0]
    assert (error.path, error.campaign, error.problems) == (
        bad,
        "Bad One",
        [Problem("colour", "unknown key")],
    )


def test_load_folder_skips_hidden_and_non_yaml_files(tmp_path: Path) -> None:
    yaml_file = write_campaign(tmp_path, "one", _named("One"))
    yml_file = tmp_path / "two.yml"
    yml_file.write_text(write_campaign(tmp_path, "tmp_two", _named("Two")).read_text())
    (tmp_path / "tmp_two.yaml").unlink()
    nested = tmp_path / "team"
    nested.mkdir()
    nested_file = write_campaign(nested, "three", _named("Three"))
    # Broken content everywhere that must be skipped: a failure here means it was read.
    (tmp_path / ".draft.yaml").write_text("- not: a campaign\n")
    hidden_dir = tmp_path / ".archive"
    hidden_dir.mkdir()
    (hidden_dir / "old.yaml").write_text("- not: a campaign\n")
    (tmp_path / "notes.txt").write_text("- not: a campaign\n")
    (tmp_path / "campaign.json").write_text("[1, 2]\n")
    (tmp_path / "README.md").write_text("# campaigns\n")
    (tmp_path / "folder.yaml").mkdir()

    result = load_folder(tmp_path)

    assert result.errors == []
    assert sorted(c.path for c in result.campaigns) == sorted([yaml_file, yml_file, nested_file])
    assert sorted(c.dag_id for c in result.campaigns) == ["one", "three", "two"]


def test_load_folder_of_a_missing_folder_is_empty(tmp_path: Path) -> None:
    result = load_folder(tmp_path / "missing")

    assert result.campaigns == []
    assert result.errors == []


def _claimed(dag_id: str, others: list[Path]) -> Problem:
    return Problem(
        "name",
        f"DAG id {dag_id!r} is also claimed by {', '.join(map(str, others))}; rename one "
        "campaign (no file takes an id from another)",
    )


def test_duplicate_campaign_name_refuses_both_files(tmp_path: Path) -> None:
    # Neither file may take the id: which one won would depend on the order of file names.
    first = write_campaign(tmp_path, "a_first", _named("Winback"))
    second = write_campaign(tmp_path, "b_second", _named("Winback"))

    result = load_folder(tmp_path)

    assert result.campaigns == []
    assert [(e.path, e.campaign, e.problems) for e in result.errors] == [
        (first, "Winback", [_claimed("winback", [second])]),
        (second, "Winback", [_claimed("winback", [first])]),
    ]
    assert result.errors[1].describe() == (
        f"{second}: campaign 'Winback': name: DAG id 'winback' is also claimed by {first}; "
        "rename one campaign (no file takes an id from another)"
    )


def test_names_that_sanitize_to_the_same_dag_id_collide(tmp_path: Path) -> None:
    # "-" is legal in a DAG id, so "spring-sale" is its own DAG; "spring_sale" is not.
    assert dag_id_for("Spring Sale") == dag_id_for("spring_sale") == "spring_sale"
    assert dag_id_for("spring-sale") == "spring-sale"
    first = write_campaign(tmp_path, "a", _named("Spring Sale"))
    second = write_campaign(tmp_path, "b", _named("spring_sale"))
    third = write_campaign(tmp_path, "c", _named("spring-sale"))

    result = load_folder(tmp_path)

    assert [(c.path, c.dag_id) for c in result.campaigns] == [(third, "spring-sale")]
    assert [(e.path, e.campaign, e.problems) for e in result.errors] == [
        (first, "Spring Sale", [_claimed("spring_sale", [second])]),
        (second, "spring_sale", [_claimed("spring_sale", [first])]),
    ]


def test_an_invalid_first_file_does_not_claim_the_dag_id(tmp_path: Path) -> None:
    broken = _named("Winback")
    broken["colour"] = "red"
    bad = write_campaign(tmp_path, "a_bad", broken)
    good = write_campaign(tmp_path, "b_good", _named("Winback"))

    result = load_folder(tmp_path)

    assert [c.path for c in result.campaigns] == [good]
    assert [(e.path, e.problems) for e in result.errors] == [
        (bad, [Problem("colour", "unknown key")])
    ]


# --- the run plan -----------------------------------------------------------------------------


def test_plan_of_the_sample() -> None:
    plan = build_plan(load_file(SAMPLE_CAMPAIGN))

    assert plan.dag_id == SAMPLE
    assert plan.sub_audiences == ("active", "cooling down", "at risk", "other at risk")
    assert plan.remaining == "other at risk"
    assert [(g.group_id, g.bucket_start, g.bucket_end, g.is_control) for g in plan.groups] == [
        ("active__control", 0, 1000, True),
        ("active__treatment", 1000, 10000, False),
        ("cooling_down__control", 0, 1000, True),
        ("cooling_down__treatment", 1000, 10000, False),
        ("at_risk__control", 0, 1000, True),
        ("at_risk__treatment", 1000, 10000, False),
        ("other_at_risk__email_only", 0, 10000, False),
    ]
    assert plan.groups[-1].sub_audience == "other at risk"
    assert plan.group("at_risk__treatment").destinations == (
        "klaviyo",
        "attentive",
        "criteo",
        "tiktok",
        "facebook",
        "review_files",
        "winback_s3",
    )
    assert plan.group("active__control").destinations == ()
    with pytest.raises(KeyError, match="no group 'nope__x'"):
        plan.group("nope__x")


def test_plan_bucket_ranges_are_contiguous_and_cover_every_bucket(tmp_path: Path) -> None:
    doc = sample_doc()
    doc["sub_audiences"][0]["treatment_groups"] = [
        {"name": "a", "percentage": 33.33, "destinations": ["klaviyo"]},
        {"name": "b", "percentage": 33.33, "control": True},
        {"name": "c", "percentage": 33.34, "destinations": ["criteo"]},
    ]
    doc["sub_audiences"][1]["treatment_groups"] = [
        {"name": "tiny", "percentage": 0.01, "destinations": ["klaviyo"]},
        {"name": "rest", "percentage": 99.99, "control": True},
    ]
    doc["sub_audiences"][2]["treatment_groups"] = [
        {"name": f"g{i}", "percentage": p, "destinations": ["klaviyo"]}
        for i, p in enumerate([0.1, 0.2, 12.5, 7.2, 80])
    ]
    plan = build_plan(load_file(write_campaign(tmp_path, "buckets", doc)))

    assert BUCKETS == 10_000
    for sub in plan.sub_audiences:
        ranges = [(g.bucket_start, g.bucket_end) for g in plan.groups_of(sub)]
        assert ranges[0][0] == 0, sub
        assert ranges[-1][1] == BUCKETS, sub
        assert all(a[1] == b[0] for a, b in itertools.pairwise(ranges)), sub
        assert all(start < end for start, end in ranges), sub
    assert [(g.bucket_start, g.bucket_end) for g in plan.groups_of("active")] == [
        (0, 3333),
        (3333, 6666),
        (6666, 10000),
    ]
    assert [(g.bucket_start, g.bucket_end) for g in plan.groups_of("cooling down")] == [
        (0, 1),
        (1, 10000),
    ]
    assert [(g.bucket_start, g.bucket_end) for g in plan.groups_of("at risk")] == [
        (0, 10),
        (10, 30),
        (30, 1280),
        (1280, 2000),
        (2000, 10000),
    ]
    assert plan.sub_audiences[-1] == "other at risk"


def test_plan_without_remaining(tmp_path: Path) -> None:
    doc = sample_doc()
    del doc["remaining"]
    plan = build_plan(load_file(write_campaign(tmp_path, "no_rest", doc)))

    assert plan.remaining is None
    assert plan.sub_audiences == ("active", "cooling down", "at risk")
    assert [g.group_id for g in plan.groups][-1] == "at_risk__treatment"


def test_used_source_columns_of_the_sample() -> None:
    plan = build_plan(load_file(SAMPLE_CAMPAIGN))

    assert plan.used_source_columns() == [
        "email",
        "given_name",
        "surname",
        "phone",
        "predicted_clv",
        "apple_ad_id",
        "android_ad_id",
        "city",
        "state",
        "postal",
        "country",
        "gender",
        "birthdate",
        "lifecycle_status",
    ]


def test_used_source_columns_skip_unused_destinations_and_the_customer_id(tmp_path: Path) -> None:
    doc = sample_doc()
    # TikTok and Facebook are used by no group any more; a new destination is declared unused.
    at_risk = group(doc, 2, 1)
    at_risk["destinations"] = ["klaviyo", "attentive", "criteo", "review_files"]
    doc["destinations"]["unused"] = {
        "type": "local",
        "attributes": {"customer_id": "id", "loyalty_tier": "tier"},
    }
    plan = build_plan(load_file(write_campaign(tmp_path, "unused", doc)))

    columns = plan.used_source_columns()

    assert columns == [
        "email",
        "given_name",
        "surname",
        "phone",
        "predicted_clv",
        "lifecycle_status",
    ]
    assert "customer_id" not in columns
    assert "loyalty_tier" not in columns
    assert "apple_ad_id" not in columns and "city" not in columns


def test_used_source_columns_with_another_customer_id_column(tmp_path: Path) -> None:
    doc = sample_doc()
    doc["source"]["customer_id"] = "email"
    plan = build_plan(load_file(write_campaign(tmp_path, "by_email", doc)))

    columns = plan.used_source_columns()

    assert "email" not in columns
    assert columns[0] == "customer_id"
