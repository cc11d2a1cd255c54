"""Retention: delete run folders older than the retention window (staging and local outputs).

Staging and outputs hold raw PII, so runs are deleted once older than
``CAMPAIGN_SYNC_RETENTION_DAYS``. What the next ``mirror`` sync needs is always kept.

- **A run's time** is when it last wrote: its manifest's ``completed_at`` (so a backfill of an
  old logical date counts from when it ran), and the newest modification time of its files. A run
  is expired only when both are older than the window, so a run still being written or rerun is
  never deleted under its tasks, and a run that wrote no manifest (failed, or cleared before the
  end) ages by its files.
- **Kept for mirror:** each ``<dag_id>/_delivery_log/<group>/<destination>`` log names the run of
  the last successful delivery of that group to that destination; mirror diffs the next run
  against that run's projected file. An expired run still named there is trimmed to those files
  (and its manifest, counts only) instead of deleted.
- **Local outputs** (local destinations and dry-run payloads under the output root) go with their
  run: files in a ``<dag_id>/<run>`` folder (the default file template) or named as a location in
  the run's manifest. Files no known run claims age by their modification time.
- Only counts are logged (runs, files, bytes): never ids, paths or contents.
"""

from __future__ import annotations

import itertools
import json
import os
import posixpath
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from campaign_sync.layout import RunLayout

# --- where runs keep their files: campaign_sync.layout.RunLayout ------------------------------
# Staging: <dag_id>/<run> per run, beside per-DAG state folders that are not runs.
_STATE_FOLDERS = frozenset({RunLayout.DELIVERY_LOG_FOLDER})  # platforms.sync.DeliveryLog


def _manifest_rel(run_rel: str) -> str:
    dag_root, run_folder = run_rel.split("/", 1)
    return RunLayout.of_folder(dag_root, run_folder).manifest


def _mirror_keep_for(dag_root: str, log_rel: str, run_id: str) -> tuple[str, str] | None:
    """(run folder, file mirror diffs against) named by one delivery log, if it is one."""
    parts = log_rel.split("/")
    # <dag_root>/_delivery_log/<group>/<destination>/log.json
    if len(parts) != 5 or parts[-1] != RunLayout.DELIVERY_LOG_FILE:
        return None
    layout = RunLayout.of_folder(dag_root, RunLayout.run_folder(run_id))
    return layout.folder, layout.projected(parts[2], parts[3])


# Outputs: <output root>/<folder>/<dag_id>/<run>/... with the default file template (dry-run
# payloads always); other templates are found through the manifest's destination locations.
# ---------------------------------------------------------------------------------------------


@dataclass
class RetentionReport:
    """What a purge deleted (or would delete, with ``dry_run``): counts only."""

    days: int
    dry_run: bool
    runs_seen: int = 0
    runs_deleted: int = 0
    runs_trimmed: int = 0
    staging_files: int = 0
    staging_bytes: int = 0
    output_files: int = 0
    output_bytes: int = 0
    kept_for_mirror: int = 0

    def lines(self) -> list[str]:
        """Log lines: counts only."""
        verb = "would delete" if self.dry_run else "deleted"
        return [
            f"retention ({self.days} days{', dry run' if self.dry_run else ''}): "
            f"{self.runs_seen} runs in staging, {verb} {self.runs_deleted} runs",
            f"  staging: {verb} {self.staging_files} files, {self.staging_bytes} bytes",
            f"  outputs: {verb} {self.output_files} files, {self.output_bytes} bytes",
            f"  kept for mirror: {self.kept_for_mirror} last deliveries in {self.runs_trimmed}"
            " expired runs (trimmed to those files)",
        ]

    def as_dict(self) -> dict[str, Any]:
        """The counts, for XCom."""
        return asdict(self)


