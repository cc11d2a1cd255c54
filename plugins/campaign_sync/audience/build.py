"""Build a run's audience: stream the pushdown query to staging, check it, assign groups.

The staged audience is a Parquet folder partitioned by group index (``RunLayout.audience``), so
each group's projection reads only its own rows.
"""

from __future__ import annotations

import hashlib
import tempfile
from contextlib import closing
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from campaign_sync import duck
from campaign_sync.audience.assignment import bucket_sql, group_index_sql
from campaign_sync.audience.query import CUSTOMER_ID, audience_query, flag_column
from campaign_sync.audience.source import source_errors, stream_to_parquet
from campaign_sync.failures import PermanentError
from campaign_sync.layout import RunLayout
from campaign_sync.plan import CampaignPlan
from campaign_sync.staging import Staging


class AudienceError(PermanentError, ValueError):
    """The source's audience breaks a rule the campaign depends on (retrying cannot help)."""


@dataclass(frozen=True)
class AudienceSummary:
    """Counts and location of a built audience; small enough for XCom."""

    audience_path: str
    source_rows: int
    audience_size: int
    rows_without_customer_id: int
    unassigned: int
    group_members: dict[str, int]
    sampled_out: int = 0

    def to_xcom(self) -> dict[str, Any]:
        """Plain-dict form for XCom."""
        return asdict(self)


def _membership_sql(plan: CampaignPlan, keyed: str) -> str:
    subs = plan.campaign.sub_audiences
    rem_index = len(subs) if plan.remaining else None
    none_matched = " AND ".join(f"{flag_column(i)} = 0" for i in range(len(subs)))
    if plan.campaign.assignment.first_match_only:
        whens = " ".join(f"WHEN {flag_column(i)} = 1 THEN {i}" for i in range(len(subs)))
        otherwise = f" ELSE {rem_index}" if rem_index is not None else ""
        return f"SELECT *, CASE {whens}{otherwise} END AS __sub FROM {keyed}"
    parts = [
        f"SELECT *, {i} AS __sub FROM {keyed} WHERE {flag_column(i)} = 1" for i in range(len(subs))
    ]
    if rem_index is not None:
        parts.append(f"SELECT *, {rem_index} AS __sub FROM {keyed} WHERE {none_matched}")
    return " UNION ALL ".join(parts)


