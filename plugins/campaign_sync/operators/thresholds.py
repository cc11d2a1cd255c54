"""The threshold gate between projection and export: warn in the log, or fail the run before
anything is sent."""

from __future__ import annotations

from typing import Any

from campaign_sync.alerts import (
    Finding,
    audience_change_finding,
    previous_audience_size,
    rejected_share_findings,
)
from campaign_sync.failures import PermanentError
from campaign_sync.operators.base import CampaignTaskOperator


class ThresholdExceeded(PermanentError):
    """A threshold set to ``fail`` was crossed: nothing was sent."""


class CheckThresholdsOperator(CampaignTaskOperator):
    """Check the campaign's thresholds on the projected counts; every export waits for it."""

    ui_color = "#fde293"

    def execute(self, context: Any) -> dict[str, Any]:
        """Returns the findings (check, action, message) and what was compared."""
        ti = context["ti"]
        layout = self.layout(context)
        thresholds = self.plan.campaign.alerts.thresholds
        findings: list[Finding] = []
        checked: dict[str, Any] = {}
        if thresholds.rejected_share is not None:
            groups = {
                g.group_id: ti.xcom_pull(task_ids=layout.project_task_id(g.group_id))
                for g in self.plan.groups
            }
            findings += rejected_share_findings(groups, thresholds.rejected_share)
        if thresholds.audience_change is not None:
            current = ti.xcom_pull(task_ids=layout.BUILD_AUDIENCE)["audience_size"]
            manifests = self.staging().read_texts(layout.dag_root, layout.manifest_glob())
            previous = previous_audience_size(manifests, layout.run_folder(layout.run_id))
            checked["audience_size"] = {"current": current, "previous": previous}
            if previous is None:
                # A first run, or retention deleted the older runs' manifests.
                self.log.info(
                    "audience_change: no earlier successful run's manifest in staging; skipped"
                )
            finding = audience_change_finding(current, previous, thresholds.audience_change)
            findings += [finding] if finding else []
        for finding in findings:
            self.log.warning(
                "threshold %s (%s): %s", finding.check, finding.action, finding.message
            )
        failing = [f for f in findings if f.action == "fail"]
        if failing:
            raise ThresholdExceeded(
                f"campaign {self.plan.campaign.name!r}: nothing was sent, "
                + "; ".join(f"{f.check}: {f.message}" for f in failing)
            )
        if not findings:
            self.log.info("thresholds: all within bounds")
        return {
            "findings": [f.__dict__ for f in findings],
            **checked,
        }
