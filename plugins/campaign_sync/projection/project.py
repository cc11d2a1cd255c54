"""Project one treatment group's rows for each of its destinations.

One pass normalizes and hashes every (source column, kind) the group's destinations need, so
work shared by several destinations is done once. Then, per destination, rows that meet the
contract are written with the destination's attribute names, and rows that do not are set aside
with a reason. A control group writes only its members to the recipients history.
"""

from __future__ import annotations

import tempfile
from contextlib import closing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from campaign_sync import duck
from campaign_sync.destinations import REGISTRY, AttributeRule
from campaign_sync.layout import RunLayout
from campaign_sync.plan import CampaignPlan, GroupPlan
from campaign_sync.projection import normalize
from campaign_sync.staging import Staging


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
    """Allocates one normalized (and hashed) column per distinct (source, kind).

    The normalization query has three levels, so each expression is computed once per row:
    every source column is trimmed once (``trimmed``), the normalizers read the trimmed column
    (``normalized``), and hashes and forms derived from a normalized value read its column
    (``derived``).
    """

    def __init__(self, country_code: str, customer_id_column: str) -> None:
        self.country_code = country_code
        self.customer_id_column = customer_id_column
        self.trimmed: dict[str, str] = {}
        self.normalized: dict[str, str] = {}
        self.derived: dict[str, str] = {}
        self._names: dict[tuple[str, str, bool], str] = {}

    @property
    def output(self) -> list[str]:
        """Every column the destinations read, besides ``__customer_id``."""
        return [*self.normalized, *self.derived]

    def _add(self, level: dict[str, str], key: tuple[str, str, bool], sql: str) -> str:
        if key not in self._names:
            self._names[key] = f"__c{len(self._names)}"
            level[self._names[key]] = sql
        return self._names[key]

    def _trim(self, source: str, raw: str) -> normalize.Trimmed:
        return normalize.Trimmed(
            self._add(self.trimmed, (source, "trimmed", False), normalize.text(raw))
        )

    def _normalized(self, source: str, kind: str, trimmed: normalize.Trimmed) -> str:
        sql = normalize.normalize(kind, trimmed, country_code=self.country_code)
        return self._add(self.normalized, (source, kind, False), sql)

    def attr(self, source: str, name: str, rule: AttributeRule) -> _Attr:
        # The staged audience carries the customer id once, as __customer_id.
        raw = "__customer_id" if source == self.customer_id_column else duck.ident(source)
        if rule.kind == "passthrough":
            return _Attr(
                source, name, rule, self._add(self.normalized, (source, "raw", False), raw), None
            )
        trimmed = self._trim(source, raw)
        if rule.kind == "phone_e164":
            # The same number as phone_digits with a '+': normalize the number once.
            digits = self._normalized(source, "phone_digits", trimmed)
            hash_input = normalize.e164_from_digits(digits)
            norm = self._add(self.derived, (source, rule.kind, False), hash_input)
        else:
            norm = hash_input = self._normalized(source, rule.kind, trimmed)
        value = (
            self._add(
                self.derived,
                (source, rule.kind, True),
                normalize.sha256(trimmed, hash_input, kind=rule.kind),
            )
            if rule.hashed
            else norm
        )
        present = self._add(self.normalized, (source, "present", False), normalize.present(trimmed))
        return _Attr(source, name, rule, value, present)

    def query(self, relation: str) -> str:
        """SELECT of ``__customer_id`` and every output column from ``relation``'s raw rows."""

        def level(columns: dict[str, str], inner: str) -> str:
            extra = "".join(f", {sql} AS {name}" for name, sql in columns.items())
            return f"(SELECT *{extra} FROM {inner})"

        levels = level(self.derived, level(self.normalized, level(self.trimmed, relation)))
        return f"SELECT __customer_id, {', '.join(self.output)} FROM {levels}"


@dataclass(frozen=True)
class _DestinationSpec:
    """One destination's projection: its attributes and the SQL that accepts or rejects rows."""

    name: str
    attrs: list[_Attr]
    required: list[str]
    rejected: str  # SQL: true when the row cannot be sent
    reason: str  # SQL: why (first failing rule)

    @property
    def optional_checked(self) -> list[_Attr]:
        """Optional attributes whose invalid values are cleared rather than rejected."""
        return [a for a in self.attrs if a.present is not None and a.name not in self.required]


def _destination_spec(plan: CampaignPlan, dest_name: str, columns: _Columns) -> _DestinationSpec:
    dest = plan.campaign.destinations[dest_name]
    dtype = REGISTRY[dest.type]
    attrs = [columns.attr(src, name, dtype.rule_for(name)) for src, name in dest.attributes.items()]
    names = [a.name for a in attrs]
    required, any_of = dtype.row_required(names), dtype.row_any_of(names)
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
        return _DestinationSpec(dest_name, attrs, required, "FALSE", "NULL")
    rejected = " OR ".join(f"({c})" for c, _ in checks)
    reason = "CASE " + " ".join(f"WHEN {c} THEN {duck.literal(r)}" for c, r in checks) + " END"
    return _DestinationSpec(dest_name, attrs, required, rejected, reason)


