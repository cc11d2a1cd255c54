"""The contract of every registered destination type: attributes, options and exporter."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.module_loading import import_string
from campaign_sync.destinations import REGISTRY, AttributeRule, DestinationType
from campaign_sync.projection.normalize import KINDS
from campaign_sync.spec.checks import Problem
from campaign_sync.spec.loader import CampaignError, load_file
from helpers import sample_doc, write_campaign
from pydantic import ValidationError

ALL_TYPES = [
    "klaviyo",
    "attentive",
    "criteo",
    "tiktok_ads",
    "facebook_ads",
    "braze",
    "s3",
    "gcs",
    "azure_blob",
    "sftp",
    "local",
]
STORAGE_TYPES = ["s3", "gcs", "azure_blob", "sftp"]
META_KEYS = [
    "EXTERN_ID",
    "EMAIL",
    "PHONE",
    "FN",
    "LN",
    "FI",
    "CT",
    "ST",
    "ZIP",
    "COUNTRY",
    "GEN",
    "DOBY",
    "DOBM",
    "DOBD",
    "MADID",
]
ATTRIBUTES_FIELD = "destinations.dest.attributes"


def check(type_name: str, *mapped: str) -> list[str]:
    return REGISTRY[type_name].check_attributes(list(mapped))


# --- the registry -----------------------------------------------------------------------------


def test_registry_finds_every_destination_module() -> None:
    assert sorted(REGISTRY) == sorted(ALL_TYPES)
    assert all(isinstance(t, DestinationType) for t in REGISTRY.values())


@pytest.mark.parametrize("type_name", ALL_TYPES)
def test_registry_name_matches_key(type_name: str) -> None:
    assert REGISTRY[type_name].name == type_name
    assert REGISTRY[type_name].label


@pytest.mark.parametrize("type_name", ALL_TYPES)
def test_every_rule_kind_is_a_known_normalizer(type_name: str) -> None:
    dtype = REGISTRY[type_name]
    rules: list[AttributeRule] = [*dtype.attributes.values(), dtype.extra_rule]

    unknown = {r.kind for r in rules} - KINDS

    assert unknown == set(), f"{type_name}: unknown kinds {unknown}"


@pytest.mark.parametrize("type_name", ALL_TYPES)
def test_options_model_refuses_unknown_keys(type_name: str) -> None:
    model = REGISTRY[type_name].options_model

    with pytest.raises(ValidationError) as info:
        model.model_validate({"no_such_option": 1})

    errors = {(e["loc"], e["type"]) for e in info.value.errors()}
    assert (("no_such_option",), "extra_forbidden") in errors


@pytest.mark.parametrize("type_name", list(REGISTRY))
def test_registered_exporter_imports(type_name: str) -> None:
    from campaign_sync.operators.export import ExportOperator

    exporter = import_string(REGISTRY[type_name].exporter)

    assert inspect.isclass(exporter)
    assert issubclass(exporter, ExportOperator)


def test_every_type_delivers_live() -> None:
    assert {n for n, t in REGISTRY.items() if t.exporter is None} == set()
    assert REGISTRY["local"].exporter == "campaign_sync.operators.export.LocalExportOperator"


@pytest.mark.parametrize("type_name", ALL_TYPES)
def test_no_attributes_is_refused(type_name: str) -> None:
    label = REGISTRY[type_name].label

    assert f"{label} needs at least one attribute" in check(type_name)


# --- Klaviyo ----------------------------------------------------------------------------------


def test_klaviyo_requires_email() -> None:
    assert check("klaviyo", "email") == []
    assert check("klaviyo", "first_name", "phone_number") == ["Klaviyo requires email"]


def test_klaviyo_allows_extra_profile_properties() -> None:
    mapped = ["email", "first_name", "predicted_clv", "Loyalty Tier"]

    assert check("klaviyo", *mapped) == []
    assert REGISTRY["klaviyo"].row_required(mapped) == ["email"]
    assert REGISTRY["klaviyo"].row_any_of(mapped) == []
    assert REGISTRY["klaviyo"].rule_for("predicted_clv") == AttributeRule(kind="passthrough")
    assert REGISTRY["klaviyo"].rule_for("phone_number").kind == "phone_e164"


# --- Attentive --------------------------------------------------------------------------------


@pytest.mark.parametrize("one", ["phone", "email"])
def test_attentive_one_identifier_is_ok_and_row_required(one: str) -> None:
    assert check("attentive", one) == []
    assert REGISTRY["attentive"].row_required([one]) == [one]


def test_attentive_both_identifiers_refused() -> None:
    assert check("attentive", "phone", "email") == [
        "Attentive takes exactly one of email or phone, not both and not neither "
        "(mapped: email, phone)"
    ]


def test_attentive_neither_identifier_refused() -> None:
    assert check("attentive", "first_name") == [
        "Attentive does not accept first_name; allowed: phone, email",
        "Attentive takes exactly one of email or phone, not both and not neither (mapped: none)",
    ]


# --- Criteo -----------------------------------------------------------------------------------


def test_criteo_email_only() -> None:
    assert check("criteo", "email") == []
    assert REGISTRY["criteo"].row_required(["email"]) == ["email"]
    assert REGISTRY["criteo"].rule_for("email") == AttributeRule(
        kind="email", hashed=True, required=True
    )


def test_criteo_refuses_extra_attributes_listing_allowed_names() -> None:
    assert check("criteo", "email", "phone") == ["Criteo does not accept phone; allowed: email"]
    assert check("criteo", "phone") == [
        "Criteo does not accept phone; allowed: email",
        "Criteo requires email",
    ]


# --- TikTok -----------------------------------------------------------------------------------


def test_tiktok_requires_email_and_phone() -> None:
    assert check("tiktok_ads", "EMAIL", "PHONE") == []
    assert check("tiktok_ads", "EMAIL") == ["TikTok Ads requires PHONE"]
    assert check("tiktok_ads", "IDFA") == ["TikTok Ads requires EMAIL and PHONE"]


def test_tiktok_accepts_mobile_ad_ids() -> None:
    mapped = ["EMAIL", "PHONE", "IDFA", "AAID"]

    assert check("tiktok_ads", *mapped) == []
    assert REGISTRY["tiktok_ads"].row_required(mapped) == ["EMAIL", "PHONE"]
    assert all(REGISTRY["tiktok_ads"].rule_for(a).hashed for a in mapped)


def test_tiktok_refuses_other_names() -> None:
    assert check("tiktok_ads", "EMAIL", "PHONE", "email", "EXTERN_ID") == [
        "TikTok Ads does not accept EXTERN_ID, email; allowed: EMAIL, PHONE, IDFA, AAID"
    ]


# --- Facebook ---------------------------------------------------------------------------------


def test_facebook_accepts_every_meta_key() -> None:
    assert check("facebook_ads", *META_KEYS) == []
    assert list(REGISTRY["facebook_ads"].attributes) == META_KEYS


@pytest.mark.parametrize("bad", ["email", "FIRST_NAME", "Email", "phone_number"])
def test_facebook_refuses_non_meta_names(bad: str) -> None:
    assert check("facebook_ads", "EMAIL", bad) == [
        f"Facebook Ads does not accept {bad}; allowed: {', '.join(META_KEYS)}"
    ]


def test_facebook_needs_an_identifier() -> None:
    assert check("facebook_ads", "FN", "LN", "ZIP") == [
        "Facebook Ads needs at least one identifier among EMAIL, EXTERN_ID, MADID, PHONE"
    ]


@pytest.mark.parametrize("identifier", ["EXTERN_ID", "EMAIL", "PHONE", "MADID"])
def test_facebook_any_single_identifier_is_enough(identifier: str) -> None:
    assert check("facebook_ads", identifier, "FN") == []


def test_facebook_rows_need_any_one_identifier() -> None:
    mapped = ["FN", "EMAIL", "ZIP", "PHONE"]

    assert REGISTRY["facebook_ads"].row_required(mapped) == []
    assert REGISTRY["facebook_ads"].row_any_of(mapped) == ["EMAIL", "PHONE"]
    assert REGISTRY["facebook_ads"].rule_for("EXTERN_ID").hashed is False
    assert REGISTRY["facebook_ads"].rule_for("MADID").hashed is False
    assert REGISTRY["facebook_ads"].rule_for("EMAIL").hashed is True


# --- storage and local ------------------------------------------------------------------------


@pytest.mark.parametrize("type_name", [*STORAGE_TYPES, "local"])
def test_file_types_accept_any_attribute_names(type_name: str) -> None:
    mapped = ["email", "EMAIL", "First Name", "predicted-clv", "x"]
    dtype = REGISTRY[type_name]

    assert dtype.check_attributes(mapped) == []
    assert dtype.row_required(mapped) == []
    assert dtype.row_any_of(mapped) == []
    assert all(dtype.rule_for(a) == AttributeRule(kind="passthrough") for a in mapped)


@pytest.mark.parametrize(
    ("type_name", "required", "value"),
    [
        ("s3", "bucket", "my-bucket"),
        ("gcs", "bucket", "my-bucket"),
        ("azure_blob", "container", "exports"),
        ("sftp", "remote_dir", "/upload"),
    ],
)
def test_storage_options_need_their_target(type_name: str, required: str, value: str) -> None:
    model = REGISTRY[type_name].options_model

    with pytest.raises(ValidationError) as info:
        model.model_validate({})
    assert [(e["loc"], e["type"]) for e in info.value.errors()] == [((required,), "missing")]

    options = model.model_validate({required: value})
    assert getattr(options, required) == value
    assert options.format == "csv"  # type: ignore[attr-defined]


@pytest.mark.parametrize("type_name", ["s3", "gcs", "azure_blob"])
def test_bucket_and_container_names_have_a_minimum_length(type_name: str) -> None:
    model = REGISTRY[type_name].options_model
    field = "container" if type_name == "azure_blob" else "bucket"

    with pytest.raises(ValidationError) as info:
        model.model_validate({field: "ab"})

    assert [e["loc"] for e in info.value.errors()] == [(field,)]


@pytest.mark.parametrize("type_name", [*STORAGE_TYPES, "local"])
@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("../{dag_id}.{ext}", "must not contain '.' or '..' path segments"),
        ("{dag_id}/../../{run_id}.{ext}", "must not contain '.' or '..' path segments"),
        ("/abs/{dag_id}.{ext}", "must be a relative path"),
        ("{dag_id}/{secret}.{ext}", "unknown placeholder(s) secret"),
    ],
)
def test_unsafe_file_templates_refused(type_name: str, template: str, message: str) -> None:
    model = REGISTRY[type_name].options_model
    target = {
        "s3": {"bucket": "my-bucket"},
        "gcs": {"bucket": "my-bucket"},
        "azure_blob": {"container": "exports"},
        "sftp": {"remote_dir": "/upload"},
        "local": {},
    }[type_name]

    with pytest.raises(ValidationError) as info:
        model.model_validate({**target, "file_template": template})

    errors = info.value.errors()
    assert [e["loc"] for e in errors] == [("file_template",)]
    assert message in errors[0]["msg"]


@pytest.mark.parametrize("type_name", STORAGE_TYPES)
def test_storage_prefix_with_dotdot_refused(type_name: str) -> None:
    model = REGISTRY[type_name].options_model
    target = {"s3": "bucket", "gcs": "bucket", "azure_blob": "container", "sftp": "remote_dir"}

    with pytest.raises(ValidationError) as info:
        model.model_validate({target[type_name]: "somewhere", "prefix": "exports/../other"})

    assert [e["loc"] for e in info.value.errors()] == [("prefix",)]
    assert "'..'" in info.value.errors()[0]["msg"]


def test_local_options_defaults_and_format() -> None:
    model = REGISTRY["local"].options_model

    options = model.model_validate({})
    assert (options.path, options.format, options.header, options.delimiter) == (  # type: ignore[attr-defined]
        "local",
        "csv",
        True,
        ",",
    )
    with pytest.raises(ValidationError):
        model.model_validate({"delimiter": ";;"})
    with pytest.raises(ValidationError):
        model.model_validate({"format": "jsonl"})


# --- through whole campaigns ------------------------------------------------------------------


def campaign_with(
    dtype: str,
    attributes: dict[str, str],
    *,
    options: dict[str, Any] | None = None,
    dry_run: bool = True,
    conn_id: str | None = None,
) -> dict[str, Any]:
    """The sample campaign sending every treatment group to a single destination ``dest``."""
    doc = sample_doc()
    dest: dict[str, Any] = {"type": dtype, "dry_run": dry_run, "attributes": attributes}
    if options is not None:
        dest["options"] = options
    if conn_id is not None:
        dest["conn_id"] = conn_id
    doc["destinations"] = {"dest": dest}
    groups = [g for s in doc["sub_audiences"] for g in s["treatment_groups"]]
    groups += doc["remaining"]["treatment_groups"]
    for group in groups:
        if not group.get("control"):
            group["destinations"] = ["dest"]
    return doc


def problems_of(tmp_path: Path, doc: dict[str, Any]) -> list[Problem]:
    path = write_campaign(tmp_path, "dest_campaign", doc)
    try:
        load_file(path)
    except CampaignError as exc:
        assert exc.path == path
        assert exc.campaign == "lifecycle_winback"
        return exc.problems
    return []


@pytest.mark.parametrize(
    ("dtype", "attributes"),
    [
        ("klaviyo", {"email": "email", "predicted_clv": "predicted_clv", "city": "City"}),
        ("attentive", {"phone": "phone"}),
        ("attentive", {"email": "email"}),
        ("criteo", {"email": "email"}),
        ("tiktok_ads", {"email": "EMAIL", "phone": "PHONE", "apple_ad_id": "IDFA"}),
        ("facebook_ads", {"customer_id": "EXTERN_ID", "given_name": "FN", "gender": "GEN"}),
        ("local", {"customer_id": "Customer ID", "email": "e-mail"}),
    ],
)
def test_valid_campaign_destinations(tmp_path: Path, dtype: str, attributes: dict) -> None:
    assert problems_of(tmp_path, campaign_with(dtype, attributes)) == []


@pytest.mark.parametrize(
    ("dtype", "options"),
    [
        ("s3", {"bucket": "my-bucket", "prefix": "campaigns", "format": "parquet"}),
        ("gcs", {"bucket": "my-bucket"}),
        ("azure_blob", {"container": "exports", "format": "jsonl"}),
        ("sftp", {"remote_dir": "/upload"}),
    ],
)
def test_valid_storage_campaigns(tmp_path: Path, dtype: str, options: dict) -> None:
    doc = campaign_with(dtype, {"email": "Email Address"}, options=options)

    assert problems_of(tmp_path, doc) == []


@pytest.mark.parametrize(
    ("dtype", "attributes", "message"),
    [
        ("klaviyo", {"phone": "phone_number"}, "Klaviyo requires email"),
        (
            "attentive",
            {"phone": "phone", "email": "email"},
            "Attentive takes exactly one of email or phone, not both and not neither "
            "(mapped: email, phone)",
        ),
        (
            "criteo",
            {"email": "email", "given_name": "first_name"},
            "Criteo does not accept first_name; allowed: email",
        ),
        ("tiktok_ads", {"email": "EMAIL", "apple_ad_id": "IDFA"}, "TikTok Ads requires PHONE"),
        (
            "tiktok_ads",
            {"email": "EMAIL", "phone": "PHONE", "customer_id": "EXTERN_ID"},
            "TikTok Ads does not accept EXTERN_ID; allowed: EMAIL, PHONE, IDFA, AAID",
        ),
        (
            "facebook_ads",
            {"given_name": "FN", "postal": "ZIP"},
            "Facebook Ads needs at least one identifier among EMAIL, EXTERN_ID, MADID, PHONE",
        ),
    ],
)
def test_campaign_destination_contract_violations(
    tmp_path: Path, dtype: str, attributes: dict, message: str
) -> None:
    problems = problems_of(tmp_path, campaign_with(dtype, attributes))

    assert problems == [Problem(ATTRIBUTES_FIELD, message)]


def test_campaign_attentive_neither_identifier(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, campaign_with("attentive", {"given_name": "first_name"}))

    assert problems == [
        Problem(ATTRIBUTES_FIELD, "Attentive does not accept first_name; allowed: phone, email"),
        Problem(
            ATTRIBUTES_FIELD,
            "Attentive takes exactly one of email or phone, not both and not neither "
            "(mapped: none)",
        ),
    ]


def test_campaign_facebook_refuses_lowercase_and_long_names(tmp_path: Path) -> None:
    doc = campaign_with("facebook_ads", {"email": "email", "given_name": "FIRST_NAME"})

    problems = problems_of(tmp_path, doc)

    assert problems == [
        Problem(
            ATTRIBUTES_FIELD,
            f"Facebook Ads does not accept FIRST_NAME, email; allowed: {', '.join(META_KEYS)}",
        ),
        Problem(
            ATTRIBUTES_FIELD,
            "Facebook Ads needs at least one identifier among EMAIL, EXTERN_ID, MADID, PHONE",
        ),
    ]


def test_campaign_destination_without_attributes(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, campaign_with("local", {}))

    assert problems == [Problem(ATTRIBUTES_FIELD, "Local folder needs at least one attribute")]


@pytest.mark.parametrize(
    ("dtype", "field"),
    [("s3", "bucket"), ("gcs", "bucket"), ("azure_blob", "container"), ("sftp", "remote_dir")],
)
def test_campaign_storage_without_target(tmp_path: Path, dtype: str, field: str) -> None:
    problems = problems_of(tmp_path, campaign_with(dtype, {"email": "email"}))

    assert problems == [Problem(f"destinations.dest.options.{field}", "Field required")]


@pytest.mark.parametrize("dtype", [*STORAGE_TYPES, "local"])
def test_campaign_file_template_with_dotdot(tmp_path: Path, dtype: str) -> None:
    target = {
        "s3": {"bucket": "my-bucket"},
        "gcs": {"bucket": "my-bucket"},
        "azure_blob": {"container": "exports"},
        "sftp": {"remote_dir": "/upload"},
        "local": {},
    }[dtype]
    options = {**target, "file_template": "{dag_id}/../{run_id}.{ext}"}

    problems = problems_of(tmp_path, campaign_with(dtype, {"email": "email"}, options=options))

    assert problems == [
        Problem(
            "destinations.dest.options.file_template",
            "template '{dag_id}/../{run_id}.{ext}' must not contain '.' or '..' path segments",
        )
    ]


@pytest.mark.parametrize(
    ("dtype", "attributes", "options"),
    [
        ("klaviyo", {"email": "email"}, {"audience_name": "winback", "sync_mode": "mirror"}),
        ("attentive", {"phone": "phone"}, {"audience_name": "{campaign} {treatment_group}"}),
        ("criteo", {"email": "email"}, {"audience_name": "a", "sync_mode": "replace"}),
        ("tiktok_ads", {"email": "EMAIL", "phone": "PHONE"}, {"sync_mode": "add"}),
        ("facebook_ads", {"email": "EMAIL"}, {"sync_mode": "replace"}),
        ("s3", {"email": "email"}, {"bucket": "my-bucket"}),
        ("gcs", {"email": "email"}, {"bucket": "my-bucket"}),
        ("azure_blob", {"email": "email"}, {"container": "exports"}),
        ("sftp", {"email": "email"}, {"remote_dir": "/upload"}),
        ("local", {"email": "email"}, {"path": "review"}),
    ],
)
def test_campaign_unknown_option_key(
    tmp_path: Path, dtype: str, attributes: dict, options: dict
) -> None:
    assert problems_of(tmp_path, campaign_with(dtype, attributes, options=options)) == []

    problems = problems_of(
        tmp_path, campaign_with(dtype, attributes, options={**options, "colour": "red"})
    )

    assert problems == [Problem("destinations.dest.options.colour", "unknown key")]


@pytest.mark.parametrize(
    ("dtype", "attributes", "options"),
    [
        ("klaviyo", {"email": "email"}, None),
        ("attentive", {"phone": "phone"}, None),
        ("criteo", {"email": "email"}, None),
        ("tiktok_ads", {"email": "EMAIL", "phone": "PHONE"}, None),
        ("facebook_ads", {"email": "EMAIL"}, None),
        ("s3", {"email": "email"}, {"bucket": "my-bucket"}),
        ("gcs", {"email": "email"}, {"bucket": "my-bucket"}),
        ("azure_blob", {"email": "email"}, {"container": "exports"}),
        ("sftp", {"email": "email"}, {"remote_dir": "/upload"}),
    ],
)
def test_campaign_live_delivery_needs_a_connection(
    tmp_path: Path, dtype: str, attributes: dict, options: dict | None
) -> None:
    doc = campaign_with(dtype, attributes, options=options, dry_run=False, conn_id="the_conn")
    assert problems_of(tmp_path, doc) == []

    doc = campaign_with(dtype, attributes, options=options, dry_run=False)
    doc["destinations"]["dest"].pop("conn_id", None)

    assert problems_of(tmp_path, doc) == [
        Problem("destinations.dest.conn_id", f"{REGISTRY[dtype].label} needs an Airflow conn_id")
    ]


@pytest.mark.parametrize("dtype", ["klaviyo", "attentive", "tiktok_ads", "braze"])
def test_replace_only_where_the_platform_offers_it(tmp_path: Path, dtype: str) -> None:
    attributes = {
        "tiktok_ads": {"email": "EMAIL", "phone": "PHONE"},
        "braze": {"customer_id": "external_id"},
    }.get(dtype, {"email": "email"})
    doc = campaign_with(dtype, attributes, options={"sync_mode": "replace"})

    (problem,) = problems_of(tmp_path, doc)
    assert problem.field == "destinations.dest.options.sync_mode"
    assert "does not support sync_mode 'replace' (supported: add, mirror)" in problem.message


def test_campaign_local_delivers_live_without_a_conn_id(tmp_path: Path) -> None:
    doc = campaign_with("local", {"email": "email"}, dry_run=False)

    assert problems_of(tmp_path, doc) == []
