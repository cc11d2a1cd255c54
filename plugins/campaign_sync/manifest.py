"""The run manifest: what the run selected, projected, set aside and delivered, reconciled.

Built from the tasks' XCom summaries (counts and paths only). A manifest that does not add up
is an error: a row is never silently lost between audience, groups and destinations.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from campaign_sync.failures import ContractViolation
from campaign_sync.plan import CampaignPlan

_EXPORT_BOOKKEEPING = {"destination", "group_id", "rows_sent", "location", "dry_run"}


class ReconciliationError(ContractViolation):
    """The run's counts do not add up (a retry of the manifest task reads the same counts)."""


def build_manifest(
    plan: CampaignPlan,
    *,
    run_id: str,
    logical_date: str | None,
    run_after: str | None = None,
    audience: dict[str, Any],
    groups: dict[str, dict[str, Any]],
    exports: dict[tuple[str, str], dict[str, Any]],
    recipients_path: str,
) -> dict[str, Any]:
    """Assemble and reconcile the manifest of one run."""
    problems: list[str] = []
    params = audience.get("params") or {}
    chosen = params.get("destinations") or []
    subs: dict[str, Any] = {
        name: {"members": 0, "treatment_groups": {}} for name in plan.sub_audiences
    }
    for group in plan.groups:
        out = groups[group.group_id]
        expected = audience["group_members"][group.group_id]
        if out["members"] != expected:
            problems.append(
                f"{group.group_id}: projection saw {out['members']} members,"
                f" audience had {expected}"
            )
        destinations = {}
        for name, dest in out["destinations"].items():
            sent = exports[(group.group_id, name)]
            if dest["rows"] + dest["rejected"] != out["members"]:
                problems.append(
                    f"{group.group_id} -> {name}: {dest['rows']} projected + {dest['rejected']} "
                    f"rejected != {out['members']} members"
                )
            if sent is None and chosen and name not in chosen:
                # Left out by the run's ``destinations`` parameter: skipped, nothing sent.
                destinations[name] = skipped_destination(plan, name, dest)
                continue
            if sent is None:
                problems.append(f"{group.group_id} -> {name}: no export result")
                continue
            if sent["rows_sent"] != dest["rows"]:
                problems.append(
                    f"{group.group_id} -> {name}: sent {sent['rows_sent']} of {dest['rows']}"
                )
            destinations[name] = {
                "type": plan.campaign.destinations[name].type,
                "dry_run": sent.get("dry_run", False),
                "rows_sent": sent["rows_sent"],
                "rows_rejected": dest["rejected"],
                "rejected_by_reason": dest["rejected_by_reason"],
                "values_cleared": dest["values_cleared"],
                "location": sent.get("location"),
                # What the exporter adds: platform counts (invalid, added, removed, batches).
                **{k: v for k, v in sent.items() if k not in _EXPORT_BOOKKEEPING},
            }
        sub = subs[group.sub_audience]
        sub["members"] += out["members"]
        sub["treatment_groups"][group.treatment_group] = {
            "group_id": group.group_id,
            "is_control": group.is_control,
            "members": out["members"],
            "destinations": destinations,
        }
    assigned = sum(s["members"] for s in subs.values())
    sampled_out = audience.get("sampled_out", 0)
    if plan.campaign.assignment.first_match_only and (
        assigned + audience["unassigned"] + sampled_out != audience["audience_size"]
    ):
        problems.append(
            f"sub-audiences hold {assigned} + {audience['unassigned']} unassigned"
            f" + {sampled_out} left out of the sample, audience is {audience['audience_size']}"
        )
    if problems:
        raise ReconciliationError(
            f"campaign {plan.campaign.name!r} run {run_id!r} does not reconcile: "
            + "; ".join(problems)
            + ". Clear the whole DAG run so that every task reruns from the same audience."
        )
    return {
        "campaign": plan.campaign.name,
        "dag_id": plan.dag_id,
        "run_id": run_id,
        "logical_date": logical_date,
        "run_after": run_after,
        "completed_at": datetime.now(UTC).isoformat(),
        "audience_size": audience["audience_size"],
        "source_rows": audience["source_rows"],
        "rows_without_customer_id": audience["rows_without_customer_id"],
        "unassigned": audience["unassigned"],
        "first_match_only": plan.campaign.assignment.first_match_only,
        "params": params,
        "sampled_out": sampled_out,
        "sub_audiences": subs,
        "recipients_history": recipients_path,
    }


def skipped_destination(plan: CampaignPlan, name: str, projected: dict[str, Any]) -> dict[str, Any]:
    """The manifest entry of a destination the run's ``destinations`` parameter left out."""
    return {
        "type": plan.campaign.destinations[name].type,
        "skipped": "not in trigger parameter destinations",
        "dry_run": False,
        "rows_sent": 0,
        "rows_projected": projected["rows"],
        "rows_rejected": projected["rejected"],
        "rejected_by_reason": projected["rejected_by_reason"],
        "values_cleared": projected["values_cleared"],
        "location": None,
    }


def skipped_destinations(manifest: dict[str, Any]) -> set[str]:
    """Names of the destinations a run skipped (the history holds no rows for them)."""
    return {
        name
        for sub in manifest["sub_audiences"].values()
        for group in sub["treatment_groups"].values()
        for name, dest in group["destinations"].items()
        if dest.get("skipped")
    }


def run_time(manifest: dict[str, Any]) -> tuple[datetime, datetime]:
    """When a run was for, as a sort key: its logical date, else (manual runs in Airflow 3 have
    none) the time it was due to run, then when it completed to break ties. A backfill writes
    old logical dates late, so file times cannot tell which run is the newest."""

    def parse(value: str | None) -> datetime | None:
        if not value:
            return None
        moment = datetime.fromisoformat(value)
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)

    completed = parse(manifest.get("completed_at")) or datetime.min.replace(tzinfo=UTC)
    due = parse(manifest.get("logical_date")) or parse(manifest.get("run_after")) or completed
    return due, completed


