"""Per-run export checkpoints: which batches a platform already acknowledged.

Stored in the run's staging folder, keyed by group and destination, and written after every
acknowledged batch, so a task retry, a cleared task or a killed worker resumes where the platform
left off instead of sending acknowledged rows again.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from campaign_sync.staging import Staging


class Checkpoint:
    """Acknowledged steps of one export; ``inputs`` fingerprints the rows they refer to."""

    def __init__(self, staging: Staging, rel: str, inputs: str) -> None:
        self.staging = staging
        self.rel = rel
        self.inputs = inputs
        self.state: dict[str, Any] = {"inputs": inputs, "done": {}, "data": {}}
        with staging.read_dir(rel) as folder:
            path = folder / "checkpoint.json"
            if path.exists():
                saved = json.loads(path.read_text())
                # Other input rows (a re-projection from changed data) void the old steps.
                if saved.get("inputs") == inputs:
                    self.state = saved

    def done(self, step: str) -> bool:
        """Whether ``step`` (e.g. ``add:3``) was acknowledged."""
        return step in self.state["done"]

    def result(self, step: str) -> dict[str, Any]:
        """What was recorded when ``step`` was acknowledged."""
        return self.state["done"][step]

    def get(self, key: str, default: Any = None) -> Any:
        """A value kept across attempts (e.g. an audience id or a session id)."""
        return self.state["data"].get(key, default)

    def put(self, key: str, value: Any) -> None:
        """Keep ``value`` across attempts, persisted now."""
        self.state["data"][key] = value
        self._save()

    def ack(self, step: str, result: dict[str, Any] | None = None) -> None:
        """Record ``step`` as acknowledged by the platform, persisted now."""
        self.state["done"][step] = result or {}
        self._save()

    def _save(self) -> None:
        if not self.staging.remote:
            target = Path(self.staging.root) / self.rel / "checkpoint.json"
            target.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile("w", dir=target.parent, delete=False) as tmp:
                json.dump(self.state, tmp)
            Path(tmp.name).replace(target)
            return
        with self.staging.write_dir(self.rel) as out:
            (out / "checkpoint.json").write_text(json.dumps(self.state))
