"""Build the campaign's audience in the source database and stage it."""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseHook

from campaign_sync import config
from campaign_sync.failures import PermanentError
from campaign_sync.operators.base import CampaignTaskOperator
from campaign_sync.params import from_context as run_params_from_context


class BuildAudienceOperator(CampaignTaskOperator):
    """Push the audience query down to ``source.conn_id``, stream it to staging, assign groups."""

    ui_color = "#fce8b2"

    def execute(self, context: Any) -> dict[str, Any]:
        """Returns the audience summary (paths and counts only)."""
        from campaign_sync.audience.build import build_audience  # pyarrow/duckdb: not at parse

        # Trigger parameters are checked first: a bad value fails the run before any work.
        params = run_params_from_context(self.plan, context)
        self.log.info("Trigger parameters: %s", params.to_dict())
        source = self.plan.campaign.source
        hook = BaseHook.get_hook(source.conn_id)
        if not hasattr(hook, "get_conn") or not hasattr(hook, "get_records"):
            raise PermanentError(
                f"campaign {self.plan.campaign.name!r}: source.conn_id {source.conn_id!r} is a "
                f"{type(hook).__name__}, not a SQL database connection; point it at the"
                " warehouse's Airflow connection"
            )
        summary = build_audience(
            self.plan,
            hook,
            self.staging(),
            self.layout(context),
            batch_rows=config.batch_rows(),
            memory_limit=config.duckdb_memory_limit(),
            sample_size=params.sample_size,
        )
        self.log.info(
            "Audience for %s: %d customers (%d rows without customer id, %d unassigned); "
            "group sizes %s",
            self.plan.dag_id,
            summary.audience_size,
            summary.rows_without_customer_id,
            summary.unassigned,
            summary.group_members,
        )
        if params.sample_size:
            self.log.info(
                "Sample of %d per group: %d members left out", params.sample_size,
                summary.sampled_out,
            )  # fmt: skip
        return {**summary.to_xcom(), "params": params.to_dict()}
