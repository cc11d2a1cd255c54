"""Close a run: reconcile counts, write the manifest and the recipients history."""

from __future__ import annotations

import json
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any, ClassVar

from campaign_sync import config, duck
from campaign_sync.manifest import (
    build_manifest,
    run_counts,
    skipped_destinations,
    summary_lines,
    summary_markdown,
)
from campaign_sync.operators.base import CampaignTaskOperator
from campaign_sync.operators.links import ManifestLink


class WriteManifestOperator(CampaignTaskOperator):
    """Write the run's manifest and recipients history (one row per customer x sub-audience x
    treatment group x destination, controls included) into the run's staging folder."""

    ui_color = "#ceead6"
    # The run's counts, shown on the task's "Rendered Templates" page once the task is done.
    template_fields = ("run_counts",)
    template_fields_renderers: ClassVar[dict[str, str]] = {"run_counts": "md"}
    overwrite_rtif_after_execution = True
    operator_extra_links = (ManifestLink(),)
    # Until the run's manifest is written (execute sets it on the task).
    run_counts: str = "Written when the run's manifest is written."

    def execute(self, context: Any) -> dict[str, Any]:
        """Returns the manifest's location and the run's totals."""
        ti = context["ti"]
        staging = self.staging()
        layout = self.layout(context)
        audience = ti.xcom_pull(task_ids=layout.BUILD_AUDIENCE)
        groups = {
            g.group_id: ti.xcom_pull(task_ids=layout.project_task_id(g.group_id))
            for g in self.plan.groups
        }
        exports = {
            (g.group_id, d): ti.xcom_pull(task_ids=layout.export_task_id(g.group_id, d))
            for g in self.plan.groups
            for d in g.destinations
        }
        logical = context.get("logical_date")
        # Reconciled before any file is read: a run that does not add up fails at once.
        manifest = build_manifest(
            self.plan,
            run_id=context["run_id"],
            logical_date=logical.isoformat() if logical else None,
            run_after=_run_after(context),
            audience=audience,
            groups=groups,
            exports=exports,
            recipients_path=staging.uri(layout.recipients_history),
        )
        # Everything opened here (temp folders, downloaded group folders, the connection) is
        # closed on every path out, failures included.
        with ExitStack() as stack:
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="campaign_sync_manifest_"))
            con = duck.connect(Path(tmp), config.duckdb_memory_limit())
            stack.callback(con.close)
            folders = [stack.enter_context(staging.read_dir(layout.group(g))) for g in groups]
            parts = [duck.literal(str(f / layout.RECIPIENTS_FILE)) for f in folders]
            recipients = f"read_parquet([{', '.join(parts)}], union_by_name = true)"
            with staging.write_dir(layout.history) as out:
                con.execute(
                    f"COPY ({_delivered_sql(recipients, skipped_destinations(manifest))})"
                    f" TO {duck.literal(str(out / layout.RECIPIENTS_FILE))} (FORMAT parquet)"
                )
                (out / layout.MANIFEST_FILE).write_text(json.dumps(manifest, indent=2))
        for line in summary_lines(manifest):
            self.log.info("%s", line)
        self.run_counts = summary_markdown(manifest, staging.uri(layout.manifest))
        return {
            "manifest": staging.uri(layout.manifest),
            "recipients_history": manifest["recipients_history"],
            "audience_size": manifest["audience_size"],
            "unassigned": manifest["unassigned"],
            "groups": run_counts(manifest),
        }


def _run_after(context: Any) -> str | None:
    # When the run was due: orders runs without a logical date (manual ones) for summaries.
    dag_run = context.get("dag_run")
    run_after = getattr(dag_run, "run_after", None)
    return run_after.isoformat() if run_after is not None else None


def _delivered_sql(recipients: str, skipped: set[str]) -> str:
    """The recipients history without the rows of destinations this run skipped."""
    if not skipped:
        return f"SELECT * FROM {recipients}"
    names = ", ".join(duck.literal(n) for n in sorted(skipped))
    return f"SELECT * FROM {recipients} WHERE destination IS NULL OR destination NOT IN ({names})"
