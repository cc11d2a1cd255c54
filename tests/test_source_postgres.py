"""A real warehouse source: the audience read from Postgres through a common-sql ``postgres``
connection (PostgresHook), next to the same customers in DuckDB.

Postgres runs from ``initdb`` in a temporary folder as the system user ``campaign_sync_pg``
(``scripts/cluster.py``), once for this module.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from campaign_sync.audience.build import build_audience
from campaign_sync.audience.source import SourceError, SourceUnavailable
from campaign_sync.hooks.duckdb import DuckDBHook
from campaign_sync.layout import RunLayout
from campaign_sync.plan import build_plan
from campaign_sync.projection.project import project_group
from campaign_sync.spec.loader import load_file
from campaign_sync.staging import Staging
from helpers import REPO, SAMPLE_CAMPAIGN, sample_doc, write_campaign
from storage_helpers import free_port

sys.path.insert(0, str(REPO / "scripts"))
import cluster

ROWS = 200_000
MEMORY = "512MB"
RUN_ID = "manual__2026-11-02T06:00:00+00:00"


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Postgres holding the 200k sample customers, and the DuckDB file they came from."""
    base = tmp_path_factory.mktemp("postgres")
    with cluster.postgres_server(base, ("warehouse",)) as pg:
        assert cluster.load_sample(pg, "warehouse", ROWS, base) == ROWS
        yield {"pg": pg, "duckdb": base / "merged_customers.duckdb"}


@pytest.fixture
def connections(warehouse, monkeypatch) -> dict[str, Any]:
    """``campaign_sync_sample`` on Postgres and ``duck_sample`` on DuckDB."""
    pg = warehouse["pg"]
    monkeypatch.setenv(
        "AIRFLOW_CONN_CAMPAIGN_SYNC_SAMPLE", json.dumps(pg.airflow_connection("warehouse"))
    )
    monkeypatch.setenv(
        "AIRFLOW_CONN_DUCK_SAMPLE",
        json.dumps({"conn_type": "duckdb", "host": str(warehouse["duckdb"])}),
    )
    return warehouse


def _postgres_hook(conn_id: str = "campaign_sync_sample") -> Any:
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    return PostgresHook(postgres_conn_id=conn_id)


def _run(plan: Any, hook: Any, root: Path) -> tuple[Any, dict[str, Any], dict[str, str]]:
    staging, layout = Staging(str(root)), RunLayout(plan.dag_id, RUN_ID)
    summary = build_audience(plan, hook, staging, layout, batch_rows=20_000, memory_limit=MEMORY)
    outputs = {
        g.group_id: project_group(plan, g, staging, layout, memory_limit=MEMORY)
        for g in plan.groups
    }
    hashes = {}
    for group in plan.groups:
        for dest in group.destinations:
            path = root / layout.projected(group.group_id, dest)
            table = pq.read_table(path)
            table = table.sort_by([(c, "ascending") for c in table.column_names[:1]])
            hashes[f"{group.group_id}/{dest}"] = hashlib.sha256(
                table.to_pandas().to_csv(index=False).encode()
            ).hexdigest()
    return summary, outputs, hashes


def test_postgres_and_duckdb_sources_give_identical_groups_and_payloads(connections, tmp_path):
    plan = build_plan(load_file(SAMPLE_CAMPAIGN))
    pg_summary, pg_outputs, pg_hashes = _run(plan, _postgres_hook(), tmp_path / "pg")
    duck = DuckDBHook(duckdb_conn_id="duck_sample")
    duck_summary, duck_outputs, duck_hashes = _run(plan, duck, tmp_path / "duck")

    assert pg_summary.source_rows > 100_000
    assert pg_summary == duck_summary
    assert {g: o.members for g, o in pg_outputs.items()} == {
        g: o.members for g, o in duck_outputs.items()
    }
    assert pg_outputs == duck_outputs  # every destination's counts and set-aside reasons
    assert len(pg_hashes) == sum(len(g.destinations) for g in plan.groups) == 18
    assert pg_hashes == duck_hashes


