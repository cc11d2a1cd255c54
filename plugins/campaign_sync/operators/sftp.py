"""Export a treatment group's files to SFTP; the delivery is in ``file_drop``."""

from __future__ import annotations

import posixpath
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from campaign_sync.destinations.sftp import SFTPOptions
from campaign_sync.operators.file_drop import (
    FileDropExportOperator,
    StorageConfigError,
)


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
