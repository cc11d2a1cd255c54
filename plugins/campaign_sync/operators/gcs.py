"""Export a treatment group's files to Google Cloud Storage; the delivery is in ``file_drop``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from campaign_sync.destinations.gcs import GCSOptions
from campaign_sync.operators.file_drop import (
    LARGE_FILE_CHUNK,
    FileDropExportOperator,
)


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
