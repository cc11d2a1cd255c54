"""Local folder destination: writes each group's rows as CSV or Parquet files."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from campaign_sync.destinations.base import DestinationType
from campaign_sync.destinations.templating import DEFAULT_TEMPLATE, check_template


class LocalOptions(BaseModel):
    """Where and how the local destination writes.

    ``path`` is a folder; a relative one is taken under the deployment's output root
    (``CAMPAIGN_SYNC_OUTPUT_ROOT``).
    """

    model_config = ConfigDict(extra="forbid")

    path: str = "local"
    format: Literal["csv", "parquet"] = "csv"
    header: bool = True
    delimiter: str = Field(default=",", min_length=1, max_length=1)
    file_template: str = DEFAULT_TEMPLATE

    @field_validator("file_template")
    @classmethod
    def _safe_template(cls, value: str) -> str:
        return check_template(value)

    @field_validator("path")
    @classmethod
    def _no_parent_segments(cls, value: str) -> str:
        if ".." in value.replace("\\", "/").split("/"):
            raise ValueError("must not contain '..' segments (use an absolute path instead)")
        return value


LOCAL = DestinationType(
    name="local",
    label="Local folder",
    open_attributes=True,
    options_model=LocalOptions,
    exporter="campaign_sync.operators.export.LocalExportOperator",
)
