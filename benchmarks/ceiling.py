"""The projection ceiling: one DuckDB SELECT doing the five platforms' normalization and hashing.

Reads the customers table, trims and lowercases the e-mail, keeps the phone's digits with the
country code, and computes the SHA-256 of e-mail, phone, first and last name once each, writing
Parquet. This is the least work a projection for the five platforms can do, so it is the
reference the build + project tasks are compared with.

    python benchmarks/ceiling.py DB.duckdb OUT.parquet [--memory-limit 1GB]
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import duckdb

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


def run(db: str, out: str, memory_limit: str | None, table: str = "merged_customers") -> dict:
    """Run the ceiling query; return its wall time, row count and this process's peak RSS."""
    t0 = time.perf_counter()
    con = duckdb.connect(db, read_only=True)
    if memory_limit:
        con.execute(f"SET memory_limit = '{memory_limit}'")
    con.execute(SQL.format(table=table, out="'" + out.replace("'", "''") + "'"))
    rows = con.execute(f"SELECT count(*) FROM read_parquet('{out}')").fetchone()[0]
    con.close()
    return {
        "wall_s": time.perf_counter() - t0,
        "rows": rows,
        "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("db")
    parser.add_argument("out")
    parser.add_argument("--memory-limit", default=None)
    args = parser.parse_args()
    print(json.dumps(run(args.db, args.out, args.memory_limit)))


if __name__ == "__main__":
    main()
