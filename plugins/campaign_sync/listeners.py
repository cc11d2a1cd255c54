"""Scheduler-side hooks on campaign runs (an Airflow listener): the pool check at a run's start
and the run's counts in its note at the end.

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
WRITE_MANIFEST = "write_manifest"  # RunLayout.WRITE_MANIFEST
NOTE_LIMIT = 1000  # characters Airflow's dag_run_note column holds


def with_section(note: str | None, heading: str, text: str | None) -> str | None:
    """``note`` with the section starting ``**<heading>`` replaced by ``text`` (or removed); a
    note written by a person is kept, and the result fits Airflow's note column."""
    kept = [p for p in (note or "").split("\n\n") if p and not p.startswith(f"**{heading}")]
    parts = [*kept, text] if text else kept
    joined = "\n\n".join(parts)
    return joined[: NOTE_LIMIT - 1] + "…" if len(joined) > NOTE_LIMIT else joined or None


def _campaign_run(dag_run: DagRun) -> bool:
    dag = getattr(dag_run, "dag", None)
    return dag is not None and TAG in (dag.tags or ())


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
    if msg != "started" or not _campaign_run(dag_run):
        return
    from airflow.models.pool import Pool
    from sqlalchemy import select
    from sqlalchemy.orm import object_session

    session = object_session(dag_run)
    if session is None:
        return
    needed = pools_of(dag_run.dag)
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
    dag_run.note = with_section(dag_run.note, NOTE_HEADING, missing_pools_note(missing))


@hookimpl
def on_dag_run_success(dag_run: DagRun, msg: str) -> None:
    """Put a finished campaign run's totals in its note (replacing a missing-pools section,
    since the run got past it)."""
    if not _campaign_run(dag_run):
        return
    from airflow.models.xcom import XComModel
    from sqlalchemy.orm import object_session

    from campaign_sync.manifest import RUN_NOTE_HEADING, run_note

    session = object_session(dag_run)
    if session is None:
        return
    query = XComModel.get_many(
        run_id=dag_run.run_id, key="return_value", dag_ids=dag_run.dag_id, task_ids=WRITE_MANIFEST
    )
    row = session.scalars(query).first()
    summary = XComModel.deserialize_value(row) if row is not None else None
    note = with_section(dag_run.note, NOTE_HEADING, None)
    if isinstance(summary, dict) and "groups" in summary:
        note = with_section(note, RUN_NOTE_HEADING, run_note(summary))
    if note != dag_run.note:
        dag_run.note = note
