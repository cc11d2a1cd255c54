"""File-drop options checked when the campaign loads, and names that can never escape."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from campaign_sync.destinations import REGISTRY
from campaign_sync.operators.file_drop import StorageConfigError
from campaign_sync.spec.checks import Problem
from campaign_sync.spec.loader import CampaignError, load_file
from helpers import sample_doc, write_campaign
from storage_helpers import campaign_for, context, exporter, make_projected

TARGETS = {
    "s3": {"bucket": "my-bucket"},
    "gcs": {"bucket": "my-bucket"},
    "azure_blob": {"container": "exports"},
    "sftp": {"remote_dir": "/upload"},
}
TYPES = list(TARGETS)


def problems(tmp_path: Path, dtype: str, options: dict[str, Any], **dest: Any) -> list[Problem]:
    doc = sample_doc()
    doc["destinations"] = {
        "drop": {
            "type": dtype,
            "conn_id": "the_conn",
            "attributes": {"email": "email"},
            "options": {**TARGETS[dtype], **options},
            **dest,
        }
    }
    for sub in doc["sub_audiences"]:
        for group in sub["treatment_groups"]:
            group["destinations"] = [] if group.get("control") else ["drop"]
    doc["remaining"]["treatment_groups"][0]["destinations"] = ["drop"]
    try:
        load_file(write_campaign(tmp_path, "c", doc))
    except CampaignError as exc:
        return exc.problems
    return []


@pytest.mark.parametrize("dtype", TYPES)
def test_every_option_together_is_valid(tmp_path, dtype):
    options = {
        "prefix": "campaigns/{campaign}/{run_date}",
        "file_template": "{run_id}/{sub_audience}/{treatment_group}/{file_number}.{ext}",
        "format": "csv",
        "header": False,
        "delimiter": "|",
        "compression": "gzip",
        "max_rows_per_file": 50_000,
        "success_marker": ".DONE",
    }

    assert problems(tmp_path, dtype, options) == []
    assert REGISTRY[dtype].exporter == (
        f"campaign_sync.operators.{dtype}."
        + {"s3": "S3", "gcs": "GCS", "azure_blob": "AzureBlob", "sftp": "SFTP"}[dtype]
        + "ExportOperator"
    )


@pytest.mark.parametrize("dtype", TYPES)
@pytest.mark.parametrize(
    ("options", "field", "message"),
    [
        ({"prefix": "/etc"}, "prefix", "must be a relative path"),
        ({"prefix": "exports/../../etc"}, "prefix", "'..' path segments"),
        ({"prefix": "{campaign}/.."}, "prefix", "'..' path segments"),
        ({"file_template": "../{run_id}.{ext}"}, "file_template", "'..' path segments"),
        ({"file_template": "/{run_id}.{ext}"}, "file_template", "must be a relative path"),
        ({"file_template": "{run_id}/"}, "file_template", "must name a file"),
        ({"file_template": "{run_id}//{file_number}"}, "file_template", "empty path segments"),
        ({"prefix": "a//{campaign}"}, "prefix", "empty path segments"),
        ({"success_marker": "../_SUCCESS"}, "success_marker", "'..' path segments"),
        ({"success_marker": "done/_SUCCESS"}, "success_marker", "must be a file name"),
        ({"success_marker": "_{file_number}"}, "success_marker", "{file_number} does not apply"),
        ({"delimiter": '"'}, "delimiter", "cannot be a quote"),
        ({"delimiter": ";;"}, "delimiter", "at most 1 character"),
        ({"max_rows_per_file": 0}, "max_rows_per_file", "greater than or equal to 1"),
        ({"format": "xml"}, "format", "'csv', 'parquet' or 'jsonl'"),
        ({"compression": "zip"}, "compression", "'none' or 'gzip'"),
    ],
)
def test_unsafe_or_invalid_option_refused_at_load(tmp_path, dtype, options, field, message):
    found = problems(tmp_path, dtype, options)

    assert [p.field for p in found] == [f"destinations.drop.options.{field}"]
    assert message in found[0].message


@pytest.mark.parametrize("dtype", TYPES)
@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"file_template": "{campaign}/{sub_audience}_{file_number}.{ext}"},
            "must contain {run_id} or {run_date}",
        ),
        (
            {"file_template": "{run_id}/{sub_audience}.{ext}", "max_rows_per_file": 10},
            "max_rows_per_file needs {file_number}",
        ),
        ({"format": "parquet", "compression": "gzip"}, "Parquet files are compressed internally"),
    ],
)
def test_inconsistent_options_refused_at_load(tmp_path, dtype, options, message):
    found = problems(tmp_path, dtype, options)

    assert [p.field for p in found] == ["destinations.drop.options"]
    assert message in found[0].message


def test_run_date_in_prefix_is_enough(tmp_path):
    options = {"prefix": "drops/{run_date}", "file_template": "{sub_audience}_{file_number}.csv"}

    assert problems(tmp_path, "s3", options) == []


@pytest.mark.parametrize(
    ("remote_dir", "message"),
    [("upload/../../etc", "'..' segments"), ("/srv/{campaign}", "fixed folder")],
)
def test_sftp_remote_dir_cannot_escape(tmp_path, remote_dir, message):
    found = problems(tmp_path, "sftp", {"remote_dir": remote_dir})

    assert [p.field for p in found] == ["destinations.drop.options.remote_dir"]
    assert message in found[0].message


@pytest.mark.parametrize(
    ("dtype", "options", "field"),
    [
        ("s3", {"bucket": "My_Bucket"}, "bucket"),
        ("gcs", {"bucket": "-bucket"}, "bucket"),
        ("azure_blob", {"container": "two--dashes"}, "container"),
        ("azure_blob", {"container": "Upper"}, "container"),
    ],
)
def test_bucket_and_container_names_checked(tmp_path, dtype, options, field):
    found = problems(tmp_path, dtype, options)

    assert [p.field for p in found] == [f"destinations.drop.options.{field}"]


@pytest.mark.parametrize("dtype", TYPES)
def test_live_delivery_needs_a_connection(tmp_path, dtype):
    doc_problems = problems(tmp_path, dtype, {}, conn_id=None)

    assert doc_problems == [
        Problem("destinations.drop.conn_id", f"{REGISTRY[dtype].label} needs an Airflow conn_id")
    ]


def test_rendered_names_stay_under_the_prefix(tmp_path, staging_root):
    """Odd names (a sub-audience ``x .. etc``, a run id with slashes) stay single segments;
    names with path separators are refused at load (tests/test_isolation.py)."""
    from campaign_sync.operators.s3 import S3ExportOperator

    doc = sample_doc()
    doc["name"] = "../../escape"
    doc["sub_audiences"][0]["name"] = "x .. etc"
    options = {"bucket": "my-bucket", "prefix": "drops"}
    doc["destinations"] = {
        "drop": {
            "type": "s3",
            "conn_id": "c",
            "attributes": {"email": "email"},
            "options": options,
        }
    }
    for sub in doc["sub_audiences"]:
        for group in sub["treatment_groups"]:
            group["destinations"] = [] if group.get("control") else ["drop"]
    doc.pop("remaining")
    from campaign_sync.plan import build_plan

    plan = build_plan(load_file(write_campaign(tmp_path, "c", doc)))
    group = next(g for g in plan.groups if g.sub_audience == "x .. etc" and not g.is_control)
    op = exporter(plan, S3ExportOperator, options, conn_id="c", group_id=group.group_id)
    values = op.template_values(context("manual__/../../x"), "csv")

    names = op._names(op.options_model.model_validate(options), values, 3)

    for name in names:
        parts = name.split("/")
        assert parts[0] == "drops"
        assert ".." not in parts and "" not in parts and "." not in parts
    assert names[0].endswith("/x_.._etc/treatment/drop_00001.csv")


def test_groups_that_would_share_a_file_are_refused_before_sending(tmp_path, staging_root):
    from campaign_sync.operators.sftp import SFTPExportOperator

    options = {"remote_dir": "upload", "file_template": "{run_id}_{file_number}.{ext}"}
    plan = campaign_for(tmp_path, "sftp", options, conn_id="not_defined_either")

    with pytest.raises(StorageConfigError, match="would both write") as info:
        exporter(plan, SFTPExportOperator, options, conn_id="not_defined_either").deliver(
            make_projected(tmp_path / "p.parquet", 10), context()
        )
    assert "{sub_audience} and {treatment_group}" in str(info.value)
