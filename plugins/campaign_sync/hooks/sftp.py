"""SFTPHook with the calls a file drop needs: atomic upload, folder creation, quiet delete."""

from __future__ import annotations

import os
import posixpath
import uuid
from typing import Any

from airflow.providers.sftp.hooks.sftp import SFTPHook, handle_connection_management


class FileDropSFTPHook(SFTPHook):
    """The provider's SFTPHook, plus an upload that never exposes a half-written file.

    Call the methods inside ``with hook.get_managed_conn():`` so they share one SSH session.
    """

    @handle_connection_management
    def store_file_atomic(self, remote_path: str, local_path: str) -> None:
        """Upload under a temporary name in the target folder, then rename onto ``remote_path``.

        Readers that watch the folder see the file only when complete. The final name is never
        ``stat``-ed (servers may move files away on arrival); the temporary file is, before the
        rename, because pipelined SFTP writes can fail silently (a full disk leaves a short
        file and no error). On any error the temporary file is removed (best effort) and the
        error is raised.
        """
        folder, name = posixpath.split(remote_path)
        temporary = posixpath.join(folder, f".{name}.part-{uuid.uuid4().hex[:12]}")
        size = os.path.getsize(local_path)
        sftp: Any = self.conn
        try:
            sftp.put(local_path, temporary, confirm=False)
            written = sftp.stat(temporary).st_size
            if written != size:
                raise OSError(
                    f"upload of {name} stopped at {written} of {size} bytes"
                    " (is the remote disk full or over quota?)"
                )
            self._rename_over(temporary, remote_path)
        except BaseException:
            try:
                sftp.remove(temporary)
            except OSError:
                pass  # never written, or the session is gone: nothing more we can do
            raise

    def _rename_over(self, source: str, target: str) -> None:
        sftp: Any = self.conn
        try:
            # OpenSSH's posix-rename replaces the target in one step.
            sftp.posix_rename(source, target)
        except OSError as exc:
            if "unsupported" not in str(exc).lower():
                raise
            # Servers without the extension refuse to rename onto an existing file.
            self.remove_if_exists(target)
            sftp.rename(source, target)

    @handle_connection_management
    def make_dirs(self, base: str, relative: str) -> None:
        """Create the folders of ``relative`` below ``base`` (which must exist)."""
        sftp: Any = self.conn
        current = base
        for part in [p for p in relative.split("/") if p]:
            current = posixpath.join(current, part)
            try:
                sftp.mkdir(current)
            except OSError:
                if not self.isdir(current):
                    raise

    @handle_connection_management
    def remove_if_exists(self, path: str) -> None:
        """Delete a file; a file that is already gone is fine."""
        sftp: Any = self.conn
        try:
            sftp.remove(path)
        except FileNotFoundError:
            pass
