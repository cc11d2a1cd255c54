"""Streaming a source query to Parquet (audience.source.stream_to_parquet)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from campaign_sync.audience.source import SourceError, stream_to_parquet
from campaign_sync.hooks.duckdb import DuckDBHook

# Row 0 has no NULLs: on the DB-API path the first batch decides the types.
ROWS = [
    (i, None if i % 7 == 3 else f"name {i}", i * 1.5, None if i % 11 == 5 else i % 2 == 0)
    for i in range(1037)
]


class SqliteHook:
    """A minimal common-sql style hook: only get_conn(), so the DB-API path is used."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.connections: list[sqlite3.Connection] = []

    def get_conn(self) -> sqlite3.Connection:
        conn = sqlite3.connect(str(self.path))
        self.connections.append(conn)
        return conn


def _sqlite_db(path: Path, ddl: str, rows: list[tuple[Any, ...]]) -> SqliteHook:
    conn = sqlite3.connect(str(path))
    conn.execute(ddl)
    if rows:
        marks = ", ".join("?" for _ in rows[0])
        conn.executemany(f"INSERT INTO t VALUES ({marks})", rows)
    conn.commit()
    conn.close()
    return SqliteHook(path)


def _duck_db(
    path: Path, ddl: str, rows: list[tuple[Any, ...]], monkeypatch: pytest.MonkeyPatch
) -> DuckDBHook:
    con = duckdb.connect(str(path))
    con.execute(ddl)
    if rows:
        names = [f"c{i}" for i in range(len(rows[0]))]
        columns = list(zip(*rows, strict=True))
        src = pa.table({n: pa.array(list(c)) for n, c in zip(names, columns, strict=True)})
        con.register("src", src)
        con.execute("INSERT INTO t SELECT * FROM src")
        con.unregister("src")
    con.close()
    monkeypatch.setenv(
        "AIRFLOW_CONN_SOURCE_TEST_DB", json.dumps({"conn_type": "duckdb", "host": str(path)})
    )
    return DuckDBHook(duckdb_conn_id="source_test_db")


@pytest.fixture(params=["duckdb", "dbapi"])
def hook_factory(request, tmp_path, monkeypatch):
    """Build a hook over table ``t`` on either path; returns (hook, kind)."""

    def make(ddl_duck: str, ddl_sqlite: str, rows: list[tuple[Any, ...]]) -> Any:
        if request.param == "duckdb":
            return _duck_db(tmp_path / "src.duckdb", ddl_duck, rows, monkeypatch)
        return _sqlite_db(tmp_path / "src.sqlite", ddl_sqlite, rows)

    make.kind = request.param  # type: ignore[attr-defined]
    return make


DDL_DUCK = "CREATE TABLE t (id BIGINT, name VARCHAR, score DOUBLE, flag BOOLEAN)"
DDL_SQLITE = "CREATE TABLE t (id INTEGER, name TEXT, score REAL, flag BOOLEAN)"
SELECT = "SELECT id, name, score, flag FROM t ORDER BY id"


def _rows(path: Path) -> list[tuple[Any, ...]]:
    table = pq.read_table(path)
    cols = [table.column(n).to_pylist() for n in table.column_names]
    return list(zip(*cols, strict=True))


