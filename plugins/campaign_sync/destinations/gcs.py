"""Google Cloud Storage destination: files in a bucket, through the Google provider's GCSHook."""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from campaign_sync.destinations.base import open_storage_type
from campaign_sync.destinations.file_drop import FileDropOptions
from campaign_sync.spec.echo import short

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$")


class GCSOptions(FileDropOptions):
    """A GCS bucket; object names are ``prefix/file_template``."""

    bucket: str = Field(min_length=3, max_length=222)

    @field_validator("bucket")
    @classmethod
    def _bucket_name(cls, value: str) -> str:
        if not _BUCKET.match(value):
            raise ValueError(
                f"{short(value)} is not a GCS bucket name"
                " (lowercase letters, digits, '.', '_', '-')"
            )
        return value


GCS = open_storage_type(
    "gcs",
    "Google Cloud Storage",
    GCSOptions,
    exporter="campaign_sync.operators.gcs.GCSExportOperator",
)
