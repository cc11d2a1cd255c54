"""The shared delivery of the file-drop destinations (S3, GCS, Azure Blob Storage, SFTP).

One delivery, whatever the store:

1. Names come from the templates and the DAG run; the number of files from the row count.
2. The names this attempt will write are added to a small record in the run's staging folder
   *before* anything is sent, so a later attempt of the same run knows exactly which objects
   are its own.
3. A success marker left by an earlier attempt is removed first; then each file is written
   locally, uploaded whole under its final name (multipart / resumable / block upload for large
   files, temporary name + rename on SFTP) and deleted locally before the next one is written.
4. Files of an earlier attempt that this one did not overwrite (e.g. fewer split files) are
   deleted; nothing else is ever deleted.
5. The success marker, listing files and row counts, is written last.

Provider hooks are imported inside the methods that use them, so DAG parsing stays light.
"""

from __future__ import annotations

import json
import posixpath
import tempfile
from abc import abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from campaign_sync import config
from campaign_sync.destinations.file_drop import FileDropOptions
from campaign_sync.destinations.templating import render
from campaign_sync.failures import PermanentError, checked_options, storage_error_is_permanent
from campaign_sync.operators.export import ExportOperator

RECORD_FILE = "objects.json"
LARGE_FILE_CHUNK = 8 * 1024 * 1024  # GCS resumable chunk (a multiple of 256 KiB)
CONTENT_TYPES = {
    "csv": "text/csv",
    "jsonl": "application/x-ndjson",
    "parquet": "application/vnd.apache.parquet",
    "csv.gz": "application/gzip",
    "jsonl.gz": "application/gzip",
    "json": "application/json",
}


class StorageDeliveryError(RuntimeError):
    """A delivery failed for a reason that may pass (server down, network): Airflow retries."""


class StorageConfigError(PermanentError):
    """A delivery cannot succeed as configured (credentials, missing bucket or folder,
    permissions): the task fails without retrying."""


def _first_line(exc: BaseException, limit: int = 300) -> str:
    text = str(exc).strip().splitlines()
    line = text[0] if text else ""
    return line if len(line) <= limit else line[: limit - 3] + "..."