def _norm(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    # sqlite stores booleans as 0/1
    return [(i, n, s, None if f is None else bool(f)) for i, n, s, f in rows]


@pytest.mark.parametrize("batch_rows", [10, 100, 1036, 1037, 50_000])
def test_batches_give_same_rows_as_single_read(hook_factory, tmp_path, batch_rows):
    hook = hook_factory(DDL_DUCK, DDL_SQLITE, ROWS)
    out = tmp_path / f"out_{batch_rows}.parquet"
    n = stream_to_parquet(hook, SELECT, out, batch_rows)
    assert n == len(ROWS)
    single = tmp_path / "single.parquet"
    assert stream_to_parquet(hook, SELECT, single, 10**6) == len(ROWS)
    got = _rows(out)
    assert got == _rows(single)
    if hook_factory.kind == "dbapi":
        got = _norm(got)
    assert got == ROWS
    assert pq.read_schema(out).names == ["id", "name", "score", "flag"]


def test_dbapi_types(tmp_path):
    hook = _sqlite_db(tmp_path / "types.sqlite", DDL_SQLITE, ROWS[:50])
    out = tmp_path / "o.parquet"
    stream_to_parquet(hook, "SELECT id, name, score FROM t", out, 10)
    schema = pq.read_schema(out)
    assert [schema.field(n).type for n in ("id", "name", "score")] == [
        pa.int64(),
        pa.string(),
        pa.float64(),
    ]


def test_dbapi_connection_is_closed(tmp_path):
    hook = _sqlite_db(tmp_path / "close.sqlite", DDL_SQLITE, ROWS[:20])
    stream_to_parquet(hook, SELECT, tmp_path / "o.parquet", 7)
    assert len(hook.connections) == 1
    with pytest.raises(sqlite3.ProgrammingError):
        hook.connections[0].execute("SELECT 1")


def test_first_batch_all_null_column_is_staged_as_string(hook_factory, tmp_path):
    rows = [(i, None if i < 10 else f"v{i}", None, None) for i in range(25)]
    hook = hook_factory(DDL_DUCK, DDL_SQLITE, rows)
    out = tmp_path / "o.parquet"
    assert stream_to_parquet(hook, "SELECT id, name FROM t ORDER BY id", out, 5) == 25
    table = pq.read_table(out)
    assert table.schema.field("name").type == pa.string()
    assert table.column("name").to_pylist() == [None] * 10 + [f"v{i}" for i in range(10, 25)]


def test_dbapi_all_null_first_batch_then_numbers_is_text(tmp_path):
    rows = [(i, None if i < 6 else i * 10) for i in range(12)]
    hook = _sqlite_db(tmp_path / "n.sqlite", "CREATE TABLE t (id INTEGER, v)", rows)
    out = tmp_path / "o.parquet"
    assert stream_to_parquet(hook, "SELECT id, v FROM t ORDER BY id", out, 3) == 12
    table = pq.read_table(out)
    assert table.schema.field("v").type == pa.string()
    assert table.column("v").to_pylist() == [None] * 6 + ["60", "70", "80", "90", "100", "110"]


def test_dbapi_column_null_everywhere_is_string(tmp_path):
    hook = _sqlite_db(tmp_path / "n.sqlite", "CREATE TABLE t (id INTEGER, v)", [(1, None)])
    out = tmp_path / "o.parquet"
    stream_to_parquet(hook, "SELECT id, v FROM t", out, 10)
    assert pq.read_schema(out).field("v").type == pa.string()
    assert _rows(out) == [(1, None)]


def test_empty_result_writes_valid_parquet(hook_factory, tmp_path):
    hook = hook_factory(DDL_DUCK, DDL_SQLITE, ROWS[:10])
    out = tmp_path / "empty.parquet"
    n = stream_to_parquet(hook, "SELECT id, name, score FROM t WHERE id < 0", out, 4)
    assert n == 0
    table = pq.read_table(out)
    assert table.num_rows == 0
    assert table.column_names == ["id", "name", "score"]
    # DuckDB can read it too (the audience build does)
    con = duckdb.connect()
    assert con.execute(f"SELECT count(*) FROM read_parquet('{out}')").fetchone()[0] == 0
    con.close()


def test_empty_table_on_dbapi_stages_text_columns(tmp_path):
    hook = _sqlite_db(tmp_path / "e.sqlite", DDL_SQLITE, [])
    out = tmp_path / "empty.parquet"
    assert stream_to_parquet(hook, "SELECT id, name FROM t", out, 100) == 0
    schema = pq.read_schema(out)
    assert schema.names == ["id", "name"]
    assert all(f.type == pa.string() for f in schema)


@pytest.mark.parametrize(
    ("values", "batch_rows"),
    [
        # int column gets text in a later batch
        ([*range(10), "abc", 11], 5),
        # ... in the middle of a later batch
        ([*range(7), "abc", *range(8, 12)], 5),
        # a 0/1 (boolean) column gets a string
        ([True, False, True, False, True, "yes"], 2),
    ],
)
def test_type_change_mid_result_raises(tmp_path, values, batch_rows):
    rows = [(i, v) for i, v in enumerate(values)]
    hook = _sqlite_db(tmp_path / "mixed.sqlite", "CREATE TABLE t (id INTEGER, amount)", rows)
    with pytest.raises(SourceError) as info:
        stream_to_parquet(
            hook, "SELECT id, amount FROM t ORDER BY id", tmp_path / "o.pq", batch_rows
        )
    assert "'amount'" in str(info.value)


def test_type_change_inside_first_batch_raises_source_error(tmp_path):
    rows = [(0, 1), (1, 2), (2, "abc"), (3, 4)]
    hook = _sqlite_db(tmp_path / "mixed.sqlite", "CREATE TABLE t (id INTEGER, amount)", rows)
    with pytest.raises(SourceError) as info:
        stream_to_parquet(hook, "SELECT id, amount FROM t ORDER BY id", tmp_path / "o.pq", 100)
    assert "'amount'" in str(info.value)


def test_int_then_float_is_never_truncated(tmp_path):
    # A NUMERIC column stores 120.0 as an integer and 120.5 as a real: a float arriving after
    # a first batch of integers must raise SourceError or be staged exactly, never rounded.
    rows = [(i, 100 + i) for i in range(4)] + [(4, 120.5), (5, 7.25)]
    hook = _sqlite_db(tmp_path / "num.sqlite", "CREATE TABLE t (id INTEGER, clv NUMERIC)", rows)
    out = tmp_path / "o.parquet"
    try:
        stream_to_parquet(hook, "SELECT id, clv FROM t ORDER BY id", out, 4)
    except SourceError as exc:
        assert "'clv'" in str(exc)
        return
    assert pq.read_table(out).column("clv").to_pylist() == [100, 101, 102, 103, 120.5, 7.25]


def test_duckdb_path_keeps_types(tmp_path, monkeypatch):
    hook = _duck_db(
        tmp_path / "types.duckdb",
        "CREATE TABLE t (id BIGINT, d DATE, clv DOUBLE, ok BOOLEAN, s VARCHAR)",
        [(1, "2020-01-02", 1.5, True, "x"), (2, None, None, None, None)],
        monkeypatch,
    )
    out = tmp_path / "o.parquet"
    assert stream_to_parquet(hook, "SELECT * FROM t ORDER BY id", out, 1) == 2
    schema = pq.read_schema(out)
    assert [f.type for f in schema] == [
        pa.int64(),
        pa.date32(),
        pa.float64(),
        pa.bool_(),
        pa.string(),
    ]


_MEMORY_SCRIPT = textwrap.dedent(
    """
    import json, os, sys, tempfile
    from contextlib import contextmanager
    from pathlib import Path
    import pyarrow as pa
    from campaign_sync.audience.source import stream_to_parquet
    from campaign_sync.hooks.duckdb import DuckDBHook

    tmp = Path(tempfile.mkdtemp())
    os.environ["AIRFLOW_CONN_MEM_SRC"] = json.dumps(
        {"conn_type": "duckdb", "host": str(tmp / "m.duckdb"), "extra": {"read_only": False}}
    )
    out = tmp / "out.parquet"
    samples = []

    class Probe(DuckDBHook):
        @contextmanager
        def arrow_reader(self, sql, batch_rows):
            with super().arrow_reader(sql, batch_rows) as reader:
                def batches():
                    for b in reader:
                        size = out.stat().st_size if out.exists() else 0
                        samples.append([b.num_rows, b.nbytes, pa.total_allocated_bytes(), size])
                        yield b
                yield pa.RecordBatchReader.from_batches(reader.schema, batches())

    rows = stream_to_parquet(
        Probe(duckdb_conn_id="mem_src"),
        "SELECT range AS id, 'x' || range || repeat('y', 40) AS s FROM range(2000000)",
        out,
        50000,
    )
    print(json.dumps({
        "rows": rows,
        "samples": samples,
        "max_memory": pa.default_memory_pool().max_memory(),
        "final_size": out.stat().st_size,
    }))
    """
)


def test_memory_stays_bounded_streaming_2m_rows(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", _MEMORY_SCRIPT],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        cwd=str(tmp_path),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    data = json.loads(result.stdout.strip().splitlines()[-1])
    samples = data["samples"]
    assert data["rows"] == 2_000_000
    assert sum(s[0] for s in samples) == 2_000_000
    assert max(s[0] for s in samples) <= 50_000
    whole = sum(s[1] for s in samples)  # what the whole result needs in Arrow
    assert whole > 100_000_000
    # Arrow memory in flight (allocated by pyarrow's pool while batches are pulled) and the
    # pool's high-water mark stay a small fraction of the whole result.
    assert max(s[2] for s in samples) < whole / 8
    assert data["max_memory"] < whole / 8
    # Batches are written as they arrive: by the time the last batch is pulled, most of the
    # file is already on disk (a read-everything-then-write would leave it empty).
    assert samples[-1][3] > data["final_size"] / 2
