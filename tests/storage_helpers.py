"""Helpers for the storage destination tests: projected files, export operators, read-back."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import math
import os
import random
import socket
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from campaign_sync.destinations.templating import unique_segment
from campaign_sync.layout import RunLayout
from helpers import sample_doc, write_campaign

GROUP = "active__treatment"
RUN_DATE = datetime(2026, 11, 2, 11, 0, tzinfo=UTC)
TEXTS = ["plain", "with,comma", 'with "quotes"', "new\nline", "ünïcödé ✓", "", " padded "]


def make_projected(path: Path, rows: int, *, seed: int = 7, text_bytes: int = 0) -> Path:
    """A staged projection file like the project task writes: ``__customer_id`` plus columns.

    Values exercise CSV quoting, unicode, nulls, NaN, dates and decimals; ``text_bytes`` adds a
    random text column of that width (to make large files).
    """
    rnd = random.Random(seed)
    columns: dict[str, Any] = {
        "__customer_id": pa.array([f"c{i:08d}" for i in range(rows)]),
        "customer_id": pa.array([f"c{i:08d}" for i in range(rows)]),
        "email": pa.array(
            [None if i % 11 == 0 else f"user{i}@example.com" for i in range(rows)], pa.string()
        ),
        "note": pa.array([TEXTS[i % len(TEXTS)] for i in range(rows)], pa.string()),
        "score": pa.array(
            [math.nan if i % 13 == 0 else None if i % 17 == 0 else i / 8 for i in range(rows)],
            pa.float64(),
        ),
        "visits": pa.array([None if i % 19 == 0 else i for i in range(rows)], pa.int64()),
        "signup": pa.array(
            [None if i % 23 == 0 else date(2020, 1, 1 + i % 28) for i in range(rows)],
            pa.date32(),
        ),
        "clv": pa.array([Decimal(i % 1000) / 100 for i in range(rows)], pa.decimal128(9, 2)),
    }
    if text_bytes:
        alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
        columns["payload"] = pa.array(
            ["".join(rnd.choices(alphabet, k=text_bytes)) for _ in range(rows)], pa.string()
        )
    pq.write_table(pa.table(columns), path)
    return path


def delivered(source: Path) -> pa.Table:
    """The rows a destination should receive: the staged file without internal columns."""
    table = pq.read_table(source)
    return table.select([n for n in table.column_names if not n.startswith("__")])


def decode(
    data: bytes,
    *,
    fmt: str,
    schema: pa.Schema,
    header: bool = True,
    delimiter: str = ",",
    compression: str = "none",
) -> pa.Table:
    """Parse one delivered file back into a table of ``schema``."""
    if compression == "gzip":
        assert data[:2] == b"\x1f\x8b", "not gzip"
        data = gzip.decompress(data)
    if fmt == "parquet":
        return pq.read_table(io.BytesIO(data))
    if fmt == "csv":
        read = pacsv.ReadOptions(
            column_names=None if header else schema.names, autogenerate_column_names=False
        )
        convert = pacsv.ConvertOptions(
            column_types=schema,
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
        )
        parse = pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True)
        table = pacsv.read_csv(
            io.BytesIO(data), read_options=read, convert_options=convert, parse_options=parse
        )
        if header:
            assert table.column_names == schema.names
        return table.cast(schema)
    assert fmt == "jsonl"
    rows = [json.loads(line) for line in data.decode("utf-8").splitlines()]
    return json_rows_table(rows, schema)


def json_rows_table(rows: list[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    """JSON Lines rows back to typed columns (dates and decimals travel as strings)."""
    out: dict[str, list[Any]] = {name: [] for name in schema.names}
    for row in rows:
        assert list(row) == schema.names
        for name, value in row.items():
            kind = schema.field(name).type
            if value is not None and pa.types.is_date(kind):
                value = date.fromisoformat(value)
            elif value is not None and pa.types.is_decimal(kind):
                value = Decimal(value)
            out[name].append(value)
    return pa.table({n: pa.array(v, schema.field(n).type) for n, v in out.items()})


def same_rows(got: pa.Table, expected: pa.Table) -> None:
    """Assert equal tables; NaN (which JSON and some readers turn into null) counts as null."""
    assert got.num_rows == expected.num_rows
    assert got.column_names == expected.column_names

    def canon(table: pa.Table) -> list[tuple[Any, ...]]:
        return [
            tuple(None if isinstance(v, float) and math.isnan(v) else v for v in row.values())
            for row in table.to_pylist()
        ]

    assert canon(got) == canon(expected)


def set_connection(conn_id: str, conn: dict[str, Any]) -> None:
    """Define an Airflow connection (an environment variable) for this process and children."""
    os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(conn)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sha256(data: bytes) -> str:
    """Hex SHA-256 of bytes."""
    return hashlib.sha256(data).hexdigest()


def campaign_for(
    folder: Path,
    dtype: str,
    options: dict[str, Any],
    *,
    conn_id: str,
    name: str = "storage_test",
    destination: str = "drop",
    groups: tuple[str, ...] = ("active", "cooling down"),
) -> Any:
    """Load a campaign whose treatment groups of ``groups`` send to one storage destination."""
    from campaign_sync.plan import build_plan
    from campaign_sync.spec.loader import load_file

    doc = sample_doc()
    doc["name"] = name
    doc.pop("schedule", None)
    doc.pop("remaining", None)
    doc["destinations"] = {
        destination: {
            "type": dtype,
            "conn_id": conn_id,
            "attributes": {"customer_id": "customer_id", "email": "email"},
            "options": options,
        }
    }
    subs = []
    for sub in doc["sub_audiences"]:
        if sub["name"] not in groups:
            continue
        for group in sub["treatment_groups"]:
            group["destinations"] = [] if group.get("control") else [destination]
        subs.append(sub)
    doc["sub_audiences"] = subs
    return build_plan(load_file(write_campaign(folder, name, doc)))


def exporter(
    plan: Any,
    cls: type,
    options: dict[str, Any],
    *,
    conn_id: str,
    group_id: str = GROUP,
    destination: str = "drop",
) -> Any:
    """An export operator for one group, outside any DAG (``deliver`` is called directly)."""
    return cls(
        task_id=RunLayout.export_task(destination),
        plan=plan,
        group_id=group_id,
        destination=destination,
        conn_id=conn_id,
        options=options,
        dry_run=False,
    )


def context(run_id: str = "manual__2026-11-02T11:00:00+00:00") -> dict[str, Any]:
    """The parts of an Airflow task context the exporters read."""
    return {"run_id": run_id, "logical_date": RUN_DATE, "dag_run": None}


def marker_of(data: bytes) -> dict[str, Any]:
    """A success marker's JSON."""
    return json.loads(data.decode("utf-8"))


