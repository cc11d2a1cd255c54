"""The one projection operator every treatment group uses before export."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from campaign_sync import config
from campaign_sync.operators.base import CampaignTaskOperator, required

if TYPE_CHECKING:
    from campaign_sync.plan import CampaignPlan


class ProjectAttributesOperator(CampaignTaskOperator):
    """Select, rename, normalize, hash and check one group's attributes per destination."""

    ui_color = "#d2e3fc"

    group_id: str

    if TYPE_CHECKING:  # the constructor as callers see it (CampaignTaskOperator.take_args)

        def __init__(self, *, plan: CampaignPlan, group_id: str, **kwargs: Any) -> None: ...

    def take_args(self, kwargs: dict[str, Any]) -> None:
        """The plan and the group projected."""
        super().take_args(kwargs)
        self._own(group_id=required(kwargs, "group_id"))

    def execute(self, context: Any) -> dict[str, Any]:
        """Returns the group's staged file paths and counts."""
        from campaign_sync.projection.project import project_group

        output = project_group(
            self.plan,
            self.plan.group(self.group_id),
            self.staging(),
            self.layout(context),
            memory_limit=config.duckdb_memory_limit(),
        )
        for name, dest in output.destinations.items():
            self.log.info(
                "%s -> %s: %d rows staged, %d set aside %s, values cleared %s",
                self.group_id,
                name,
                dest.rows,
                dest.rejected,
                dest.rejected_by_reason,
                dest.values_cleared,
            )
        if output.is_control:
            self.log.info(
                "%s is a control group: %d members recorded", self.group_id, output.members
            )
        return output.to_xcom()
