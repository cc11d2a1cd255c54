"""Build and project benchmark: each task in its own process, against the ceilings."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import yaml

from benchmarks.campaigns import pipeline_campaign
from benchmarks.proc import run_measured

HERE = Path(__file__).resolve().parent


def generate(db: Path, rows: int) -> dict[str, Any]:
    """The sample customers table with ``rows`` rows (reused when already there)."""
    if db.exists():
        return {"reused": True}
    db.parent.mkdir(parents=True, exist_ok=True)
    return run_measured(
        [sys.executable, "-m", "campaign_sync.sample_data", str(db), "--rows", str(rows)]
    )


def task_env(db: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    env["AIRFLOW_CONN_BENCH_DB"] = f'{{"conn_type": "duckdb", "host": "{db}"}}'
    return env


def run_task(task: str, campaign: Path, db: Path, staging: Path, run_id: str) -> dict[str, Any]:
    """One campaign task (``build`` or ``project``) in a fresh process."""
    cmd = [sys.executable, str(HERE / "task_child.py"), task, str(campaign), str(db)]
    return run_measured([*cmd, str(staging), run_id], task_env(db))


def run_ceiling(kind: str, db: Path, out: Path, memory_limit: str) -> dict[str, Any]:
    """One ceiling query in a fresh process."""
    cmd = [sys.executable, str(HERE / "ceiling.py"), kind, str(db), str(out)]
    return run_measured([*cmd, "--memory-limit", memory_limit], task_env(db))


def pipeline_suite(
    work: Path, rows: int, repeat: int, memory_limit: str, *, ceilings: bool = True
) -> dict[str, Any]:
    """build_audience and project at ``rows`` customers, ``repeat`` times, with both ceilings
    run between them (same table, same run) unless ``ceilings`` is false."""
    db = work / "data" / f"customers_{rows}.duckdb"
    generated = generate(db, rows)
    campaign = work / "pipeline.yaml"
    campaign.write_text(yaml.safe_dump(pipeline_campaign()))
    staging = work / f"staging_{rows}"
    runs: dict[str, list[dict[str, Any]]] = {
        "build": [],
        "project": [],
        "ceiling_simple": [],
        "ceiling_normalizers": [],
    }
    for i in range(repeat):
        shutil.rmtree(staging, ignore_errors=True)
        run_id = f"bench_{i}"
        for task in ("build", "project"):
            runs[task].append(run_task(task, campaign, db, staging, run_id))
            print(rows, task, json.dumps(runs[task][-1]), flush=True)
        for kind in ("simple", "normalizers") if ceilings else ():
            out = work / f"ceiling_{kind}.parquet"
            runs[f"ceiling_{kind}"].append(run_ceiling(kind, db, out, memory_limit))
            print(rows, kind, json.dumps(runs[f"ceiling_{kind}"][-1]), flush=True)
            out.unlink(missing_ok=True)
    shutil.rmtree(staging, ignore_errors=True)
    return {"rows": rows, "generated": generated, "runs": runs}
