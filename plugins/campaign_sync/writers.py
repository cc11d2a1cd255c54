"""Write staged Parquet rows as delivery files (CSV or Parquet), streaming batch by batch."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

INTERNAL_PREFIX = "__"  # staged bookkeeping columns, never delivered


def write_file(
    source: Path,
    target: Path,
    *,
    fmt: str,
    header: bool = True,
    delimiter: str = ",",
    batch_rows: int = 100_000,
) -> int:
    """Write ``source``'s delivered columns to ``target``; return rows written.

    The file appears under its final name only when complete (written beside it, then renamed).
    """
    parquet = pq.ParquetFile(source)
    columns = [n for n in parquet.schema_arrow.names if not n.startswith(INTERNAL_PREFIX)]
    schema = pa.schema([parquet.schema_arrow.field(n) for n in columns])
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    rows = 0
    try:
        if fmt == "csv":
            options = pacsv.WriteOptions(include_header=header, delimiter=delimiter)
            with pacsv.CSVWriter(partial, schema, write_options=options) as writer:
                for batch in parquet.iter_batches(batch_size=batch_rows, columns=columns):
                    writer.write_batch(batch)
                    rows += batch.num_rows
        elif fmt == "parquet":
            with pq.ParquetWriter(partial, schema) as writer:
                for batch in parquet.iter_batches(batch_size=batch_rows, columns=columns):
                    writer.write_batch(batch)
                    rows += batch.num_rows
        else:
            raise ValueError(f"unsupported file format {fmt!r}")
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return rows
