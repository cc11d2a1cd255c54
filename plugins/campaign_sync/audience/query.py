"""The audience query pushed down to the source database.

It selects only the columns destinations need, plus one 0/1 flag per sub-audience condition, so
the source does the filtering and the worker moves as little data as possible. Customer ids are
aliased to ``__cid``; flags to ``__sa_<i>``.
"""

from __future__ import annotations

from campaign_sync.plan import CampaignPlan

CUSTOMER_ID = "__cid"


def flag_column(index: int) -> str:
    """Column holding 1 when a row matches sub-audience ``index``'s condition."""
    return f"__sa_{index}"


def base_relation(plan: CampaignPlan) -> str:
    """The audience as a SQL relation: the campaign's SQL, or its table with include/exclude."""
    source = plan.campaign.source
    if source.sql is not None:
        return f"({source.sql})"
    where = [f"({cond})" for cond in source.include]
    # COALESCE: a NULL exclude condition must not drop the customer (NOT NULL is NULL).
    where += [f"NOT COALESCE(({cond}), FALSE)" for cond in source.exclude]
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    return f"(SELECT * FROM {source.table}{clause})"


def audience_query(plan: CampaignPlan) -> str:
    """SELECT returning one row per audience member with needed columns and sub-audience flags."""
    campaign = plan.campaign
    columns = [f"{campaign.source.customer_id} AS {CUSTOMER_ID}"]
    columns += plan.used_source_columns()
    columns += [
        f"CASE WHEN ({sub.condition}) THEN 1 ELSE 0 END AS {flag_column(i)}"
        for i, sub in enumerate(campaign.sub_audiences)
    ]
    select = ",\n  ".join(columns)
    return f"SELECT\n  {select}\nFROM {base_relation(plan)} campaign_audience"
