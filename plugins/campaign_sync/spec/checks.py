"""Checks that span sections of a campaign: references, id collisions, destination contracts."""

from __future__ import annotations

import re
from dataclasses import dataclass

from pydantic import ValidationError

from campaign_sync.destinations import REGISTRY
from campaign_sync.layout import RunLayout
from campaign_sync.spec.ids import group_id_for, slug
from campaign_sync.spec.model import Campaign, Destination

_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a campaign, at a dotted field path."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


def problems_from_validation(exc: ValidationError) -> list[Problem]:
    """Turn pydantic's errors into Problems with dotted paths such as sub_audiences[0].name."""
    problems = []
    for err in exc.errors():
        path = ""
        for part in err["loc"]:
            if part == "[key]":  # pydantic's marker for an invalid mapping key
                continue
            if isinstance(part, int) or not _PLAIN_KEY.match(str(part)):
                path += f"[{part}]" if isinstance(part, int) else f"[{str(part)!r}]"
            else:
                path += f".{part}" if path else str(part)
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown key"
        problems.append(Problem(path, message))
    return problems


def check_campaign(campaign: Campaign) -> list[Problem]:
    """Every cross-section problem in ``campaign`` (empty when it is valid)."""
    problems: list[Problem] = []
    problems += _check_sub_audiences(campaign)
    problems += _check_destination_refs(campaign)
    for name, dest in campaign.destinations.items():
        problems += _check_destination(name, dest)
    return problems


def _check_sub_audiences(campaign: Campaign) -> list[Problem]:
    problems = []
    seen: dict[str, str] = {}
    names = [s.name for s in campaign.sub_audiences]
    if campaign.remaining is not None:
        names.append(campaign.remaining.name)
    for index, name in enumerate(names):
        field = (
            f"sub_audiences[{index}].name"
            if index < len(campaign.sub_audiences)
            else "remaining.name"
        )
        key = slug(name)
        if key in seen:
            problems.append(
                Problem(
                    field, f"{name!r} clashes with sub-audience {seen[key]!r} (same id {key!r})"
                )
            )
        seen[key] = name
    for index, sub in enumerate(campaign.sub_audiences):
        groups: dict[str, str] = {}
        for g_index, group in enumerate(sub.treatment_groups):
            gid = group_id_for(sub.name, group.name)
            if gid in groups:
                problems.append(
                    Problem(
                        f"sub_audiences[{index}].treatment_groups[{g_index}].name",
                        f"{group.name!r} clashes with {groups[gid]!r} (same id {gid!r})",
                    )
                )
            groups[gid] = group.name
    return problems


def _check_destination_refs(campaign: Campaign) -> list[Problem]:
    problems = []
    groups = [
        (f"sub_audiences[{i}]", sub.treatment_groups)
        for i, sub in enumerate(campaign.sub_audiences)
    ]
    if campaign.remaining is not None:
        groups.append(("remaining", campaign.remaining.treatment_groups))
    for prefix, treatment_groups in groups:
        for g_index, group in enumerate(treatment_groups):
            task_ids: dict[str, str] = {}
            for d_index, dest in enumerate(group.destinations):
                field = f"{prefix}.treatment_groups[{g_index}].destinations[{d_index}]"
                if dest not in campaign.destinations:
                    known = ", ".join(campaign.destinations) or "none declared"
                    problems.append(
                        Problem(field, f"unknown destination {dest!r} (declared: {known})")
                    )
                tid = RunLayout.export_task(dest)
                if tid in task_ids:
                    problems.append(Problem(field, f"{dest!r} clashes with {task_ids[tid]!r}"))
                task_ids[tid] = dest
    return problems


def _check_destination(name: str, dest: Destination) -> list[Problem]:
    base = f"destinations.{name}"
    dtype = REGISTRY.get(dest.type)
    if dtype is None:
        return [
            Problem(
                f"{base}.type",
                f"unknown destination type {dest.type!r}; known: {', '.join(sorted(REGISTRY))}",
            )
        ]
    problems = [
        Problem(f"{base}.attributes", msg)
        for msg in dtype.check_attributes(list(dest.attributes.values()))
    ]
    try:
        dtype.options_model.model_validate(dest.options)
    except ValidationError as exc:
        problems += [
            Problem(f"{base}.options.{p.field}" if p.field else f"{base}.options", p.message)
            for p in problems_from_validation(exc)
        ]
    if not dest.dry_run and dest.conn_id is None and dtype.name != "local":
        problems.append(Problem(f"{base}.conn_id", f"{dtype.label} needs an Airflow conn_id"))
    return problems