class _Tree:
    """A folder tree on local disk or in an object store, through fsspec."""

    def __init__(self, root: str) -> None:
        from campaign_sync.staging import Staging

        self.remote = Staging(root).remote
        if self.remote:
            from airflow.sdk import ObjectStoragePath

            path = ObjectStoragePath(root.rstrip("/"))
            self.fs, self.base = path.fs, path.path.rstrip("/")
            # Airflow caches one filesystem per connection: forget listings taken earlier.
            self.fs.invalidate_cache()
        else:
            import fsspec

            self.fs = fsspec.filesystem("file")
            self.base = Path(root).resolve().as_posix()

    def abs(self, rel: str) -> str:
        return f"{self.base}/{rel}" if rel else self.base

    def rel(self, name: str) -> str:
        return posixpath.relpath(name.rstrip("/"), self.base)

    def folders(self, rel: str) -> list[str]:
        """Names of the sub-folders of ``rel`` (none if it does not exist)."""
        try:
            entries = self.fs.ls(self.abs(rel), detail=True)
        except FileNotFoundError:
            return []
        return sorted(
            posixpath.basename(e["name"].rstrip("/")) for e in entries if e["type"] == "directory"
        )

    def files(self, rel: str) -> dict[str, dict[str, Any]]:
        """Every file under ``rel``: relative path -> fsspec info (size, modification time)."""
        try:
            found = self.fs.find(self.abs(rel), detail=True)
        except FileNotFoundError:
            return {}
        return {self.rel(n): i for n, i in found.items() if i.get("type", "file") == "file"}

    def read_json(self, rel: str) -> dict[str, Any] | None:
        try:
            return json.loads(self.fs.cat_file(self.abs(rel)))
        except (FileNotFoundError, ValueError):
            return None

    def delete(self, rels: Iterable[str]) -> None:
        paths = [self.abs(r) for r in rels]
        if not paths:
            return
        if self.remote:
            self.fs.rm(paths)  # batched deletes; a key already gone is no error
            return
        for path in paths:
            Path(path).unlink(missing_ok=True)

    def prune_empty(self, rel: str) -> None:
        """Remove empty folders under ``rel``, and ``rel`` itself if empty (local disk only:
        object stores have no folders)."""
        if self.remote:
            return
        top = Path(self.abs(rel))
        if not top.is_dir():
            return
        for folder, _dirs, _files in os.walk(top, topdown=False):
            try:
                os.rmdir(folder)
            except OSError:
                pass  # not empty


def _modified(info: dict[str, Any]) -> datetime | None:
    """A file's modification time from fsspec info (each store names it differently)."""
    for key in ("mtime", "LastModified", "last_modified", "updated", "created"):
        value = info.get(key)
        if isinstance(value, int | float):
            return datetime.fromtimestamp(value, UTC)
        if isinstance(value, datetime):
            return value if value.tzinfo else value.replace(tzinfo=UTC)
        if isinstance(value, str):
            try:
                parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                continue
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def _completed_at(manifest: dict[str, Any] | None) -> datetime | None:
    if not manifest or not isinstance(manifest.get("completed_at"), str):
        return None
    try:
        when = datetime.fromisoformat(manifest["completed_at"])
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _output_locations(manifest: dict[str, Any] | None) -> set[str]:
    """Local files a run's manifest says it wrote (local destinations and dry runs)."""
    found: set[str] = set()
    for sub in (manifest or {}).get("sub_audiences", {}).values():
        for group in sub.get("treatment_groups", {}).values():
            for dest in group.get("destinations", {}).values():
                location = dest.get("location")
                if isinstance(location, str) and (
                    dest.get("dry_run") or dest.get("type") == "local"
                ):
                    found.add(Path(location).resolve().as_posix())
    return found


def _mirror_keep(tree: _Tree, dag_folder: str) -> dict[str, set[str]]:
    """Per run folder, the files the last successful deliveries of ``dag_folder`` point to."""
    keep: dict[str, set[str]] = {}
    for rel in tree.files(RunLayout.delivery_logs(dag_folder)):
        log = tree.read_json(rel) if rel.endswith(RunLayout.DELIVERY_LOG_FILE) else None
        current = (log or {}).get("current")
        if isinstance(current, str) and current:
            found = _mirror_keep_for(dag_folder, rel, current)
            if found:
                keep.setdefault(found[0], set()).add(found[1])
    return keep


