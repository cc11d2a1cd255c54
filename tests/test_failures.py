"""The failure taxonomy (campaign_sync.failures): permanent failures end a task on its first try
with a message saying what to fix; transient ones are left for Airflow to retry."""

from __future__ import annotations

import errno
import json
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml
from airflow.sdk.exceptions import AirflowFailException
from campaign_sync import duck
from campaign_sync.failures import PermanentError, storage_error_is_permanent
from campaign_sync.layout import RunLayout
from campaign_sync.operators.audience import BuildAudienceOperator
from campaign_sync.operators.export import LocalExportOperator
from campaign_sync.operators.manifest import WriteManifestOperator
from campaign_sync.plan import CampaignPlan, build_plan
from campaign_sync.spec.loader import load_file
from helpers import REPO
from storage_helpers import execute, make_projected

RUN_ID = "manual__2026-11-02T11:00:00+00:00"


def _campaign_doc(name: str, conn_id: str, *, control: bool = False) -> dict[str, Any]:
    group: dict[str, Any] = {"name": "treatment", "percentage": 100, "destinations": ["files"]}
    if control:
        group = {"name": "held out", "percentage": 100, "control": True}
    return {
        "name": name,
        "retries": {"count": 2, "delay_seconds": 0},
        "source": {"conn_id": conn_id, "table": "customers", "customer_id": "cust"},
        "sub_audiences": [{"name": "all", "condition": "TRUE", "treatment_groups": [group]}],
        "destinations": {
            "files": {"type": "local", "attributes": {"cust": "customer_id", "email": "email"}}
        },
    }


def _write(folder: Path, doc: dict[str, Any]) -> Path:
    path = folder / f"{doc['name']}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _plan(folder: Path, doc: dict[str, Any]) -> CampaignPlan:
    return build_plan(load_file(_write(folder, doc)))


def _duplicate_ids_db(path: Path, monkeypatch: pytest.MonkeyPatch, conn_id: str) -> None:
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE customers (cust VARCHAR, email VARCHAR)")
    con.executemany(
        "INSERT INTO customers VALUES (?, ?)",
        [("k1", "a@example.com"), ("k2", "b@example.com"), ("k1", "c@example.com")],
    )
    con.close()
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": "duckdb", "host": str(path)})
    )


# --- classification of storage providers' errors ------------------------------------------------


