"""The sample campaign through Airflow itself (dag.test on a real metadata DB), end to end."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import duckdb
import pytest
from helpers import REPO

HEX64 = re.compile(r"^[0-9a-f]{64}$")
pytest_plugins = ["servers"]  # the sample sends to S3 and SFTP: moto and sshd


@pytest.fixture(scope="module")
def two_runs(airflow_db, sample_db, sample_storage, tmp_path_factory):
    """Two runs of the sample campaign; returns their manifests (dicts) and staging root."""
    import os

    from airflow.dag_processing.dagbag import DagBag

    root = tmp_path_factory.mktemp("e2e")
    os.environ["CAMPAIGN_SYNC_STAGING_ROOT"] = str(root / "staging")
    os.environ["CAMPAIGN_SYNC_OUTPUT_ROOT"] = str(root / "outputs")
    os.environ["CAMPAIGN_SYNC_CAMPAIGNS_DIR"] = str(REPO / "include" / "campaigns")
    dag = DagBag(dag_folder=str(REPO / "dags")).dags["lifecycle_winback"]
    manifests = []
    for _ in range(2):
        run = dag.test()
        assert run.state == "success", [
            (ti.task_id, ti.state) for ti in run.get_task_instances() if ti.state != "success"
        ]
        found = list((root / "staging" / "lifecycle_winback").glob("*/history/manifest.json"))
        newest = max(found, key=lambda p: p.stat().st_mtime)
        manifests.append(json.loads(newest.read_text()))
    return manifests, root


def test_manifest_reconciles(two_runs):
    manifest = two_runs[0][0]
    subs = manifest["sub_audiences"]
    assert manifest["audience_size"] > 50_000
    assert (
        sum(s["members"] for s in subs.values()) + manifest["unassigned"]
        == manifest["audience_size"]
    )
    for sub in subs.values():
        groups = sub["treatment_groups"]
        assert sum(g["members"] for g in groups.values()) == sub["members"]
        for group in groups.values():
            if group["is_control"]:
                assert group["destinations"] == {}
            for dest in group["destinations"].values():
                assert dest["rows_sent"] + dest["rows_rejected"] == group["members"]
                assert sum(dest["rejected_by_reason"].values()) == dest["rows_rejected"]
    # Sample data has bad emails and phones: they must be set aside, not sent.
    active = subs["active"]["treatment_groups"]["treatment"]["destinations"]
    assert active["klaviyo"]["rejected_by_reason"]["email missing"] > 0
    assert active["klaviyo"]["rejected_by_reason"]["email invalid"] > 0
    assert active["review_files"]["rows_rejected"] == 0
    assert active["criteo"]["dry_run"] is True and active["review_files"]["dry_run"] is False


def test_control_share_close_to_configured(two_runs):
    subs = two_runs[0][0]["sub_audiences"]
    for name in ("active", "cooling down", "at risk"):
        sub = subs[name]
        share = sub["treatment_groups"]["control"]["members"] / sub["members"]
        assert abs(share - 0.10) < 0.02, (name, share)


def test_outputs_match_manifest(two_runs):
    manifest = two_runs[0][0]
    group = manifest["sub_audiences"]["at risk"]["treatment_groups"]["treatment"]
    review = Path(group["destinations"]["review_files"]["location"])
    with review.open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == group["destinations"]["review_files"]["rows_sent"]
    assert list(rows[0]) == ["customer_id", "email", "given_name", "surname", "lifecycle_status"]
    assert {r["lifecycle_status"] for r in rows} == {"at risk"}

    tiktok = Path(group["destinations"]["tiktok"]["location"])
    assert "dry_run" in tiktok.parts
    with tiktok.open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == group["destinations"]["tiktok"]["rows_sent"]
    assert list(rows[0]) == ["EMAIL", "PHONE", "IDFA", "AAID"]
    # TikTok needs both: every row sent carries two hashes.
    assert all(HEX64.match(r["EMAIL"]) and HEX64.match(r["PHONE"]) for r in rows)


def test_recipients_history(two_runs):
    manifest = two_runs[0][0]
    path = manifest["recipients_history"]
    con = duckdb.connect()
    total, controls, runs = con.execute(
        f"SELECT count(*), count_if(is_control), count(DISTINCT run_id) FROM read_parquet('{path}')"
    ).fetchone()
    expected_total = 0
    expected_controls = 0
    for sub in manifest["sub_audiences"].values():
        for group in sub["treatment_groups"].values():
            if group["is_control"]:
                expected_controls += group["members"]
            expected_total += sum(d["rows_sent"] for d in group["destinations"].values())
    assert (total - controls, controls, runs) == (expected_total, expected_controls, 1)
    columns = [
        r[0] for r in con.execute(f"DESCRIBE SELECT * FROM read_parquet('{path}')").fetchall()
    ]
    assert columns == [
        "customer_id",
        "campaign",
        "dag_id",
        "run_id",
        "sub_audience",
        "treatment_group",
        "is_control",
        "destination",
    ]


def test_rerun_is_stable_and_separate(two_runs):
    (first, second), _ = two_runs
    assert first["run_id"] != second["run_id"]
    assert first["recipients_history"] != second["recipients_history"]

    def counts(m):
        return {
            (s, g): grp["members"]
            for s, sub in m["sub_audiences"].items()
            for g, grp in sub["treatment_groups"].items()
        }

    assert counts(first) == counts(second)
    con = duckdb.connect()
    diff = con.execute(
        f"""
        SELECT count(*) FROM (
          SELECT customer_id, sub_audience, treatment_group
          FROM read_parquet('{first["recipients_history"]}')
          EXCEPT
          SELECT customer_id, sub_audience, treatment_group
          FROM read_parquet('{second["recipients_history"]}')
        )"""
    ).fetchone()[0]
    assert diff == 0


def test_retention_dry_run_on_real_runs(two_runs):
    """Retention reads the layout real runs leave: their manifests date them, and their
    dry-run payloads and local files are attributed to them (not aged by file time)."""
    import os
    from datetime import UTC, datetime, timedelta

    from campaign_sync.retention import purge

    _, root = two_runs
    outputs = [p for p in (root / "outputs").rglob("*") if p.is_file()]
    staged = [p for p in (root / "staging").rglob("*") if p.is_file()]
    assert outputs and staged
    long_ago = (datetime.now(UTC) - timedelta(days=100)).timestamp()
    for path in outputs:
        os.utime(path, (long_ago, long_ago))
    before = sorted(p.as_posix() for p in root.rglob("*"))
    kept = purge(days=30, dry_run=True)
    assert (kept.runs_seen, kept.runs_deleted) == (2, 0)
    assert (kept.output_files, kept.staging_files) == (0, 0)
    gone = purge(days=30, now=datetime.now(UTC) + timedelta(days=31), dry_run=True)
    assert (gone.runs_deleted, gone.output_files) == (2, len(outputs))
    assert gone.staging_files == len(staged)  # the sample has no platform delivery to keep
    assert gone.output_bytes == sum(p.stat().st_size for p in outputs)
    assert sorted(p.as_posix() for p in root.rglob("*")) == before


def test_run_counts_readable_in_ui(two_runs):
    """What the UI shows for a run without a shell: write_manifest's rendered run_counts
    (Markdown), its XCom (counts by group) and the extra links' stored targets."""
    from airflow.models.renderedtifields import RenderedTaskInstanceFields as Rtif
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    manifest = two_runs[0][1]
    where = {"dag_id": manifest["dag_id"], "run_id": manifest["run_id"]}
    with create_session() as session:
        rendered = session.scalar(select(Rtif).filter_by(task_id="write_manifest", **where))
        rows = session.scalars(select(XComModel).filter_by(**where)).all()
        xcoms = {(x.task_id, x.key): XComModel.deserialize_value(x) for x in rows}
    counts = rendered.rendered_fields["run_counts"]
    group = manifest["sub_audiences"]["at risk"]["treatment_groups"]["treatment"]
    klaviyo = group["destinations"]["klaviyo"]
    assert f"| at_risk__treatment | {group['members']} | klaviyo (dry run) | " in counts
    reasons = ", ".join(f"{r}: {n}" for r, n in klaviyo["rejected_by_reason"].items() if n)
    assert f"| {klaviyo['rows_sent']} | {reasons} |" in counts and "email invalid: " in reasons
    assert "| active__control |" in counts and "(control)" in counts
    assert "Manifest: `" in counts and "history/manifest.json" in counts

    summary = xcoms[("write_manifest", "return_value")]
    found = summary["groups"]["at_risk__treatment"]["destinations"]["klaviyo"]
    assert found["rows_sent"] == klaviyo["rows_sent"]
    assert found["rejected_by_reason"] == klaviyo["rejected_by_reason"]
    assert xcoms[("write_manifest", "_link_ManifestLink")] == Path(summary["manifest"]).as_uri()
    review = xcoms[("at_risk__treatment.export_review_files", "_link_OutputLink")]
    assert review == Path(group["destinations"]["review_files"]["location"]).as_uri()

    # The run note the scheduler's listener writes from that return value: totals only.
    from campaign_sync.manifest import run_note

    note = run_note(summary)
    exports = [d for g in summary["groups"].values() for d in g["destinations"].values()]
    sent = sum(d["rows_sent"] for d in exports)
    rejected = sum(sum(d["rejected_by_reason"].values()) for d in exports)
    assert f"Audience {manifest['audience_size']:,} " in note
    assert f"{sent:,} rows sent in {len(exports)} exports" in note
    assert f", {rejected:,} rejected," in note and rejected > 0
    assert "@" not in note.replace(summary["manifest"], "")  # no email address leaks in
