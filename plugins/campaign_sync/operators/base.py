"""What every campaign task shares: its plan, its staging area and its run's layout."""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperator

from campaign_sync import config
from campaign_sync.layout import RunLayout
from campaign_sync.plan import CampaignPlan
from campaign_sync.staging import Staging


class CampaignTaskOperator(BaseOperator):
    """Base for campaign tasks; ``plan`` is built once per parse by the DAG factory."""

    ui_color = "#e8f0fe"

    def __init__(self, *, plan: CampaignPlan, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plan = plan

    @staticmethod
    def staging() -> Staging:
        """The deployment's staging area."""
        return Staging(config.staging_root())

    def layout(self, context: Any) -> RunLayout:
        """Where this run's files are in staging."""
        return RunLayout(self.plan.dag_id, context["run_id"])