def _client_error(code: str, status: int) -> Exception:
    from botocore.exceptions import ClientError

    return ClientError(
        {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "PutObject",
    )


def _permanent_errors() -> list[BaseException]:
    from azure.core.exceptions import ClientAuthenticationError, ResourceNotFoundError
    from boto3.exceptions import S3UploadFailedError
    from botocore.exceptions import NoCredentialsError
    from google.api_core.exceptions import Forbidden, NotFound, Unauthorized
    from paramiko.ssh_exception import AuthenticationException, BadHostKeyException

    return [
        _client_error("NoSuchBucket", 404),
        _client_error("AccessDenied", 403),
        _client_error("InvalidAccessKeyId", 403),
        _client_error("SignatureDoesNotMatch", 403),
        S3UploadFailedError(
            "Failed to upload f to b/k: An error occurred (NoSuchBucket) when calling the"
            " PutObject operation: The specified bucket does not exist"
        ),
        NoCredentialsError(),
        NotFound("bucket not found"),
        Forbidden("no storage.objects.create"),
        Unauthorized("invalid credentials"),
        ResourceNotFoundError("ContainerNotFound"),
        ClientAuthenticationError("Server failed to authenticate the request"),
        AuthenticationException("Authentication failed."),
        BadHostKeyException("host", _FakeKey(), _FakeKey()),
        PermissionError(errno.EACCES, "Permission denied"),
        FileNotFoundError(errno.ENOENT, "No such file"),
        ValueError("Connection string missing required connection details."),
    ]


class _FakeKey:
    def get_base64(self) -> str:
        return "AAAA"

    def get_name(self) -> str:
        return "ssh-ed25519"


def _transient_errors() -> list[BaseException]:
    from azure.core.exceptions import ServiceRequestError
    from botocore.exceptions import EndpointConnectionError
    from google.api_core.exceptions import ServiceUnavailable, TooManyRequests
    from paramiko.ssh_exception import SSHException

    return [
        _client_error("InternalError", 500),
        _client_error("SlowDown", 503),
        EndpointConnectionError(endpoint_url="http://127.0.0.1:1"),
        ServiceUnavailable("backend error"),
        TooManyRequests("rate limited"),
        ServiceRequestError("connection refused"),
        SSHException("Error reading SSH protocol banner"),
        TimeoutError("timed out"),
        ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"),
        TimeoutError("read timed out"),
        OSError(errno.ENOSPC, "No space left on device"),
        json.JSONDecodeError("Expecting value", "<html>502", 0),
    ]


def test_storage_provider_errors_permanent_or_transient():
    for exc in _permanent_errors():
        assert storage_error_is_permanent(exc), repr(exc)
    for exc in _transient_errors():
        assert not storage_error_is_permanent(exc), repr(exc)


# --- duplicate customer ids ---------------------------------------------------------------------


def test_duplicate_ids_are_permanent_build_audience_fails_on_try_1(
    airflow_db, campaigns_dir, staging_root, tmp_path, monkeypatch
):
    """Through Airflow itself: with retries allowed, build_audience fails once and is not
    retried (it used to be retried for minutes)."""
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("CAMPAIGN_SYNC_OUTPUT_ROOT", str(tmp_path / "outputs"))
    _duplicate_ids_db(tmp_path / "dupes.duckdb", monkeypatch, "dupes_db")
    _write(campaigns_dir, _campaign_doc("dupes", "dupes_db"))
    bag = DagBag(dag_folder=str(REPO / "dags"))
    assert not bag.import_errors
    dag = bag.dags["dupes"]
    assert dag.get_task(RunLayout.BUILD_AUDIENCE).retries == 2

    when = datetime(2026, 11, 2, 12, tzinfo=UTC)
    run = dag.test(logical_date=when, run_after=when)

    assert run.state == "failed"
    tis = {ti.task_id: ti for ti in run.get_task_instances()}
    audience = tis[RunLayout.BUILD_AUDIENCE]
    assert (audience.state, audience.try_number) == ("failed", 1)
    assert tis[RunLayout.WRITE_MANIFEST].state == "upstream_failed"


def test_duplicate_ids_permanent_through_the_operator(tmp_path, opened, monkeypatch):
    _duplicate_ids_db(tmp_path / "dupes.duckdb", monkeypatch, "dupes_db")
    plan = _plan(tmp_path, _campaign_doc("dupes", "dupes_db"))
    op = BuildAudienceOperator(task_id=RunLayout.BUILD_AUDIENCE, plan=plan)

    with pytest.raises(AirflowFailException) as info:
        op.execute({"run_id": RUN_ID})

    message = str(info.value)
    assert "campaign 'dupes'" in message and "'cust'" in message
    assert "1 duplicate id(s); deduplicate in the source query" in message
    assert list(opened["root"].rglob("*")) == []  # nothing staged
    assert opened["connections"] and all(_closed(c) for c in opened["connections"])
    assert list(opened["temp"].iterdir()) == []


def test_source_that_is_not_a_database_is_permanent(tmp_path, staging_root, monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_NOT_SQL", json.dumps({"conn_type": "http", "host": "127.0.0.1"})
    )
    plan = _plan(tmp_path, _campaign_doc("not sql", "not_sql"))

    with pytest.raises(AirflowFailException, match="'not_sql' is a HttpHook, not a SQL database"):
        BuildAudienceOperator(task_id=RunLayout.BUILD_AUDIENCE, plan=plan).execute(
            {"run_id": RUN_ID}
        )


# --- exports ------------------------------------------------------------------------------------


def _local_export(plan: CampaignPlan, options: dict[str, Any]) -> LocalExportOperator:
    return LocalExportOperator(
        task_id=RunLayout.export_task("files"),
        plan=plan,
        group_id=plan.groups[0].group_id,
        destination="files",
        options=options,
    )


def _context() -> dict[str, Any]:
    return {"run_id": RUN_ID, "logical_date": datetime(2026, 11, 2, 11, tzinfo=UTC)}


def test_template_escaping_its_folder_is_permanent(tmp_path, staging_root, monkeypatch):
    monkeypatch.setenv("CAMPAIGN_SYNC_OUTPUT_ROOT", str(tmp_path / "outputs"))
    plan = _plan(tmp_path, _campaign_doc("escape", "unused"))
    op = _local_export(plan, {"file_template": "../../escaped/{run_id}.csv"})

    with pytest.raises(AirflowFailException) as info:
        execute(op, make_projected(tmp_path / "p.parquet", 5), _context())

    message = str(info.value)
    assert "campaign 'escape', destination 'files'" in message
    assert "options.file_template" in message and "'..'" in message
    assert not (tmp_path / "escaped").exists()


def test_export_without_its_projection_is_permanent(tmp_path, staging_root):
    plan = _plan(tmp_path, _campaign_doc("no projection", "unused"))

    class NoXCom:
        def xcom_pull(self, task_ids: str) -> None:
            return None

    with pytest.raises(AirflowFailException, match="rerun the group's project task"):
        _local_export(plan, {}).execute({**_context(), "ti": NoXCom()})


def test_local_export_still_delivers(tmp_path, staging_root, monkeypatch):
    monkeypatch.setenv("CAMPAIGN_SYNC_OUTPUT_ROOT", str(tmp_path / "outputs"))
    plan = _plan(tmp_path, _campaign_doc("delivers", "unused"))

    result = execute(_local_export(plan, {}), make_projected(tmp_path / "p.parquet", 5), _context())

    assert result["rows_sent"] == 5 and Path(result["location"]).is_file()


# --- the manifest: reconciliation, and nothing left open on the way out ---------------------------


class _XComs:
    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values

    def xcom_pull(self, task_ids: str) -> Any:
        return self.values[task_ids]


@pytest.fixture
def opened(tmp_path, monkeypatch) -> dict[str, Any]:
    """Staging on an object store (``file://``, so read_dir downloads into temp folders), temp
    folders under one watched folder, and every DuckDB connection the task opens."""
    root = tmp_path / "remote_staging"
    root.mkdir()
    monkeypatch.setenv("CAMPAIGN_SYNC_STAGING_ROOT", f"file://{root}")
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    connections: list[Any] = []
    real_connect = duck.connect

    def connect(*args: Any, **kwargs: Any) -> Any:
        connections.append(real_connect(*args, **kwargs))
        return connections[-1]

    monkeypatch.setattr(duck, "connect", connect)
    return {"root": root, "temp": temp, "connections": connections}


def _closed(con: Any) -> bool:
    try:
        con.execute("SELECT 1")
    except duckdb.ConnectionException:
        return True
    return False


def _manifest_run(tmp_path: Path, members: int, projected: int) -> tuple[Any, dict[str, Any]]:
    plan = _plan(tmp_path, _campaign_doc("manifest", "unused", control=True))
    gid = plan.groups[0].group_id
    xcoms = {
        RunLayout.BUILD_AUDIENCE: {
            "audience_size": members,
            "source_rows": members,
            "rows_without_customer_id": 0,
            "unassigned": 0,
            "group_members": {gid: members},
        },
        RunLayout.project_task_id(gid): {"members": projected, "destinations": {}},
    }
    op = WriteManifestOperator(task_id=RunLayout.WRITE_MANIFEST, plan=plan)
    return op, {"run_id": RUN_ID, "logical_date": None, "ti": _XComs(xcoms)}


def test_failing_reconciliation_is_permanent_and_leaves_nothing_open(tmp_path, opened):
    op, context = _manifest_run(tmp_path, members=10, projected=9)

    with pytest.raises(AirflowFailException, match="projection saw 9 members, audience had 10"):
        op.execute(context)

    assert list(opened["temp"].iterdir()) == []
    assert all(_closed(c) for c in opened["connections"])
    assert list(opened["root"].rglob("*")) == []


def test_manifest_failing_mid_write_closes_connection_and_temp_folders(tmp_path, opened):
    # Counts add up, but the group's recipients file was never staged: the COPY fails after
    # the connection and the downloaded group folder are open.
    op, context = _manifest_run(tmp_path, members=3, projected=3)

    with pytest.raises(duckdb.IOException):
        op.execute(context)

    assert opened["connections"], "the task should have opened a connection"
    assert all(_closed(c) for c in opened["connections"])
    assert list(opened["temp"].iterdir()) == []


def test_permanent_error_is_an_airflow_fail_exception():
    assert issubclass(PermanentError, AirflowFailException)