class FileDropExportOperator(ExportOperator):
    """Deliver a group's rows as files to a store; subclasses supply the store's calls."""

    ui_color = "#fce8b2"
    options_model: ClassVar[type[FileDropOptions]] = FileDropOptions
    label: ClassVar[str] = "file drop"

    # --- what each store implements ------------------------------------------------------------

    @abstractmethod
    def target_id(self, opts: Any) -> str:
        """Bucket / container / folder, as a URI prefix for messages and records."""

    def uri(self, opts: Any, name: str) -> str:
        """Full location of one object."""
        return f"{self.target_id(opts)}/{name}"

    @contextmanager
    def session(self, opts: Any) -> Iterator[None]:
        """Open whatever the store needs for a series of calls; check the target exists."""
        yield

    @abstractmethod
    def upload(self, opts: Any, local: Path, name: str, content_type: str) -> None:
        """Upload one local file whole under ``name``; readers never see it half-written."""

    @abstractmethod
    def delete(self, opts: Any, names: list[str]) -> None:
        """Delete objects; a missing one is fine."""

    # --- the delivery ----------------------------------------------------------------------------

    def template_values(self, context: Any, ext: str) -> dict[str, str | int]:
        """Template values; file numbers are zero-padded so names sort in order."""
        return {**super().template_values(context, ext), "file_number": "00001"}

    def _names(self, opts: FileDropOptions, values: dict[str, str | int], count: int) -> list[str]:
        prefix = render(opts.prefix, values).strip("/") if opts.prefix else ""
        names = []
        for number in range(1, count + 1):
            name = render(opts.file_template, {**values, "file_number": f"{number:05d}"})
            full = posixpath.join(prefix, name) if prefix else name
            # Rendered values are single safe segments, so this holds by construction; checked
            # anyway because a name outside the prefix must never reach a store.
            normal = posixpath.normpath(full)
            if normal != full or normal.startswith(("/", "../")) or normal == "..":
                raise StorageConfigError(f"{self._who()}: file name {full!r} is not a plain path")
            names.append(full)
        return names

    def _marker_name(self, opts: FileDropOptions, values: dict[str, str | int], first: str) -> str:
        assert opts.success_marker is not None
        return posixpath.join(posixpath.dirname(first), render(opts.success_marker, values))

    def _who(self) -> str:
        return f"{self.who()} ({self.label}, connection {self.conn_id!r})"

    def _first_names(self, opts: FileDropOptions, values: dict[str, str | int]) -> set[str]:
        first = self._names(opts, values, 1)[0]
        marker = self._marker_name(opts, values, first) if opts.success_marker else None
        return {first, *([marker] if marker else [])}

    def _check_groups_apart(self, opts: FileDropOptions, context: Any) -> None:
        """Two groups sending to this destination must not write the same file or marker."""
        mine = self.template_values(context, opts.extension)
        ours = self._first_names(opts, mine)
        for group in self.plan.groups:
            if group.group_id == self.group_id or self.destination not in group.destinations:
                continue
            other = {
                **mine,
                "sub_audience": group.sub_audience,
                "treatment_group": group.treatment_group,
            }
            shared = ours & self._first_names(opts, other)
            if shared:
                raise StorageConfigError(
                    f"{self._who()}: groups {self.group_id!r} and {group.group_id!r} would both"
                    f" write {sorted(shared)[0]!r}; put {{sub_audience}} and {{treatment_group}}"
                    " in the folder part of prefix or file_template (or in success_marker)"
                )

    def _record_rel(self, context: Any) -> str:
        return self.layout(context).upload_record(self.group_id, self.destination)

    def _read_record(self, context: Any, target: str) -> list[str]:
        with self.staging().read_dir(self._record_rel(context)) as folder:
            path = folder / RECORD_FILE
            if not path.exists():
                return []
            record = json.loads(path.read_text())
        # A record for another bucket/folder (the campaign changed) names nothing of ours here.
        return list(record["names"]) if record.get("target") == target else []

    def _write_record(self, context: Any, target: str, names: list[str]) -> None:
        with self.staging().write_dir(self._record_rel(context)) as folder:
            (folder / RECORD_FILE).write_text(json.dumps({"target": target, "names": names}))

    def _check_connection(self) -> None:
        from airflow.sdk import BaseHook

        if not self.conn_id:
            raise StorageConfigError(f"{self._who()}: no conn_id")
        try:
            BaseHook.get_connection(self.conn_id)
        except Exception as exc:
            # Without this, some hooks quietly fall back to ambient credentials.
            raise StorageConfigError(
                f"{self._who()}: Airflow connection {self.conn_id!r} is not defined"
                f" ({type(exc).__name__})"
            ) from exc

    def deliver(self, source: Path, context: Any) -> dict[str, Any]:
        """Write and upload the files, then the marker; returns counts and locations."""
        import pyarrow.parquet as pq

        from campaign_sync.writers import expected_files, write_files

        opts = checked_options(self.options_model, self.options, self._who())
        target = self.target_id(opts)
        values = self.template_values(context, opts.extension)
        rows = pq.ParquetFile(source).metadata.num_rows
        names = self._names(opts, values, expected_files(rows, opts.max_rows_per_file))
        marker = self._marker_name(opts, values, names[0]) if opts.success_marker else None
        if marker in names:
            raise StorageConfigError(f"{self._who()}: success marker {marker!r} is a data file")
        self._check_groups_apart(opts, context)
        self._check_connection()

        previous = self._read_record(context, target)
        ours = [*names, *([marker] if marker else [])]
        self._write_record(context, target, sorted(set(previous) | set(ours)))
        files: list[dict[str, Any]] = []
        step = "connect"
        try:
            with self.session(opts), tempfile.TemporaryDirectory(prefix="campaign_sync_") as tmp:
                if marker and marker in previous:
                    step = f"delete the earlier marker {marker}"
                    self.delete(opts, [marker])
                content_type = CONTENT_TYPES[opts.extension]
                step = "write the files locally"
                for written in write_files(
                    source,
                    Path(tmp),
                    fmt=opts.format,
                    compression=opts.compression,
                    header=opts.header,
                    delimiter=opts.delimiter,
                    max_rows_per_file=opts.max_rows_per_file,
                    batch_rows=config.batch_rows(),
                ):
                    name = names[written.number - 1]
                    step = f"upload {name}"
                    self.upload(opts, written.path, name, content_type)
                    written.path.unlink()
                    files.append(
                        {
                            "name": name,
                            "rows": written.rows,
                            "bytes": written.size,
                            "sha256": written.sha256,
                        }
                    )
                    self.log.info(
                        "%s: uploaded %s (%d rows, %d bytes, sha256 %s)",
                        self.destination,
                        name,
                        written.rows,
                        written.size,
                        written.sha256,
                    )
                    step = "write the files locally"
                if len(files) != len(names):
                    raise StorageDeliveryError(
                        f"{self._who()}: wrote {len(files)} files, expected {len(names)}"
                    )
                stale = [n for n in previous if n not in ours]
                if stale:
                    step = f"delete {len(stale)} file(s) of an earlier attempt"
                    self.delete(opts, stale)
                    self.log.info("%s: removed %d stale file(s)", self.destination, len(stale))
                if marker:
                    step = f"write the success marker {marker}"
                    body = self._marker_body(opts, context, values, files, source)
                    local = Path(tmp) / "marker.json"
                    local.write_text(json.dumps(body, indent=2) + "\n")
                    self.upload(opts, local, marker, CONTENT_TYPES["json"])
        except (StorageConfigError, StorageDeliveryError):
            raise
        except Exception as exc:
            kind = StorageConfigError if storage_error_is_permanent(exc) else StorageDeliveryError
            raise kind(
                f"{self._who()}: could not {step} at {target}:"
                f" {type(exc).__name__}: {_first_line(exc)}"
            ) from exc
        self._write_record(context, target, ours)
        return {
            "rows_sent": sum(f["rows"] for f in files),
            "location": self.uri(opts, posixpath.dirname(names[0])).rstrip("/") + "/",
            "files": [self.uri(opts, f["name"]) for f in files],
            "marker": self.uri(opts, marker) if marker else None,
            "dry_run": False,
        }

    def _marker_body(
        self,
        opts: FileDropOptions,
        context: Any,
        values: dict[str, str | int],
        files: list[dict[str, Any]],
        source: Path,
    ) -> dict[str, Any]:
        from campaign_sync.writers import delivered_columns

        group = self.plan.group(self.group_id)
        return {
            "campaign": self.plan.campaign.name,
            "dag_id": self.plan.dag_id,
            "run_id": context["run_id"],
            "run_date": values["run_date"],
            "sub_audience": group.sub_audience,
            "treatment_group": group.treatment_group,
            "destination": self.destination,
            "format": opts.format,
            "compression": opts.compression,
            "header": opts.header if opts.format == "csv" else None,
            "delimiter": opts.delimiter if opts.format == "csv" else None,
            "columns": delivered_columns(source),
            "rows": sum(f["rows"] for f in files),
            "files": files,
            "written_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
