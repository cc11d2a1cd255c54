"""Delivery file writers: formats, gzip, header and delimiter, splitting, streaming memory."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import textwrap

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from campaign_sync.writers import expected_files, extension, write_file, write_files
from storage_helpers import decode, delivered, make_projected, same_rows, sha256

CASES = [
    ("csv", "none", True, ","),
    ("csv", "none", False, ";"),
    ("csv", "none", True, "\t"),
    ("csv", "gzip", True, "|"),
    ("jsonl", "none", True, ","),
    ("jsonl", "gzip", True, ","),
    ("parquet", "none", True, ","),
]


@pytest.mark.parametrize(("fmt", "compression", "header", "delimiter"), CASES)
def test_formats_round_trip(tmp_path, fmt, compression, header, delimiter):
    source = make_projected(tmp_path / "p.parquet", 500)
    expected = delivered(source)

    files = list(
        write_files(
            source,
            tmp_path / "out",
            fmt=fmt,
            compression=compression,
            header=header,
            delimiter=delimiter,
            batch_rows=64,
        )
    )

    assert [(f.number, f.rows) for f in files] == [(1, 500)]
    data = files[0].path.read_bytes()
    assert files[0].size == len(data) and files[0].sha256 == sha256(data)
    got = decode(
        data,
        fmt=fmt,
        schema=expected.schema,
        header=header,
        delimiter=delimiter,
        compression=compression,
    )
    same_rows(got, expected)


def test_internal_columns_are_never_written(tmp_path):
    source = make_projected(tmp_path / "p.parquet", 20)

    for fmt in ("csv", "jsonl", "parquet"):
        [written] = write_files(source, tmp_path / fmt, fmt=fmt)
        if fmt == "parquet":
            names = pq.read_schema(written.path).names
        elif fmt == "csv":
            names = written.path.read_text().splitlines()[0].replace('"', "").split(",")
        else:
            names = list(json.loads(written.path.read_text().splitlines()[0]))
        assert "__customer_id" not in names
        assert names[0] == "customer_id"


def test_csv_header_off_and_delimiter(tmp_path):
    source = make_projected(tmp_path / "p.parquet", 3)

    [written] = write_files(source, tmp_path / "o", fmt="csv", header=False, delimiter=";")

    lines = written.path.read_text().splitlines()
    assert lines[0].startswith('"c00000000";;"plain";nan;;;0.00')
    assert not any("customer_id" in line for line in lines)


def test_jsonl_values(tmp_path):
    source = make_projected(tmp_path / "p.parquet", 14)

    [written] = write_files(source, tmp_path / "o", fmt="jsonl")

    rows = [json.loads(line) for line in written.path.read_text().splitlines()]
    assert rows[0] == {
        "customer_id": "c00000000",
        "email": None,
        "note": "plain",
        "score": None,  # NaN: JSON has no such number
        "visits": None,
        "signup": None,
        "clv": "0.00",  # decimals stay exact, as strings
    }
    assert rows[1]["signup"] == "2020-01-02" and rows[1]["score"] == 0.125
    assert rows[4]["note"] == "ünïcödé ✓" and rows[3]["note"] == "new\nline"


@pytest.mark.parametrize(
    ("rows", "limit", "sizes"),
    [
        (1000, 300, [300, 300, 300, 100]),
        (900, 300, [300, 300, 300]),
        (10, 300, [10]),
        (10, None, [10]),
        (0, 300, [0]),
    ],
)
def test_split_into_files_of_at_most_n_rows(tmp_path, rows, limit, sizes):
    source = make_projected(tmp_path / "p.parquet", rows)

    files = list(
        write_files(
            source,
            tmp_path / "o",
            fmt="csv",
            compression="gzip",
            max_rows_per_file=limit,
            batch_rows=70,  # batches straddle file boundaries
            name=lambda n: f"part-{n}.csv.gz",
        )
    )

    assert [f.rows for f in files] == sizes
    assert len(files) == expected_files(rows, limit)
    assert [f.path.name for f in files] == [f"part-{n}.csv.gz" for n in range(1, len(sizes) + 1)]
    parts = [
        decode(f.path.read_bytes(), fmt="csv", schema=delivered(source).schema, compression="gzip")
        for f in files
    ]
    same_rows(pa.concat_tables(parts), delivered(source))
    assert all(gzip.decompress(f.path.read_bytes()).startswith(b'"customer_id"') for f in files)


def test_empty_source_still_gives_one_file_per_format(tmp_path):
    source = make_projected(tmp_path / "p.parquet", 0)

    csv_file = next(write_files(source, tmp_path / "c", fmt="csv"))
    jsonl_file = next(write_files(source, tmp_path / "j", fmt="jsonl"))
    parquet_file = next(write_files(source, tmp_path / "p", fmt="parquet"))

    assert csv_file.path.read_text().startswith('"customer_id","email"')
    assert jsonl_file.size == 0
    assert pq.read_table(parquet_file.path).schema == delivered(source).schema


def test_output_does_not_depend_on_batch_size(tmp_path):
    source = make_projected(tmp_path / "p.parquet", 1000)

    small = list(
        write_files(source, tmp_path / "a", fmt="csv", max_rows_per_file=333, batch_rows=7)
    )
    large = list(write_files(source, tmp_path / "b", fmt="csv", max_rows_per_file=333))

    assert [f.sha256 for f in small] == [f.sha256 for f in large]


def test_each_file_is_complete_when_handed_over(tmp_path):
    source = make_projected(tmp_path / "p.parquet", 1000)
    seen = []

    for written in write_files(source, tmp_path / "o", fmt="parquet", max_rows_per_file=400):
        seen.append(pq.read_table(written.path).num_rows)
        written.path.unlink()  # a caller uploads, then deletes before the next file is written

    assert seen == [400, 400, 200]
    assert list((tmp_path / "o").iterdir()) == []


@pytest.mark.parametrize(
    ("fmt", "compression", "message"),
    [
        ("parquet", "gzip", "Parquet files are compressed internally"),
        ("xml", "none", "unsupported file format"),
        ("csv", "zip", "unsupported compression"),
    ],
)
def test_invalid_combinations(tmp_path, fmt, compression, message):
    source = make_projected(tmp_path / "p.parquet", 1)

    with pytest.raises(ValueError, match=message):
        next(write_files(source, tmp_path / "o", fmt=fmt, compression=compression))
    assert extension("csv", "gzip") == "csv.gz" and extension("jsonl") == "jsonl"


def test_write_file_single_file_atomic(tmp_path):
    source = make_projected(tmp_path / "p.parquet", 50)
    target = tmp_path / "out" / "file.csv"

    rows = write_file(source, target, fmt="csv", header=True, delimiter=",")

    assert rows == 50
    assert [p.name for p in target.parent.iterdir()] == ["file.csv"]
    same_rows(
        decode(target.read_bytes(), fmt="csv", schema=delivered(source).schema),
        delivered(source),
    )


_MEMORY_SCRIPT = textwrap.dedent(
    """
    import json, resource, sys
    from pathlib import Path
    import pyarrow as pa
    import pyarrow.parquet as pq
    from campaign_sync.writers import write_files

    source, out = Path(sys.argv[1]), Path(sys.argv[2])
    fmt, compression = sys.argv[3], sys.argv[4]
    parquet = pq.ParquetFile(source)
    rows = parquet.metadata.num_rows
    # What holding the whole export in Arrow would cost, estimated from one row group.
    first = parquet.read_row_group(0)
    whole = first.nbytes * rows // first.num_rows
    del first
    pa.default_memory_pool().release_unused()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    pool_before = pa.total_allocated_bytes()
    peak_pool = written = files = 0
    for f in write_files(source, out, fmt=fmt, compression=compression,
                         max_rows_per_file=rows // 3 + 1, batch_rows=10_000):
        peak_pool = max(peak_pool, pa.total_allocated_bytes() - pool_before)
        written += f.size
        files += 1
        f.path.unlink()  # as the exporters do after each upload
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"whole": whole, "written": written, "files": files,
                      "rss_growth": rss_after - rss_before, "peak_pool": peak_pool}))
    """
)


@pytest.mark.parametrize(
    ("fmt", "compression", "rows"),
    [("csv", "gzip", 700_000), ("jsonl", "none", 600_000)],
)
def test_memory_stays_bounded_for_a_large_export(tmp_path, fmt, compression, rows):
    import duckdb

    source = tmp_path / "source.parquet"
    duckdb.sql(
        f"COPY (SELECT 'c' || i AS __customer_id, 'c' || i AS customer_id,"
        f" 'user' || i || '@example.com' AS email, i * 1.5 AS score,"
        f" repeat(md5(i::VARCHAR), 4) AS payload FROM range({rows}) t(i))"
        f" TO '{source}' (FORMAT parquet, ROW_GROUP_SIZE 10000)"
    )

    result = subprocess.run(
        [
            sys.executable,
            "-c",
            _MEMORY_SCRIPT,
            str(source),
            str(tmp_path / "out"),
            fmt,
            compression,
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )

    assert result.returncode == 0, result.stderr[-3000:]
    data = json.loads(result.stdout.strip().splitlines()[-1])
    assert data["files"] == 3
    assert data["whole"] > 100_000_000  # far more than the writer may hold
    # Peak memory growth while writing stays a small fraction of the export.
    assert data["peak_pool"] < data["whole"] / 10
    assert data["rss_growth"] < data["whole"] / 5
