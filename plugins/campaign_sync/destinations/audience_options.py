"""Options shared by the audience platforms: the audience's name and the sync mode, whose
allowed values come from the platform's declared capabilities."""

from __future__ import annotations

from functools import cache

from pydantic import BaseModel, ConfigDict, Field, field_validator

from campaign_sync.destinations.templating import check_name_template
from campaign_sync.platforms.capabilities import Capabilities

DEFAULT_AUDIENCE_NAME = "{campaign} - {sub_audience} - {treatment_group}"


class AudienceOptions(BaseModel):
    """Which audience receives the group, and how it is kept in step.

    The audience (list, segment) is created once and reused by name on every run.
    ``sync_mode``: ``add`` upserts the group's members; ``mirror`` also removes members who left
    the group since the last successful delivery; ``replace`` swaps the whole membership. Each
    platform's model accepts only the modes its capabilities declare.
    """

    model_config = ConfigDict(extra="forbid")

    audience_name: str = Field(
        default=DEFAULT_AUDIENCE_NAME,
        description="Audience name template ({campaign}, {sub_audience}, {treatment_group}, ...).",
    )
    sync_mode: str = "add"

    @field_validator("audience_name")
    @classmethod
    def _known_placeholders(cls, value: str) -> str:
        return check_name_template(value)


@cache
def audience_options(label: str, capabilities: Capabilities) -> type[AudienceOptions]:
    """The options model of a platform: ``sync_mode`` limited to its declared modes."""
    modes = capabilities.sync_modes

    class Options(AudienceOptions):
        @field_validator("sync_mode")
        @classmethod
        def _offered(cls, value: str) -> str:
            if value not in modes:
                why = f"; {capabilities.note}" if capabilities.note else ""
                raise ValueError(
                    f"{label} does not support sync_mode {value!r} (supported: "
                    f"{', '.join(modes)}){why}"
                )
            return value

    Options.__name__ = Options.__qualname__ = f"{label.replace(' ', '')}Options"
    Options.__doc__ = f"{label} audience options (sync modes: {', '.join(modes)})."
    return Options
