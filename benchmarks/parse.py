"""Parse benchmark: our factory vs hand-written airflow.sdk DAGs vs dag-factory 1.1.0.

Each variant gets its own dags folder of N campaigns of the same 32-task shape; each
measurement is a DagBag in a fresh process (``parse_child.py``).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from benchmarks.campaigns import GROUPS, PARSE_DESTINATIONS, SUBS, parse_campaign

ROOT = Path(__file__).resolve().parent.parent
CHILD = Path(__file__).with_name("parse_child.py")

OURS_DAG_FILE = ROOT / "dags" / "campaign_sync_dags.py"

HAND_WRITTEN = '''"""Hand-written airflow.sdk DAGs of the campaign shape (parse benchmark)."""
from datetime import datetime, timedelta, timezone

from airflow.sdk import DAG, TaskGroup
from airflow.providers.standard.operators.empty import EmptyOperator

N = {n}
SUBS = {subs!r}
GROUPS = {groups!r}
DESTINATIONS = {destinations!r}

for i in range(N):
    dag_id = f"bench_campaign_{{i:05d}}"
    with DAG(
        dag_id=dag_id,
        description=f"Benchmark campaign {{i}}",
        tags=["campaign-sync", "bench"],
        schedule="0 6 * * 1",
        start_date=datetime(2026, 11, 2, tzinfo=timezone.utc),
        catchup=False,
        max_active_runs=1,
        default_args={{"owner": "bench", "retries": 2, "retry_delay": timedelta(seconds=60)}},
    ) as dag:
        audience = EmptyOperator(task_id="build_audience")
        manifest = EmptyOperator(task_id="write_manifest")
        for sub in SUBS:
            for group in GROUPS:
                with TaskGroup(group_id=f"{{sub.replace(' ', '_')}}__{{group}}") as tg:
                    project = EmptyOperator(task_id="project")
                    for dest in DESTINATIONS:
                        project >> EmptyOperator(task_id=f"export_{{dest}}")
                audience >> tg >> manifest
    globals()[dag_id] = dag
'''

DAG_FACTORY_LOADER = '''"""dag-factory loader (one for every YAML file): airflow DAG benchmark."""
from dagfactory import load_yaml_dags

load_yaml_dags(globals_dict=globals(), dags_folder={folder!r})
'''
EMPTY = "airflow.providers.standard.operators.empty.EmptyOperator"


def dag_factory_yaml(index: int) -> dict[str, Any]:
    """The dag-factory YAML of campaign ``index``: same ids, groups and dependencies."""
    dag_id = f"bench_campaign_{index:05d}"
    groups = [f"{s.replace(' ', '_')}__{g}" for s in SUBS for g in GROUPS]
    tasks: dict[str, Any] = {"build_audience": {"operator": EMPTY}}
    for g in groups:
        tasks[f"{g}_project"] = {"operator": EMPTY, "task_group_name": g}
        for d in PARSE_DESTINATIONS:
            tasks[f"{g}_export_{d}"] = {
                "operator": EMPTY,
                "task_group_name": g,
                "dependencies": [f"{g}_project"],
            }
    tasks["write_manifest"] = {"operator": EMPTY, "dependencies": groups}
    return {
        dag_id: {
            "default_args": {
                "owner": "bench",
                "start_date": "2026-11-02",
                "retries": 2,
                "retry_delay_sec": 60,
            },
            "description": f"Benchmark campaign {index}",
            "schedule": "0 6 * * 1",
            "catchup": False,
            "max_active_runs": 1,
            "tags": ["campaign-sync", "bench"],
            "task_groups": {g: {"tooltip": g, "dependencies": ["build_audience"]} for g in groups},
            "tasks": tasks,
        }
    }


def prepare(root: Path, n: int) -> dict[str, Path]:
    """Write the three variants' folders for ``n`` campaigns; return their dags folders."""
    if root.exists():
        shutil.rmtree(root)
    ours, hand, factory = root / "ours", root / "hand", root / "dag_factory"
    (ours / "dags").mkdir(parents=True)
    (ours / "campaigns").mkdir()
    (hand / "dags").mkdir(parents=True)
    (factory / "dags").mkdir(parents=True)
    (factory / "yaml").mkdir()
    shutil.copy(OURS_DAG_FILE, ours / "dags" / OURS_DAG_FILE.name)
    (hand / "dags" / "hand_written_dags.py").write_text(
        HAND_WRITTEN.format(n=n, subs=SUBS, groups=GROUPS, destinations=PARSE_DESTINATIONS)
    )
    (factory / "dags" / "dag_factory_dags.py").write_text(
        DAG_FACTORY_LOADER.format(folder=str(factory / "yaml"))
    )
    for i in range(n):
        doc = parse_campaign(i)
        (ours / "campaigns" / f"{doc['name']}.yaml").write_text(yaml.safe_dump(doc))
        (factory / "yaml" / f"{doc['name']}.yaml").write_text(yaml.safe_dump(dag_factory_yaml(i)))
    return {"ours": ours, "hand": hand, "dag_factory": factory}


@dataclass
class Measured:
    """Repeated measurements of one configuration."""

    label: str
    runs: list[dict[str, Any]] = field(default_factory=list)

    def values(self, key: str) -> list[float]:
        return [float(r[key]) for r in self.runs]

    def median(self, key: str) -> float:
        return statistics.median(self.values(key))


