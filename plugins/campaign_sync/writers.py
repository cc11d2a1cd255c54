"""Write staged Parquet rows as delivery files, streaming batch by batch.

Formats: CSV (header on/off, one-character delimiter), Parquet, JSON Lines; CSV and JSON Lines
may be gzipped. Rows can be split into files of at most N rows. Memory holds one batch at a
time whatever the export's size, and ``write_files`` hands each file over as soon as it is
complete, so a caller can upload and delete it before the next one is written.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import os
from base64 import b64encode
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

INTERNAL_PREFIX = "__"  # staged bookkeeping columns, never delivered
FORMATS = ("csv", "parquet", "jsonl")
COMPRESSIONS = ("none", "gzip")
_HASH_CHUNK = 1024 * 1024


def extension(fmt: str, compression: str = "none") -> str:
    """File extension for a format and compression, e.g. ``csv.gz``."""
    if fmt not in FORMATS:
        raise ValueError(f"unsupported file format {fmt!r}")
    if compression not in COMPRESSIONS:
        raise ValueError(f"unsupported compression {compression!r}")
    if fmt == "parquet" and compression != "none":
        raise ValueError("Parquet files are compressed internally; gzip applies to csv and jsonl")
    return f"{fmt}.gz" if compression == "gzip" else fmt


def expected_files(rows: int, max_rows_per_file: int | None) -> int:
    """How many files ``write_files`` writes for ``rows`` rows (at least one, even when empty)."""
    if not max_rows_per_file or rows <= 0:
        return 1
    return math.ceil(rows / max_rows_per_file)


@dataclass(frozen=True)
class WrittenFile:
    """One complete delivery file on local disk."""

    number: int  # 1-based
    path: Path
    rows: int
    size: int
    sha256: str


class _Writer(Protocol):
    def write(self, batch: pa.RecordBatch) -> None: ...

    def close(self) -> None: ...


class _CsvWriter:
    def __init__(
        self, path: Path, schema: pa.Schema, gz: bool, header: bool, delimiter: str
    ) -> None:
        self._sink = (
            pa.CompressedOutputStream(str(path), "gzip") if gz else pa.OSFile(str(path), "wb")
        )
        options = pacsv.WriteOptions(include_header=header, delimiter=delimiter)
        self._writer = pacsv.CSVWriter(self._sink, schema, write_options=options)

    def write(self, batch: pa.RecordBatch) -> None:
        self._writer.write_batch(batch)

    def close(self) -> None:
        self._writer.close()
        self._sink.close()


class _ParquetWriter:
    def __init__(self, path: Path, schema: pa.Schema) -> None:
        self._writer = pq.ParquetWriter(str(path), schema)

    def write(self, batch: pa.RecordBatch) -> None:
        self._writer.write_batch(batch)

    def close(self) -> None:
        self._writer.close()


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Decimal):
        return str(value)  # exact; a float could change the value
    if isinstance(value, bytes):
        return b64encode(value).decode("ascii")
    raise TypeError(f"cannot write a {type(value).__name__} value as JSON")


class _JsonLinesWriter:
    """One JSON object per line; NaN and infinities become null (JSON has no such numbers)."""

    def __init__(self, path: Path, schema: pa.Schema, gz: bool) -> None:
        raw: BinaryIO = open(path, "wb")
        # mtime=0 keeps the gzip bytes identical for identical rows (reruns, checksums).
        self._out: BinaryIO = gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) if gz else raw
        self._raw = raw
        self._floats = [i for i, f in enumerate(schema) if pa.types.is_floating(f.type)]
        self._encode = json.JSONEncoder(
            ensure_ascii=False, default=_json_default, separators=(",", ":")
        ).encode

    def write(self, batch: pa.RecordBatch) -> None:
        for i in self._floats:
            column = batch.column(i)
            finite = pc.is_finite(column)
            batch = batch.set_column(i, batch.schema.field(i), pc.if_else(finite, column, None))
        encode = self._encode
        lines = [encode(row) for row in batch.to_pylist()]
        if lines:
            self._out.write(("\n".join(lines) + "\n").encode("utf-8"))

    def close(self) -> None:
        self._out.close()
        self._raw.close()


def _open_writer(
    path: Path, schema: pa.Schema, fmt: str, compression: str, header: bool, delimiter: str
) -> _Writer:
    gz = compression == "gzip"
    if fmt == "csv":
        return _CsvWriter(path, schema, gz, header, delimiter)
    if fmt == "parquet":
        return _ParquetWriter(path, schema)
    return _JsonLinesWriter(path, schema, gz)


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes (hex)."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def delivered_columns(source: Path) -> list[str]:
    """The columns of a staged file that are delivered (internal ``__`` columns dropped)."""
    names = pq.ParquetFile(source).schema_arrow.names
    return [n for n in names if not n.startswith(INTERNAL_PREFIX)]


def write_files(
    source: Path,
    folder: Path,
    *,
    fmt: str,
    compression: str = "none",
    header: bool = True,
    delimiter: str = ",",
    max_rows_per_file: int | None = None,
    batch_rows: int = 100_000,
    name: Callable[[int], str] = lambda n: f"part-{n:05d}",
) -> Iterator[WrittenFile]:
    """Write ``source``'s delivered columns into ``folder`` and yield each file once complete.

    Files are named ``name(number)`` (numbers start at 1); each holds at most
    ``max_rows_per_file`` rows (no limit when None). An empty source still gives one file
    (a CSV header, an empty Parquet file with its schema, an empty JSON Lines file).
    A file that fails half-way is removed before the error propagates.
    """
    extension(fmt, compression)  # validates the combination
    if max_rows_per_file is not None and max_rows_per_file < 1:
        raise ValueError("max_rows_per_file must be at least 1")
    # pre_buffer would read ahead whole column chunks (over 100 MB for a large file).
    parquet = pq.ParquetFile(source, pre_buffer=False)
    columns = [n for n in parquet.schema_arrow.names if not n.startswith(INTERNAL_PREFIX)]
    schema = pa.schema([parquet.schema_arrow.field(n) for n in columns])
    folder.mkdir(parents=True, exist_ok=True)
    limit = max_rows_per_file or math.inf
    number = 0
    writer: _Writer | None = None
    path: Path | None = None
    rows_in_file = 0

    def start() -> None:
        nonlocal number, writer, path, rows_in_file
        number += 1
        path = folder / name(number)
        writer = _open_writer(path, schema, fmt, compression, header, delimiter)
        rows_in_file = 0

    def finish() -> WrittenFile:
        nonlocal writer
        assert writer is not None and path is not None
        writer.close()
        writer = None
        return WrittenFile(number, path, rows_in_file, path.stat().st_size, file_sha256(path))

    try:
        for batch in parquet.iter_batches(batch_size=batch_rows, columns=columns):
            offset = 0
            while offset < batch.num_rows:
                if writer is None:
                    start()
                assert writer is not None
                take = int(min(batch.num_rows - offset, limit - rows_in_file))
                writer.write(batch.slice(offset, take))
                rows_in_file += take
                offset += take
                if rows_in_file >= limit:
                    yield finish()
        if writer is not None:
            yield finish()
        elif number == 0:
            start()
            yield finish()
    except BaseException:
        if writer is not None:
            try:
                writer.close()
            finally:
                if path is not None:
                    path.unlink(missing_ok=True)
        raise


def write_file(
    source: Path,
    target: Path,
    *,
    fmt: str,
    header: bool = True,
    delimiter: str = ",",
    compression: str = "none",
    batch_rows: int = 100_000,
) -> int:
    """Write ``source``'s delivered columns to the single file ``target``; return rows written.

    The file appears under its final name only when complete (written beside it, then renamed).
    """
    partial = target.with_name(f".{target.name}.partial")
    rows = 0
    try:
        for written in write_files(
            source,
            target.parent,
            fmt=fmt,
            compression=compression,
            header=header,
            delimiter=delimiter,
            batch_rows=batch_rows,
            name=lambda _: partial.name,
        ):
            rows += written.rows
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return rows
