"""Run one task of a factory-built campaign DAG in this process, as a worker's task process
would, and report as JSON (the end-to-end benchmark; the parent measures peak RSS).

    python benchmarks/e2e_child.py DAG_ID TASK_ID RUN_ID LOGICAL_DATE XCOM_DIR
    python benchmarks/e2e_child.py --serve LOG_DIR

``--serve`` works as Airflow 3's task supervisor does on Linux: this process imports Airflow
once, then forks a task process per line of arguments read on stdin (a JSON list) and answers,
per task, one JSON line with the task's report, its wall time and its peak RSS (``os.wait4``).

The DAG comes from the factory (``build_dags`` with Airflow's parsing context set to this
task, as a worker parses); the task is the factory's operator and runs its ``execute``. What
the Airflow task runner would add is replaced by a context of the same keys the operators read:
``run_id``, ``logical_date``, ``dag_run`` (``run_after``, empty ``conf``), ``params``,
``outlet_events`` and a ``ti`` whose ``xcom_pull`` reads the earlier tasks' return values from
``XCOM_DIR`` (JSON, as Airflow stores XComs). This task's return value is written there too.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any


class FileXComs:
    """The ``ti`` of the context: XComs are JSON files named by task id."""

    def __init__(self, folder: Path, task_id: str) -> None:
        self.folder = folder
        self.task_id = task_id

    def xcom_pull(self, task_ids: str, **_: Any) -> Any:
        """The return value of task ``task_ids`` (None when it has none, as in Airflow)."""
        path = self.folder / f"{task_ids}.json"
        return json.loads(path.read_text()) if path.exists() else None


def unpaced(task: Any) -> None:
    """A platform export's hook without its client-side pacing, and Klaviyo's job polls
    immediate: the fakes enforce no limits here, so the run measures our own work, not waits."""
    from campaign_sync.operators.audience_export import PlatformExportOperator

    if not isinstance(task, PlatformExportOperator):
        return
    from airflow.sdk.module_loading import import_string
    from campaign_sync.destinations import REGISTRY

    dtype = task.plan.campaign.destinations[task.destination].type
    hook = import_string(REGISTRY[dtype].hook)
    hook.rate_limits = []
    if hasattr(hook, "poll_interval"):
        hook.poll_interval = 0.0


def run_task(argv: list[str]) -> dict[str, Any]:
    """Parse the DAG for one task, execute the task, keep its XCom; returns the report."""
    dag_id, task_id, run_id, logical, xcom_dir = argv
    # As a worker parses for one task: only this campaign's DAG is built.
    os.environ["_AIRFLOW_PARSING_CONTEXT_DAG_ID"] = dag_id
    os.environ["_AIRFLOW_PARSING_CONTEXT_TASK_ID"] = task_id
    t_start = time.perf_counter()
    from campaign_sync.factory import build_dags

    dag = build_dags()[dag_id]
    task = dag.get_task(task_id)
    if os.environ.get("CAMPAIGN_SYNC_BENCH_UNPACED") == "1":
        unpaced(task)
    when = datetime.fromisoformat(logical)
    context: dict[str, Any] = {
        "run_id": run_id,
        "logical_date": when,
        "dag_run": SimpleNamespace(run_id=run_id, run_after=when, conf={}),
        "params": task.params,
        "ti": FileXComs(Path(xcom_dir), task_id),
        "outlet_events": defaultdict(SimpleNamespace),
    }
    t0 = time.perf_counter()
    result = task.execute(context)
    task_s = time.perf_counter() - t0
    (Path(xcom_dir) / f"{task_id}.json").write_text(json.dumps(result, default=str))
    return {"task_s": task_s, "setup_s": t0 - t_start, "result": result}


def serve(log_dir: Path) -> None:
    """Fork a task process per request on stdin; answer each with one JSON line."""
    t0 = time.perf_counter()
    import campaign_sync.factory  # noqa: F401 - what the supervisor has imported before forking

    print(json.dumps({"import_s": time.perf_counter() - t0}), flush=True)
    for n, line in enumerate(sys.stdin):
        argv = json.loads(line)
        log = log_dir / f"task_{n:02d}.log"
        out = log_dir / f"task_{n:02d}.json"
        t0 = time.perf_counter()
        pid = os.fork()
        if pid == 0:  # the task process
            code = 1
            try:
                fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                os.dup2(fd, 1)
                os.dup2(fd, 2)
                out.write_text(json.dumps(run_task(argv), default=str))
                code = 0
            except BaseException:
                import traceback

                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        _, status, usage = os.wait4(pid, 0)
        report: dict[str, Any] = {
            "wall_s": time.perf_counter() - t0,
            "maxrss_mb": usage.ru_maxrss / 1024,  # KiB on Linux
            "exit": os.waitstatus_to_exitcode(status),
        }
        if report["exit"] == 0:
            report.update(json.loads(out.read_text()))
        else:
            report["log_tail"] = log.read_text(errors="replace")[-3000:]
        print(json.dumps(report, default=str), flush=True)


def main() -> None:
    if sys.argv[1] == "--serve":
        serve(Path(sys.argv[2]))
        return
    print(json.dumps(run_task(sys.argv[1:6]), default=str))


if __name__ == "__main__":
    main()
