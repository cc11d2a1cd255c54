"""The maintenance task: delete run folders older than the retention window."""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperator


class PurgeExpiredRunsOperator(BaseOperator):
    """Delete staged run folders, dry-run payloads and local outputs older than ``days``
    (default ``CAMPAIGN_SYNC_RETENTION_DAYS``), keeping what ``mirror`` syncs need.

    Logs and returns counts only (runs, files, bytes).
    """

    ui_color = "#fce8e6"

    def __init__(self, *, days: int | None = None, dry_run: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.days = days
        self.dry_run = dry_run

    def execute(self, context: Any) -> dict[str, Any]:
        """Purge; returns the counts."""
        from campaign_sync import config
        from campaign_sync.retention import purge

        # Read at run time, not parse time: a bad value fails this task with its message.
        days = self.days if self.days is not None else config.retention_days()
        report = purge(days=days, dry_run=self.dry_run)
        for line in report.lines():
            self.log.info("%s", line)
        return report.as_dict()
