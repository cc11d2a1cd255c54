"""A campaign delivering to S3, GCS, Azure Blob and SFTP through Airflow (``dag.test()``), on
real servers: every file read back equals the projected rows; servers down, then back."""

from __future__ import annotations

import os
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from campaign_sync.layout import RunLayout
from helpers import REPO, sample_doc, write_campaign
from storage_helpers import decode, free_port, marker_of, same_rows, set_connection, sha256

pytest_plugins = ["servers"]

BUCKET = "e2e-bucket"
CONTAINER = "e2e-container"
MARKER = "_SUCCESS"
DESTINATIONS: dict[str, dict[str, Any]] = {
    "to_s3": {
        "type": "s3",
        "conn_id": "e2e_s3",
        "options": {
            "bucket": BUCKET,
            "prefix": "campaigns",
            "format": "csv",
            "compression": "gzip",
            "max_rows_per_file": 10_000,
        },
    },
    "to_gcs": {
        "type": "gcs",
        "conn_id": "e2e_gcs",
        "options": {"bucket": BUCKET, "format": "parquet", "max_rows_per_file": 20_000},
    },
    "to_azure": {
        "type": "azure_blob",
        "conn_id": "e2e_azure",
        "options": {"container": CONTAINER, "format": "jsonl", "compression": "gzip"},
    },
    "to_sftp": {
        "type": "sftp",
        "conn_id": "e2e_sftp",
        "options": {
            "remote_dir": "e2e",
            "format": "csv",
            "header": False,
            "delimiter": ";",
            "max_rows_per_file": 15_000,
            "file_template": "{campaign}/{run_date}/{run_id}/{sub_audience}/"
            "{treatment_group}/part-{file_number}.{ext}",
        },
    },
}
ATTRIBUTES = {
    "customer_id": "customer_id",
    "email": "email",
    "given_name": "first_name",
    "phone": "phone",
    "predicted_clv": "predicted_clv",
    "lifecycle_status": "status",
}


def storage_campaign(name: str, conns: dict[str, str], *, subs: tuple[str, ...]) -> dict:
    """The sample campaign, sending the treatment groups of ``subs`` to the four stores."""
    doc = sample_doc()
    doc["name"] = name
    doc.pop("schedule")
    doc.pop("remaining")
    doc["retries"] = {"count": 1, "delay_seconds": 0}
    doc["destinations"] = {
        dest: {
            "type": spec["type"],
            "conn_id": conns[dest],
            "attributes": ATTRIBUTES,
            "options": {**spec["options"], "success_marker": MARKER},
        }
        for dest, spec in DESTINATIONS.items()
    }
    doc["sub_audiences"] = [s for s in doc["sub_audiences"] if s["name"] in subs]
    for sub in doc["sub_audiences"]:
        for group in sub["treatment_groups"]:
            group["destinations"] = [] if group.get("control") else list(DESTINATIONS)
    return doc


class Stores:
    """Read access to the four servers, by a delivery's URI."""

    def __init__(self, s3, gcs, azurite, sftp):
        self.s3 = s3.client()
        self.gcs = gcs.client()
        self.azure = azurite.client().get_container_client(CONTAINER)
        self.sftp = sftp

    def read(self, uri: str) -> bytes:
        scheme, rest = uri.split("://", 1)
        if scheme == "s3":
            bucket, key = rest.split("/", 1)
            return self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        if scheme == "gs":
            bucket, name = rest.split("/", 1)
            return self.gcs.bucket(bucket).blob(name).download_as_bytes()
        if scheme == "wasb":
            return self.azure.download_blob(rest.split("/", 1)[1]).readall()
        path = rest.split("/~/", 1)[1]
        return (self.sftp.home / path).read_bytes()

    def listing(self, uri_folder: str) -> list[str]:
        """Every object name under a delivery folder (a URI ending in '/')."""
        scheme, rest = uri_folder.split("://", 1)
        if scheme == "s3":
            bucket, prefix = rest.split("/", 1)
            pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            return sorted(
                o["Key"].removeprefix(prefix) for p in pages for o in p.get("Contents", [])
            )
        if scheme == "gs":
            bucket, prefix = rest.split("/", 1)
            blobs = self.gcs.list_blobs(bucket, prefix=prefix)
            return sorted(b.name.removeprefix(prefix) for b in blobs)
        if scheme == "wasb":
            prefix = rest.split("/", 1)[1]
            blobs = self.azure.list_blobs(name_starts_with=prefix)
            return sorted(b.name.removeprefix(prefix) for b in blobs)
        folder = self.sftp.home / rest.split("/~/", 1)[1]
        return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def projected(staging: Path, dag_id: str, run_id: str, group_id: str, dest: str) -> pa.Table:
    """The rows the project task staged for one destination, without internal columns."""
    table = pq.read_table(staging / RunLayout(dag_id, run_id).projected(group_id, dest))
    return table.select([n for n in table.column_names if not n.startswith("__")])


