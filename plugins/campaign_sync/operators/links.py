"""Operator extra links: buttons on a task instance in the Airflow UI pointing to where a run's
manifest and a destination's files went. Computed by the worker when the task ends, from the
task's own XCom, and stored by Airflow for the UI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from airflow.sdk import BaseOperatorLink


def as_url(location: str | None) -> str:
    """A location as a link: URLs (s3://, sftp://...) and platform ids as they are, local paths
    as file:// URLs; empty when the task recorded none."""
    if not location:
        return ""
    if location.startswith("/"):
        return Path(location).as_uri()
    return location


def _returned(ti_key: Any, field: str) -> str:
    from airflow.sdk import BaseXCom

    value = BaseXCom.get_value(ti_key=ti_key, key="return_value")
    return as_url(value.get(field) if isinstance(value, dict) else None)


class ManifestLink(BaseOperatorLink):
    """The run's manifest (every count of the run, as JSON)."""

    name = "Run manifest"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        """Where write_manifest wrote the manifest."""
        return _returned(ti_key, "manifest")


class OutputLink(BaseOperatorLink):
    """Where an export delivered: a folder, object prefix, dry-run file or platform audience."""

    name = "Delivered to"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        """The export's recorded location."""
        return _returned(ti_key, "location")
