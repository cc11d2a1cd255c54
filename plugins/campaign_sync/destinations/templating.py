"""Output-name templates shared by the file-writing destinations.

A template is checked when the campaign loads, so a path that would escape its folder
(``..``, an absolute path, an unknown placeholder) never reaches a task.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping

from campaign_sync.digests import sha256_prefix
from campaign_sync.spec.echo import short

PLACEHOLDERS = frozenset(
    {
        "campaign",
        "dag_id",
        "run_id",
        "run_date",
        "sub_audience",
        "treatment_group",
        "destination",
        "file_number",
        "ext",
    }
)
DEFAULT_TEMPLATE = "{dag_id}/{run_id}/{sub_audience}/{treatment_group}/{destination}.{ext}"
_UNSAFE = re.compile(r"[^A-Za-z0-9._=-]+")


def check_template(template: str) -> str:
    """Return ``template`` if it is a safe relative name template, else raise ValueError."""
    check_name_template(template)
    if template.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", template):
        raise ValueError(f"template {short(template)} must be a relative path")
    if any(part in ("..", ".") for part in re.split(r"[/\\]", template)):
        raise ValueError(f"template {short(template)} must not contain '.' or '..' path segments")
    return template


def check_name_template(template: str) -> str:
    """Return ``template`` if its placeholders are known (names may contain any characters)."""
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as exc:
        raise ValueError(f"malformed template {short(template)}: {exc}") from exc
    unknown = sorted({f for f in fields if f not in PLACEHOLDERS})
    if unknown:
        raise ValueError(
            f"unknown placeholder(s) {', '.join(unknown)};"
            f" allowed: {', '.join(sorted(PLACEHOLDERS))}"
        )
    if not template.strip():
        raise ValueError("must not be empty")
    return template


def render_name(template: str, values: Mapping[str, str | int]) -> str:
    """Render a checked name template (an audience or list name) as is."""
    return template.format(**values)


def path_safe(value: str) -> str:
    """Turn a run id or name into one safe path segment (no separators, no dots-only names)."""
    cleaned = _UNSAFE.sub("_", value).strip("._") or "_"
    return cleaned


def unique_segment(value: str) -> str:
    """``path_safe``, plus a short hash when cleaning changed the value, so that distinct ids
    (``nightly:1``, ``nightly+1``) never share a path."""
    safe = path_safe(value)
    return safe if safe == value else f"{safe}-{sha256_prefix(value, 10)}"


def render(template: str, values: Mapping[str, str | int]) -> str:
    """Render a checked template, making every substituted value one safe path segment."""
    safe = {
        k: str(v) if k == "ext" else unique_segment(str(v)) if k == "run_id" else path_safe(str(v))
        for k, v in values.items()
    }
    return template.format(**safe)
