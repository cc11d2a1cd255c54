"""The campaign plan as Markdown, shown as the DAG's documentation in the Airflow UI."""

from __future__ import annotations

import json
from pathlib import Path

from campaign_sync import config
from campaign_sync.layout import RunLayout
from campaign_sync.plan import CampaignPlan
from campaign_sync.spec.model import Campaign, Destination

MAX_CAMPAIGN_FILE_CHARS = 20_000


def _cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def plan_markdown(plan: CampaignPlan, path: Path) -> str:
    """Sub-audiences, groups, percentages, destinations and attributes of a campaign."""
    c = plan.campaign
    source = c.source
    audience = f"`{source.table}`" if source.table else "custom SQL"
    lines = [
        f"# Campaign: {_cell(c.name)}",
        "",
        _cell(c.description) if c.description else "",
        "",
        f"- file: `{path.name}`; owner: {_cell(c.owner)}",
        f"- audience: {audience} on connection `{source.conn_id}`, customer id "
        f"`{source.customer_id}`",
    ]
    lines += [f"  - include: `{_cell(cond)}`" for cond in source.include]
    lines += [f"  - exclude: `{_cell(cond)}`" for cond in source.exclude]
    mode = "first match wins" if c.assignment.first_match_only else "overlapping membership"
    lines += [
        f"- sub-audiences: {mode}; groups by SHA-256 bucket of (salt, customer id)",
        "",
        "| sub-audience | condition | treatment group | % | control | destinations |",
        "|---|---|---|---|---|---|",
    ]
    conditions = {s.name: s.condition for s in c.sub_audiences}
    percentages = {
        (s.name, g.name): g.percentage
        for s in [*c.sub_audiences, *([c.remaining] if c.remaining else [])]
        for g in s.treatment_groups
    }
    for g in plan.groups:
        condition = conditions.get(g.sub_audience, "(all remaining)")
        lines.append(
            f"| {_cell(g.sub_audience)} | `{_cell(condition)}` | {_cell(g.treatment_group)} | "
            f"{percentages[(g.sub_audience, g.treatment_group)]} | "
            f"{'yes' if g.is_control else ''} | "
            f"{', '.join(g.destinations) or '-'} |"
        )
    lines += ["", "| destination | type | delivery | attributes (source -> destination) |"]
    lines += ["|---|---|---|---|"]
    for name, dest in c.destinations.items():
        delivery = "dry run" if dest.dry_run else f"`{dest.conn_id or 'local'}`"
        attrs = ", ".join(f"{s} -> {t}" for s, t in dest.attributes.items())
        lines.append(f"| {_cell(name)} | {dest.type} | {delivery} | {_cell(attrs)} |")
    lines += operations_markdown(plan)
    lines += campaign_file_markdown(path)
    return "\n".join(lines)


def _schedule_lines(c: Campaign) -> list[str]:
    s = c.schedule
    if s is None:
        return ["- schedule: none (manual runs only); timezone UTC"]
    cron = s.cron or "none (manual runs only)"
    end = f", until {s.aware(s.end_date).isoformat()}" if s.end_date else ""
    runs = f", {s.max_runs} runs" if s.max_runs else ""
    return [
        f"- schedule: `{_cell(cron)}` in timezone **{s.timezone}**, from "
        f"{s.aware(s.start_date).isoformat()}{end}{runs}; catchup {'on' if s.catchup else 'off'}"
    ]


def _output(dest: Destination, dag_id: str, output_root: Path) -> str:
    # Where a destination's rows end up, as far as the campaign file tells before a run.
    o = dest.options
    if dest.dry_run:
        return f"`{output_root / 'dry_run'}` (payload written locally, nothing sent)"
    if dest.type == "local":
        folder = Path(str(o.get("path", "")))
        return f"`{folder if folder.is_absolute() else output_root / folder}`"
    prefix = str(o.get("prefix", "")).strip("/")
    if "bucket" in o:
        scheme = "gs" if dest.type == "gcs" else "s3"
        return f"`{scheme}://{o['bucket']}/{prefix}`"
    if "container" in o:
        return f"container `{o['container']}`, prefix `{prefix}`"
    if "remote_dir" in o:
        return f"`{o['remote_dir']}/{prefix}` on the SFTP server"
    return f"an audience on {dest.type} named after the campaign and group ({dag_id})"


def operations_markdown(plan: CampaignPlan) -> list[str]:
    """Schedule and timezone, retries, each destination's connection, options and output,
    alerts, and where each run's manifest is written."""
    c = plan.campaign
    r = c.retries
    backoff = f"doubling up to {r.max_delay_seconds}s" if r.exponential_backoff else "fixed"
    lines = ["", "## Operation", "", *_schedule_lines(c)]
    lines.append(f"- retries: {r.count} per task, {r.delay_seconds}s apart ({backoff})")
    manifest = f"{config.staging_root()}/{RunLayout(plan.dag_id, '<run_id>').manifest}"
    lines.append(f"- each run's manifest: `{_cell(manifest)}`")
    alerts = c.alerts
    if alerts.email:
        e = alerts.email
        when = [w for w, on in (("failure", e.on_failure), ("success", e.on_success)) if on]
        lines.append(
            f"- email alerts on {' and '.join(when) or 'nothing'} through SMTP connection "
            f"`{e.smtp_conn_id}` to {', '.join(e.to)}"
        )
    for check, rule in (
        ("rejected share per destination", alerts.thresholds.rejected_share),
        ("audience size change against the last successful run", alerts.thresholds.audience_change),
    ):
        if rule is not None:
            lines.append(f"- threshold: {check} above {rule.max_percent}% -> {rule.action}")
    lines += ["", "| destination | connection id | options | output |", "|---|---|---|---|"]
    output_root = config.output_root()  # once, not per destination: parsing builds every DAG
    for name, dest in c.destinations.items():
        options = json.dumps(dest.options, sort_keys=True, default=str) if dest.options else ""
        lines.append(
            f"| {_cell(name)} | `{dest.conn_id or '-'}` | {_cell(options)} | "
            f"{_cell(_output(dest, plan.dag_id, output_root))} |"
        )
    return lines


def campaign_file_markdown(path: Path) -> list[str]:
    """The campaign file itself, as a YAML code block (cut at MAX_CAMPAIGN_FILE_CHARS)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return []
    if len(text) > MAX_CAMPAIGN_FILE_CHARS:
        text = (
            text[:MAX_CAMPAIGN_FILE_CHARS] + f"\n# ... cut at {MAX_CAMPAIGN_FILE_CHARS} characters"
        )
    fence = "````" if "```" in text else "```"
    return ["", f"## Campaign file `{path.name}`", "", f"{fence}yaml", text.rstrip(), fence]
