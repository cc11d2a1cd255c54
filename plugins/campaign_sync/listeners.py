"""Scheduler-side checks at the start of a campaign run (an Airflow listener).

An Airflow 3 task has no database access and the Task SDK offers no pool lookup, so a task
cannot tell that its pool is missing: the scheduler just leaves it unscheduled, logging
"Tasks using non-existent pool". The scheduler calls ``on_dag_run_running`` when a run starts,
inside its own database session; there the campaign's pools are looked up, and each missing one
is named in the run's note (shown on the run's page and by the REST API) and in the scheduler's
log, with the command that creates it. The run is left to wait: it continues once the pool
exists.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from airflow.listeners import hookimpl

if TYPE_CHECKING:
    from airflow.models.dagrun import DagRun

log = logging.getLogger(__name__)

TAG = "campaign-sync"  # factory.TAG, not imported: this module loads in the scheduler
NOTE_HEADING = "campaign-sync: missing pools"


def missing_pools_note(missing: dict[str, list[str]]) -> str:
    """The run note naming each missing pool, the tasks waiting on it and how to create it."""
    lines = [f"**{NOTE_HEADING}.** These tasks wait, unscheduled, until their pool exists:"]
    for pool, tasks in sorted(missing.items()):
        shown = ", ".join(sorted(tasks)[:5]) + (
            f" and {len(tasks) - 5} more" if len(tasks) > 5 else ""
        )
        lines.append(f"- pool `{pool}`: {shown}")
    lines.append(
        "Create the pools with `campaign-sync pools` (or Admin → Pools); the run then continues."
    )
    return "\n".join(lines)


def pools_of(dag: Any) -> dict[str, list[str]]:
    """The pools a DAG's tasks run in, with the tasks in each."""
    found: dict[str, list[str]] = {}
    for task in dag.tasks:
        found.setdefault(task.pool, []).append(task.task_id)
    return found


@hookimpl
def on_dag_run_running(dag_run: DagRun, msg: str) -> None:
    """At a campaign run's start, name the pools its tasks need that do not exist."""
    dag = getattr(dag_run, "dag", None)
    if msg != "started" or dag is None or TAG not in (dag.tags or ()):
        return
    from airflow.models.pool import Pool
    from sqlalchemy import select
    from sqlalchemy.orm import object_session

    session = object_session(dag_run)
    if session is None:
        return
    needed = pools_of(dag)
    existing = set(session.scalars(select(Pool.pool).where(Pool.pool.in_(list(needed)))))
    missing = {pool: tasks for pool, tasks in needed.items() if pool not in existing}
    if not missing:
        return
    log.warning(
        "campaign-sync: run %s of %s waits on missing pools %s; create them with "
        "`campaign-sync pools`",
        dag_run.run_id,
        dag_run.dag_id,
        ", ".join(sorted(missing)),
    )
    note = missing_pools_note(missing)
    # Keep a note given at trigger time; the check's text goes after it.
    dag_run.note = f"{dag_run.note}\n\n{note}" if dag_run.note else note
