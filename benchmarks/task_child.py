"""Run one campaign task (build_audience or project) in this process and report as JSON.

The parent measures this process's peak RSS (``os.wait4``), as a worker's task process.

    python benchmarks/task_child.py build|project CAMPAIGN.yaml DB.duckdb STAGING RUN_ID
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path


def main() -> None:
    task, campaign_file, db, staging_root, run_id = sys.argv[1:6]
    os.environ.setdefault("AIRFLOW_CONN_BENCH_DB", json.dumps({"conn_type": "duckdb", "host": db}))
    from campaign_sync import config
    from campaign_sync.hooks.duckdb import DuckDBHook
    from campaign_sync.layout import RunLayout
    from campaign_sync.plan import build_plan
    from campaign_sync.spec.loader import load_file
    from campaign_sync.staging import Staging

    plan = build_plan(load_file(Path(campaign_file)))
    layout = RunLayout(plan.dag_id, run_id)
    staging = Staging(staging_root)
    memory = config.duckdb_memory_limit()
    t0 = time.perf_counter()
    if task == "build":
        from campaign_sync.audience.build import build_audience

        hook = DuckDBHook(duckdb_conn_id="bench_db")
        summary = build_audience(
            plan, hook, staging, layout, batch_rows=config.batch_rows(), memory_limit=memory
        )
        rows = summary.audience_size
        detail = summary.to_xcom()
    else:
        from campaign_sync.projection.project import project_group

        out = project_group(plan, plan.groups[0], staging, layout, memory_limit=memory)
        rows = out.members
        detail = {n: d.rows for n, d in out.destinations.items()}
    print(json.dumps({"task_s": time.perf_counter() - t0, "rows": rows, "detail": detail}))


if __name__ == "__main__":
    main()
