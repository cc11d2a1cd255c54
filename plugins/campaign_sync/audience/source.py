"""Stream a query from any source database into a Parquet file, one batch at a time.

Hooks that can stream Arrow (``arrow_reader``, as DuckDBHook does) are used directly; any other
common-sql hook is read through its DB-API cursor with ``fetchmany``. On Postgres the cursor is a
server-side (named) one, so the server keeps the result and sends one batch per fetch; a plain
psycopg cursor would pull the whole result into the worker on ``execute``. Memory stays at about
one batch whatever the audience size.

A database error while reading is re-raised as a ``SourceError`` (permanent: bad SQL, permission
denied) or ``SourceUnavailable`` (transient: the server cannot be reached) naming the campaign and
the connection. The driver's detail lines and quoted literals are left out, and the original
exception is not chained, because they can hold row values.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from campaign_sync.failures import PermanentError


class SourceError(PermanentError, RuntimeError):
    """The source returned data that cannot be staged, or refused the query (the campaign's SQL
    or the connection's permissions must change)."""


class SourceUnavailable(RuntimeError):
    """The source database could not be reached or dropped the connection (Airflow retries)."""


# Connection types whose DB-API driver takes ``cursor(name=...)`` for a server-side cursor.
SERVER_SIDE_CURSOR_TYPES = frozenset({"postgres"})
# PEP 249 exception classes a retry can fix; any other database error is permanent.
_TRANSIENT_DBAPI_ERRORS = frozenset({"OperationalError", "InterfaceError"})
# A quoted literal after a colon ('invalid input syntax for type integer: "x"') may be a value.
_QUOTED_VALUE = re.compile(r':\s*"[^"]*"')


def _database_error(exc: BaseException) -> bool:
    return any(
        c.__name__ in ("Error", "DatabaseError") and c.__module__ != "builtins"
        for c in type(exc).__mro__
    )


def describe_database_error(exc: BaseException) -> str:
    """The error's class, SQLSTATE and first message line, without values from rows."""
    diag = getattr(exc, "diag", None)
    # psycopg's primary message leaves out DETAIL, where key values are quoted.
    primary = getattr(diag, "message_primary", None) or next(iter(str(exc).splitlines()), "")
    code = getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)
    message = _QUOTED_VALUE.sub(": <value withheld>", primary)[:300]
    return f"{type(exc).__name__}{f' (SQLSTATE {code})' if code else ''}: {message}"


@contextmanager
def source_errors(campaign: str, conn_id: str) -> Iterator[None]:
    """Re-raise a database error from the source naming ``campaign`` and ``conn_id``."""
    try:
        yield
    except Exception as exc:
        if not _database_error(exc):
            raise
        where = f"campaign {campaign!r}: source.conn_id {conn_id!r}"
        described = describe_database_error(exc)
        if _TRANSIENT_DBAPI_ERRORS & {c.__name__ for c in type(exc).__mro__}:
            raise SourceUnavailable(
                f"{where}: the source database is unavailable: {described}"
            ) from None
        raise SourceError(
            f"{where}: the source database refused the audience query: {described}; fix the "
            "campaign's source conditions or the connection's grants"
        ) from None


@contextmanager
def open_reader(hook: Any, sql: str, batch_rows: int) -> Iterator[pa.RecordBatchReader]:
    """A RecordBatchReader over ``sql``'s result on ``hook``'s database."""
    if hasattr(hook, "arrow_reader"):
        with hook.arrow_reader(sql, batch_rows) as reader:
            yield reader
        return
    conn = hook.get_conn()
    try:
        if getattr(hook, "conn_type", None) in SERVER_SIDE_CURSOR_TYPES:
            cursor = conn.cursor(name="campaign_sync_audience")
        else:
            cursor = conn.cursor()
        cursor.execute(sql)
        yield _dbapi_reader(cursor, batch_rows)
    finally:
        conn.close()


def _dbapi_reader(cursor: Any, batch_rows: int) -> pa.RecordBatchReader:
    # Fetch before reading the description: a server-side cursor has none until its first fetch.
    first = cursor.fetchmany(batch_rows)
    names = [d[0] for d in cursor.description]
    columns = list(zip(*first, strict=True)) if first else [() for _ in names]
    arrays = []
    for name, col in zip(names, columns, strict=True):
        try:
            arrays.append(pa.array(col))
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise SourceError(
                f"column {name!r} mixes types within one batch: cast it in the campaign's SQL"
            ) from exc
    # A column with only NULLs in the first batch has no type to infer: stage it as text.
    fields = [
        pa.field(n, pa.string() if a.type == pa.null() else a.type)
        for n, a in zip(names, arrays, strict=True)
    ]
    schema = pa.schema(fields)

    def batches() -> Iterator[pa.RecordBatch]:
        rows = first
        while rows:
            cols = list(zip(*rows, strict=True))
            arrays = []
            for field, values in zip(schema, cols, strict=True):
                try:
                    # Infer, then cast safely: a lossy cast (120.5 into int64) must fail loudly.
                    arrays.append(pa.array(values).cast(field.type, safe=True))
                except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
                    if field.type != pa.string():
                        raise SourceError(
                            f"column {field.name!r} changed type mid-result ({field.type} "
                            f"expected): cast it in the campaign's SQL"
                        ) from exc
                    arrays.append(pa.array([None if v is None else str(v) for v in values]))
            yield pa.record_batch(arrays, schema=schema)
            rows = cursor.fetchmany(batch_rows)

    return pa.RecordBatchReader.from_batches(schema, batches())


def stream_to_parquet(hook: Any, sql: str, out: Path, batch_rows: int) -> int:
    """Write ``sql``'s result to ``out`` batch by batch; return the row count."""
    rows = 0
    with open_reader(hook, sql, batch_rows) as reader:
        with pq.ParquetWriter(out, reader.schema) as writer:
            for batch in reader:
                writer.write_batch(batch)
                rows += batch.num_rows
    return rows
