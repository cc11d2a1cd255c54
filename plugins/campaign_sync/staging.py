"""Staging area for a run's files: a local folder or an object store (via ObjectStoragePath).

Where each file goes is ``campaign_sync.layout``'s business. Tasks always work on local files;
for an object-store root they are uploaded and downloaded here, so data crosses XCom only as
relative paths.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

_REMOTE_SCHEMES = ("s3://", "gs://", "gcs://", "abfs://", "az://", "file://")


class Staging:
    """A staging root; ``root`` is a local folder or an object-store URL such as
    ``s3://aws_conn@bucket/prefix``."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.remote = root.startswith(_REMOTE_SCHEMES)

    def uri(self, rel: str) -> str:
        """Full location of a relative path, for manifests and logs."""
        if self.remote:
            return f"{self.root.rstrip('/')}/{rel}"
        return str(Path(self.root) / rel)

    def _remote_path(self, rel: str) -> Any:
        from airflow.sdk import ObjectStoragePath

        return ObjectStoragePath(self.root.rstrip("/") + "/" + rel)

    @contextmanager
    def write_dir(self, rel: str) -> Iterator[Path]:
        """Yield an empty local folder; on success it replaces ``rel`` as a whole."""
        if not self.remote:
            final = Path(self.root) / rel
            final.parent.mkdir(parents=True, exist_ok=True)
            token = uuid.uuid4().hex[:8]
            work = final.parent / f".{final.name}.tmp-{token}"
            old = final.parent / f".{final.name}.old-{token}"
            work.mkdir()
            try:
                yield work
                # Two renames: the folder is never missing for long, nor ever half-written.
                if final.exists():
                    os.replace(final, old)
                os.replace(work, final)
            except BaseException:
                if old.exists() and not final.exists():
                    os.replace(old, final)
                raise
            finally:
                shutil.rmtree(work, ignore_errors=True)
                shutil.rmtree(old, ignore_errors=True)
            return
        with tempfile.TemporaryDirectory(prefix="campaign_sync_") as tmp:
            yield Path(tmp)
            target = self._remote_path(rel)
            if target.exists():
                for old in sorted(target.rglob("*"), reverse=True):
                    if old.is_file():
                        old.unlink()
            for local in sorted(Path(tmp).rglob("*")):
                if local.is_file():
                    dest = target / local.relative_to(tmp).as_posix()
                    with local.open("rb") as src, dest.open("wb") as out:
                        shutil.copyfileobj(src, out, length=8 * 1024 * 1024)

    @contextmanager
    def read_dir(self, rel: str) -> Iterator[Path]:
        """Yield a local folder holding the files under ``rel`` (for a local root: the folder
        itself, which may not exist)."""
        if not self.remote:
            yield Path(self.root) / rel
            return
        with tempfile.TemporaryDirectory(prefix="campaign_sync_") as tmp:
            source = self._remote_path(rel)
            if source.exists():
                for remote in source.rglob("*"):
                    if remote.is_file():
                        local = Path(tmp) / remote.relative_to(source).as_posix()
                        local.parent.mkdir(parents=True, exist_ok=True)
                        with remote.open("rb") as src, local.open("wb") as out:
                            shutil.copyfileobj(src, out, length=8 * 1024 * 1024)
            yield Path(tmp)

    def read_texts(self, rel: str, pattern: str) -> dict[str, str]:
        """The small text files under ``rel`` matching the glob ``pattern``, by their path
        relative to ``rel`` (nothing when ``rel`` does not exist)."""
        base: Any = self._remote_path(rel) if self.remote else Path(self.root) / rel
        if not base.exists():
            return {}
        return {
            found.relative_to(base).as_posix(): found.read_text()
            for found in sorted(base.glob(pattern))
            if found.is_file()
        }
