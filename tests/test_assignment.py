"""Treatment-group assignment (audience.assignment) and audience building (audience.build)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import pytest
from campaign_sync import duck
from campaign_sync.audience.assignment import bucket, bucket_sql, group_index_sql
from campaign_sync.audience.build import AudienceError, build_audience
from campaign_sync.hooks.duckdb import DuckDBHook
from campaign_sync.layout import RunLayout
from campaign_sync.plan import CampaignPlan, build_plan
from campaign_sync.spec.checks import check_campaign
from campaign_sync.spec.ids import group_id_for
from campaign_sync.spec.loader import load_file
from campaign_sync.spec.model import Campaign
from campaign_sync.staging import Staging
from helpers import SAMPLE_CAMPAIGN

MEMORY = "256MB"


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def _plan(doc: dict[str, Any]) -> CampaignPlan:
    campaign = Campaign.model_validate(doc)
    assert check_campaign(campaign) == []
    return build_plan(campaign)


def _group(name: str, pct: float, control: bool = False) -> dict[str, Any]:
    if control:
        return {"name": name, "percentage": pct, "control": True}
    return {"name": name, "percentage": pct, "destinations": ["files"]}


def _doc(
    subs: list[tuple[str, str, list[dict[str, Any]]]],
    *,
    name: str = "assign test",
    conn_id: str = "assign_db",
    remaining: list[dict[str, Any]] | None = None,
    first_match_only: bool = True,
    salt: str | None = None,
    include: list[str] | None = None,
    exclude: list[str] | None = None,
    customer_id: str = "customer_id",
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "name": name,
        "source": {
            "conn_id": conn_id,
            "table": "customers",
            "customer_id": customer_id,
            "include": include or [],
            "exclude": exclude or [],
        },
        "assignment": {"first_match_only": first_match_only},
        "sub_audiences": [
            {"name": n, "condition": cond, "treatment_groups": groups} for n, cond, groups in subs
        ],
        "destinations": {
            "files": {"type": "local", "attributes": {customer_id: "customer_id", "email": "email"}}
        },
    }
    if salt is not None:
        doc["assignment"]["salt"] = salt
    if remaining is not None:
        doc["remaining"] = {"name": "rest", "treatment_groups": remaining}
    return doc


def _make_db(path: Path, columns: str, rows: list[tuple[Any, ...]]) -> Path:
    con = duckdb.connect(str(path))
    con.execute(f"CREATE TABLE customers ({columns})")
    if rows:
        marks = ", ".join("?" for _ in rows[0])
        con.executemany(f"INSERT INTO customers VALUES ({marks})", rows)
    con.close()
    return path


def _hook(monkeypatch: pytest.MonkeyPatch, conn_id: str, db: Path) -> DuckDBHook:
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": "duckdb", "host": str(db)})
    )
    return DuckDBHook(duckdb_conn_id=conn_id)


def _members(root: Path, run_rel: str, plan: CampaignPlan) -> dict[str, set[str]]:
    """Staged customer ids per group id."""
    out = {}
    for index, group in enumerate(plan.groups):
        folder = root / run_rel / "audience" / f"__g={index}"
        ids: set[str] = set()
        for f in sorted(folder.rglob("*.parquet")):
            ids |= {str(v) for v in pq.read_table(f).column("__customer_id").to_pylist()}
        out[group.group_id] = ids
    return out


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def _ids_groups(plan: CampaignPlan, salt: str, n: int, start: int = 0) -> dict[str, int]:
    """Group index of n synthetic ids in sub-audience 0, computed in DuckDB."""
    con = duckdb.connect()
    b = bucket_sql(duck.literal(salt), "id")
    rows = con.execute(
        f"SELECT id, {group_index_sql(plan, '0', b)} FROM "
        f"(SELECT 'C' || lpad(range::VARCHAR, 7, '0') AS id FROM range({start}, {n}))"
    ).fetchall()
    con.close()
    return dict(rows)


SPLIT_DOC = _doc(
    [("everyone", "TRUE", [_group("a", 10), _group("b", 25), _group("c", 65)])],
    name="split campaign",
)


# --------------------------------------------------------------------------------------------
# bucket and plan
# --------------------------------------------------------------------------------------------


def test_bucket_reference_value():
    digest = hashlib.sha256(b"my salt:MC000000042").hexdigest()
    assert bucket("my salt", "MC000000042") == int(digest[:15], 16) % 10_000
    assert 0 <= bucket("x", "y") < 10_000


def test_bucket_python_equals_sql_for_10k_ids():
    ids = [f"MC{i:09d}" for i in range(9_990)]
    ids += ["", "ümlaut", "o'brien", "with space", "12345", "ß", "😀", "a:b", "NULL", "x" * 300]
    assert len(ids) == 10_000
    con = duckdb.connect()
    for salt in ("lifecycle_winback", "salt with 'quote'"):
        rows = con.execute(
            f"SELECT id, {bucket_sql(duck.literal(salt), 'id')} FROM (SELECT unnest(?) AS id)",
            [ids],
        ).fetchall()
        assert len(rows) == len(ids)
        sql_buckets = dict(rows)
        mismatches = [i for i in ids if sql_buckets[i] != bucket(salt, i)]
        assert mismatches == []
    con.close()


def test_bucket_sql_with_a_parameter_salt():
    con = duckdb.connect()
    got = con.execute(f"SELECT {bucket_sql('?', '?')}", ["s1", "cust-9"]).fetchone()[0]
    assert got == bucket("s1", "cust-9")
    con.close()


def test_plan_bucket_ranges():
    plan = _plan(SPLIT_DOC)
    assert [(g.group_id, g.bucket_start, g.bucket_end) for g in plan.groups] == [
        ("everyone__a", 0, 1000),
        ("everyone__b", 1000, 3500),
        ("everyone__c", 3500, 10_000),
    ]
    thirds = _plan(
        _doc([("s", "TRUE", [_group("x", 33.33), _group("y", 33.33), _group("z", 33.34)])])
    )
    assert [(g.bucket_start, g.bucket_end) for g in thirds.groups] == [
        (0, 3333),
        (3333, 6666),
        (6666, 10_000),
    ]


def test_sample_campaign_plan_ranges():
    plan = build_plan(load_file(SAMPLE_CAMPAIGN))
    assert plan.campaign.hash_salt == "lifecycle_winback"
    assert [(g.group_id, g.is_control, g.bucket_start, g.bucket_end) for g in plan.groups] == [
        ("active__control", True, 0, 1000),
        ("active__treatment", False, 1000, 10_000),
        ("cooling_down__control", True, 0, 1000),
        ("cooling_down__treatment", False, 1000, 10_000),
        ("at_risk__control", True, 0, 1000),
        ("at_risk__treatment", False, 1000, 10_000),
        ("other_at_risk__email_only", False, 0, 10_000),
    ]


def test_proportions_on_100k_ids():
    plan = _plan(SPLIT_DOC)
    groups = _ids_groups(plan, plan.campaign.hash_salt, 100_000)
    assert len(groups) == 100_000
    assert None not in set(groups.values())
    for index, pct in enumerate((10, 25, 65)):
        share = sum(1 for g in groups.values() if g == index) / 100_000 * 100
        assert abs(share - pct) < 0.5, (index, share)


def test_proportions_of_sample_campaign_on_100k_ids():
    plan = build_plan(load_file(SAMPLE_CAMPAIGN))
    con = duckdb.connect()
    b = bucket_sql(duck.literal(plan.campaign.hash_salt), "id")
    rows = con.execute(
        f"SELECT {group_index_sql(plan, '1', b)} AS g, count(*) FROM "
        "(SELECT 'MC' || range AS id FROM range(100000)) GROUP BY g"
    ).fetchall()
    con.close()
    counts = dict(rows)
    # sub-audience 1 ("cooling down") has groups 2 (control, 10%) and 3 (treatment, 90%)
    assert set(counts) == {2, 3}
    assert abs(counts[2] / 1000 - 10) < 0.5
    assert abs(counts[3] / 1000 - 90) < 0.5


def test_assignment_is_identical_across_runs():
    plan = _plan(SPLIT_DOC)
    first = _ids_groups(plan, plan.campaign.hash_salt, 100_000)
    second = _ids_groups(_plan(SPLIT_DOC), plan.campaign.hash_salt, 100_000)
    assert first == second


def test_growing_audience_moves_nobody():
    plan = _plan(SPLIT_DOC)
    before = _ids_groups(plan, plan.campaign.hash_salt, 100_000)
    after = _ids_groups(plan, plan.campaign.hash_salt, 110_000)
    assert len(after) == 110_000
    moved = [i for i, g in before.items() if after[i] != g]
    assert moved == []
    # the newcomers are spread over the groups like everybody else
    newcomers = [after[i] for i in after if i not in before]
    assert len(newcomers) == 10_000
    for index, pct in enumerate((10, 25, 65)):
        assert abs(newcomers.count(index) / 100 - pct) < 1.5


def test_changing_the_salt_reshuffles():
    plan = _plan(SPLIT_DOC)
    assert plan.campaign.hash_salt == "split campaign"  # default: the campaign name
    salted = _plan({**SPLIT_DOC, "assignment": {"salt": "2027 refresh"}})
    assert salted.campaign.hash_salt == "2027 refresh"
    a = _ids_groups(plan, plan.campaign.hash_salt, 100_000)
    b = _ids_groups(salted, salted.campaign.hash_salt, 100_000)
    changed = sum(1 for i in a if a[i] != b[i]) / len(a)
    # independent draws keep a customer's group with p = .1² + .25² + .65² = .495
    assert 0.47 < changed < 0.54
    for index, pct in enumerate((10, 25, 65)):
        assert abs(sum(1 for g in b.values() if g == index) / 1000 - pct) < 0.5


# --------------------------------------------------------------------------------------------
# build_audience end to end
# --------------------------------------------------------------------------------------------

COLUMNS = "customer_id VARCHAR, email VARCHAR, seg_a BOOLEAN, seg_b BOOLEAN"
OVERLAP_ROWS = [
    ("c1", "c1@example.com", True, True),  # matches A and B
    ("c2", "c2@example.com", False, True),  # B only
    ("c3", "c3@example.com", False, False),  # none
    ("c4", "c4@example.com", True, False),  # A only
    ("c5", "c5@example.com", None, True),  # NULL condition on A: B only
    ("c6", None, None, None),  # none
]


def _overlap_doc(first_match_only: bool, remaining: bool) -> dict[str, Any]:
    return _doc(
        [
            ("A", "seg_a", [_group("all", 100)]),
            ("B", "seg_b", [_group("all", 100)]),
        ],
        first_match_only=first_match_only,
        remaining=[_group("all", 100)] if remaining else None,
    )


def _build(plan, hook, root: Path, run_rel: str = "dag/run1", batch_rows: int = 1000):
    layout = RunLayout(*run_rel.split("/"))
    assert layout.folder == run_rel
    return build_audience(
        plan, hook, Staging(str(root)), layout, batch_rows=batch_rows, memory_limit=MEMORY
    )


@pytest.mark.parametrize(
    ("first_match_only", "remaining", "expected", "unassigned"),
    [
        (
            True,
            True,
            {"a__all": {"c1", "c4"}, "b__all": {"c2", "c5"}, "rest__all": {"c3", "c6"}},
            0,
        ),
        (
            False,
            True,
            {"a__all": {"c1", "c4"}, "b__all": {"c1", "c2", "c5"}, "rest__all": {"c3", "c6"}},
            0,
        ),
        (True, False, {"a__all": {"c1", "c4"}, "b__all": {"c2", "c5"}}, 2),
        (False, False, {"a__all": {"c1", "c4"}, "b__all": {"c1", "c2", "c5"}}, 2),
    ],
)
def test_membership(
    tmp_path, monkeypatch, staging_root, first_match_only, remaining, expected, unassigned
):
    db = _make_db(tmp_path / "overlap.duckdb", COLUMNS, OVERLAP_ROWS)
    plan = _plan(_overlap_doc(first_match_only, remaining))
    summary = _build(plan, _hook(monkeypatch, "assign_db", db), staging_root)
    assert _members(staging_root, "dag/run1", plan) == expected
    assert summary.group_members == {g: len(ids) for g, ids in expected.items()}
    assert summary.source_rows == 6
    assert summary.audience_size == 6
    assert summary.rows_without_customer_id == 0
    assert summary.unassigned == unassigned
    assert summary.audience_path == "dag/run1/audience"


def test_staged_columns_are_the_id_and_used_columns_only(tmp_path, monkeypatch, staging_root):
    db = _make_db(tmp_path / "overlap.duckdb", COLUMNS, OVERLAP_ROWS)
    plan = _plan(_overlap_doc(True, True))
    _build(plan, _hook(monkeypatch, "assign_db", db), staging_root)
    files = sorted((staging_root / "dag/run1/audience").rglob("*.parquet"))
    assert files
    for f in files:
        assert sorted(pq.read_schema(f).names) == ["__customer_id", "email"]


def test_empty_group_gets_a_readable_folder(tmp_path, monkeypatch, staging_root):
    db = _make_db(tmp_path / "overlap.duckdb", COLUMNS, OVERLAP_ROWS)
    doc = _doc(
        [
            ("A", "seg_a", [_group("all", 100)]),
            ("nobody", "customer_id = 'zzz'", [_group("all", 100)]),
        ]
    )
    plan = _plan(doc)
    summary = _build(plan, _hook(monkeypatch, "assign_db", db), staging_root)
    assert summary.group_members == {"a__all": 2, "nobody__all": 0}
    folder = staging_root / "dag/run1/audience/__g=1"
    files = list(folder.rglob("*.parquet"))
    assert files
    table = pq.read_table(files[0])
    assert table.num_rows == 0
    assert sorted(table.column_names) == ["__customer_id", "email"]


def test_null_customer_ids_are_counted_and_never_staged(tmp_path, monkeypatch, staging_root):
    rows = [
        *OVERLAP_ROWS[:4],
        (None, "nullid1@example.com", True, False),
        (None, "nullid2@example.com", False, False),
    ]
    db = _make_db(tmp_path / "nulls.duckdb", COLUMNS, rows)
    plan = _plan(_overlap_doc(True, True))
    summary = _build(plan, _hook(monkeypatch, "assign_db", db), staging_root)
    assert summary.source_rows == 6
    assert summary.audience_size == 4
    assert summary.rows_without_customer_id == 2
    assert summary.unassigned == 0
    members = _members(staging_root, "dag/run1", plan)
    assert members == {"a__all": {"c1", "c4"}, "b__all": {"c2"}, "rest__all": {"c3"}}
    con = duckdb.connect()
    staged = con.execute(
        "SELECT count(*), count(__customer_id), count_if(email LIKE 'nullid%') FROM "
        f"read_parquet({duck.parquet_glob(staging_root / 'dag/run1/audience')})"
    ).fetchone()
    con.close()
    assert staged == (4, 4, 0)


def test_duplicate_customer_ids_are_refused(tmp_path, monkeypatch, staging_root):
    db = _make_db(
        tmp_path / "dupes.duckdb",
        "cust_key VARCHAR, email VARCHAR, seg_a BOOLEAN, seg_b BOOLEAN",
        [
            ("k1", "a@example.com", True, False),
            ("k2", "b@example.com", True, False),
            ("k1", "c@example.com", False, True),
            (None, "d@example.com", True, False),
            (None, "e@example.com", True, False),
        ],
    )
    doc = _doc(
        [("A", "seg_a", [_group("all", 100)])],
        name="dupe campaign",
        customer_id="cust_key",
    )
    plan = _plan(doc)
    with pytest.raises(AudienceError) as info:
        _build(plan, _hook(monkeypatch, "assign_db", db), staging_root)
    message = str(info.value)
    assert "'dupe campaign'" in message
    assert "'cust_key'" in message
    assert "1 duplicate" in message
    # nothing staged for the run
    assert not (staging_root / "dag/run1/audience").exists()


def test_two_null_ids_are_not_duplicates(tmp_path, monkeypatch, staging_root):
    db = _make_db(
        tmp_path / "nulls2.duckdb",
        COLUMNS,
        [
            ("c1", "a@example.com", True, False),
            (None, "b@x.com", True, False),
            (None, "", True, True),
        ],
    )
    plan = _plan(_overlap_doc(True, False))
    summary = _build(plan, _hook(monkeypatch, "assign_db", db), staging_root)
    assert (summary.audience_size, summary.rows_without_customer_id) == (1, 2)


def test_include_and_exclude_conditions(tmp_path, monkeypatch, staging_root):
    db = _make_db(
        tmp_path / "filters.duckdb",
        "customer_id VARCHAR, email VARCHAR, country VARCHAR, opted_out BOOLEAN",
        [
            ("u1", "u1@example.com", "us", False),  # in
            ("u2", None, "us", None),  # in: NULL in both exclude conditions
            ("u3", "u3@example.com", "us", True),  # excluded by opted_out
            ("u4", "u4@example.com", "ca", False),  # include fails
            ("u5", "u5@example.com", None, False),  # include is NULL: not matched
            ("u6", "u6@blocked.example", "us", False),  # second exclusion (OR-ed)
            ("u7", "u7@example.com", "us", None),  # in: NULL opted_out
        ],
    )
    doc = _doc(
        [("everyone", "TRUE", [_group("all", 100)])],
        include=["country = 'us'"],
        exclude=["opted_out", "email LIKE '%@blocked.example'"],
    )
    plan = _plan(doc)
    summary = _build(plan, _hook(monkeypatch, "assign_db", db), staging_root)
    assert _members(staging_root, "dag/run1", plan) == {"everyone__all": {"u1", "u2", "u7"}}
    assert summary.source_rows == 3
    assert summary.audience_size == 3


def test_treatment_split_matches_python_buckets(tmp_path, monkeypatch, staging_root):
    n = 2_000
    rows = [(i, f"p{i}@example.com", i % 3 == 0) for i in range(n)]
    db = _make_db(
        tmp_path / "split.duckdb", "customer_id INTEGER, email VARCHAR, seg_a BOOLEAN", rows
    )
    doc = _doc(
        [
            ("third", "seg_a", [_group("ctl", 30, control=True), _group("trt", 70)]),
            ("others", "NOT seg_a", [_group("x", 12.5), _group("y", 87.5)]),
        ],
        salt="fixed salt",
    )
    plan = _plan(doc)
    summary = _build(plan, _hook(monkeypatch, "assign_db", db), staging_root, batch_rows=333)
    expected: dict[str, set[str]] = {g.group_id: set() for g in plan.groups}
    for i, _, seg in rows:
        b = bucket("fixed salt", str(i))
        sub = "third" if seg else "others"
        for g in plan.groups_of(sub):
            if g.bucket_start <= b < g.bucket_end:
                expected[g.group_id].add(str(i))
    assert _members(staging_root, "dag/run1", plan) == expected
    assert summary.group_members == {g: len(v) for g, v in expected.items()}
    assert sum(summary.group_members.values()) == n


def test_rebuild_gives_same_membership_and_replaces_files(tmp_path, monkeypatch, staging_root):
    db = _make_db(tmp_path / "overlap.duckdb", COLUMNS, OVERLAP_ROWS)
    plan = _plan(_overlap_doc(False, True))
    hook = _hook(monkeypatch, "assign_db", db)
    first = _build(plan, hook, staging_root)
    members_1 = _members(staging_root, "dag/run1", plan)
    audience = staging_root / "dag/run1/audience"
    files_1 = _files(audience)
    (audience / "__g=0" / "leftover.parquet").write_bytes(b"stale")
    (audience / "stale_dir").mkdir()

    second = _build(plan, hook, staging_root)
    assert second == first
    assert _members(staging_root, "dag/run1", plan) == members_1
    assert _files(audience) == files_1
    # no temporary folders next to the audience folder
    assert sorted(p.name for p in (staging_root / "dag/run1").iterdir()) == ["audience"]

    # A rebuild from different data keeps nothing of the previous build.
    db2 = _make_db(tmp_path / "v2.duckdb", COLUMNS, [("n1", "n1@example.com", True, False)])
    third = _build(plan, _hook(monkeypatch, "assign_db_v2", db2), staging_root)
    assert third.group_members == {"a__all": 1, "b__all": 0, "rest__all": 0}
    assert _members(staging_root, "dag/run1", plan) == {
        "a__all": {"n1"},
        "b__all": set(),
        "rest__all": set(),
    }


def test_different_runs_do_not_touch_each_other(tmp_path, monkeypatch, staging_root):
    db = _make_db(tmp_path / "overlap.duckdb", COLUMNS, OVERLAP_ROWS)
    plan = _plan(_overlap_doc(True, True))
    hook = _hook(monkeypatch, "assign_db", db)
    _build(plan, hook, staging_root, run_rel="dag/run1")
    before = _files(staging_root / "dag/run1")
    _build(plan, hook, staging_root, run_rel="dag/run2")
    assert _files(staging_root / "dag/run1") == before
    assert _members(staging_root, "dag/run2", plan) == _members(staging_root, "dag/run1", plan)


def test_group_ids_used_in_summary():
    plan = _plan(_overlap_doc(True, True))
    assert [g.group_id for g in plan.groups] == [
        group_id_for("A", "all"),
        group_id_for("B", "all"),
        group_id_for("rest", "all"),
    ]