def _write_destination(con: Any, spec: _DestinationSpec, target: Path) -> tuple[int, dict, dict]:
    """Write the rows ``spec`` accepts to ``target``; return (rows, rejected by reason, cleared).

    Sorted by customer id, so a re-projection yields the same batches (resume depends on it).
    """
    values = ", ".join(f"{a.value} AS {duck.ident(a.name)}" for a in spec.attrs)
    con.execute(
        f"COPY (SELECT __customer_id, {values} FROM norm WHERE NOT ({spec.rejected})"
        f" ORDER BY __customer_id) TO {duck.literal(str(target))} (FORMAT parquet)"
    )
    # One scan counts everything: the accepted rows (reason NULL), with their cleared values,
    # and the rejected rows by reason.
    optional = spec.optional_checked
    cleared_sql = "".join(f", count_if({a.present} AND {a.value} IS NULL)" for a in optional)
    counts = con.execute(
        f"SELECT CASE WHEN {spec.rejected} THEN {spec.reason} END AS r, count(*){cleared_sql}"
        " FROM norm GROUP BY r ORDER BY r NULLS FIRST"
    ).fetchall()
    rows, cleared, reasons = 0, {}, {}
    for reason, n, *cleared_counts in counts:
        if reason is None:
            rows = int(n)
            cleared = {a.name: int(c) for a, c in zip(optional, cleared_counts, strict=True) if c}
        else:
            reasons[str(reason)] = int(n)
    return rows, reasons, cleared


def project_group(
    plan: CampaignPlan,
    group: GroupPlan,
    staging: Staging,
    layout: RunLayout,
    *,
    memory_limit: str,
) -> GroupOutput:
    """Project ``group``'s staged audience rows for each of its destinations."""
    index = plan.groups.index(group)
    source = plan.campaign.source
    columns = _Columns(source.phone_country_code, source.customer_id)
    specs = [_destination_spec(plan, d, columns) for d in group.destinations]
    out_rel = layout.group(group.group_id)
    history = ", ".join(
        f"{duck.literal(v)} AS {k}"
        for k, v in (
            ("campaign", plan.campaign.name),
            ("dag_id", plan.dag_id),
            ("run_id", layout.run_id),
            ("sub_audience", group.sub_audience),
            ("treatment_group", group.treatment_group),
        )
    )
    outputs: dict[str, DestinationOutput] = {}
    with (
        staging.read_dir(layout.audience_partition(index)) as group_dir,
        tempfile.TemporaryDirectory(prefix="campaign_sync_project_") as tmp,
        closing(duck.connect(Path(tmp), memory_limit)) as con,
        staging.write_dir(out_rel) as out,
    ):
        con.execute(
            f"CREATE VIEW members AS SELECT * FROM read_parquet({duck.parquet_glob(group_dir)})"
        )
        members = con.execute("SELECT count(*) FROM members").fetchone()[0]
        recipients = duck.literal(str(out / layout.RECIPIENTS_FILE))
        if not specs:
            con.execute(
                f"COPY (SELECT __customer_id AS customer_id, {history},"
                f" {str(group.is_control).upper()} AS is_control, NULL::VARCHAR AS destination"
                f" FROM members) TO {recipients} (FORMAT parquet)"
            )
        else:
            # One pass normalizes and hashes what all the group's destinations need. It runs
            # unordered (in parallel); sorting its input first made it keep one thread.
            normalized = duck.literal(str(Path(tmp) / "normalized.parquet"))
            con.execute(f"COPY ({columns.query('members')}) TO {normalized} (FORMAT parquet)")
            con.execute(f"CREATE VIEW norm AS SELECT * FROM read_parquet({normalized})")
            rejected_parts, history_parts = [], []
            for spec in specs:
                file_rel = layout.projected_name(spec.name)
                (out / file_rel).parent.mkdir(exist_ok=True)
                rows, reasons, cleared = _write_destination(con, spec, out / file_rel)
                name = duck.literal(spec.name)
                rejected_parts.append(
                    f"SELECT __customer_id AS customer_id, {name} AS destination,"
                    f" {spec.reason} AS reason FROM norm WHERE {spec.rejected}"
                )
                history_parts.append(
                    f"SELECT __customer_id AS customer_id, {history}, FALSE AS is_control,"
                    f" {name} AS destination FROM read_parquet({duck.literal(str(out / file_rel))})"
                )
                outputs[spec.name] = DestinationOutput(
                    path=layout.projected(group.group_id, spec.name),
                    rows=rows,
                    rejected=sum(reasons.values()),
                    rejected_by_reason=reasons,
                    values_cleared=cleared,
                )
            con.execute(
                f"COPY ({' UNION ALL '.join(rejected_parts)}) TO "
                f"{duck.literal(str(out / layout.REJECTED_FILE))} (FORMAT parquet)"
            )
            con.execute(
                f"COPY ({' UNION ALL '.join(history_parts)}) TO {recipients} (FORMAT parquet)"
            )
    return GroupOutput(
        group_id=group.group_id,
        sub_audience=group.sub_audience,
        treatment_group=group.treatment_group,
        is_control=group.is_control,
        members=int(members),
        path=out_rel,
        destinations=outputs,
    )
