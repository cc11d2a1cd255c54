"""Sync planning (mirror diffs) and the delivery log that gives mirror its baseline."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
from campaign_sync.layout import RunLayout
from campaign_sync.platforms.sync import DeliveryLog, plan_sync
from campaign_sync.staging import Staging


def _file(path, rows):
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def _rows(path):
    return pq.read_table(path).to_pylist() if path else []


def test_mirror_adds_changes_and_removes_only_vanished_identifiers(tmp_path):
    prev = _file(tmp_path / "prev.parquet", [
        {"__customer_id": "a", "email": "a@x", "first_name": "Ann"},
        {"__customer_id": "b", "email": "b@x", "first_name": "Bob"},
        {"__customer_id": "c", "email": "old-c@x", "first_name": "Cy"},
        {"__customer_id": "d", "email": "shared@x", "first_name": "Di"},
    ])  # fmt: skip
    cur = _file(tmp_path / "cur.parquet", [
        {"__customer_id": "a", "email": "a@x", "first_name": "Ann"},  # unchanged
        {"__customer_id": "b", "email": "b@x", "first_name": "Robert"},  # attribute changed
        {"__customer_id": "c", "email": "new-c@x", "first_name": "Cy"},  # identifier changed
        {"__customer_id": "e", "email": "shared@x", "first_name": "Eve"},  # d left, e joined
    ])  # fmt: skip
    work = tmp_path / "work"
    work.mkdir()
    plan = plan_sync("mirror", cur, prev, work, "256MB", ["email"])
    assert {r["__customer_id"] for r in _rows(plan.adds)} == {"b", "c", "e"}
    # Only c's old address is gone from the group; b's and the shared address still belong to
    # current members, so removing them could drop those members.
    assert [r["email"] for r in _rows(plan.removes)] == ["old-c@x"]
    assert (plan.added, plan.removed) == (3, 1)


def test_mirror_removal_with_null_identifiers(tmp_path):
    prev = _file(tmp_path / "prev.parquet", [
        {"__customer_id": "a", "EMAIL": "ea", "PHONE": None},
        {"__customer_id": "b", "EMAIL": "eb", "PHONE": "pb"},
    ])  # fmt: skip
    cur = _file(tmp_path / "cur.parquet", [{"__customer_id": "c", "EMAIL": "ec", "PHONE": None}])
    work = tmp_path / "work"
    work.mkdir()
    plan = plan_sync("mirror", cur, prev, work, "256MB", ["EMAIL", "PHONE"])
    assert sorted(r["__customer_id"] for r in _rows(plan.removes)) == ["a", "b"]


def test_add_and_replace_send_everything(tmp_path):
    cur = _file(tmp_path / "cur.parquet", [{"__customer_id": "a", "email": "a@x"}])
    for mode in ("add", "replace"):
        plan = plan_sync(mode, cur, cur, tmp_path, "256MB", ["email"])
        assert (plan.adds, plan.removes, plan.added, plan.removed) == (cur, None, 1, 0)


def test_mirror_without_baseline_adds_all(tmp_path):
    cur = _file(tmp_path / "cur.parquet", [{"__customer_id": "a", "email": "a@x"}])
    plan = plan_sync("mirror", cur, None, tmp_path, "256MB", ["email"])
    assert (plan.added, plan.removed, plan.removes) == (1, 0, None)


def test_mirror_after_attribute_change_of_the_destination_replaces_all(tmp_path):
    prev = _file(tmp_path / "prev.parquet", [{"__customer_id": "a", "email": "a@x"}])
    cur = _file(tmp_path / "cur.parquet", [{"__customer_id": "a", "email": "a@x", "fn": "A"}])
    work = tmp_path / "w"
    work.mkdir()
    plan = plan_sync("mirror", cur, prev, work, "256MB", ["email"])
    assert (plan.added, plan.removed) == (1, 1)


def test_delivery_log_baseline_skips_the_run_itself(tmp_path):
    log = DeliveryLog(Staging(str(tmp_path)), RunLayout("dag", "r").delivery_log("g", "dest"))
    assert log.baseline_for("r1") is None
    log.record("r1")
    assert log.baseline_for("r1") is None  # a retry of r1 has no earlier baseline
    assert log.baseline_for("r2") == "r1"
    log.record("r2")
    log.record("r2")  # a retry of r2 keeps r1 as its baseline
    assert log.baseline_for("r2") == "r1"
    assert log.baseline_for("r3") == "r2"
