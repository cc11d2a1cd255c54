"""The projection ceiling: one DuckDB SELECT doing the five platforms' normalization and hashing.

Two ceilings, each one SELECT from the customers table to one Parquet file:

- ``simple`` (the issue's reference): trims and lowercases the e-mail, keeps the phone's digits
  with the country code, and computes the SHA-256 of e-mail, phone, first and last name once
  each. It does not validate anything.
- ``normalizers``: campaign-sync's own normalizer SQL (``projection.normalize``) for every
  attribute the benchmark campaign sends to the five platforms, each (column, kind) computed
  and hashed once: the same work as projection, without staging, checks or per-destination
  files.

    python benchmarks/ceiling.py simple|normalizers DB.duckdb OUT.parquet [--memory-limit 1GB]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import duckdb

if __name__ == "__main__":  # run as a script: make the benchmarks package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

SQL = """
COPY (
  WITH n AS (
    SELECT customer_id,
      lower(trim(email)) AS email_n,
      CASE WHEN length(regexp_replace(phone, '[^0-9]', '', 'g')) = 10
           THEN '1' || regexp_replace(phone, '[^0-9]', '', 'g')
           ELSE regexp_replace(phone, '[^0-9]', '', 'g') END AS phone_n,
      lower(trim(given_name)) AS fn_n,
      lower(trim(surname)) AS ln_n
    FROM {table}
  )
  SELECT customer_id, email_n, '+' || phone_n AS phone_e164,
    sha256(email_n) AS email_sha256, sha256(phone_n) AS phone_sha256,
    sha256(fn_n) AS fn_sha256, sha256(ln_n) AS ln_sha256
  FROM n
) TO {out} (FORMAT parquet)
"""


def normalizers_sql(table: str, out: str) -> str:
    """The ``normalizers`` ceiling: projection's normalizer SQL for the benchmark campaign."""
    from campaign_sync.plan import build_plan
    from campaign_sync.projection.project import _Columns, _destination_spec
    from campaign_sync.spec.model import Campaign

    from benchmarks.campaigns import pipeline_campaign

    plan = build_plan(Campaign.model_validate(pipeline_campaign()))
    source = plan.campaign.source
    columns = _Columns(source.phone_country_code, source.customer_id)
    for destination in plan.groups[0].destinations:
        _destination_spec(plan, destination, columns)
    relation = f"(SELECT *, CAST(customer_id AS VARCHAR) AS __customer_id FROM {table})"
    return f"COPY ({columns.query(relation)}) TO {out} (FORMAT parquet)"


def run(
    kind: str, db: str, out: str, memory_limit: str | None, table: str = "merged_customers"
) -> dict:
    """Run a ceiling query; return its wall time, row count and this process's peak RSS."""
    t0 = time.perf_counter()
    con = duckdb.connect(db, read_only=True)
    if memory_limit:
        con.execute(f"SET memory_limit = '{memory_limit}'")
    target = "'" + out.replace("'", "''") + "'"
    con.execute(
        SQL.format(table=table, out=target) if kind == "simple" else normalizers_sql(table, target)
    )
    rows = con.execute(f"SELECT count(*) FROM read_parquet('{out}')").fetchone()[0]
    con.close()
    return {
        "wall_s": time.perf_counter() - t0,
        "rows": rows,
        "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=("simple", "normalizers"))
    parser.add_argument("db")
    parser.add_argument("out")
    parser.add_argument("--memory-limit", default=None)
    args = parser.parse_args()
    print(json.dumps(run(args.kind, args.db, args.out, args.memory_limit)))


if __name__ == "__main__":
    main()