def check_delivery(stores: Stores, manifest: dict, staging: Path) -> int:
    """Every destination of every group: read back the marker and each file it lists, compare
    with the projected rows; the folder holds exactly those files. Returns files checked."""
    checked = 0
    for sub in manifest["sub_audiences"].values():
        for group in sub["treatment_groups"].values():
            for dest, result in group["destinations"].items():
                options = DESTINATIONS[dest]["options"]
                expected = projected(
                    staging, manifest["dag_id"], manifest["run_id"], group["group_id"], dest
                )
                assert result["rows_sent"] == expected.num_rows > 0
                folder = result["location"]
                marker = marker_of(stores.read(folder + MARKER))
                assert marker["rows"] == expected.num_rows
                assert marker["run_id"] == manifest["run_id"]
                names = [f["name"].rsplit("/", 1)[1] for f in marker["files"]]
                assert stores.listing(folder) == sorted([*names, MARKER])
                limit = options.get("max_rows_per_file") or expected.num_rows
                assert [f["rows"] for f in marker["files"]] == [
                    min(limit, expected.num_rows - i) for i in range(0, expected.num_rows, limit)
                ]
                parts = []
                for entry, name in zip(marker["files"], names, strict=True):
                    data = stores.read(folder + name)
                    assert (sha256(data), len(data)) == (entry["sha256"], entry["bytes"])
                    parts.append(
                        decode(
                            data,
                            fmt=options["format"],
                            schema=expected.schema,
                            header=options.get("header", True),
                            delimiter=options.get("delimiter", ","),
                            compression=options.get("compression", "none"),
                        )
                    )
                    checked += 1
                same_rows(pa.concat_tables(parts), expected)
    return checked


def run_dag(dag_id: str, when: datetime) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=str(REPO / "dags")).dags[dag_id]
    return dag.test(logical_date=when, run_after=when)


def latest_manifest(staging: Path, dag_id: str) -> dict:
    import json

    found = list((staging / dag_id).glob("*/history/manifest.json"))
    return json.loads(max(found, key=lambda p: p.stat().st_mtime).read_text())


@pytest.fixture
def campaign_env(tmp_path, monkeypatch):
    """Campaigns, staging and outputs folders of this test, for the DAG file and the tasks."""
    folders = {n: tmp_path / n for n in ("campaigns", "staging", "outputs")}
    for folder in folders.values():
        folder.mkdir()
    monkeypatch.setenv("CAMPAIGN_SYNC_CAMPAIGNS_DIR", str(folders["campaigns"]))
    monkeypatch.setenv("CAMPAIGN_SYNC_STAGING_ROOT", str(folders["staging"]))
    monkeypatch.setenv("CAMPAIGN_SYNC_OUTPUT_ROOT", str(folders["outputs"]))
    return folders


def test_campaign_delivers_to_all_four_servers(
    airflow_db, sample_db, campaign_env, s3_server, gcs_server, azurite_server, sftp_server
):
    s3_server.create_bucket(BUCKET)
    gcs_server.create_bucket(BUCKET)
    azurite_server.create_container(CONTAINER)
    sftp_server.user_dir("e2e")
    set_connection("e2e_s3", s3_server.connection())
    set_connection("e2e_gcs", gcs_server.connection())
    set_connection("e2e_azure", azurite_server.connection())
    set_connection("e2e_sftp", sftp_server.connection())
    conns = {d: spec["conn_id"] for d, spec in DESTINATIONS.items()}
    write_campaign(
        campaign_env["campaigns"],
        "four",
        storage_campaign("four stores", conns, subs=("active", "at risk")),
    )

    run = run_dag("four_stores", datetime(2026, 11, 2, 12, tzinfo=UTC))

    assert run.state == "success", [
        (ti.task_id, ti.state) for ti in run.get_task_instances() if ti.state != "success"
    ]
    manifest = latest_manifest(campaign_env["staging"], "four_stores")
    stores = Stores(s3_server, gcs_server, azurite_server, sftp_server)
    # active: 28k rows -> 3 + 2 + 1 + 2 files; at risk: 3.7k rows -> one file each.
    assert check_delivery(stores, manifest, campaign_env["staging"]) == 12


