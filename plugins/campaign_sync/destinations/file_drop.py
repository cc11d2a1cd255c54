"""Options shared by the file-drop destinations (S3, GCS, Azure Blob, SFTP).

Everything here is checked when the campaign loads: a name template or prefix that could write
outside the configured bucket, container or folder is refused then, never at delivery time.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from campaign_sync.destinations.templating import check_template
from campaign_sync.spec.echo import short

# Names derive from the DAG run (so a rerun replaces its own files); file numbers keep split
# files apart.
FILE_DROP_TEMPLATE = (
    "{dag_id}/{run_id}/{sub_audience}/{treatment_group}/{destination}_{file_number}.{ext}"
)
RUN_PLACEHOLDERS = ("{run_id}", "{run_date}")
FORMATS = ("csv", "parquet", "jsonl")
COMPRESSIONS = ("none", "gzip")


def extension(fmt: str, compression: str = "none") -> str:
    """File extension for a format and compression, e.g. ``csv.gz``."""
    if fmt not in FORMATS:
        raise ValueError(f"unsupported file format {fmt!r}")
    if compression not in COMPRESSIONS:
        raise ValueError(f"unsupported compression {compression!r}")
    if fmt == "parquet" and compression != "none":
        raise ValueError("Parquet files are compressed internally; gzip applies to csv and jsonl")
    return f"{fmt}.gz" if compression == "gzip" else fmt


def _segments(path: str) -> list[str]:
    return re.split(r"[/\\]", path)


def _no_empty_segments(value: str) -> str:
    if "" in _segments(value):
        raise ValueError(f"{short(value)} must not contain empty path segments ('//')")
    return value


class FileDropOptions(BaseModel):
    """Where files land under the target and what they look like.

    ``prefix`` (a template) and ``file_template`` together name each file under the bucket,
    container or remote folder. ``max_rows_per_file`` splits the rows into numbered files;
    ``success_marker`` names a JSON file written last, beside the first data file, listing the
    files and their row counts.
    """

    model_config = ConfigDict(extra="forbid")

    prefix: str = Field(default="", description="Folder (template) under the target.")
    file_template: str = Field(
        default=FILE_DROP_TEMPLATE,
        description="File name template; placeholders: campaign, dag_id, run_id, run_date, "
        "sub_audience, treatment_group, destination, file_number, ext.",
    )
    format: Literal["csv", "parquet", "jsonl"] = "csv"
    header: bool = Field(default=True, description="CSV only: write a header row.")
    delimiter: str = Field(default=",", min_length=1, max_length=1, description="CSV only.")
    compression: Literal["none", "gzip"] = Field(
        default="none", description="gzip for csv or jsonl (Parquet compresses internally)."
    )
    max_rows_per_file: int | None = Field(
        default=None, ge=1, description="Split into files of at most this many rows."
    )
    success_marker: str | None = Field(
        default=None,
        description="File name (e.g. _SUCCESS or .DONE) written last, listing files and rows.",
    )

    @field_validator("file_template")
    @classmethod
    def _safe_template(cls, value: str) -> str:
        check_template(value)
        if value.endswith(("/", "\\")):
            raise ValueError(f"template {short(value)} must name a file, not a folder")
        return _no_empty_segments(value)

    @field_validator("prefix")
    @classmethod
    def _safe_prefix(cls, value: str) -> str:
        if value:
            check_template(value)
            _no_empty_segments(value.rstrip("/"))
        return value

    @field_validator("delimiter")
    @classmethod
    def _usable_delimiter(cls, value: str) -> str:
        if value in ('"', "\n", "\r"):
            raise ValueError("the delimiter cannot be a quote or a line break")
        return value

    @field_validator("success_marker")
    @classmethod
    def _safe_marker(cls, value: str | None) -> str | None:
        if value is None:
            return None
        check_template(value)
        if len(_segments(value)) > 1:
            raise ValueError("must be a file name (it is written beside the first data file)")
        if "{file_number}" in value:
            raise ValueError("there is one marker per delivery: {file_number} does not apply")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> FileDropOptions:
        names = self.prefix + "/" + self.file_template
        if not any(p in names for p in RUN_PLACEHOLDERS):
            raise ValueError(
                "prefix or file_template must contain {run_id} or {run_date}, so that each run"
                " writes its own files and a rerun replaces only them"
            )
        if self.max_rows_per_file is not None and "{file_number}" not in names:
            raise ValueError("max_rows_per_file needs {file_number} in prefix or file_template")
        if self.format == "parquet" and self.compression != "none":
            raise ValueError(
                "compression applies to csv and jsonl; Parquet files are compressed internally"
            )
        return self

    @property
    def extension(self) -> str:
        """The ``{ext}`` placeholder's value, e.g. ``csv.gz``."""
        return extension(self.format, self.compression)


def no_parent_segments(value: str) -> str:
    """Refuse a path with ``..`` segments (used for fixed folders such as an SFTP remote_dir)."""
    if ".." in _segments(value):
        raise ValueError("must not contain '..' segments")
    return value