def summary_lines(manifest: dict[str, Any]) -> list[str]:
    """A human-readable run summary (counts only, no PII)."""
    lines = [
        f"Campaign {manifest['campaign']} ({manifest['dag_id']}), run {manifest['run_id']}",
        f"  audience: {manifest['audience_size']} customers, {manifest['unassigned']} unassigned,"
        f" {manifest['rows_without_customer_id']} source rows without a customer id",
    ]
    params = manifest.get("params") or {}
    if params.get("dry_run") or params.get("sample_size") or params.get("destinations"):
        lines.append(f"  trigger parameters: {params}")
    if manifest.get("sampled_out"):
        lines.append(f"  sample: {manifest['sampled_out']} members left out")
    for sub_name, sub in manifest["sub_audiences"].items():
        lines.append(f"  {sub_name}: {sub['members']}")
        for group_name, group in sub["treatment_groups"].items():
            tag = " (control: recorded, not sent)" if group["is_control"] else ""
            lines.append(f"    {group_name}: {group['members']}{tag}")
            for dest_name, dest in group["destinations"].items():
                if dest.get("skipped"):
                    lines.append(f"      -> {dest_name}: skipped ({dest['skipped']})")
                    continue
                mode = f" [dry run, written to {dest['location']}]" if dest["dry_run"] else ""
                reasons = ", ".join(f"{r}: {n}" for r, n in dest["rejected_by_reason"].items())
                line = (
                    f"      -> {dest_name}{mode}: {dest['rows_sent']} sent,"
                    f" {dest['rows_rejected']} set aside{f' ({reasons})' if reasons else ''}"
                )
                if dest.get("platform_invalid"):
                    line += f", {dest['platform_invalid']} refused by the platform"
                if dest.get("mode") == "mirror":
                    line += f" (mirror: +{dest['added']} -{dest['removed']})"
                lines.append(line)
    lines.append(f"  recipients history: {manifest['recipients_history']}")
    return lines


def _counts(values: dict[str, int]) -> str:
    return ", ".join(f"{k}: {n}" for k, n in values.items() if n) or "none"


def run_counts(manifest: dict[str, Any]) -> dict[str, Any]:
    """The run's counts by group id, for XCom and the UI: members per group and, per
    destination, rows sent, rows rejected by reason, values cleared and where they went."""
    groups = {}
    for sub_name, sub in manifest["sub_audiences"].items():
        for group_name, group in sub["treatment_groups"].items():
            groups[group["group_id"]] = {
                "sub_audience": sub_name,
                "treatment_group": group_name,
                "control": group["is_control"],
                "members": group["members"],
                "destinations": {
                    name: {
                        "dry_run": dest["dry_run"],
                        "rows_sent": dest["rows_sent"],
                        "rejected_by_reason": dest["rejected_by_reason"],
                        "values_cleared": {k: n for k, n in dest["values_cleared"].items() if n},
                        "location": dest.get("location"),
                    }
                    for name, dest in group["destinations"].items()
                },
            }
    return groups


def summary_markdown(manifest: dict[str, Any], manifest_uri: str) -> str:
    """The run's counts as Markdown (counts only, no PII), shown in the UI. Locations are left
    to the extra links and XCom: Airflow cuts a rendered field at 4096 characters."""
    lines = [
        f"**{manifest['campaign']}** run `{manifest['run_id']}`: audience "
        f"{manifest['audience_size']}, unassigned {manifest['unassigned']}",
        "",
        "| group | members | destination | sent | rejected by reason | cleared |",
        "|---|---|---|---|---|---|",
    ]
    for group_id, group in run_counts(manifest).items():
        if not group["destinations"]:
            lines.append(f"| {group_id} | {group['members']} | (control) | | | |")
        for name, dest in group["destinations"].items():
            mode = " (dry run)" if dest["dry_run"] else ""
            lines.append(
                f"| {group_id} | {group['members']} | {name}{mode} | {dest['rows_sent']} | "
                f"{_counts(dest['rejected_by_reason'])} | {_counts(dest['values_cleared'])} |"
            )
    lines += [
        "",
        f"Manifest: `{manifest_uri}`",
        "",
        f"Recipients: `{manifest['recipients_history']}`",
    ]
    return "\n".join(lines)


RUN_NOTE_HEADING = "campaign-sync: run counts"


def run_note(summary: dict[str, Any]) -> str:
    """A run's totals for its note (counts only, no PII), from ``write_manifest``'s return
    value; the per-group table is the task's rendered ``run_counts``."""
    groups = summary["groups"].values()
    destinations = [d for g in groups for d in g["destinations"].values()]
    dry = sum(1 for d in destinations if d["dry_run"])
    rejected = sum(sum(d["rejected_by_reason"].values()) for d in destinations)
    cleared = sum(sum(d["values_cleared"].values()) for d in destinations)
    controls = sum(g["members"] for g in groups if g["control"])
    return (
        f"**{RUN_NOTE_HEADING}.** Audience {summary['audience_size']:,} "
        f"(unassigned {summary['unassigned']:,}, in control groups {controls:,}); "
        f"{sum(d['rows_sent'] for d in destinations):,} rows sent in {len(destinations)} "
        f"exports{f' ({dry} dry run)' if dry else ''}, {rejected:,} rejected, "
        f"{cleared:,} values cleared. Per group and destination: the `write_manifest` task's "
        f"Rendered Templates. Manifest: `{summary['manifest']}`"
    )