@dataclass
class _Runs:
    """Runs of the staging area sorted into kept and expired, with their output claims."""

    kept_folders: set[tuple[str, str]] = field(default_factory=set)
    expired_folders: set[tuple[str, str]] = field(default_factory=set)
    kept_locations: set[str] = field(default_factory=set)
    expired_locations: set[str] = field(default_factory=set)


def purge(
    *,
    days: int,
    now: datetime | None = None,
    dry_run: bool = False,
    staging_root: str | None = None,
    output_root: Path | None = None,
) -> RetentionReport:
    """Delete runs older than ``days`` from staging and the local output root.

    ``now`` is injectable for tests; roots default to the deployment's settings.
    """
    from campaign_sync import config

    if days < 1:
        raise ValueError(f"retention days must be at least 1, not {days}")
    now = now or datetime.now(UTC)
    cutoff = now - timedelta(days=days)
    report = RetentionReport(days=days, dry_run=dry_run)
    runs = _purge_staging(
        _Tree(staging_root or config.staging_root()), cutoff, report, dry_run=dry_run
    )
    _purge_outputs(output_root or config.output_root(), cutoff, runs, report, dry_run=dry_run)
    return report


def _purge_staging(
    tree: _Tree, cutoff: datetime, report: RetentionReport, *, dry_run: bool
) -> _Runs:
    runs = _Runs()
    for dag_folder in tree.folders(""):
        if dag_folder.startswith("."):
            continue
        keep = _mirror_keep(tree, dag_folder)
        for run_folder in tree.folders(dag_folder):
            if run_folder in _STATE_FOLDERS or run_folder.startswith("."):
                continue
            report.runs_seen += 1
            run_rel = f"{dag_folder}/{run_folder}"
            manifest = tree.read_json(_manifest_rel(run_rel))
            completed = _completed_at(manifest)
            files: dict[str, dict[str, Any]] = {}
            expired = False
            if completed is None or completed < cutoff:
                files = tree.files(run_rel)
                times = [_modified(info) for info in files.values()]
                # A file without a recorded time counts as new: what cannot be dated is kept.
                expired = all(t is not None and t < cutoff for t in times)
            if not expired:
                runs.kept_folders.add((dag_folder, run_folder))
                runs.kept_locations |= _output_locations(manifest)
                continue
            runs.expired_folders.add((dag_folder, run_folder))
            runs.expired_locations |= _output_locations(manifest)
            needed = {rel for rel in keep.get(run_rel, set()) if rel in files}
            if needed:
                needed.add(_manifest_rel(run_rel))  # counts only: what the kept files were
                report.runs_trimmed += 1
                report.kept_for_mirror += len(needed) - 1
            else:
                report.runs_deleted += 1
            doomed = [rel for rel in files if rel not in needed]
            report.staging_files += len(doomed)
            report.staging_bytes += sum(int(files[rel].get("size") or 0) for rel in doomed)
            if not dry_run:
                tree.delete(doomed)
                tree.prune_empty(run_rel)
    return runs


def _purge_outputs(
    root: Path, cutoff: datetime, runs: _Runs, report: RetentionReport, *, dry_run: bool
) -> None:
    if not root.is_dir():
        return
    top = root.resolve()
    emptied: set[Path] = set()
    for folder, _dirs, names in os.walk(top):
        parts = Path(folder).relative_to(top).parts
        pairs = set(itertools.pairwise(parts))
        for name in names:
            path = Path(folder) / name
            key = path.as_posix()
            if pairs & runs.kept_folders or key in runs.kept_locations:
                continue
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue  # removed meanwhile
            if not (
                pairs & runs.expired_folders
                or key in runs.expired_locations
                or datetime.fromtimestamp(stat.st_mtime, UTC) < cutoff
            ):
                continue
            report.output_files += 1
            report.output_bytes += stat.st_size
            if not dry_run:
                path.unlink(missing_ok=True)
                emptied.add(path.parent)
    # Only folders this purge emptied go: a folder a running task just made stays.
    for folder in sorted(emptied, key=lambda f: len(f.parts), reverse=True):
        while folder != top and folder.is_relative_to(top):
            try:
                folder.rmdir()
            except OSError:
                break  # not empty (or gone)
            folder = folder.parent
