"""Retention: run folders older than the window are deleted from staging and local outputs;
the last successful delivery per group and destination (mirror's baseline) is always kept.

Clocks are shifted by injecting ``now`` and setting file times; nothing sleeps.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from campaign_sync import config
from campaign_sync.layout import RunLayout
from campaign_sync.platforms.sync import DeliveryLog
from campaign_sync.retention import purge
from campaign_sync.staging import Staging
from helpers import REPO
from storage_helpers import set_connection

pytest_plugins = ["servers"]

DAG = "spring_sale"
GROUP = "active__treatment"
DEST = "criteo"
LOG_REL = RunLayout(DAG, "any").delivery_log(GROUP, DEST)
EMAIL = "jane.doe@example.com"  # a "PII" value written into staged files; never logged
NOW = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)


def ago(days: float, now: datetime = NOW) -> datetime:
    return now - timedelta(days=days)


def set_age(path: Path, when: datetime) -> None:
    """Give every file under ``path`` (or the file) the modification time ``when``."""
    stamp = when.timestamp()
    for item in [path, *path.rglob("*")] if path.is_dir() else [path]:
        if item.is_file():
            os.utime(item, (stamp, stamp))


def manifest_doc(run_id: str, completed: datetime, locations: dict[str, str]) -> dict[str, Any]:
    """A manifest with the fields retention reads: completion time and destination locations."""
    return {
        "campaign": DAG,
        "dag_id": DAG,
        "run_id": run_id,
        "logical_date": ago(90).isoformat(),
        "completed_at": completed.isoformat(),
        "audience_size": 1,
        "sub_audiences": {
            "active": {
                "members": 1,
                "treatment_groups": {
                    "treatment": {
                        "group_id": GROUP,
                        "is_control": False,
                        "members": 1,
                        "destinations": {
                            name: {"type": "local", "dry_run": name == "dry", "location": loc}
                            for name, loc in locations.items()
                        },
                    }
                },
            }
        },
    }


def run_of(run_id: str) -> str:
    return RunLayout(DAG, run_id).folder


def make_run(
    staging: Path,
    run_id: str,
    *,
    completed: datetime | None,
    files_at: datetime,
    locations: dict[str, str] | None = None,
) -> Path:
    """A staged run folder like a campaign run leaves: audience, projected files, history."""
    folder = staging / RunLayout(DAG, run_id).folder
    group = folder / "groups" / GROUP
    (group / "destinations").mkdir(parents=True)
    (folder / "audience").mkdir()
    (folder / "audience" / "audience.parquet").write_text(f"{EMAIL}\n" * 50)
    (group / "destinations" / f"{DEST}.parquet").write_text(f"{EMAIL}\n")
    (group / "destinations" / "review.parquet").write_text(f"{EMAIL}\n")
    (folder / "history").mkdir()
    (folder / "history" / "recipients.parquet").write_text(f"{EMAIL}\n" * 3)
    if completed is not None:
        doc = manifest_doc(run_id, completed, locations or {})
        (folder / "history" / RunLayout.MANIFEST_FILE).write_text(json.dumps(doc))
    set_age(folder, files_at)
    return folder


def make_output(path: Path, when: datetime) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"customer_id,email\n1,{EMAIL}\n")
    set_age(path, when)
    return path


def tree(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def roots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    staging, outputs = tmp_path / "staging", tmp_path / "outputs"
    monkeypatch.setenv(config.STAGING_ROOT_ENV, str(staging))
    monkeypatch.setenv(config.OUTPUT_ROOT_ENV, str(outputs))
    return staging, outputs


def scenario(staging: Path, outputs: Path) -> dict[str, Path]:
    """Runs of every kind, 30-day window at NOW."""
    custom_old = outputs / "review" / "weekly_old.csv"
    custom_new = outputs / "review" / "weekly_new.csv"
    runs = {
        "old": make_run(
            staging, "scheduled__old", completed=ago(40), files_at=ago(40),
            locations={"review": str(custom_old)},
        ),
        "recent": make_run(
            staging, "scheduled__recent", completed=ago(5), files_at=ago(5),
            locations={"review": str(custom_new)},
        ),
        # Backfilled yesterday for a logical date 90 days back: its time is when it ran.
        "backfill": make_run(staging, "backfill__2026-12-01", completed=ago(1), files_at=ago(1)),
        # Completed long ago, being rerun now (one file just rewritten): not deleted under it.
        "rerun": make_run(staging, "manual__rerun", completed=ago(45), files_at=ago(45)),
        "failed_old": make_run(staging, "manual__failed_old", completed=None, files_at=ago(31)),
        "failed_new": make_run(staging, "manual__failed_new", completed=None, files_at=ago(29)),
    }  # fmt: skip
    set_age(runs["rerun"] / "groups" / GROUP / "destinations" / f"{DEST}.parquet", ago(0.01))
    # Dry-run payloads and local outputs (default template: <folder>/<dag_id>/<run>/...). Their
    # own times are misleading on purpose: the run's time decides.
    dry, local = outputs / "dry_run", outputs / "local"
    outs = {
        "dry_old": make_output(dry / run_of("scheduled__old") / "a.csv", ago(1)),
        "dry_recent": make_output(dry / run_of("scheduled__recent") / "a.csv", ago(60)),
        "local_failed": make_output(local / run_of("manual__failed_old") / "b", ago(31)),
        "custom_old": make_output(custom_old, ago(2)),
        "custom_new": make_output(custom_new, ago(50)),
        # Claimed by no run: their own times decide.
        "stray_old": make_output(outputs / "misc" / "stray_old.csv", ago(31)),
        "stray_new": make_output(outputs / "misc" / "stray_new.csv", ago(3)),
    }  # fmt: skip
    return {**runs, **outs}


def test_retention_deletes_old_runs_and_keeps_recent_ones(roots):
    staging, outputs = roots
    paths = scenario(staging, outputs)
    (outputs / "made_by_a_running_task").mkdir()
    report = purge(days=30, now=NOW)
    gone = {"old", "failed_old", "dry_old", "local_failed", "custom_old", "stray_old"}
    for name, path in paths.items():
        assert path.exists() == (name not in gone), name
    assert (report.runs_seen, report.runs_deleted, report.runs_trimmed) == (6, 2, 0)
    # old: audience, 2 projected, recipients, manifest; failed_old: the same without manifest.
    assert report.staging_files == 9
    assert report.output_files == 4
    assert report.output_bytes == 4 * len(f"customer_id,email\n1,{EMAIL}\n")
    # Emptied folders go too; the roots stay.
    assert not (staging / DAG / "scheduled__old").exists()
    assert not (outputs / "dry_run" / DAG / "scheduled__old").exists()
    assert not (outputs / "misc" / "stray_old.csv").exists() and outputs.is_dir()
    assert (outputs / "made_by_a_running_task").is_dir()  # only folders it emptied go


def test_retention_keeps_the_last_successful_mirror_delivery_even_when_old(roots):
    staging, _outputs = roots
    store = Staging(str(staging))
    log = DeliveryLog(store, LOG_REL)
    for run_id, days in (("scheduled__first", 120), ("scheduled__second", 100)):
        make_run(staging, run_id, completed=ago(days), files_at=ago(days))
        log.record(run_id)
    report = purge(days=30, now=NOW)
    first = staging / RunLayout(DAG, "scheduled__first").folder
    second = staging / RunLayout(DAG, "scheduled__second").folder
    assert not first.exists()  # superseded delivery: deleted
    # The last delivery keeps only what mirror reads (and its manifest: counts only).
    assert tree(second) == {
        f"groups/{GROUP}/destinations/{DEST}.parquet",
        f"history/{RunLayout.MANIFEST_FILE}",
    }
    assert log.baseline_for("scheduled__third") == "scheduled__second"
    assert (report.runs_deleted, report.runs_trimmed, report.kept_for_mirror) == (1, 1, 1)
    # Idempotent: the next day nothing more goes.
    again = purge(days=30, now=NOW + timedelta(days=1))
    assert (again.staging_files, again.runs_trimmed) == (0, 1)
    assert tree(second) == {
        f"groups/{GROUP}/destinations/{DEST}.parquet",
        f"history/{RunLayout.MANIFEST_FILE}",
    }


def test_retention_dry_run_deletes_nothing(roots):
    staging, outputs = roots
    scenario(staging, outputs)
    DeliveryLog(Staging(str(staging)), LOG_REL).record("scheduled__old")
    before = (tree(staging), tree(outputs))
    would = purge(days=30, now=NOW, dry_run=True)
    assert (tree(staging), tree(outputs)) == before
    did = purge(days=30, now=NOW)
    assert {**would.as_dict(), "dry_run": False} == did.as_dict()
    assert did.runs_trimmed == 1 and did.staging_files > 0
    assert "would delete" in would.lines()[0]


def test_retention_report_logs_counts_without_identifiers(roots, capsys):
    from campaign_sync.operators.retention import PurgeExpiredRunsOperator

    staging, outputs = roots
    real_now = datetime.now(UTC)
    make_run(staging, "scheduled__old", completed=ago(40, real_now), files_at=ago(40, real_now))
    make_output(
        outputs / "dry_run" / RunLayout(DAG, "scheduled__old").folder / "a.csv", ago(40, real_now)
    )
    counts = PurgeExpiredRunsOperator(task_id="purge_expired_runs", days=30).execute({})
    assert counts["runs_deleted"] == 1 and counts["staging_files"] == 5
    assert counts["output_files"] == 1 and counts["output_bytes"] > 0
    text = capsys.readouterr().out  # the task logger writes to the (captured) console
    assert "deleted 1 runs" in text and f"{counts['staging_bytes']} bytes" in text
    for secret in (DAG, "scheduled__old", EMAIL, "jane", str(staging), str(outputs), GROUP):
        assert secret not in text


def test_retention_days_setting(monkeypatch, roots):
    monkeypatch.delenv(config.RETENTION_DAYS_ENV, raising=False)
    assert config.retention_days() == 30
    monkeypatch.setenv(config.RETENTION_DAYS_ENV, "7")
    assert config.retention_days() == 7
    for bad, why in (("seven", "not a whole number"), ("0", "at least 1"), ("-3", "at least 1")):
        monkeypatch.setenv(config.RETENTION_DAYS_ENV, bad)
        with pytest.raises(ValueError, match=f"CAMPAIGN_SYNC_RETENTION_DAYS='{bad}': .*{why}"):
            config.retention_days()
    with pytest.raises(ValueError, match="at least 1"):
        purge(days=0, now=NOW)


def test_retention_window_follows_the_setting(roots, monkeypatch):
    from campaign_sync.operators.retention import PurgeExpiredRunsOperator

    staging, _ = roots
    real_now = datetime.now(UTC)
    week_old = make_run(staging, "r_week", completed=ago(8, real_now), files_at=ago(8, real_now))
    monkeypatch.setenv(config.RETENTION_DAYS_ENV, "10")
    PurgeExpiredRunsOperator(task_id="t").execute({})
    assert week_old.exists()
    monkeypatch.setenv(config.RETENTION_DAYS_ENV, "7")
    PurgeExpiredRunsOperator(task_id="t").execute({})
    assert not week_old.exists()
    monkeypatch.setenv(config.RETENTION_DAYS_ENV, "a month")
    with pytest.raises(ValueError, match="CAMPAIGN_SYNC_RETENTION_DAYS"):
        PurgeExpiredRunsOperator(task_id="t").execute({})


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    from campaign_sync import cli

    try:
        code = cli.main(list(argv))
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def test_retention_cli(roots, capsys, monkeypatch):
    staging, _outputs = roots
    real_now = datetime.now(UTC)
    old = make_run(
        staging, "scheduled__old", completed=ago(40, real_now), files_at=ago(40, real_now)
    )
    code, out, _ = run_cli(capsys, "retention", "--dry-run")
    assert code == 0 and old.exists()
    assert "would delete 1 runs" in out and "would delete 5 files" in out
    assert DAG not in out and EMAIL not in out
    code, out, _ = run_cli(capsys, "retention", "--days", "50")
    assert code == 0 and old.exists() and "deleted 0 runs" in out
    code, out, _ = run_cli(capsys, "retention")
    assert code == 0 and not old.exists() and "deleted 1 runs" in out
    code, _, err = run_cli(capsys, "retention", "--days", "0")
    assert code == 2 and "at least 1 day" in err
    monkeypatch.setenv(config.RETENTION_DAYS_ENV, "x")
    code, _, err = run_cli(capsys, "retention")
    assert code == 2 and "CAMPAIGN_SYNC_RETENTION_DAYS='x'" in err


def test_retention_then_mirror_still_removes_leavers(roots, monkeypatch):
    """Through the real Criteo exporter and its contract fake: after a purge far in the future,
    the next mirror run still removes exactly the members who left."""
    from campaign_sync.hooks.criteo import CriteoHook
    from campaign_sync.operators.audience_export import PlatformExportOperator
    from fakes.criteo import FakeCriteo
    from platform_support import one_group_plan, run_export, sha, small_batches
    from platform_support import set_connection as set_platform_connection

    fake = FakeCriteo()
    url = fake.start()
    try:
        set_platform_connection(
            monkeypatch, "plat", "criteo", host=url, login="client-1", password="s3cret",
            extra={"advertiser_id": "4242", "timeout": 2},
        )  # fmt: skip
        small_batches(monkeypatch, CriteoHook, 100)
        plan = one_group_plan("criteo", {"email": "email"}, {"sync_mode": "mirror"})
        rows = [
            {"__customer_id": f"C{i:04d}", "email": sha(f"u{i}@example.com")} for i in range(300)
        ]
        run_export(PlatformExportOperator, plan, "r0", rows)
        run_export(PlatformExportOperator, plan, "r1", rows[:250])
        staging, _ = roots
        r1 = staging / RunLayout(plan.dag_id, "r1").folder
        (r1 / "audience").mkdir()
        (r1 / "audience" / "audience.parquet").write_text(EMAIL)
        report = purge(days=30, now=datetime.now(UTC) + timedelta(days=400))
        assert not (staging / RunLayout(plan.dag_id, "r0").folder).exists()
        assert not (r1 / "audience").exists() and report.runs_trimmed == 1
        fake.received.clear()
        result = run_export(PlatformExportOperator, plan, "r2", rows[:200])
        assert (result["added"], result["removed"]) == (0, 50)
        removed = {r["email"] for r in fake.received_rows("remove")}
        assert removed == {r["email"] for r in rows[200:250]}
    finally:
        fake.stop()


def test_retention_maintenance_dag_loads_and_runs(airflow_db, roots):
    from airflow.dag_processing.dagbag import DagBag

    staging, _outputs = roots
    real_now = datetime.now(UTC)
    old = make_run(
        staging, "scheduled__old", completed=ago(40, real_now), files_at=ago(40, real_now)
    )
    new = make_run(staging, "scheduled__new", completed=ago(2, real_now), files_at=ago(2, real_now))
    bag = DagBag(dag_folder=str(REPO / "dags" / "campaign_sync_maintenance.py"))
    assert bag.import_errors == {}
    dag = bag.dags["campaign_sync_maintenance"]
    assert dag.is_paused_upon_creation is False and dag.max_active_runs == 1
    assert "campaign-sync" in dag.tags and [t.task_id for t in dag.tasks] == ["purge_expired_runs"]
    run = dag.test()
    assert run.state == "success"
    assert not old.exists() and new.exists()


# --- object-store staging (moto's S3 server) ----------------------------------------------------

S3_CONN = "retention_s3"
BUCKET = "retention-staging"


def test_retention_on_s3_staging(s3_server, tmp_path):
    s3_server.create_bucket(BUCKET)
    set_connection(S3_CONN, s3_server.connection())
    client = s3_server.client()
    root = f"s3://{S3_CONN}@{BUCKET}/staging"
    staging = Staging(root)
    # S3 sets an object's time itself (now); the clock is shifted by injecting "now" instead.
    now = datetime.now(UTC) + timedelta(days=60)

    def put_run(run_id: str, completed: datetime | None) -> str:
        rel = RunLayout(DAG, run_id).folder
        with staging.write_dir(rel) as work:
            (work / "groups" / GROUP / "destinations").mkdir(parents=True)
            (work / "groups" / GROUP / "destinations" / f"{DEST}.parquet").write_text(EMAIL)
            (work / "audience").mkdir()
            (work / "audience" / "audience.parquet").write_text(EMAIL * 10)
            if completed is not None:
                (work / "history").mkdir()
                doc = manifest_doc(run_id, completed, {})
                (work / "history" / RunLayout.MANIFEST_FILE).write_text(json.dumps(doc))
        return rel

    old = put_run("scheduled__old", ago(90, now))
    mirrored = put_run("scheduled__mirrored", ago(80, now))
    recent = put_run("scheduled__recent", ago(3, now))
    no_manifest = put_run("manual__failed", None)  # objects are 60 "days" old
    DeliveryLog(staging, LOG_REL).record("scheduled__mirrored")

    def keys() -> set[str]:
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix="staging/")
        return {o["Key"].removeprefix("staging/") for p in pages for o in p.get("Contents", [])}

    before = keys()
    would = purge(days=30, now=now, dry_run=True, staging_root=root, output_root=tmp_path / "o")
    assert keys() == before
    report = purge(days=30, now=now, staging_root=root, output_root=tmp_path / "o")
    assert {**would.as_dict(), "dry_run": False} == report.as_dict()
    after = keys()
    assert not any(k.startswith((old + "/", no_manifest + "/")) for k in after)
    assert {k for k in after if k.startswith(mirrored + "/")} == {
        f"{mirrored}/groups/{GROUP}/destinations/{DEST}.parquet",
        f"{mirrored}/history/{RunLayout.MANIFEST_FILE}",
    }
    assert {k for k in after if k.startswith(recent + "/")} == {
        k for k in before if k.startswith(recent + "/")
    }
    assert f"{LOG_REL}/{RunLayout.DELIVERY_LOG_FILE}" in after
    assert (report.runs_seen, report.runs_deleted, report.runs_trimmed) == (4, 2, 1)
    assert report.staging_files == 3 + 2 + 1 and report.kept_for_mirror == 1
    old_manifest = len(json.dumps(manifest_doc("scheduled__old", ago(90, now), {})))
    assert report.staging_bytes == 2 * len(EMAIL) + 3 * len(EMAIL * 10) + old_manifest
