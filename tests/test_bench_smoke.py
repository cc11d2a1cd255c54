"""Benchmark smoke test: catches order-of-magnitude regressions of the benchmarked paths.

Never a fixed timing: each figure is compared, with a 10x margin, with a reference measured in
the same process on the same data (the DuckDB one-SELECT ceiling, a hand-written DAG loop), and
the projection's work is counted in statements. ``make bench`` has the real figures.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml
from campaign_sync import duck
from campaign_sync.sample_data import generate_merged_customers

from benchmarks.campaigns import GROUPS, PARSE_DESTINATIONS, SUBS, parse_campaign, pipeline_campaign
from benchmarks.ceiling import SQL as CEILING_SQL
from benchmarks.parse import HAND_WRITTEN

ROWS = 50_000
CAMPAIGNS = 50
MARGIN = 10  # an order of magnitude
# What build + project cost against the ceiling today, and the hand-written ratio (BENCHMARKS.md).
PROJECT_VS_CEILING = 4.0
PARSE_VS_HAND = 2.5


@pytest.fixture(scope="module")
def customers(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("bench") / "customers.duckdb"
    generate_merged_customers(db, ROWS)
    return db


def _best_of(n: int, fn: Any) -> float:
    best = float("inf")
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def test_build_and_project_stay_near_the_duckdb_ceiling(
    customers: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from campaign_sync.audience.build import build_audience
    from campaign_sync.hooks.duckdb import DuckDBHook
    from campaign_sync.layout import RunLayout
    from campaign_sync.plan import build_plan
    from campaign_sync.projection.project import project_group
    from campaign_sync.spec.model import Campaign
    from campaign_sync.staging import Staging

    monkeypatch.setenv("AIRFLOW_CONN_BENCH_DB", f'{{"conn_type": "duckdb", "host": "{customers}"}}')
    plan = build_plan(Campaign.model_validate(pipeline_campaign()))
    staging = Staging(str(tmp_path / "staging"))
    statements: list[str] = []
    real_connect = duck.connect

    class Counting:
        def __init__(self, con: Any) -> None:
            self.con = con

        def execute(self, sql: str, *args: Any) -> Any:
            statements.append(sql)
            return self.con.execute(sql, *args)

        def close(self) -> None:
            self.con.close()

    monkeypatch.setattr(duck, "connect", lambda *a: Counting(real_connect(*a)))
    runs = iter(range(100))

    def ours() -> None:
        layout = RunLayout(plan.dag_id, f"run_{next(runs)}")
        hook = DuckDBHook(duckdb_conn_id="bench_db")
        build_audience(plan, hook, staging, layout, batch_rows=100_000, memory_limit="1GB")
        statements.clear()
        out = project_group(plan, plan.groups[0], staging, layout, memory_limit="1GB")
        assert out.members == ROWS

    def ceiling() -> None:
        con = duckdb.connect(str(customers), read_only=True)
        target = duck.literal(str(tmp_path / "ceiling.parquet"))
        con.execute(CEILING_SQL.format(table="merged_customers", out=target))
        con.close()

    ours_s, ceiling_s = _best_of(1, ours), _best_of(2, ceiling)
    assert ours_s < ceiling_s * PROJECT_VS_CEILING * MARGIN, (ours_s, ceiling_s)
    # Work, counted: one normalizing pass, then per destination one COPY and one counting
    # scan, then the rejected rows and the recipients history (plus setup statements).
    destinations = len(plan.groups[0].destinations)
    copies = [s for s in statements if s.startswith("COPY")]
    assert len(copies) == 1 + destinations + 2, [s[:60] for s in copies]
    assert sum("ORDER BY __customer_id" in s for s in statements) == destinations


def test_parse_stays_near_a_hand_written_loop(tmp_path: Path):
    from campaign_sync.factory import build_dags
    from campaign_sync.spec.loader import ParseCache

    folder = tmp_path / "campaigns"
    folder.mkdir()
    for i in range(CAMPAIGNS):
        (folder / f"c{i}.yaml").write_text(yaml.safe_dump(parse_campaign(i)))

    # The benchmark's hand-written DAG file, run as Airflow would import it.
    hand_file = HAND_WRITTEN.format(
        n=CAMPAIGNS, subs=SUBS, groups=GROUPS, destinations=PARSE_DESTINATIONS
    )
    code = compile(hand_file, "hand_written_dags.py", "exec")

    def hand() -> None:
        exec(code, {"__name__": "hand_written_dags"})

    cache = ParseCache(tmp_path / "cache")
    dags = build_dags(folder, cache=cache)
    assert len(dags) == CAMPAIGNS and all(len(d.tasks) == 32 for d in dags.values())
    ours_s = _best_of(2, lambda: build_dags(folder, cache=cache))
    hand_s = _best_of(2, hand)
    assert ours_s < hand_s * PARSE_VS_HAND * MARGIN, (ours_s, hand_s)
