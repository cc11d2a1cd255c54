"""DuckDB as a source database, through the common-sql hook interface."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from airflow.providers.common.sql.hooks.sql import DbApiHook


class DuckDBHook(DbApiHook):
    """Connects to a DuckDB database file named in the connection's host field.

    Opened read-only unless the connection's extra sets ``"read_only": false``, so several
    tasks can read the same file at once.
    """

    conn_name_attr = "duckdb_conn_id"
    default_conn_name = "duckdb_default"
    conn_type = "duckdb"
    hook_name = "DuckDB"
    supports_autocommit = False

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Connection form: the host field holds the database file path."""
        return {
            "hidden_fields": ["login", "password", "port", "schema"],
            "relabeling": {"host": "Database file"},
            "placeholders": {"host": "/path/to/customers.duckdb", "extra": '{"read_only": true}'},
        }

    def get_conn(self) -> Any:
        """Open the database file named by the connection."""
        import duckdb

        from campaign_sync import config

        conn = self.get_connection(self.get_conn_id())
        path = conn.host or ":memory:"
        read_only = str(conn.extra_dejson.get("read_only", True)).lower() not in ("false", "0")
        # The task's memory bound, not DuckDB's default of 80% of the machine: reading the
        # source caches its pages up to the limit, beside the task's own DuckDB work.
        limit = conn.extra_dejson.get("memory_limit") or config.duckdb_memory_limit()
        return duckdb.connect(
            path, read_only=read_only and path != ":memory:", config={"memory_limit": limit}
        )

    def get_uri(self) -> str:
        """SQLAlchemy-style URI of the database file (used only for display)."""
        conn = self.get_connection(self.get_conn_id())
        return f"duckdb:///{conn.host or ':memory:'}"

    @contextmanager
    def arrow_reader(self, sql: str, batch_rows: int) -> Iterator[Any]:
        """Stream a query's result as a pyarrow RecordBatchReader of ``batch_rows``-row batches."""
        con = self.get_conn()
        try:
            yield con.sql(sql).to_arrow_reader(batch_rows)
        finally:
            con.close()
