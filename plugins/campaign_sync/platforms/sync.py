"""Sync modes: what to send to a platform audience for one run.

- ``add``: every projected row (platforms upsert members).
- ``mirror``: rows new or changed since the last successful delivery of this group to this
  destination, and removal of earlier rows none of whose identifiers is still in the group
  (their payload comes from that earlier delivery's file). A row whose identifier is still
  present is never removed: on platforms that apply removes and adds asynchronously, removing
  it could drop a current member.
- ``replace``: every projected row, replacing the audience's whole membership.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from campaign_sync import duck
from campaign_sync.layout import RunLayout
from campaign_sync.staging import Staging

SYNC_MODES = ("add", "mirror", "replace")


@dataclass(frozen=True)
class SyncPlan:
    """Files of rows to add and to remove (sorted by customer id), and their counts."""

    adds: Path
    removes: Path | None
    added: int
    removed: int


class DeliveryLog:
    """Which run last delivered a group to a destination, and the one before it.

    Kept in staging at ``rel`` (``RunLayout.delivery_log``); an export of run R mirrors against
    the latest delivery from a run other than R, so retries of R diff against the same baseline.
    """

    def __init__(self, staging: Staging, rel: str) -> None:
        self.staging = staging
        self.rel = rel

    def _load(self) -> dict[str, Any]:
        with self.staging.read_dir(self.rel) as folder:
            path = folder / RunLayout.DELIVERY_LOG_FILE
            return json.loads(path.read_text()) if path.exists() else {}

    def baseline_for(self, run_id: str) -> str | None:
        """Run id of the last successful delivery before run ``run_id``, if any."""
        log = self._load()
        current = log.get("current")
        if current and current != run_id:
            return current
        return log.get("previous")

    def record(self, run_id: str) -> None:
        """Note that run ``run_id`` delivered successfully."""
        log = self._load()
        if log.get("current") != run_id:
            log = {"previous": log.get("current"), "current": run_id}
        with self.staging.write_dir(self.rel) as out:
            (out / RunLayout.DELIVERY_LOG_FILE).write_text(json.dumps(log))


def plan_sync(
    mode: str,
    current: Path,
    previous: Path | None,
    work: Path,
    memory_limit: str,
    identity: list[str] | None = None,
) -> SyncPlan:
    """Work out the rows to add and remove for ``mode``; ``identity`` names the columns that
    identify a member on the platform (all columns when empty)."""
    if mode != "mirror" or previous is None:
        # Every row is sent: the file's footer has the count, and the export task needs no
        # DuckDB (importing and starting it was most of an export's time before its first call).
        rows = pq.ParquetFile(current).metadata.num_rows
        return SyncPlan(current, None, int(rows), 0)
    con = duck.connect(work, memory_limit)
    cur = f"read_parquet({duck.literal(str(current))})"
    try:
        prev = f"read_parquet({duck.literal(str(previous))})"
        same_shape = [r[:2] for r in con.execute(f"DESCRIBE SELECT * FROM {cur}").fetchall()] == [
            r[:2] for r in con.execute(f"DESCRIBE SELECT * FROM {prev}").fetchall()
        ]
        adds, removes = work / "adds.parquet", work / "removes.parquet"
        if same_shape:
            add_sql = f"SELECT * FROM {cur} EXCEPT SELECT * FROM {prev}"
            keys = [duck.ident(c) for c in identity or []]
            if keys:
                still_there = " OR ".join(
                    # NULLs kept out of the subquery: "x IN (..., NULL)" is never false.
                    f"(p.{k} IS NOT NULL"
                    f" AND p.{k} IN (SELECT {k} FROM {cur} WHERE {k} IS NOT NULL))"
                    for k in keys
                )
                remove_sql = f"SELECT * FROM {prev} p WHERE NOT ({still_there})"
            else:
                remove_sql = f"SELECT * FROM {prev} EXCEPT SELECT * FROM {cur}"
        else:
            # The attributes changed: every old payload goes, every new one comes.
            add_sql, remove_sql = f"SELECT * FROM {cur}", f"SELECT * FROM {prev}"
        counts = []
        for sql, target in ((add_sql, adds), (remove_sql, removes)):
            con.execute(
                f"COPY ({sql} ORDER BY ALL) TO {duck.literal(str(target))} (FORMAT parquet)"
            )
            counts.append(
                con.execute(
                    f"SELECT count(*) FROM read_parquet({duck.literal(str(target))})"
                ).fetchone()[0]
            )
        return SyncPlan(adds, removes, int(counts[0]), int(counts[1]))
    finally:
        con.close()