def test_postgres_source_streams_through_a_server_side_cursor(connections, tmp_path):
    """The result stays in Postgres: a named cursor, fetched one batch at a time."""
    hook = _postgres_hook()
    conn = hook.get_conn()
    seen: dict[str, Any] = {"names": [], "fetches": []}

    class Spy:
        def __init__(self, cursor: Any) -> None:
            self.cursor = cursor

        def __getattr__(self, name: str) -> Any:
            return getattr(self.cursor, name)

        def fetchmany(self, size: int) -> Any:
            rows = self.cursor.fetchmany(size)
            seen["fetches"].append(len(rows))
            return rows

    class SpyConn:
        def cursor(self, *args: Any, **kwargs: Any) -> Any:
            seen["names"].append(kwargs.get("name"))
            return Spy(conn.cursor(*args, **kwargs))

        def close(self) -> None:
            conn.close()

    hook.get_conn = SpyConn  # type: ignore[method-assign]
    plan = build_plan(load_file(SAMPLE_CAMPAIGN))
    staging, layout = Staging(str(tmp_path)), RunLayout(plan.dag_id, RUN_ID)
    summary = build_audience(plan, hook, staging, layout, batch_rows=7_000, memory_limit=MEMORY)
    assert seen["names"] == ["campaign_sync_audience"]
    assert max(seen["fetches"]) == 7_000
    assert sum(seen["fetches"]) == summary.source_rows
    assert conn.closed


def _plan_with(tmp_path: Path, **source: Any) -> Any:
    doc = sample_doc()
    doc["source"].update(source)
    return build_plan(load_file(write_campaign(tmp_path, "lifecycle_winback", doc)))


def _build(plan: Any, hook: Any, tmp_path: Path) -> Any:
    layout = RunLayout(plan.dag_id, RUN_ID)
    return build_audience(
        plan, hook, Staging(str(tmp_path / "s")), layout, batch_rows=5_000, memory_limit=MEMORY
    )


def _first_email(pg: Any) -> str:
    with pg.connect("warehouse") as conn, conn.cursor() as cur:
        cur.execute("SELECT email FROM merged_customers WHERE email LIKE '%@%' LIMIT 1")
        return str(cur.fetchone()[0])


def test_postgres_bad_column_names_connection_and_campaign(connections, tmp_path):
    plan = _plan_with(tmp_path, include=["lifecycle_stage = 'active'"])
    with pytest.raises(SourceError) as info:
        _build(plan, _postgres_hook(), tmp_path)
    message = str(info.value)
    assert "'lifecycle_winback'" in message and "'campaign_sync_sample'" in message
    assert "UndefinedColumn" in message and "lifecycle_stage" in message
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_postgres_value_errors_never_print_row_values(connections, tmp_path):
    email = _first_email(connections["pg"])
    plan = _plan_with(tmp_path, include=["CAST(email AS integer) > 0"])
    with pytest.raises(SourceError) as info:
        _build(plan, _postgres_hook(), tmp_path)
    message = str(info.value)
    assert "InvalidTextRepresentation" in message and "'campaign_sync_sample'" in message
    assert "<value withheld>" in message
    assert email not in message and "@" not in message


def test_postgres_permission_denied_names_connection(connections, tmp_path, monkeypatch):
    pg = connections["pg"]
    with pg.connect("warehouse") as conn, conn.cursor() as cur:
        cur.execute("DROP ROLE IF EXISTS campaign_reader")
        cur.execute("CREATE ROLE campaign_reader LOGIN")
    monkeypatch.setenv(
        "AIRFLOW_CONN_PG_READER",
        json.dumps(pg.airflow_connection("warehouse", user="campaign_reader")),
    )
    doc = sample_doc()
    doc["source"]["conn_id"] = "pg_reader"
    plan = build_plan(load_file(write_campaign(tmp_path, "lifecycle_winback", doc)))
    with pytest.raises(SourceError) as info:
        _build(plan, _postgres_hook("pg_reader"), tmp_path)
    message = str(info.value)
    assert "'pg_reader'" in message and "'lifecycle_winback'" in message
    assert "InsufficientPrivilege" in message and "permission denied" in message


def test_postgres_connection_refused_is_retried_and_names_connection(tmp_path, monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_CAMPAIGN_SYNC_SAMPLE",
        json.dumps(cluster.Postgres(free_port()).airflow_connection("warehouse")),
    )
    plan = build_plan(load_file(SAMPLE_CAMPAIGN))
    with pytest.raises(SourceUnavailable) as info:
        _build(plan, _postgres_hook(), tmp_path)
    message = str(info.value)
    assert "'campaign_sync_sample'" in message and "'lifecycle_winback'" in message
    assert "OperationalError" in message and "refused" in message
    assert not isinstance(info.value, SourceError)  # transient: Airflow retries it
