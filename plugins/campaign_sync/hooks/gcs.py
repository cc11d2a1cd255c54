"""GCSHook with a bounded client-side retry, for file-drop deliveries."""

from __future__ import annotations

from typing import Any

from airflow.providers.google.cloud.hooks.gcs import GCSHook


class FileDropGCSHook(GCSHook):
    """The provider's GCSHook; uploads and deletes retry transient errors for at most the
    connection extra ``retry_timeout`` seconds (default: the client library's 120).

    The stock ``upload`` has no retry setting, so a server that is down holds a task for two
    minutes per call before Airflow's own retries (the campaign's ``retries``) can start.
    """

    def _retry(self) -> Any:
        from google.cloud.storage.retry import DEFAULT_RETRY

        seconds = self._get_field("retry_timeout", None)
        return (
            DEFAULT_RETRY if seconds in (None, "") else DEFAULT_RETRY.with_timeout(float(seconds))
        )

    def upload_file(
        self,
        bucket_name: str,
        object_name: str,
        filename: str,
        content_type: str,
        chunk_size: int | None = None,
    ) -> None:
        """Upload a local file whole; with ``chunk_size``, as a resumable upload in chunks.

        The object appears only when the upload completes.
        """
        blob = self.get_conn().bucket(bucket_name).blob(object_name, chunk_size=chunk_size)
        blob.upload_from_filename(filename, content_type=content_type, retry=self._retry())

    def delete_if_exists(self, bucket_name: str, object_name: str) -> None:
        """Delete an object; one that is already gone is fine."""
        from google.api_core.exceptions import NotFound

        blob = self.get_conn().bucket(bucket_name).blob(object_name)
        try:
            blob.delete(retry=self._retry())
        except NotFound:
            pass
