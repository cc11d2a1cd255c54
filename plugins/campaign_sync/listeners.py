"""Scheduler-side hooks on campaign runs (an Airflow listener): the pool check at a run's start
and the run's counts in its note at the end.

An Airflow 3 task has no database access and the Task SDK offers no pool lookup, so a task
cannot tell that its pool is missing or too small for it: the scheduler just leaves it
unscheduled, logging "Tasks using non-existent pool" (or that it needs more slots than the pool
has). The scheduler calls ``on_dag_run_running`` when a run starts, inside its own database
session; there the campaign's pools are looked up, and each one that cannot run its tasks is
named in the run's note (shown on the run's page and by the REST API) and in the scheduler's
log, with what to do. The run is left to wait: it continues once the pool can run them.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from airflow.listeners import hookimpl

if TYPE_CHECKING:
    from airflow.models.dagrun import DagRun

log = logging.getLogger(__name__)

TAG = "campaign-sync"  # factory.TAG, not imported: this module loads in the scheduler
NOTE_HEADING = "campaign-sync: pools"
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


def pools_note(needs: dict[str, list[tuple[str, int]]], slots: dict[str, int]) -> str | None:
    """The run note naming each pool that cannot run its tasks (missing, or with fewer slots
    than a task takes) and what to do; None when every pool can."""
    lines = []
    for pool, tasks in sorted(needs.items()):
        if pool in slots:
            tasks = [(t, n) for t, n in tasks if n > slots[pool]]
            if not tasks:
                continue
            problem = f"has {slots[pool]} slots, fewer than these tasks take ({tasks[0][1]})"
        else:
            problem = "does not exist"
        names = sorted(t for t, _ in tasks)
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        lines.append(f"- pool `{pool}` {problem}: {shown}")
    if not lines:
        return None
    return "\n".join(
        [
            f"**{NOTE_HEADING}.** These tasks wait, unscheduled, until their pool can run them:",
            *lines,
            "Create missing pools with `campaign-sync pools`, or set a pool's slots to at least "
            "what its tasks take (Admin → Pools); the run then continues.",
        ]
    )


def pool_needs(dag: Any) -> dict[str, list[tuple[str, int]]]:
    """The pools a DAG's tasks run in, with each task and the slots it takes."""
    found: dict[str, list[tuple[str, int]]] = {}
    for task in dag.tasks:
        found.setdefault(task.pool, []).append((task.task_id, task.pool_slots))
    return found


@hookimpl
def on_dag_run_running(dag_run: DagRun, msg: str) -> None:
    """At a campaign run's start, name the pools that cannot run its tasks."""
    if msg != "started" or not _campaign_run(dag_run):
        return
    from airflow.models.pool import Pool
    from sqlalchemy import select
    from sqlalchemy.orm import object_session

    session = object_session(dag_run)
    if session is None:
        return
    needs = pool_needs(dag_run.dag)
    rows = session.execute(select(Pool.pool, Pool.slots).where(Pool.pool.in_(list(needs))))
    note = pools_note(needs, {name: slots for name, slots in rows})
    if note is None:
        return
    log.warning(
        "campaign-sync: run %s of %s waits on pools that cannot run its tasks (see the run's "
        "note); create them with `campaign-sync pools`",
        dag_run.run_id,
        dag_run.dag_id,
    )
    dag_run.note = with_section(dag_run.note, NOTE_HEADING, note)


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
