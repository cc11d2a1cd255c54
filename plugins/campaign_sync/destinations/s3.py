"""Amazon S3 destination: files in a bucket, through the Amazon provider's S3Hook."""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from campaign_sync.destinations.base import open_storage_type
from campaign_sync.destinations.file_drop import FileDropOptions
from campaign_sync.spec.echo import short

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


class S3Options(FileDropOptions):
    """An S3 bucket; keys are ``prefix/file_template``."""

    bucket: str = Field(min_length=3, max_length=63)

    @field_validator("bucket")
    @classmethod
    def _bucket_name(cls, value: str) -> str:
        if not _BUCKET.match(value) or ".." in value:
            raise ValueError(
                f"{short(value)} is not an S3 bucket name (lowercase letters, digits, '.' and '-')"
            )
        return value


S3 = open_storage_type(
    "s3", "Amazon S3", S3Options, exporter="campaign_sync.operators.s3.S3ExportOperator"
)
