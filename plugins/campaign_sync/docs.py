"""The campaign plan as Markdown, shown as the DAG's documentation in the Airflow UI."""

from __future__ import annotations

from pathlib import Path

from campaign_sync.plan import CampaignPlan


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
    return "\n".join(lines)