def base_env(campaigns: Path | None = None, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__UNIT_TEST_MODE="False",
        # Measure past Airflow's 30 s default; the limit is applied to the figures instead.
        AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT="3600",
        AIRFLOW__DAG_FACTORY__ENABLE_TELEMETRY="False",
        DO_NOT_TRACK="1",
        SCARF_NO_ANALYTICS="true",
    )
    env.pop("_AIRFLOW_PARSING_CONTEXT_DAG_ID", None)
    env.pop("_AIRFLOW_PARSING_CONTEXT_TASK_ID", None)
    # A deployment parses from compiled modules (the Airflow image ships them); with bytecode
    # writing off, every parse would compile Airflow's and our modules again (see measure).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if campaigns is not None:
        env["CAMPAIGN_SYNC_CAMPAIGNS_DIR"] = str(campaigns)
    env.update(extra or {})
    return env


def run_child(python: str, folder: Path, env: dict[str, str]) -> dict[str, Any]:
    """One DagBag in a fresh process; adds the whole process's wall time."""
    t0 = time.perf_counter()
    out = subprocess.run(
        [python, str(CHILD), str(folder)], env=env, capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - t0
    if out.returncode != 0:
        raise RuntimeError(f"parse child failed ({folder}):\n{out.stderr[-3000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["wall_s"] = wall
    return result


_COMPILED: set[tuple[str, str, str]] = set()


def measure(
    label: str,
    python: str,
    folder: Path,
    env: dict[str, str],
    repeat: int,
    *,
    precompile: bool = True,
) -> Measured:
    """``repeat`` parses of ``folder``. With ``precompile``, the first time a variant (label,
    interpreter, code on PYTHONPATH) is measured, one untimed parse runs first, so the modules
    it imports are compiled (written as bytecode) before any timing."""
    m = Measured(label)
    variant = (label, python, env.get("PYTHONPATH", ""))
    if precompile and variant not in _COMPILED:
        _COMPILED.add(variant)
        run_child(python, folder, env)
    for _ in range(repeat):
        m.runs.append(run_child(python, folder, env))
    return m


def parse_suite(
    work: Path, sizes: list[int], repeat: int, dag_factory_python: str | None
) -> dict[str, Any]:
    """Every parse measurement; returns plain data for the report."""
    me = sys.executable
    results: dict[str, Any] = {"sizes": {}}
    for n in sizes:
        folders = prepare(work / f"parse_{n}", n)
        cache = work / f"parse_cache_{n}"
        shutil.rmtree(cache, ignore_errors=True)
        ours_env = base_env(
            folders["ours"] / "campaigns", {"CAMPAIGN_SYNC_PARSE_CACHE": str(cache)}
        )
        # The DAG processor parses the folder again and again: measure that steady state, with
        # the cache filled by a first parse (done here, in this process).
        fill_cache(folders["ours"] / "campaigns", cache)
        row = {
            "ours": measure("ours", me, folders["ours"] / "dags", ours_env, repeat),
            "hand": measure("hand", me, folders["hand"] / "dags", base_env(), repeat),
        }
        if dag_factory_python:
            row["dag_factory"] = measure(
                "dag_factory",
                dag_factory_python,
                folders["dag_factory"] / "dags",
                base_env(),
                repeat,
            )
        results["sizes"][n] = row
    return results


def fill_cache(campaigns: Path, cache: Path) -> None:
    """Validate every campaign once through the parse cache at ``cache``."""
    if os.environ.get("PYTHONPATH"):  # measuring older code (run.py --before): no cache there
        return
    from campaign_sync.spec.loader import ParseCache, load_folder

    load_folder(campaigns, ParseCache(cache))


def worker_parse(work: Path, n: int, repeat: int) -> Measured:
    """A worker parsing for one task (``get_parsing_context``) with ``n`` campaigns present."""
    folders = work / f"parse_{n}" / "ours"
    dag_id = parse_campaign(n // 2)["name"]
    env = base_env(
        folders / "campaigns",
        {
            "CAMPAIGN_SYNC_PARSE_CACHE": str(work / f"parse_cache_{n}"),
            "_AIRFLOW_PARSING_CONTEXT_DAG_ID": dag_id,
            "_AIRFLOW_PARSING_CONTEXT_TASK_ID": "active__a.project",
        },
    )
    return measure("worker", sys.executable, folders / "dags", env, repeat)


def direct(work: Path, n: int, shards: int) -> dict[str, Any]:
    """Our factory alone on ``n`` campaigns split over ``shards`` DAG files: the first parse
    (cold cache), then a second one (the DAG processor parses again every
    ``min_file_process_interval``)."""
    root = work / f"parse_direct_{n}"
    if root.exists():
        shutil.rmtree(root)
    (root / "dags").mkdir(parents=True)
    (root / "campaigns").mkdir()
    for i in range(shards):
        shutil.copy(OURS_DAG_FILE, root / "dags" / f"campaign_sync_dags_shard_{i}_of_{shards}.py")
    for i in range(n):
        doc = parse_campaign(i)
        (root / "campaigns" / f"{doc['name']}.yaml").write_text(yaml.safe_dump(doc))
    env = base_env(root / "campaigns", {"CAMPAIGN_SYNC_PARSE_CACHE": str(root / "cache")})
    # The modules are compiled by now (the sizes above); an untimed parse would fill the cache.
    cold = measure("cold", sys.executable, root / "dags", env, 1, precompile=False)
    warm = measure("warm", sys.executable, root / "dags", env, 1, precompile=False)
    return {"n": n, "shards": shards, "cold": cold, "m": warm}
