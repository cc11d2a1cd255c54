"""SFTP destination: files in a remote folder, through the SFTP provider's SFTPHook."""

from __future__ import annotations

from pydantic import Field, field_validator

from campaign_sync.destinations.base import open_storage_type
from campaign_sync.destinations.file_drop import FileDropOptions, no_parent_segments


class SFTPOptions(FileDropOptions):
    """A folder on an SFTP server (absolute, or relative to the login's home folder).

    The folder must exist; the folders that ``prefix`` and ``file_template`` name below it are
    created as needed.
    """

    remote_dir: str = Field(min_length=1)

    @field_validator("remote_dir")
    @classmethod
    def _plain_folder(cls, value: str) -> str:
        if "{" in value or "}" in value:
            raise ValueError("is a fixed folder: put placeholders in prefix or file_template")
        return no_parent_segments(value)


SFTP = open_storage_type(
    "sftp",
    "SFTP",
    SFTPOptions,
    exporter="campaign_sync.operators.sftp.SFTPExportOperator",
)
