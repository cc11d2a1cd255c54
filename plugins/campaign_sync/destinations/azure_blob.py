"""Azure Blob Storage destination: block blobs in a container, through the WasbHook."""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from campaign_sync.destinations.base import open_storage_type
from campaign_sync.destinations.file_drop import FileDropOptions
from campaign_sync.spec.echo import short

_CONTAINER = re.compile(r"^[a-z0-9](?:[a-z0-9]|-(?!-)){1,61}[a-z0-9]$")


class AzureBlobOptions(FileDropOptions):
    """An Azure Blob container; blob names are ``prefix/file_template``."""

    container: str = Field(min_length=3, max_length=63)

    @field_validator("container")
    @classmethod
    def _container_name(cls, value: str) -> str:
        if not _CONTAINER.match(value):
            raise ValueError(
                f"{short(value)} is not a container name (lowercase letters, digits, single '-')"
            )
        return value


AZURE_BLOB = open_storage_type(
    "azure_blob",
    "Azure Blob Storage",
    AzureBlobOptions,
    exporter="campaign_sync.operators.azure_blob.AzureBlobExportOperator",
)
