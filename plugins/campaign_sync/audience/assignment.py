"""Deterministic treatment-group assignment.

A customer's bucket is the first 60 bits of SHA-256("<salt>:<customer id>") modulo 10,000.
It depends on nothing else, so a customer keeps its group on every run and rerun, and a growing
audience moves nobody. The SQL form (DuckDB) and the Python form agree bit for bit.
"""

from __future__ import annotations

from campaign_sync.digests import sha256_int
from campaign_sync.plan import BUCKETS, CampaignPlan


def bucket(salt: str, customer_id: str) -> int:
    """Bucket in [0, 10000) of one customer (reference implementation)."""
    return sha256_int(f"{salt}:{customer_id}") % BUCKETS


def bucket_sql(salt_param: str, customer_id_expr: str) -> str:
    """DuckDB expression computing ``bucket`` for every row."""
    return (
        f"(('0x' || substr(sha256({salt_param} || ':' || {customer_id_expr}), 1, 15))::UBIGINT"
        f" % {BUCKETS})"
    )


def group_index_sql(plan: CampaignPlan, sub_expr: str, bucket_expr: str) -> str:
    """DuckDB CASE giving the index of the (sub-audience, group) in ``plan.groups``."""
    whens = []
    for index, group in enumerate(plan.groups):
        sub_index = plan.sub_audiences.index(group.sub_audience)
        whens.append(
            f"WHEN {sub_expr} = {sub_index} AND {bucket_expr} >= {group.bucket_start}"
            f" AND {bucket_expr} < {group.bucket_end} THEN {index}"
        )
    return "CASE " + " ".join(whens) + " END"
