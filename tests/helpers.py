"""Shared test helpers: campaign documents to mutate, and quick loaders."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
SAMPLE_CAMPAIGN = REPO / "include" / "campaigns" / "lifecycle_winback.yaml"


def sample_doc() -> dict[str, Any]:
    """The sample campaign as a dict, safe to mutate."""
    return copy.deepcopy(yaml.safe_load(SAMPLE_CAMPAIGN.read_text()))


def write_campaign(folder: Path, name: str, doc: dict[str, Any] | str) -> Path:
    """Write a campaign document (dict or raw text) as ``name``.yaml in ``folder``."""
    path = folder / f"{name}.yaml"
    path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc, sort_keys=False))
    return path
