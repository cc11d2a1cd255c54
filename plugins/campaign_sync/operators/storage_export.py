"""Export operators for the file-drop destinations: S3, GCS, Azure Blob Storage and SFTP.

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

from airflow.sdk.exceptions import AirflowFailException

from campaign_sync import config
from campaign_sync.destinations.azure_blob import AzureBlobOptions
from campaign_sync.destinations.file_drop import FileDropOptions
from campaign_sync.destinations.gcs import GCSOptions
from campaign_sync.destinations.s3 import S3Options
from campaign_sync.destinations.sftp import SFTPOptions
from campaign_sync.destinations.templating import render
from campaign_sync.operators.export import ExportOperator
from campaign_sync.spec.ids import slug

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


class StorageConfigError(AirflowFailException):
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

    def is_permanent(self, exc: BaseException) -> bool:
        """Whether retrying cannot help (credentials, missing target, permissions)."""
        return isinstance(exc, PermissionError | FileNotFoundError)

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
        return (
            f"campaign {self.plan.campaign.name!r}, destination {self.destination!r}"
            f" ({self.label}, connection {self.conn_id!r})"
        )

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
        return f"{self.run_rel(context)}/deliveries/{self.group_id}/{slug(self.destination)}"

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

        opts = self.options_model.model_validate(self.options)
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
            kind = StorageConfigError if self.is_permanent(exc) else StorageDeliveryError
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


class S3ExportOperator(FileDropExportOperator):
    """Files in an S3 bucket through ``S3Hook``: whole-object PUTs, multipart above 8 MiB
    (boto3's transfer threshold, tunable with the connection's ``transfer_config_args``); an
    S3 object appears only when its upload completes."""

    options_model = S3Options
    label = "Amazon S3"

    def target_id(self, opts: Any) -> str:
        """``s3://bucket``."""
        return f"s3://{opts.bucket}"

    def _hook(self, content_type: str | None = None) -> Any:
        # S3Hook takes upload arguments such as ContentType per hook, not per call.
        hooks: dict[str | None, Any] = self.__dict__.setdefault("_s3_hooks", {})
        if content_type not in hooks:
            from airflow.providers.amazon.aws.hooks.s3 import S3Hook

            extra_args = {"ContentType": content_type} if content_type else None
            hooks[content_type] = S3Hook(aws_conn_id=self.conn_id, extra_args=extra_args)
        return hooks[content_type]

    def upload(self, opts: Any, local: Path, name: str, content_type: str) -> None:
        """``S3Hook.load_file`` (boto3 managed transfer)."""
        self._hook(content_type).load_file(
            str(local), key=name, bucket_name=opts.bucket, replace=True
        )

    def delete(self, opts: Any, names: list[str]) -> None:
        """``S3Hook.delete_objects`` (deleting a missing key succeeds in S3)."""
        self._hook().delete_objects(opts.bucket, names)

    def is_permanent(self, exc: BaseException) -> bool:
        """Credentials, missing bucket and access errors."""
        from botocore.exceptions import ClientError, NoCredentialsError, PartialCredentialsError

        if isinstance(exc, NoCredentialsError | PartialCredentialsError):
            return True
        text = str(exc)
        if isinstance(exc, ClientError):
            text = str(exc.response.get("Error", {}).get("Code", "")) + " " + text
        permanent = (
            "NoSuchBucket",
            "AccessDenied",
            "InvalidAccessKeyId",
            "SignatureDoesNotMatch",
            "InvalidBucketName",
            "AllAccessDisabled",
            "AuthorizationHeaderMalformed",
        )
        return any(code in text for code in permanent) or super().is_permanent(exc)


class GCSExportOperator(FileDropExportOperator):
    """Files in a GCS bucket through ``GCSHook``: one request up to 8 MiB, resumable upload in
    8 MiB chunks above; an object appears only when its upload completes."""

    options_model = GCSOptions
    label = "Google Cloud Storage"

    def target_id(self, opts: Any) -> str:
        """``gs://bucket``."""
        return f"gs://{opts.bucket}"

    def _hook(self) -> Any:
        if not hasattr(self, "_gcs"):
            from campaign_sync.hooks.gcs import FileDropGCSHook

            self._gcs = FileDropGCSHook(gcp_conn_id=self.conn_id)
        return self._gcs

    def upload(self, opts: Any, local: Path, name: str, content_type: str) -> None:
        """One request up to 8 MiB; above, a resumable upload in 8 MiB chunks (memory holds
        one chunk)."""
        large = local.stat().st_size > LARGE_FILE_CHUNK
        self._hook().upload_file(
            opts.bucket,
            name,
            str(local),
            content_type,
            chunk_size=LARGE_FILE_CHUNK if large else None,
        )

    def delete(self, opts: Any, names: list[str]) -> None:
        """Delete per object, a missing one ignored."""
        hook = self._hook()
        for name in names:
            hook.delete_if_exists(opts.bucket, name)

    def is_permanent(self, exc: BaseException) -> bool:
        """Credentials, missing bucket and permission errors."""
        from airflow.sdk.exceptions import AirflowException
        from google.api_core.exceptions import BadRequest, Forbidden, NotFound, Unauthorized
        from google.auth.exceptions import DefaultCredentialsError, RefreshError

        permanent = (
            NotFound,
            Forbidden,
            Unauthorized,
            BadRequest,
            DefaultCredentialsError,
            RefreshError,
            # The hook's own errors are about its connection: "Invalid key JSON.", a P12 key.
            AirflowException,
        )
        return isinstance(exc, permanent) or super().is_permanent(exc)


