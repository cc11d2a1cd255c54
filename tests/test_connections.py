"""``campaign-sync connections``: each campaign's connection ids, whether they exist (through
Airflow's own lookup), and ``--test`` through the hook a task would use."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import duckdb
import pytest
from campaign_sync import cli, connections
from helpers import write_campaign

pytest_plugins = ["servers"]

SECRET = "TOPSECRET-criteo-client-secret"


def campaign_doc(name: str = "conn_check") -> dict:
    everywhere = ["crm", "drop", "local_files", "preview"]
    return {
        "name": name,
        "source": {"conn_id": "cs_src", "table": "customers"},
        "sub_audiences": [
            {
                "name": "everyone",
                "condition": "TRUE",
                "treatment_groups": [{"name": "t", "percentage": 100, "destinations": everywhere}],
            }
        ],
        "destinations": {
            "crm": {"type": "criteo", "conn_id": "cs_criteo", "attributes": {"email": "email"}},
            "drop": {
                "type": "s3",
                "conn_id": "cs_s3",
                "attributes": {"customer_id": "customer_id"},
                "options": {"bucket": "drop-bucket"},
            },
            "local_files": {"type": "local", "attributes": {"customer_id": "customer_id"}},
            "preview": {
                "type": "klaviyo",
                "conn_id": "klaviyo_nowhere",
                "dry_run": True,
                "attributes": {"email": "email"},
            },
        },
    }


def define(monkeypatch: pytest.MonkeyPatch, conn_id: str, **conn: object) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = cli.main(list(argv))
    except SystemExit as exc:  # SystemExit(message) prints it and exits 1, as in a process
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def source_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "warehouse.duckdb"
    duckdb.connect(str(path)).close()
    define(monkeypatch, "cs_src", conn_type="duckdb", host=str(path))
    define(
        monkeypatch, "cs_criteo", conn_type="criteo", login="client", password=SECRET,
        extra={"advertiser_id": "1"},
    )  # fmt: skip
    return path


def line_for(out: str, conn_id: str) -> str:
    (line,) = [ln for ln in out.splitlines() if f" {conn_id} " in ln]
    return line


def test_connections_lists_ids_types_and_missing(campaigns_dir, source_db, capsys):
    write_campaign(campaigns_dir, "conn_check", campaign_doc())
    code, out, _ = run(capsys, "connections")
    assert code == 1  # cs_s3 is not defined
    assert "found (type duckdb)" in line_for(out, "cs_src") and "source" in line_for(out, "cs_src")
    assert "crm (criteo)" in line_for(out, "cs_criteo") and "found (type criteo)" in out
    assert "drop (s3)" in line_for(out, "cs_s3") and "MISSING" in line_for(out, "cs_s3")
    # Dry-run destinations need no connection; the local one has none.
    assert "klaviyo_nowhere" not in out and "dry run, no connection needed: preview" in out
    assert "local_files" not in out
    assert "connections missing: 1" in out
    assert SECRET not in out and "client" not in out


def test_connections_all_defined_exit_zero(campaigns_dir, source_db, capsys, monkeypatch):
    write_campaign(campaigns_dir, "conn_check", campaign_doc())
    define(monkeypatch, "cs_s3", conn_type="aws", login="AKIAEXAMPLE", password=SECRET)
    code, out, _ = run(capsys, "connections", "conn_check")
    assert code == 0 and "MISSING" not in out and "found (type aws)" in line_for(out, "cs_s3")
    assert SECRET not in out and "AKIAEXAMPLE" not in out


def test_connections_found_in_the_metadata_database(airflow_db, campaigns_dir, source_db, capsys):
    from airflow.models.connection import Connection
    from airflow.utils.session import create_session

    write_campaign(campaigns_dir, "conn_check", campaign_doc())
    with create_session() as session:
        session.add(Connection(conn_id="cs_s3", conn_type="aws", login="AKIADB", password=SECRET))
    try:
        code, out, _ = run(capsys, "connections")
        assert code == 0 and "found (type aws)" in line_for(out, "cs_s3")
        assert SECRET not in out
    finally:
        with create_session() as session:
            session.query(Connection).filter(Connection.conn_id == "cs_s3").delete()


def test_connections_test_flag_uses_the_hooks(campaigns_dir, source_db, capsys, monkeypatch):
    from campaign_sync.hooks.criteo import CriteoHook

    write_campaign(campaigns_dir, "conn_check", campaign_doc())
    define(monkeypatch, "cs_s3", conn_type="aws", login="AKIAEXAMPLE", password=SECRET)
    seen: list[str] = []

    def criteo_test(self: CriteoHook) -> tuple[bool, str]:
        seen.append(self.conn_id)
        return True, "token issued"

    # The platform exporter's hook is the one tested (its test_connection comes with the
    # platform kit; stubbed here so this test does not depend on it).
    monkeypatch.setattr(CriteoHook, "test_connection", criteo_test, raising=False)
    real_hook = connections._hook
    # s3: a hook without a test.
    monkeypatch.setattr(
        connections,
        "_hook",
        lambda use, conn: object() if use.kind == "s3" else real_hook(use, conn),
    )
    code, out, _ = run(capsys, "connections", "--test")
    assert code == 0, out
    assert "test ok: Connection successfully tested" in line_for(out, "cs_src")  # a query
    assert "test ok: token issued" in line_for(out, "cs_criteo") and seen == ["cs_criteo"]
    assert "no test available" in line_for(out, "cs_s3")
    assert "failed their test: 0" in out


def test_connections_test_failures_exit_nonzero(
    campaigns_dir, source_db, capsys, monkeypatch, tmp_path
):
    from campaign_sync.hooks.criteo import CriteoHook

    write_campaign(campaigns_dir, "conn_check", campaign_doc())
    define(monkeypatch, "cs_s3", conn_type="aws", login="AKIAEXAMPLE", password=SECRET)
    define(monkeypatch, "cs_src", conn_type="duckdb", host=str(tmp_path / "absent.duckdb"))

    def broken(self: CriteoHook) -> tuple[bool, str]:
        raise ConnectionError("refused " + "x" * 500)

    monkeypatch.setattr(CriteoHook, "test_connection", broken, raising=False)
    monkeypatch.setattr(
        connections,
        "_hook",
        lambda use, conn: (
            object()
            if use.kind == "s3"
            else CriteoHook(use.conn_id)
            if use.kind == "criteo"
            else conn.get_hook()
        ),
    )
    code, out, _ = run(capsys, "connections", "--test", "conn_check")
    assert code == 1
    assert "TEST FAILED" in line_for(out, "cs_src") and "does not exist" in line_for(out, "cs_src")
    crm = line_for(out, "cs_criteo")
    assert "TEST FAILED: ConnectionError: refused" in crm and len(crm) < 400
    assert "failed their test: 2" in out and SECRET not in out


def test_connections_reports_invalid_and_unknown_campaigns(campaigns_dir, source_db, capsys):
    write_campaign(campaigns_dir, "conn_check", campaign_doc())
    broken = campaign_doc("broken")
    broken["destinations"]["crm"]["colour"] = "red"
    write_campaign(campaigns_dir, "broken", broken)
    code, out, err = run(capsys, "connections")
    assert code == 1 and "broken.yaml" in err and "colour" in err
    assert "conn_check" in out
    code, _, err = run(capsys, "connections", "no_such_campaign")
    assert code == 1 and "no_such_campaign" in err


def test_connections_test_reaches_s3_through_the_provider_hook(
    campaigns_dir, source_db, capsys, monkeypatch, s3_server
):
    """No stub: the aws connection's own hook checks the key against moto's server."""
    from campaign_sync.hooks.criteo import CriteoHook

    write_campaign(campaigns_dir, "conn_check", campaign_doc())
    monkeypatch.setattr(CriteoHook, "test_connection", lambda self: (True, "ok"), raising=False)

    def conn(**kwargs: str) -> str:
        # The AWS hook's test asks STS who the key belongs to: moto answers for STS too.
        defined = s3_server.connection(**kwargs)
        defined["extra"]["service_config"] = {"sts": {"endpoint_url": s3_server.endpoint}}
        return json.dumps(defined)

    monkeypatch.setenv("AIRFLOW_CONN_CS_S3", conn())
    code, out, _ = run(capsys, "connections", "--test")
    assert code == 0, out
    assert "test ok" in line_for(out, "cs_s3")
    wrong = conn(secret_key="not-the-secret")
    monkeypatch.setenv("AIRFLOW_CONN_CS_S3", wrong)
    code, out, _ = run(capsys, "connections", "--test")
    refused = line_for(out, "cs_s3")
    assert code == 1 and "TEST FAILED" in refused
    assert "SignatureDoesNotMatch" in refused or "InvalidClientTokenId" in refused, refused
    assert "not-the-secret" not in out and s3_server.secret_key not in out
