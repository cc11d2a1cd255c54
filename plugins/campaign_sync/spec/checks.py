"""Checks that span sections of a campaign: references, id collisions, destination contracts."""

from __future__ import annotations

import re
from dataclasses import dataclass

from pydantic import ValidationError

from campaign_sync.destinations import REGISTRY
from campaign_sync.layout import RunLayout
from campaign_sync.spec.echo import ECHO_LIMIT, clip, short
from campaign_sync.spec.ids import (
    MAINTENANCE_DAG_ID,
    MAX_GROUP_ID,
    MAX_TASK_ID,
    dag_id_for,
    group_id_for,
    slug,
)
from campaign_sync.spec.model import Campaign, Destination, TreatmentGroup

_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_MESSAGE_LIMIT = 400


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a campaign, at a dotted field path.

    Both parts are capped, so a 1 MB value never becomes a 1 MB log line.
    """

    field: str
    message: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "field", clip(self.field, ECHO_LIMIT * 2))
        object.__setattr__(self, "message", clip(self.message, _MESSAGE_LIMIT))

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
    if dag_id_for(campaign.name) == MAINTENANCE_DAG_ID:
        problems.append(Problem("name", f"{MAINTENANCE_DAG_ID!r} is campaign-sync's own DAG id"))
    problems += _check_sub_audiences(campaign)
    problems += _check_destination_refs(campaign)
    if not problems:
        problems += _check_id_lengths(campaign)
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
                    field,
                    f"{short(name)} clashes with sub-audience {short(seen[key])}"
                    f" (same id {short(key)})",
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
                        f"{short(group.name)} clashes with {short(groups[gid])}"
                        f" (same id {short(gid)})",
                    )
                )
            groups[gid] = group.name
    return problems


def _group_fields(campaign: Campaign) -> list[tuple[str, str, list[TreatmentGroup]]]:
    """(field prefix, sub-audience name, groups) for every sub-audience, remaining last."""
    subs = [
        (f"sub_audiences[{i}]", sub.name, sub.treatment_groups)
        for i, sub in enumerate(campaign.sub_audiences)
    ]
    if campaign.remaining is not None:
        subs.append(("remaining", campaign.remaining.name, campaign.remaining.treatment_groups))
    return subs


def _check_id_lengths(campaign: Campaign) -> list[Problem]:
    # Airflow refuses group ids over 200 characters and task ids over 250; say which name to
    # shorten instead of letting the DAG fail to build.
    problems = []
    for prefix, sub_name, groups in _group_fields(campaign):
        for g_index, group in enumerate(groups):
            field = f"{prefix}.treatment_groups[{g_index}].name"
            gid = group_id_for(sub_name, group.name)
            if len(gid) > MAX_GROUP_ID:
                problems.append(
                    Problem(
                        field,
                        f"sub-audience and group names give the task group id {short(gid)} of "
                        f"{len(gid)} characters; Airflow allows {MAX_GROUP_ID}: shorten them",
                    )
                )
                continue
            for d_index, dest in enumerate(group.destinations):
                tid = RunLayout.export_task_id(gid, dest)
                if len(tid) > MAX_TASK_ID:
                    problems.append(
                        Problem(
                            f"{prefix}.treatment_groups[{g_index}].destinations[{d_index}]",
                            f"the export task id {short(tid)} has {len(tid)} characters; "
                            f"Airflow allows {MAX_TASK_ID}: shorten the destination, "
                            "sub-audience or group name",
                        )
                    )
    return problems


def _check_destination_refs(campaign: Campaign) -> list[Problem]:
    problems = []
    for prefix, _, treatment_groups in _group_fields(campaign):
        for g_index, group in enumerate(treatment_groups):
            task_ids: dict[str, str] = {}
            for d_index, dest in enumerate(group.destinations):
                field = f"{prefix}.treatment_groups[{g_index}].destinations[{d_index}]"
                if dest not in campaign.destinations:
                    known = ", ".join(campaign.destinations) or "none declared"
                    problems.append(
                        Problem(field, f"unknown destination {short(dest)} (declared: {known})")
                    )
                tid = RunLayout.export_task(dest)
                if tid in task_ids:
                    problems.append(
                        Problem(field, f"{short(dest)} clashes with {short(task_ids[tid])}")
                    )
                task_ids[tid] = dest
    return problems


def _check_destination(name: str, dest: Destination) -> list[Problem]:
    base = f"destinations.{name}"
    dtype = REGISTRY.get(dest.type)
    if dtype is None:
        return [
            Problem(
                f"{base}.type",
                f"unknown destination type {short(dest.type)};"
                f" known: {', '.join(sorted(REGISTRY))}",
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
