"""One bad campaign file never takes the others down.

Each class of bad file that once escaped validation and broke the whole DagBag is put beside the
sample campaign; a real DagBag must still load the sample, record no import error, and show the
bad file as an invalid campaign whose error names the file, the campaign and the field.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from campaign_sync.spec.ids import MAINTENANCE_DAG_ID
from campaign_sync.spec.loader import CampaignError, load_file, load_folder
from helpers import REPO, sample_doc, write_campaign

Doc = dict[str, Any]


def _with(mutate: Callable[[Doc], None], name: str = "broken one") -> str:
    doc = sample_doc()
    doc["name"] = name
    mutate(doc)
    return yaml.safe_dump(doc, sort_keys=False, width=10**9)


def _schedule(**changes: Any) -> Callable[[Doc], None]:
    def mutate(doc: Doc) -> None:
        doc["schedule"].update(changes)
        if "max_runs" in changes:
            doc["schedule"].pop("end_date", None)

    return mutate


def _long_names(doc: Doc) -> None:
    doc["sub_audiences"][0]["name"] = "s" * 100
    doc["sub_audiences"][0]["treatment_groups"][1]["name"] = "g" * 100


def _escaping_destination(doc: Doc) -> None:
    doc["destinations"]["../outside"] = doc["destinations"].pop("review_files")
    for sub in doc["sub_audiences"]:
        for group in sub["treatment_groups"]:
            group["destinations"] = [
                "../outside" if d == "review_files" else d for d in group.get("destinations", [])
            ]


def _billion_laughs() -> str:
    lines = ['name: "broken one"', 'a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, 9):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 6) + "]")
    return "\n".join(lines) + "\n"


# Each case: (file text, the field the error must name, a fragment of its message).
BAD_FILES: dict[str, tuple[str, str, str]] = {
    "timezone naming a tz database folder": (
        _with(_schedule(timezone="America")),
        "schedule.timezone",
        "unknown timezone 'America'",
    ),
    "very long timezone": (
        _with(_schedule(timezone="Europe/" + "x" * 5000)),
        "schedule.timezone",
        "unknown timezone",
    ),
    "tag over 100 characters": (
        _with(lambda d: d.__setitem__("tags", ["t" * 101])),
        "tags[0]",
        "at most 100 characters",
    ),
    "retry delay too large for timedelta": (
        _with(lambda d: d.__setitem__("retries", {"count": 1, "delay_seconds": 10**15})),
        "retries.delay_seconds",
        "less than or equal to 604800",
    ),
    "early start date in an eastern timezone": (
        _with(_schedule(start_date="0001-01-01", timezone="Asia/Tokyo")),
        "schedule.start_date",
        "year must be between 1970",
    ),
    "max_runs with a cron that never fires": (
        _with(_schedule(cron="0 0 30 2 *", max_runs=3)),
        "schedule",
        "never fires",
    ),
    "names whose task ids exceed Airflow's limits": (
        _with(_long_names),
        "sub_audiences[0].treatment_groups[1].name",
        "Airflow allows 200",
    ),
    "destination name with ../": (
        _with(_escaping_destination),
        "destinations['../outside']",
        "must not contain '/'",
    ),
    "duplicate keys": (
        'name: "broken one"\nowner: a\nowner: b\n',
        "",
        "line 3: duplicate key 'owner' (first at line 2)",
    ),
    "malformed YAML with a 64k-character line": (
        'name: "broken one"\nsource: {conn_id: a' + " " * 65_536 + "x\n",
        "",
        "YAML error: line",
    ),
    "a python object tag": (
        'name: "broken one"\nowner: !!python/object/apply:os.system ["true"]\n',
        "",
        "tag !!python/object/apply:os.system is not allowed",
    ),
    "alias expansion bomb": (_billion_laughs(), "", "expands to more than 100,000 values"),
}


def _dagbag() -> Any:
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(REPO / "dags"))


def _assert_sample_loads_beside(bag: Any) -> None:
    assert bag.import_errors == {}
    sample = bag.dags["lifecycle_winback"]
    assert "invalid-campaign" not in sample.tags
    assert len(sample.task_dict) > 10


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_file_beside_the_sample_is_an_invalid_campaign_in_a_real_dagbag(
    campaigns_dir: Path, case: str
) -> None:
    text, field, fragment = BAD_FILES[case]
    write_campaign(campaigns_dir, "lifecycle_winback", sample_doc())
    bad = campaigns_dir / "broken.yaml"
    bad.write_text(text)

    bag = _dagbag()

    _assert_sample_loads_beside(bag)
    assert set(bag.dag_ids) == {"lifecycle_winback", "broken_one", MAINTENANCE_DAG_ID}
    invalid = bag.dags["broken_one"]
    assert "invalid-campaign" in invalid.tags
    prefix = f"{bad}: campaign 'broken one': " + (f"{field}: " if field else "")
    assert prefix in invalid.doc_md
    assert fragment in invalid.doc_md
    assert max(len(line) for line in invalid.doc_md.splitlines()) < 600  # values echoed short


def test_colliding_files_beside_the_sample_are_both_invalid_in_a_real_dagbag(
    campaigns_dir: Path,
) -> None:
    write_campaign(campaigns_dir, "lifecycle_winback", sample_doc())
    first = write_campaign(campaigns_dir, "spring", _with(lambda d: None, "Spring Sale"))
    second = write_campaign(campaigns_dir, "spring2", _with(lambda d: None, "spring_sale"))

    bag = _dagbag()

    _assert_sample_loads_beside(bag)
    assert set(bag.dag_ids) == {
        "lifecycle_winback",
        "spring_sale",
        "invalid_campaign__spring2",
        MAINTENANCE_DAG_ID,
    }
    for dag_id, other in (("spring_sale", second), ("invalid_campaign__spring2", first)):
        dag = bag.dags[dag_id]
        assert "invalid-campaign" in dag.tags
        assert f"also claimed by {other}" in dag.doc_md


def test_a_campaign_airflow_refuses_to_build_becomes_its_own_invalid_dag(
    campaigns_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Whatever slips past validation: build_dags turns the exception into that campaign's
    # invalid DAG, keeping its id, and the other campaigns still load.
    from campaign_sync import factory

    real = factory.build_dag
    other = sample_doc()
    other["name"] = "explodes"
    write_campaign(campaigns_dir, "lifecycle_winback", sample_doc())
    write_campaign(campaigns_dir, "explodes", other)

    def build(loaded: Any) -> Any:
        if loaded.dag_id == "explodes":
            raise OverflowError("x" * 100_000)
        return real(loaded)

    monkeypatch.setattr(factory, "build_dag", build)

    bag = _dagbag()

    _assert_sample_loads_beside(bag)
    dag = bag.dags["explodes"]
    assert "invalid-campaign" in dag.tags
    assert "Airflow cannot build its DAG: OverflowError: xxx" in dag.doc_md
    assert len(dag.doc_md) < 1000


def test_validate_builds_the_dag_and_fails_where_airflow_would(
    campaigns_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from campaign_sync import cli, factory

    path = write_campaign(campaigns_dir, "lifecycle_winback", sample_doc())

    def build(loaded: Any) -> Any:
        raise ValueError("refused by Airflow")

    monkeypatch.setattr(factory, "build_dag", build)

    assert cli.main(["validate"]) == 1
    assert cli.main(["validate", str(path)]) == 1
    err = capsys.readouterr().err.splitlines()
    expected = (
        f"{path}: campaign 'lifecycle_winback': Airflow cannot build its DAG: "
        "ValueError: refused by Airflow"
    )
    assert err == [expected, expected]


def test_worker_parse_for_one_task_logs_nothing_about_other_files(
    campaigns_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from campaign_sync.factory import build_dags

    write_campaign(campaigns_dir, "lifecycle_winback", sample_doc())
    (campaigns_dir / "broken.yaml").write_text(BAD_FILES["duplicate keys"][0])

    with caplog.at_level(logging.DEBUG):
        assert set(build_dags()) == {"lifecycle_winback", "broken_one"}
    assert "broken.yaml" in caplog.text  # the processor's full parse reports it

    caplog.clear()
    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", "lifecycle_winback")
    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_TASK_ID", "build_audience")
    with caplog.at_level(logging.DEBUG):
        assert set(build_dags()) == {"lifecycle_winback"}
    assert "broken" not in caplog.text


def test_loading_time_is_linear_in_line_length(tmp_path: Path) -> None:
    # The old name guess backtracked quadratically: a 64k line took over a minute. A linear
    # scan takes milliseconds; the bound is two orders of magnitude above that.
    path = tmp_path / "slow.yaml"
    path.write_text("name: a" + " " * 65_536 + "x\nsource: [\n")
    start = time.perf_counter()
    with pytest.raises(CampaignError):
        load_file(path)
    assert time.perf_counter() - start < 5


def test_a_campaign_cannot_take_the_maintenance_dag_id(tmp_path: Path) -> None:
    path = write_campaign(tmp_path, "m", _with(lambda d: None, "Campaign Sync Maintenance"))
    with pytest.raises(CampaignError) as caught:
        load_file(path)
    assert caught.value.problems[0].field == "name"


def test_oversized_file_is_refused_without_parsing(tmp_path: Path) -> None:
    path = write_campaign(
        tmp_path, "huge", _with(lambda d: d.__setitem__("description", "x" * 2**21))
    )
    with pytest.raises(CampaignError) as caught:
        load_file(path)
    assert caught.value.problems[0].message.startswith("YAML error: file is 2,")
    assert caught.value.campaign == "broken one"


def test_a_huge_value_is_echoed_at_most_about_80_characters(tmp_path: Path) -> None:
    doc = sample_doc()
    doc["schedule"]["timezone"] = "Z" * 500_000
    with pytest.raises(CampaignError) as caught:
        load_file(write_campaign(tmp_path, "long", doc))
    (line,) = caught.value.describe().splitlines()
    assert "…(500,002 chars)" in line
    assert len(line) < len(str(caught.value.path)) + 250


def test_unexpected_exception_while_loading_is_a_campaign_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from campaign_sync.spec import loader

    def explode(text: str) -> Any:
        raise MemoryError("out of memory")

    monkeypatch.setattr(loader, "load_yaml", explode)
    good = write_campaign(tmp_path, "a", sample_doc())
    result = load_folder(tmp_path)
    assert result.campaigns == []
    (error,) = result.errors
    assert error.path == good and error.campaign == "lifecycle_winback"
    assert error.problems[0].message == "cannot be loaded: MemoryError: out of memory"
