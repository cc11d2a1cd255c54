"""Stream a query from any source database into a Parquet file, one batch at a time.

Hooks that can stream Arrow (``arrow_reader``, as DuckDBHook does) are used directly; any other
common-sql hook is read through its DB-API cursor with ``fetchmany``. Memory stays at about one
batch whatever the audience size.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from campaign_sync.failures import PermanentError


class SourceError(PermanentError, RuntimeError):
    """The source returned data that cannot be staged (the campaign's SQL must change)."""


@contextmanager
def open_reader(hook: Any, sql: str, batch_rows: int) -> Iterator[pa.RecordBatchReader]:
    """A RecordBatchReader over ``sql``'s result on ``hook``'s database."""
    if hasattr(hook, "arrow_reader"):
        with hook.arrow_reader(sql, batch_rows) as reader:
            yield reader
        return
    conn = hook.get_conn()
    try:
        cursor = conn.cursor()
        cursor.execute(sql)
        yield _dbapi_reader(cursor, batch_rows)
    finally:
        conn.close()


def _dbapi_reader(cursor: Any, batch_rows: int) -> pa.RecordBatchReader:
    names = [d[0] for d in cursor.description]
    first = cursor.fetchmany(batch_rows)
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