def check_marker(marker: dict[str, Any], result: dict[str, Any], expected_rows: int) -> None:
    """The marker lists exactly the files delivered, with their rows, sizes and hashes."""
    assert marker["rows"] == expected_rows == result["rows_sent"]
    assert [f["rows"] for f in marker["files"]] and sum(f["rows"] for f in marker["files"]) == (
        expected_rows
    )
    assert len(marker["files"]) == len(result["files"])
    for entry, uri in zip(marker["files"], result["files"], strict=True):
        assert uri.endswith("/" + entry["name"])
        assert set(entry) == {"name", "rows", "bytes", "sha256"}


def write_doc(folder: Path, name: str, doc: dict[str, Any]) -> Path:
    """Write a campaign document (re-exported for test modules)."""
    return write_campaign(folder, name, doc)


# --- shared scenarios (each server's test module runs them against its store) ------------------


class Store:
    """What a test needs from a store: read, list and write objects by name (not via the code
    under test)."""

    def read(self, name: str) -> bytes:
        """The bytes of one object."""
        raise NotImplementedError

    def names(self, prefix: str) -> list[str]:
        """Every object name under ``prefix``, sorted."""
        raise NotImplementedError

    def put(self, name: str, data: bytes) -> None:
        """Write an object the delivery does not own."""
        raise NotImplementedError


FORMAT_CASES = {
    "csv-gzip-split-marker": {
        "format": "csv",
        "compression": "gzip",
        "max_rows_per_file": 400,
        "success_marker": "_SUCCESS",
    },
    "csv-no-header-semicolon": {"format": "csv", "header": False, "delimiter": ";"},
    "parquet-split": {"format": "parquet", "max_rows_per_file": 600, "success_marker": ".DONE"},
    "jsonl-gzip": {"format": "jsonl", "compression": "gzip", "success_marker": "_SUCCESS"},
}


def read_back(
    store: Store,
    result: dict[str, Any],
    options: dict[str, Any],
    schema: pa.Schema,
    uri_prefix: str,
) -> tuple[pa.Table, list[bytes]]:
    """Every delivered file, read back from the store and parsed, concatenated in order."""
    blobs = [store.read(uri.removeprefix(uri_prefix)) for uri in result["files"]]
    tables = [
        decode(
            blob,
            fmt=options.get("format", "csv"),
            schema=schema,
            header=options.get("header", True),
            delimiter=options.get("delimiter", ","),
            compression=options.get("compression", "none"),
        )
        for blob in blobs
    ]
    return pa.concat_tables(tables), blobs


