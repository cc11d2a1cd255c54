"""Small helpers for the DuckDB engine the tasks use to transform staged Parquet files."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def literal(value: str) -> str:
    """A SQL string literal (single quotes doubled)."""
    return "'" + value.replace("'", "''") + "'"


def ident(name: str) -> str:
    """A quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def connect(work_dir: Path, memory_limit: str) -> Any:
    """An in-memory DuckDB connection that streams and spills to ``work_dir``."""
    import duckdb

    con = duckdb.connect()
    con.execute(f"SET memory_limit = {literal(memory_limit)}")
    con.execute(f"SET temp_directory = {literal(str(work_dir / 'duckdb_tmp'))}")
    # Order across batches carries no meaning here; dropping it lets COPY stream.
    con.execute("SET preserve_insertion_order = false")
    return con


def parquet_glob(folder: Path) -> str:
    """read_parquet() argument for every Parquet file under ``folder``."""
    return literal(str(folder / "**" / "*.parquet"))


def has_parquet(folder: Path) -> bool:
    """Whether ``folder`` holds any Parquet file."""
    return folder.is_dir() and any(folder.rglob("*.parquet"))