class AzureBlobExportOperator(FileDropExportOperator):
    """Block blobs in an Azure container through ``WasbHook``: Put Blob for small files,
    staged blocks committed at the end for large ones (the SDK's thresholds, tunable with the
    connection's ``max_single_put_size`` / ``max_block_size`` extras); a blob appears only
    when complete."""

    options_model = AzureBlobOptions
    label = "Azure Blob Storage"

    def target_id(self, opts: Any) -> str:
        """``wasb://container``."""
        return f"wasb://{opts.container}"

    def _hook(self) -> Any:
        if not hasattr(self, "_wasb"):
            from airflow.providers.microsoft.azure.hooks.wasb import WasbHook

            self._wasb = WasbHook(wasb_conn_id=self.conn_id)
        return self._wasb

    def upload(self, opts: Any, local: Path, name: str, content_type: str) -> None:
        """``WasbHook.load_file``, replacing an existing blob."""
        from azure.storage.blob import ContentSettings

        self._hook().load_file(
            str(local),
            container_name=opts.container,
            blob_name=name,
            overwrite=True,
            content_settings=ContentSettings(content_type=content_type),
        )

    def delete(self, opts: Any, names: list[str]) -> None:
        """``WasbHook.delete_file`` per blob, a missing one ignored."""
        hook = self._hook()
        for name in names:
            hook.delete_file(opts.container, name, ignore_if_missing=True)

    def is_permanent(self, exc: BaseException) -> bool:
        """Authentication, missing container and permission errors."""
        from azure.core.exceptions import (
            ClientAuthenticationError,
            HttpResponseError,
            ResourceNotFoundError,
        )

        if isinstance(exc, ClientAuthenticationError | ResourceNotFoundError):
            return True
        if isinstance(exc, HttpResponseError) and exc.status_code in (400, 401, 403, 404):
            return True
        return super().is_permanent(exc) or isinstance(exc, ValueError)


class SFTPExportOperator(FileDropExportOperator):
    """Files in a folder on an SFTP server through ``SFTPHook``: each file is written under a
    temporary name beside its final one, then renamed; no ``stat`` after the upload."""

    options_model = SFTPOptions
    label = "SFTP"

    def _hook(self) -> Any:
        if not hasattr(self, "_sftp"):
            from campaign_sync.hooks.sftp import FileDropSFTPHook

            # One connection attempt per task try: the campaign's retries are the retry policy.
            self._sftp = FileDropSFTPHook(ssh_conn_id=self.conn_id, conn_retry_attempts=1)
        return self._sftp

    def target_id(self, opts: Any) -> str:
        """``sftp://host:port/folder`` (a relative folder is shown under ``~``)."""
        try:
            hook = self._hook()
            where = f"{hook.remote_host}:{hook.port or 22}"
        except Exception:
            where = f"<connection {self.conn_id}>"  # the delivery reports the real error
        folder = opts.remote_dir.rstrip("/") or "/"
        if not folder.startswith("/"):
            folder = f"/~/{folder}"
        return f"sftp://{where}{folder}"

    def _path(self, opts: Any, name: str) -> str:
        return posixpath.join(opts.remote_dir, name)

    @contextmanager
    def session(self, opts: Any) -> Iterator[None]:
        """One SSH session for the whole delivery; the remote folder must exist."""
        hook = self._hook()
        with hook.get_managed_conn():
            if not hook.isdir(opts.remote_dir):
                raise StorageConfigError(
                    f"{self._who()}: remote folder {opts.remote_dir!r} does not exist on"
                    f" {self.target_id(opts)} (or is not a folder the login can see)"
                )
            yield

    def upload(self, opts: Any, local: Path, name: str, content_type: str) -> None:
        """Temporary name, then rename; folders below ``remote_dir`` are created."""
        hook = self._hook()
        folder = posixpath.dirname(name)
        if folder:
            hook.make_dirs(opts.remote_dir, folder)
        hook.store_file_atomic(self._path(opts, name), str(local))

    def delete(self, opts: Any, names: list[str]) -> None:
        """Delete files; files already moved away by the server are fine."""
        hook = self._hook()
        for name in names:
            hook.remove_if_exists(self._path(opts, name))

    def is_permanent(self, exc: BaseException) -> bool:
        """Authentication, host key, missing folder and permission errors."""
        from paramiko.ssh_exception import AuthenticationException, BadHostKeyException

        return isinstance(
            exc, AuthenticationException | BadHostKeyException
        ) or super().is_permanent(exc)


__all__ = [
    "AzureBlobExportOperator",
    "FileDropExportOperator",
    "GCSExportOperator",
    "S3ExportOperator",
    "SFTPExportOperator",
    "StorageConfigError",
    "StorageDeliveryError",
]