def test_servers_down_fail_after_retries_then_a_rerun_delivers_once(
    airflow_db, sample_db, campaign_env, server_logs, monkeypatch, capfd
):
    from servers import prepare_sshd, start_azurite, start_gcs, start_moto, stop_sshd

    ports = {dest: free_port() for dest in DESTINATIONS}
    sshd_base = Path(tempfile.mkdtemp(prefix="campaign_sync_sshd_down_", dir="/tmp"))
    sftp = prepare_sshd(sshd_base, port=ports["to_sftp"])
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{ports['to_gcs']}")
    # Client-side retries bounded through the connections, so the campaign's retries decide.
    set_connection(
        "down_s3",
        {
            "conn_type": "aws",
            "login": "testing",
            "password": "testing",
            "extra": {
                "endpoint_url": f"http://127.0.0.1:{ports['to_s3']}",
                "region_name": "us-east-1",
                "config_kwargs": {"retries": {"max_attempts": 1}},
            },
        },
    )
    set_connection(
        "down_gcs",
        {
            "conn_type": "google_cloud_platform",
            "extra": {"is_anonymous": True, "project": "p", "retry_timeout": 1},
        },
    )
    from servers import AZURITE_ACCOUNT, AZURITE_KEY

    set_connection(
        "down_azure",
        {
            "conn_type": "wasb",
            "login": AZURITE_ACCOUNT,
            "password": AZURITE_KEY,
            "host": f"http://127.0.0.1:{ports['to_azure']}/{AZURITE_ACCOUNT}",
            "extra": {"retry_total": 0},
        },
    )
    set_connection("down_sftp", sftp.connection())
    conns = {
        "to_s3": "down_s3",
        "to_gcs": "down_gcs",
        "to_azure": "down_azure",
        "to_sftp": "down_sftp",
    }
    write_campaign(
        campaign_env["campaigns"],
        "down",
        storage_campaign("servers down", conns, subs=("at risk",)),
    )
    when = datetime(2026, 11, 9, 12, tzinfo=UTC)
    started: list[Any] = []
    try:
        capfd.readouterr()
        first = run_dag("servers_down", when)
        output = capfd.readouterr()
        text = output.out + output.err

        assert first.state == "failed"
        exports = {
            ti.task_id.split(".")[-1]: ti
            for ti in first.get_task_instances()
            if ".export_" in ti.task_id
        }
        assert {t: (ti.state, ti.try_number) for t, ti in exports.items()} == {
            f"export_{d}": ("failed", 2)
            for d in DESTINATIONS  # the first try and one retry
        }
        targets = {
            "down_s3": f"s3://{BUCKET}",
            "down_gcs": f"gs://{BUCKET}",
            "down_azure": f"wasb://{CONTAINER}",
            "down_sftp": f"sftp://127.0.0.1:{ports['to_sftp']}/~/e2e",
        }
        for conn_id, target in targets.items():
            failures = [
                line
                for line in text.splitlines()
                if "StorageDeliveryError" in line and f"connection '{conn_id}'" in line
            ]
            assert len(failures) >= 2, conn_id  # each try failed naming connection and target
            assert all(target in line for line in failures)

        # The servers come back; rerunning the same DAG run delivers everything, once.
        s3 = start_moto(server_logs, port=ports["to_s3"], auth=False)
        started.append(s3.server)
        s3.create_bucket(BUCKET)
        gcs = start_gcs(server_logs, port=ports["to_gcs"])
        started.append(gcs.server)
        gcs.create_bucket(BUCKET)
        azurite = start_azurite(server_logs, port=ports["to_azure"])
        started.append(azurite.server)
        azurite.create_container(CONTAINER)
        sftp.launch()
        sftp.user_dir("e2e")

        second = run_dag("servers_down", when)

        assert second.run_id == first.run_id
        assert second.state == "success", [
            (ti.task_id, ti.state) for ti in second.get_task_instances()
        ]
        manifest = latest_manifest(campaign_env["staging"], "servers_down")
        stores = Stores(s3, gcs, azurite, sftp)
        assert check_delivery(stores, manifest, campaign_env["staging"]) == 4
    finally:
        for server in started:
            server.stop()
        stop_sshd(sftp)
        shutil.rmtree(sshd_base, ignore_errors=True)
        os.environ.pop("AIRFLOW_CONN_DOWN_SFTP", None)
