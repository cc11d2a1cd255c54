"""Project one treatment group's rows for each of its destinations.

One pass normalizes and hashes every (source column, kind) the group's destinations need, so
work shared by several destinations is done once. Then, per destination, rows that meet the
contract are written with the destination's attribute names, and rows that do not are set aside
with a reason. A control group writes only its members to the recipients history.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from campaign_sync import duck
from campaign_sync.destinations import REGISTRY, AttributeRule
from campaign_sync.plan import CampaignPlan, GroupPlan
from campaign_sync.projection import normalize
from campaign_sync.staging import Staging

RECIPIENTS_FILE = "recipients.parquet"
REJECTED_FILE = "rejected.parquet"


@dataclass(frozen=True)
class DestinationOutput:
    """What projection produced for one destination of a group."""

    path: str
    rows: int
    rejected: int
    rejected_by_reason: dict[str, int]
    values_cleared: dict[str, int]


@dataclass(frozen=True)
class GroupOutput:
    """What projection produced for one group; small enough for XCom."""

    group_id: str
    sub_audience: str
    treatment_group: str
    is_control: bool
    members: int
    path: str
    destinations: dict[str, DestinationOutput] = field(default_factory=dict)

    def to_xcom(self) -> dict[str, Any]:
        """Plain-dict form for XCom."""
        return asdict(self)


@dataclass(frozen=True)
class _Attr:
    source: str
    name: str
    rule: AttributeRule
    value: str  # column of the normalized frame holding the value sent
    present: str | None  # column telling whether the raw value was there; None: not checked


class _Columns:
    """Allocates one normalized (and hashed) column per distinct (source, kind)."""

    def __init__(self, country_code: str, customer_id_column: str) -> None:
        self.country_code = country_code
        self.customer_id_column = customer_id_column
        self.select: dict[str, str] = {}
        self._names: dict[tuple[str, str, bool], str] = {}

    def _add(self, key: tuple[str, str, bool], sql: str) -> str:
        if key not in self._names:
            self._names[key] = f"__c{len(self._names)}"
            self.select[self._names[key]] = sql
        return self._names[key]

    def attr(self, source: str, name: str, rule: AttributeRule) -> _Attr:
        # The staged audience carries the customer id once, as __customer_id.
        raw = "__customer_id" if source == self.customer_id_column else duck.ident(source)
        if rule.kind == "passthrough":
            return _Attr(source, name, rule, self._add((source, "raw", False), raw), None)
        norm_sql = normalize.normalize(rule.kind, raw, country_code=self.country_code)
        norm = self._add((source, rule.kind, False), norm_sql)
        value = (
            self._add((source, rule.kind, True), normalize.sha256(raw, norm))
            if rule.hashed
            else norm
        )
        present = self._add((source, "present", False), normalize.present(raw))
        return _Attr(source, name, rule, value, present)


def _destination_attrs(
    plan: CampaignPlan, dest_name: str, columns: _Columns
) -> tuple[list[_Attr], list[str], list[str]]:
    dest = plan.campaign.destinations[dest_name]
    dtype = REGISTRY[dest.type]
    attrs = [columns.attr(src, name, dtype.rule_for(name)) for src, name in dest.attributes.items()]
    names = [a.name for a in attrs]
    return attrs, dtype.row_required(names), dtype.row_any_of(names)


def _reason_sql(attrs: list[_Attr], required: list[str], any_of: list[str]) -> tuple[str, str]:
    by_name = {a.name: a for a in attrs}
    checks: list[tuple[str, str]] = []  # (condition meaning "rejected", reason)
    for name in required:
        a = by_name[name]
        if a.present is not None:
            checks.append((f"NOT {a.present}", f"{name} missing"))
        checks.append((f"{a.value} IS NULL", f"{name} invalid"))
    if any_of:
        none_valid = " AND ".join(f"{by_name[n].value} IS NULL" for n in any_of)
        checks.append((f"({none_valid})", f"no valid identifier among {', '.join(any_of)}"))
    if not checks:
        return "FALSE", "NULL"
    rejected = " OR ".join(f"({c})" for c, _ in checks)
    reason = "CASE " + " ".join(f"WHEN {c} THEN {duck.literal(r)}" for c, r in checks) + " END"
    return rejected, reason


def project_group(
    plan: CampaignPlan,
    group: GroupPlan,
    staging: Staging,
    run_rel: str,
    *,
    run_id: str,
    memory_limit: str,
) -> GroupOutput:
    """Project ``group``'s staged audience rows for each of its destinations."""
    index = plan.groups.index(group)
    source = plan.campaign.source
    columns = _Columns(source.phone_country_code, source.customer_id)
    per_dest = {d: _destination_attrs(plan, d, columns) for d in group.destinations}
    out_rel = f"{run_rel}/groups/{group.group_id}"
    history_consts = ", ".join(
        f"{duck.literal(v)} AS {k}"
        for k, v in (
            ("campaign", plan.campaign.name),
            ("dag_id", plan.dag_id),
            ("run_id", run_id),
            ("sub_audience", group.sub_audience),
            ("treatment_group", group.treatment_group),
        )
    )
    outputs: dict[str, DestinationOutput] = {}
    with (
        staging.read_dir(f"{run_rel}/audience/__g={index}") as group_dir,
        tempfile.TemporaryDirectory(prefix="campaign_sync_project_") as tmp,
        staging.write_dir(out_rel) as out,
    ):
        con = duck.connect(Path(tmp), memory_limit)
        con.execute(
            f"CREATE VIEW members AS SELECT * FROM read_parquet({duck.parquet_glob(group_dir)})"
        )
        members = con.execute("SELECT count(*) FROM members").fetchone()[0]
        if group.is_control or not group.destinations:
            con.execute(
                f"COPY (SELECT __customer_id AS customer_id, {history_consts}, "
                f"{str(group.is_control).upper()} AS is_control, NULL::VARCHAR AS destination "
                f"FROM members) TO {duck.literal(str(out / RECIPIENTS_FILE))} (FORMAT parquet)"
            )
        else:
            normalized = Path(tmp) / "normalized.parquet"
            select = ", ".join(f"{sql} AS {name}" for name, sql in columns.select.items())
            con.execute(
                f"COPY (SELECT __customer_id, {select} FROM members) TO "
                f"{duck.literal(str(normalized))} (FORMAT parquet)"
            )
            con.execute(
                f"CREATE VIEW norm AS SELECT * FROM read_parquet({duck.literal(str(normalized))})"
            )
            (out / "destinations").mkdir()
            rejected_parts, history_parts = [], []
            for dest_name, (attrs, required, any_of) in per_dest.items():
                rejected_sql, reason_sql = _reason_sql(attrs, required, any_of)
                file_rel = f"destinations/{dest_name}.parquet"
                values = ", ".join(f"{a.value} AS {duck.ident(a.name)}" for a in attrs)
                con.execute(
                    f"COPY (SELECT __customer_id, {values} FROM norm WHERE NOT ({rejected_sql})) "
                    f"TO {duck.literal(str(out / file_rel))} (FORMAT parquet)"
                )
                rows = con.execute(
                    f"SELECT count(*) FROM read_parquet({duck.literal(str(out / file_rel))})"
                ).fetchone()[0]
                reasons = dict(
                    con.execute(
                        f"SELECT {reason_sql} AS r, count(*) FROM norm WHERE {rejected_sql} "
                        "GROUP BY r ORDER BY r"
                    ).fetchall()
                )
                cleared_checks = [
                    a for a in attrs if a.present is not None and a.name not in required
                ]
                cleared: dict[str, int] = {}
                if cleared_checks:
                    counts = con.execute(
                        "SELECT "
                        + ", ".join(
                            f"count_if({a.present} AND {a.value} IS NULL)" for a in cleared_checks
                        )
                        + f" FROM norm WHERE NOT ({rejected_sql})"
                    ).fetchone()
                    cleared = {
                        a.name: int(n) for a, n in zip(cleared_checks, counts, strict=True) if n
                    }
                rejected_parts.append(
                    "SELECT __customer_id AS customer_id,"
                    f" {duck.literal(dest_name)} AS destination,"
                    f" {reason_sql} AS reason FROM norm WHERE {rejected_sql}"
                )
                history_parts.append(
                    f"SELECT __customer_id AS customer_id, {history_consts}, FALSE AS is_control,"
                    f" {duck.literal(dest_name)} AS destination "
                    f"FROM read_parquet({duck.literal(str(out / file_rel))})"
                )
                outputs[dest_name] = DestinationOutput(
                    path=f"{out_rel}/{file_rel}",
                    rows=int(rows),
                    rejected=int(sum(reasons.values())),
                    rejected_by_reason={str(k): int(v) for k, v in reasons.items()},
                    values_cleared=cleared,
                )
            con.execute(
                f"COPY ({' UNION ALL '.join(rejected_parts)}) TO "
                f"{duck.literal(str(out / REJECTED_FILE))} (FORMAT parquet)"
            )
            con.execute(
                f"COPY ({' UNION ALL '.join(history_parts)}) TO "
                f"{duck.literal(str(out / RECIPIENTS_FILE))} (FORMAT parquet)"
            )
        con.close()
    return GroupOutput(
        group_id=group.group_id,
        sub_audience=group.sub_audience,
        treatment_group=group.treatment_group,
        is_control=group.is_control,
        members=int(members),
        path=out_rel,
        destinations=outputs,
    )
