"""Options shared by the audience platforms: the audience's name and the sync mode."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from campaign_sync.destinations.templating import check_name_template

DEFAULT_AUDIENCE_NAME = "{campaign} - {sub_audience} - {treatment_group}"


class AudienceOptions(BaseModel):
    """Which audience receives the group, and how it is kept in step.

    The audience (list, segment) is created once and reused by name on every run.
    ``sync_mode``: ``add`` upserts the group's members; ``mirror`` also removes members who left
    the group since the last successful delivery.
    """

    model_config = ConfigDict(extra="forbid")

    audience_name: str = Field(
        default=DEFAULT_AUDIENCE_NAME,
        description="Audience name template ({campaign}, {sub_audience}, {treatment_group}, ...).",
    )
    sync_mode: Literal["add", "mirror"] = "add"

    @field_validator("audience_name")
    @classmethod
    def _known_placeholders(cls, value: str) -> str:
        return check_name_template(value)


class ReplaceableAudienceOptions(AudienceOptions):
    """Audience options for platforms that can also replace the whole membership."""

    sync_mode: Literal["add", "mirror", "replace"] = "add"
