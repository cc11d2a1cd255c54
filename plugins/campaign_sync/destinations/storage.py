"""File-drop destinations (S3, GCS, Azure Blob, SFTP): any attribute, values as in the source."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from campaign_sync.destinations.base import DestinationType, open_storage_type
from campaign_sync.destinations.templating import DEFAULT_TEMPLATE, check_template


class _FileDropOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prefix: str = ""
    file_template: str = DEFAULT_TEMPLATE
    format: Literal["csv", "parquet", "jsonl"] = "csv"

    @field_validator("file_template")
    @classmethod
    def _safe_template(cls, value: str) -> str:
        return check_template(value)

    @field_validator("prefix")
    @classmethod
    def _safe_prefix(cls, value: str) -> str:
        if value:
            check_template(value)
        return value


class BucketOptions(_FileDropOptions):
    """Object-store target: bucket plus an optional key prefix."""

    bucket: str = Field(min_length=3)


class ContainerOptions(_FileDropOptions):
    """Azure Blob target: container plus an optional blob-name prefix."""

    container: str = Field(min_length=3)


class SftpOptions(_FileDropOptions):
    """SFTP target: a remote folder."""

    remote_dir: str = Field(min_length=1)


S3 = open_storage_type("s3", "Amazon S3", BucketOptions)
GCS = open_storage_type("gcs", "Google Cloud Storage", BucketOptions)
AZURE_BLOB = open_storage_type("azure_blob", "Azure Blob Storage", ContainerOptions)
SFTP = open_storage_type("sftp", "SFTP", SftpOptions)

STORAGE_TYPES: tuple[DestinationType, ...] = (S3, GCS, AZURE_BLOB, SFTP)