def round_trip(
    tmp_path: Path,
    store: Store,
    cls: type,
    target: dict[str, Any],
    conn_id: str,
    case: str,
    uri_prefix: str,
) -> None:
    """Deliver 1,000 rows with one option set; every file read back equals the projected rows,
    the marker lists them, and nothing else (no temporary file) is left under the run."""
    options = {**target, "prefix": f"rt-{case}", **FORMAT_CASES[case]}
    source = make_projected(tmp_path / "projected.parquet", 1000)
    plan = campaign_for(tmp_path, cls_type(cls), options, conn_id=conn_id)
    result = exporter(plan, cls, options, conn_id=conn_id).deliver(source, context())
    expected = delivered(source)
    got, blobs = read_back(store, result, options, expected.schema, uri_prefix)
    same_rows(got, expected)
    assert result["rows_sent"] == 1000
    per_file = options.get("max_rows_per_file") or 1000
    assert len(result["files"]) == math.ceil(1000 / per_file)
    names = [uri.removeprefix(uri_prefix) for uri in result["files"]]
    ext = options["format"] + (".gz" if options.get("compression") == "gzip" else "")
    run = unique_segment(context()["run_id"])
    assert names == [
        f"rt-{case}/storage_test/{run}/active/treatment/drop_{n:05d}.{ext}"
        for n in range(1, len(names) + 1)
    ]
    listed = store.names(f"rt-{case}/")
    marker_name = options.get("success_marker")
    if marker_name:
        marker_path = f"{names[0].rsplit('/', 1)[0]}/{marker_name}"
        assert result["marker"].endswith(marker_path)
        marker = marker_of(store.read(marker_path))
        check_marker(marker, result, 1000)
        assert [f["sha256"] for f in marker["files"]] == [sha256(b) for b in blobs]
        assert [f["bytes"] for f in marker["files"]] == [len(b) for b in blobs]
        assert marker["columns"] == expected.column_names
        assert (marker["sub_audience"], marker["treatment_group"]) == ("active", "treatment")
        assert marker["format"] == options["format"]
        assert sorted(listed) == sorted([*names, marker_path])
    else:
        assert result["marker"] is None
        assert sorted(listed) == sorted(names)


def cls_type(cls: type) -> str:
    """The destination type name an export operator class serves."""
    from campaign_sync.destinations import REGISTRY

    for name, dtype in REGISTRY.items():
        if dtype.exporter and dtype.exporter.endswith("." + cls.__name__):
            return name
    raise KeyError(cls.__name__)


def rerun_replaces_own_only(
    tmp_path: Path, store: Store, cls: type, target: dict[str, Any], conn_id: str, uri_prefix: str
) -> None:
    """A second attempt of the same run that writes fewer files replaces its own files and marker,
    deletes its leftover split files, and touches nothing else: not another run's files, not a
    foreign file in the same folder."""
    options = {**target, "prefix": "rerun", "max_rows_per_file": 250, "success_marker": "_SUCCESS"}
    plan = campaign_for(tmp_path, cls_type(cls), options, conn_id=conn_id)
    first_source = make_projected(tmp_path / "first.parquet", 1000, seed=1)
    other_run = exporter(plan, cls, options, conn_id=conn_id).deliver(
        first_source, context("manual__2026-11-01T00:00:00+00:00")
    )
    first = exporter(plan, cls, options, conn_id=conn_id).deliver(first_source, context())
    assert len(first["files"]) == 4
    folder = first["files"][0].removeprefix(uri_prefix).rsplit("/", 1)[0]
    store.put(f"{folder}/readme.txt", b"not ours")
    other_folder = other_run["files"][0].removeprefix(uri_prefix).rsplit("/", 1)[0]
    other_before = {n: store.read(n) for n in store.names(other_folder + "/")}
    assert len(other_before) == 5  # 4 files and a marker

    options2 = {**options, "max_rows_per_file": 500}
    second_source = make_projected(tmp_path / "second.parquet", 900, seed=2)
    second = exporter(plan, cls, options2, conn_id=conn_id).deliver(second_source, context())

    assert [u.removeprefix(uri_prefix) for u in second["files"]] == [
        u.removeprefix(uri_prefix) for u in first["files"][:2]
    ]
    got, _ = read_back(store, second, options2, delivered(second_source).schema, uri_prefix)
    same_rows(got, delivered(second_source))
    in_folder = [n for n in store.names("rerun/") if n.startswith(folder + "/")]
    assert sorted(in_folder) == sorted(
        [
            *(u.removeprefix(uri_prefix) for u in second["files"]),
            f"{folder}/_SUCCESS",
            f"{folder}/readme.txt",
        ]
    )
    assert store.read(f"{folder}/readme.txt") == b"not ours"
    marker = marker_of(store.read(f"{folder}/_SUCCESS"))
    check_marker(marker, second, 900)
    assert [f["rows"] for f in marker["files"]] == [500, 400]
    assert {n: store.read(n) for n in other_before} == other_before


class _TaskInstance:
    """The one thing an export reads from its task instance: the project task's XCom."""

    def __init__(self, xcoms: dict[str, Any]) -> None:
        self.xcoms = xcoms

    def xcom_pull(self, task_ids: str) -> Any:
        return self.xcoms.get(task_ids)


def execute(op: Any, source: Path, ctx: dict[str, Any]) -> dict[str, Any]:
    """Run an export task as Airflow runs it: ``source`` staged where the run layout puts the
    group's projected rows, the project task's XCom pointing at it, then ``execute``."""
    import shutil

    from campaign_sync import config

    rel = RunLayout(op.plan.dag_id, ctx["run_id"]).projected(op.group_id, op.destination)
    staged = Path(config.staging_root()) / rel
    staged.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, staged)
    rows = pq.ParquetFile(source).metadata.num_rows
    projection = {"destinations": {op.destination: {"path": rel, "rows": rows}}}
    ti = _TaskInstance({RunLayout.project_task_id(op.group_id): projection})
    return op.execute({**ctx, "ti": ti})