def build_audience(
    plan: CampaignPlan,
    hook: Any,
    staging: Staging,
    layout: RunLayout,
    *,
    batch_rows: int,
    memory_limit: str,
    sample_size: int = 0,
) -> AudienceSummary:
    """Run the audience query on ``hook`` and stage the assigned audience at
    ``layout.audience``; with ``sample_size`` > 0 only that many members per group are staged
    (see ``sample_sql``)."""
    campaign = plan.campaign
    n_subs = len(campaign.sub_audiences)
    with (
        tempfile.TemporaryDirectory(prefix="campaign_sync_audience_") as tmp,
        closing(duck.connect(Path(tmp), memory_limit)) as con,
    ):
        work = Path(tmp)
        raw = work / "raw.parquet"
        with source_errors(campaign.name, campaign.source.conn_id):
            source_rows = stream_to_parquet(hook, audience_query(plan), raw, batch_rows)
        raw_sql = f"read_parquet({duck.literal(str(raw))})"
        matched_none = " AND ".join(f"{flag_column(i)} = 0" for i in range(n_subs))
        with_id, distinct_ids, unmatched = con.execute(
            f"SELECT count({CUSTOMER_ID}), count(DISTINCT {CUSTOMER_ID}),"
            f" count_if({CUSTOMER_ID} IS NOT NULL AND {matched_none}) FROM {raw_sql}"
        ).fetchone()
        if with_id != distinct_ids:
            raise AudienceError(
                f"campaign {campaign.name!r}: source.customer_id column "
                f"{campaign.source.customer_id!r} is not unique in the audience: "
                f"{with_id - distinct_ids} duplicate id(s); deduplicate in the source query"
            )
        columns = ", ".join(duck.ident(c) for c in plan.used_source_columns())
        keep = f"__customer_id{', ' + columns if columns else ''}"
        keyed = (
            f"(SELECT *, CAST({CUSTOMER_ID} AS VARCHAR) AS __customer_id,"
            f" {bucket_sql(duck.literal(campaign.hash_salt), f'CAST({CUSTOMER_ID} AS VARCHAR)')}"
            f" AS __bucket FROM {raw_sql} WHERE {CUSTOMER_ID} IS NOT NULL)"
        )
        members = f"({_membership_sql(plan, keyed)})"
        g = layout.AUDIENCE_PARTITION
        assigned = (
            f"SELECT {keep}, {group_index_sql(plan, '__sub', '__bucket')} AS {g} FROM {members}"
        )
        grouped = f"SELECT * FROM ({assigned}) WHERE {g} IS NOT NULL"
        sampled_out = 0
        if sample_size:
            total = con.execute(f"SELECT count(*) FROM ({grouped})").fetchone()[0]
            grouped = sample_sql(grouped, campaign.hash_salt, sample_size)
            sampled_out = total - con.execute(f"SELECT count(*) FROM ({grouped})").fetchone()[0]
        # DuckDB buffers up to 524,288 rows per partition and thread before writing a
        # partitioned COPY: with seven groups that held most of a 10M audience and ran out of
        # memory (benchmarks/NOTES.md). The buffers together stay near 245,760 rows a thread.
        flush = max(10_000, 245_760 // max(1, len(plan.groups)))
        con.execute(f"SET partitioned_write_flush_threshold = {flush}")
        with staging.write_dir(layout.audience) as out:
            con.execute(
                f"COPY ({grouped}) TO {duck.literal(str(out))} (FORMAT parquet, PARTITION_BY ({g}))"
            )
            # Every group gets a folder, even an empty one, so its projection reads a schema.
            for index in range(len(plan.groups)):
                part = out / layout.partition_name(index)
                if not part.exists():
                    part.mkdir()
                    con.execute(
                        f"COPY (SELECT {keep} FROM ({assigned}) LIMIT 0) TO "
                        f"{duck.literal(str(part / 'empty.parquet'))} (FORMAT parquet)"
                    )
            counts = dict(
                con.execute(
                    f"SELECT {g}, count(*) FROM read_parquet({duck.parquet_glob(out)},"
                    f" hive_partitioning = true) GROUP BY {g}"
                ).fetchall()
                if duck.has_parquet(out)
                else []
            )
    return AudienceSummary(
        audience_path=layout.audience,
        source_rows=source_rows,
        audience_size=with_id,
        rows_without_customer_id=source_rows - with_id,
        unassigned=0 if plan.remaining else unmatched,
        group_members={g.group_id: int(counts.get(i, 0)) for i, g in enumerate(plan.groups)},
        sampled_out=sampled_out,
    )


def sample_key(salt: str, customer_id: str) -> str:
    """A member's sample rank key: the sample holds the ``n`` smallest keys of each group."""
    return hashlib.sha256(f"sample:{salt}:{customer_id}".encode()).hexdigest()


def sample_sql(grouped: str, salt: str, size: int) -> str:
    """``grouped`` (rows with ``__customer_id`` and the group column) cut to ``size`` members per
    group: those with the smallest ``sample_key``, so the same size always gives the same
    members, and every destination of a group gets the same ones."""
    key = f"sha256({duck.literal(f'sample:{salt}:')} || __customer_id)"
    g = RunLayout.AUDIENCE_PARTITION
    return (
        f"SELECT * FROM ({grouped}) QUALIFY row_number() OVER "
        f"(PARTITION BY {g} ORDER BY {key}, __customer_id) <= {int(size)}"
    )
