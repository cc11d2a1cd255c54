"""The staging area (campaign_sync.staging): local folders and S3 through a moto server."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from campaign_sync.audience.build import build_audience
from campaign_sync.hooks.duckdb import DuckDBHook
from campaign_sync.layout import RunLayout
from campaign_sync.plan import build_plan
from campaign_sync.projection.project import project_group
from campaign_sync.spec.loader import load_file
from campaign_sync.staging import Staging
from helpers import SAMPLE_CAMPAIGN

CONN_ID = "aws_staging"
MEMORY = "512MB"


def _tree(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


def _fill(folder: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


FIRST = {"a.txt": b"first a", "sub/b.txt": b"first b", "sub/deeper/c.bin": bytes(range(256))}
SECOND = {"z.txt": b"second z", "other/y.txt": b"second y"}


# --------------------------------------------------------------------------------------------
# local
# --------------------------------------------------------------------------------------------


def run_prefix(dag_id: str, run_id: str) -> str:
    return RunLayout(dag_id, run_id).folder


def test_run_folder():
    prefix = run_prefix("my_dag", "manual__2026-01-05T06:00:00+00:00")
    assert prefix.startswith("my_dag/manual__2026-01-05T06_00_00_00_00-")
    assert (
        run_prefix("my_dag", "scheduled__x") == "my_dag/scheduled__x"
    )  # clean ids stay as they are
    assert "/" not in run_prefix("d", "a/../../b").split("/", 1)[1]
    assert run_prefix("d", "..").startswith("d/_-")


def test_distinct_run_ids_never_share_a_folder():
    # Airflow accepts all of these run ids; each run must keep its own files.
    run_ids = ["nightly:1", "nightly+1", "nightly_1", "nightly~1"]
    prefixes = {run_prefix("dag", r) for r in run_ids}
    assert len(prefixes) == len(run_ids), prefixes


def test_uri(tmp_path):
    assert Staging(str(tmp_path)).uri("d/r/x.parquet") == str(tmp_path / "d/r/x.parquet")
    assert not Staging(str(tmp_path)).remote
    remote = Staging("s3://conn@bucket/prefix/")
    assert remote.remote
    assert remote.uri("d/r") == "s3://conn@bucket/prefix/d/r"


def test_local_write_dir_creates_nested_folder(tmp_path):
    staging = Staging(str(tmp_path / "root"))
    with staging.write_dir("dag/run/audience") as work:
        assert work.is_dir()
        assert list(work.iterdir()) == []
        assert work != tmp_path / "root/dag/run/audience"
        assert not (tmp_path / "root/dag/run/audience").exists()
        _fill(work, FIRST)
    assert _tree(tmp_path / "root/dag/run/audience") == FIRST
    assert [p.name for p in (tmp_path / "root/dag/run").iterdir()] == ["audience"]


def test_local_write_dir_replaces_whole_folder(tmp_path):
    staging = Staging(str(tmp_path))
    with staging.write_dir("d/r/out") as work:
        _fill(work, FIRST)
    with staging.write_dir("d/r/out") as work:
        # the new folder starts empty, not as a copy of the old one
        assert list(work.iterdir()) == []
        _fill(work, SECOND)
    assert _tree(tmp_path / "d/r/out") == SECOND
    assert sorted(p.name for p in (tmp_path / "d/r").iterdir()) == ["out"]


def test_local_write_dir_with_nothing_written_leaves_empty_folder(tmp_path):
    staging = Staging(str(tmp_path))
    with staging.write_dir("d/r/out") as work:
        _fill(work, FIRST)
    with staging.write_dir("d/r/out"):
        pass
    assert (tmp_path / "d/r/out").is_dir()
    assert _tree(tmp_path / "d/r/out") == {}


def test_local_failure_keeps_previous_contents(tmp_path):
    staging = Staging(str(tmp_path))
    with staging.write_dir("d/r/out") as work:
        _fill(work, FIRST)
    with pytest.raises(RuntimeError, match="boom"), staging.write_dir("d/r/out") as work:
        _fill(work, SECOND)
        raise RuntimeError("boom")
    assert _tree(tmp_path / "d/r/out") == FIRST
    assert sorted(p.name for p in (tmp_path / "d/r").iterdir()) == ["out"]


def test_local_failure_on_first_write_leaves_nothing(tmp_path):
    staging = Staging(str(tmp_path))
    with pytest.raises(ValueError), staging.write_dir("d/r/out") as work:
        _fill(work, FIRST)
        raise ValueError("no")
    assert not (tmp_path / "d/r/out").exists()
    assert list((tmp_path / "d/r").iterdir()) == []


def test_local_write_dir_leaves_siblings_alone(tmp_path):
    staging = Staging(str(tmp_path))
    with staging.write_dir("d/r/a") as work:
        _fill(work, FIRST)
    with staging.write_dir("d/r/b") as work:
        _fill(work, SECOND)
    with staging.write_dir("d/r/b") as work:
        _fill(work, {"only.txt": b"1"})
    assert _tree(tmp_path / "d/r/a") == FIRST
    assert _tree(tmp_path / "d/r/b") == {"only.txt": b"1"}


def test_local_read_dir(tmp_path):
    staging = Staging(str(tmp_path))
    with staging.write_dir("d/r/out") as work:
        _fill(work, FIRST)
    with staging.read_dir("d/r/out") as folder:
        assert _tree(folder) == FIRST
    with staging.read_dir("d/r/missing") as folder:
        assert list(folder.rglob("*")) == []


# --------------------------------------------------------------------------------------------
# S3 (moto server)
# --------------------------------------------------------------------------------------------


def _forget_cached_store() -> None:
    # Airflow caches one filesystem per (protocol, conn_id) per process; another test module
    # may have attached aws_staging to a different endpoint.
    from airflow.sdk.io import store

    store._STORE_CACHE.pop(f"s3-{CONN_ID}", None)


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()
        _forget_cached_store()


@pytest.fixture
def s3(moto_endpoint, monkeypatch) -> Iterator[dict[str, Any]]:
    import boto3

    for key in [k for k in os.environ if k.startswith("AWS_")]:
        monkeypatch.delenv(key)
    client = boto3.client(
        "s3",
        endpoint_url=moto_endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    bucket = f"staging-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{CONN_ID.upper()}",
        json.dumps(
            {
                "conn_type": "aws",
                "login": "testing",
                "password": "testing",
                "extra": {"endpoint_url": moto_endpoint, "region_name": "us-east-1"},
            }
        ),
    )
    _forget_cached_store()
    yield {
        "client": client,
        "bucket": bucket,
        "staging": Staging(f"s3://{CONN_ID}@{bucket}/staging"),
    }
    _forget_cached_store()


def _objects(s3: dict[str, Any], prefix: str = "staging/") -> dict[str, bytes]:
    client, bucket = s3["client"], s3["bucket"]
    keys = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys += [o["Key"] for o in page.get("Contents", [])]
    return {
        k.removeprefix(prefix): client.get_object(Bucket=bucket, Key=k)["Body"].read() for k in keys
    }


def test_s3_write_dir_uploads_nested_files(s3):
    staging = s3["staging"]
    assert staging.remote
    with staging.write_dir("d/r/out") as work:
        _fill(work, FIRST)
    assert _objects(s3) == {f"d/r/out/{k}": v for k, v in FIRST.items()}


def test_s3_write_dir_replaces_previous_objects(s3):
    staging = s3["staging"]
    with staging.write_dir("d/r/out") as work:
        _fill(work, FIRST)
    with staging.write_dir("d/r/keep") as work:
        _fill(work, {"k.txt": b"k"})
    with staging.write_dir("d/r/out") as work:
        _fill(work, SECOND)
    assert _objects(s3) == {
        **{f"d/r/out/{k}": v for k, v in SECOND.items()},
        "d/r/keep/k.txt": b"k",
    }


def test_s3_write_dir_does_not_touch_a_prefix_sharing_sibling(s3):
    staging = s3["staging"]
    with staging.write_dir("d/r/out_2") as work:
        _fill(work, {"x.txt": b"x"})
    with staging.write_dir("d/r/out") as work:
        _fill(work, FIRST)
    with staging.write_dir("d/r/out") as work:
        _fill(work, SECOND)
    objects = _objects(s3)
    assert objects["d/r/out_2/x.txt"] == b"x"
    assert {k for k in objects if k.startswith("d/r/out/")} == {f"d/r/out/{k}" for k in SECOND}


def test_s3_failure_keeps_previous_objects(s3):
    staging = s3["staging"]
    with staging.write_dir("d/r/out") as work:
        _fill(work, FIRST)
    with pytest.raises(RuntimeError), staging.write_dir("d/r/out") as work:
        _fill(work, SECOND)
        raise RuntimeError("boom")
    assert _objects(s3) == {f"d/r/out/{k}": v for k, v in FIRST.items()}


def test_s3_read_dir_downloads_nested_files(s3):
    staging = s3["staging"]
    with staging.write_dir("d/r/out") as work:
        _fill(work, FIRST)
    with staging.read_dir("d/r/out") as folder:
        assert _tree(folder) == FIRST
    with staging.read_dir("d/r/nothing_here") as folder:
        assert folder.is_dir()
        assert _tree(folder) == {}


def _run_sample(staging: Staging, hook: DuckDBHook) -> tuple[Any, dict[str, Any]]:
    plan = build_plan(load_file(SAMPLE_CAMPAIGN))
    layout = RunLayout(plan.dag_id, "manual__2026-11-02T06:00:00+00:00")
    summary = build_audience(plan, hook, staging, layout, batch_rows=25_000, memory_limit=MEMORY)
    outputs = {
        g.group_id: project_group(plan, g, staging, layout, memory_limit=MEMORY)
        for g in plan.groups
    }
    return summary, outputs


def test_sample_campaign_on_s3_matches_local(s3, sample_db, tmp_path):
    hook = DuckDBHook(duckdb_conn_id="campaign_sync_sample")
    local_root = tmp_path / "local_staging"
    local_summary, local_outputs = _run_sample(Staging(str(local_root)), hook)
    s3_summary, s3_outputs = _run_sample(s3["staging"], hook)

    assert s3_summary == local_summary
    assert s3_outputs == local_outputs
    assert sum(local_summary.group_members.values()) == local_summary.audience_size

    objects = _objects(s3)
    local_files = _tree(local_root)
    assert set(objects) == set(local_files)
    prefix = run_prefix("lifecycle_winback", "manual__2026-11-02T06:00:00+00:00")
    assert f"{prefix}/groups/at_risk__treatment/destinations/tiktok.parquet" in objects
    assert f"{prefix}/groups/active__control/recipients.parquet" in objects
    assert any(k.startswith(f"{prefix}/audience/__g=6/") for k in objects)

    # the staged Parquet files hold the same rows as the local run's
    for rel, data in objects.items():
        if rel.endswith(".parquet"):
            tmp = tmp_path / "check.parquet"
            tmp.write_bytes(data)
            assert pq.read_metadata(tmp).num_rows == pq.read_metadata(local_root / rel).num_rows
