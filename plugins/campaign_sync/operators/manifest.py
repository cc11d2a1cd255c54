"""Close a run: reconcile counts, write the manifest and the recipients history."""

from __future__ import annotations

import json
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from campaign_sync import config, duck
from campaign_sync.manifest import build_manifest, summary_lines
from campaign_sync.operators.base import CampaignTaskOperator
from campaign_sync.projection.project import RECIPIENTS_FILE
from campaign_sync.spec.ids import task_id_for_destination

MANIFEST_FILE = "manifest.json"


class WriteManifestOperator(CampaignTaskOperator):
    """Write ``manifest.json`` and ``recipients.parquet`` (one row per customer x sub-audience x
    treatment group x destination, controls included) into the run's staging folder."""

    ui_color = "#ceead6"

    def execute(self, context: Any) -> dict[str, Any]:
        """Returns the manifest's location and the run's totals."""
        ti = context["ti"]
        staging = self.staging()
        run_rel = self.run_rel(context)
        audience = ti.xcom_pull(task_ids="build_audience")
        groups = {
            g.group_id: ti.xcom_pull(task_ids=f"{g.group_id}.project") for g in self.plan.groups
        }
        exports = {
            (g.group_id, d): ti.xcom_pull(task_ids=f"{g.group_id}.{task_id_for_destination(d)}")
            for g in self.plan.groups
            for d in g.destinations
        }
        history_rel = f"{run_rel}/history"
        with tempfile.TemporaryDirectory(prefix="campaign_sync_manifest_") as tmp:
            con = duck.connect(Path(tmp), config.duckdb_memory_limit())
            stack = ExitStack()
            parts = [
                duck.literal(
                    str(
                        stack.enter_context(staging.read_dir(f"{run_rel}/groups/{gid}"))
                        / RECIPIENTS_FILE
                    )
                )
                for gid in groups
            ]
            logical = context.get("logical_date")
            manifest = build_manifest(
                self.plan,
                run_id=context["run_id"],
                logical_date=logical.isoformat() if logical else None,
                run_after=context["dag_run"].run_after.isoformat(),
                audience=audience,
                groups=groups,
                exports=exports,
                recipients_path=staging.uri(f"{history_rel}/{RECIPIENTS_FILE}"),
            )
            with staging.write_dir(history_rel) as out:
                con.execute(
                    f"COPY (SELECT * FROM read_parquet([{', '.join(parts)}], union_by_name = true))"
                    f" TO {duck.literal(str(out / RECIPIENTS_FILE))} (FORMAT parquet)"
                )
                (out / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, sort_keys=False))
            con.close()
            stack.close()
        for line in summary_lines(manifest):
            self.log.info("%s", line)
        return {
            "manifest": staging.uri(f"{history_rel}/{MANIFEST_FILE}"),
            "recipients_history": manifest["recipients_history"],
            "audience_size": manifest["audience_size"],
        }
