"""Campaigns on a real Airflow scheduler (LocalExecutor), driven only through the REST API v2:
a triggered run, a cleared export, a backfill with a mirror destination, a failed export retried
by Airflow, and a broken campaign file added while the scheduler runs.

Assertions are on what reached the destinations: the contract fakes count every request.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import time
from collections import Counter
from datetime import datetime
from typing import Any

import duckdb
import pytest
import yaml
from airflow_server import destination_of, scheduler_campaign
from campaign_sync import cli
from campaign_sync.destinations.templating import unique_segment
from campaign_sync.layout import RunLayout
from campaign_sync.plan import build_plan
from campaign_sync.spec.model import Campaign

CRITEO = {"type": "criteo", "conn_id": "sched_criteo", "attributes": {"email": "email"}}
BASIC = scheduler_campaign(
    "sched_basic",
    [
        {"name": "control", "percentage": 10, "control": True},
        {"name": "treatment", "percentage": 90, "destinations": ["criteo", "files"]},
    ],
    {
        "criteo": CRITEO,
        "files": {
            "type": "s3",
            "conn_id": "sched_s3",
            "attributes": {"customer_id": "customer_id", "email": "email"},
            "options": {"bucket": "sched-drop", "format": "csv"},
        },
    },
)
MIRROR = scheduler_campaign(
    "sched_mirror",
    [{"name": "all", "percentage": 100, "destinations": ["criteo"]}],
    {"criteo": {**CRITEO, "options": {"sync_mode": "mirror"}}},
    source={"conn_id": "sched_mutable", "table": "merged_customers"},
    # Daily, and over before today: unpausing creates no scheduled run, only the backfill runs.
    schedule={"cron": "@daily", "start_date": "2026-01-01", "end_date": "2026-01-03"},
)
RETRY = scheduler_campaign(
    "sched_retry",
    [{"name": "all", "percentage": 100, "destinations": ["tiktok"]}],
    {
        "tiktok": {
            "type": "tiktok_ads",
            "conn_id": "sched_tiktok_ads",
            "attributes": {"email": "EMAIL", "phone": "PHONE"},
            # One batch at a time, in a pool of its own: the faults below are injected into the
            # next requests in order.
            "concurrency": 1,
            "pool": "sched_retry_tiktok",
        }
    },
    retries={"count": 1, "delay_seconds": 1, "exponential_backoff": False},
)
HEALTHY = scheduler_campaign(
    "sched_healthy",
    [{"name": "all", "percentage": 100, "destinations": ["review"]}],
    {
        "review": {
            "type": "local",
            "attributes": {"customer_id": "customer_id"},
            "options": {"path": "review", "format": "csv"},
        }
    },
)
BROKEN_FILE = "broken_campaign"


def _export_task(doc: dict[str, Any], group: str, destination: str) -> str:
    plan = build_plan(Campaign.model_validate(doc))
    (found,) = [g for g in plan.groups if g.treatment_group == group]
    return f"{found.group_id}.{RunLayout.export_task(destination)}"


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _audience_id(fake: Any, name: str) -> str:
    (found,) = [sid for sid, n in fake.segments.items() if n.startswith(f"{name} - ")]
    return found


@pytest.fixture(scope="module")
def airflow(real_airflow):
    """The real Airflow with this module's campaigns added (parsed within seconds)."""
    for doc in (BASIC, MIRROR, RETRY, HEALTHY):
        real_airflow.add_campaign(doc["name"], doc)
    for doc in (BASIC, MIRROR, RETRY, HEALTHY):
        real_airflow.server.unpause(doc["name"])
    return real_airflow


@pytest.fixture(scope="module")
def basic_run(airflow) -> str:
    """One triggered run of sched_basic, finished."""
    run_id = airflow.server.trigger("sched_basic")
    airflow.server.wait_run("sched_basic", run_id)
    return run_id


def test_scheduler_triggered_run_succeeds(airflow, basic_run):
    server, criteo = airflow.server, airflow.fakes["criteo"]
    run = server.run("sched_basic", basic_run)
    assert run["state"] == "success"
    states = {t: ti["state"] for t, ti in server.task_instances("sched_basic", basic_run).items()}
    assert set(states.values()) == {"success"}, states
    assert len(states) == 6  # build_audience, 2 x project, criteo, s3, write_manifest

    manifest = airflow.manifest("sched_basic", basic_run)
    # The run's own note carries its totals (the scheduler's listener, from write_manifest).
    assert run["note"].startswith("**campaign-sync: run counts.**")
    assert f"Audience {manifest['audience_size']:,} " in run["note"]
    sent = destination_of(manifest, "treatment", "criteo")
    audience = _audience_id(criteo, "sched_basic")
    assert sent["rows_sent"] > 0 and sent["location"] == f"criteo:{audience}"
    assert len(criteo.received_rows("add", audience)) == sent["rows_sent"]
    assert criteo.contract_errors == []
    files = destination_of(manifest, "treatment", "files")
    objects = airflow.s3.client().list_objects_v2(Bucket="sched-drop")["Contents"]
    folder = f"sched_basic/{unique_segment(basic_run)}/everyone/treatment/"
    assert [o["Key"] for o in objects if o["Key"].startswith(folder)], objects
    assert files["rows_sent"] == sent["rows_sent"] + sent["rows_rejected"] - files["rows_rejected"]


def test_scheduler_clear_one_export_reruns_without_duplicate_batches(airflow, basic_run):
    server, criteo = airflow.server, airflow.fakes["criteo"]
    audience = _audience_id(criteo, "sched_basic")
    task_id = _export_task(BASIC, "treatment", "criteo")
    uploads = [r for r in criteo.requests if r.path.endswith(f"/{audience}/contact-list")]
    rows_before = criteo.received_rows("add", audience)
    assert server.task_instances("sched_basic", basic_run)[task_id]["try_number"] == 1

    server.api(
        "POST",
        "/dags/sched_basic/clearTaskInstances",
        json={
            "dry_run": False,
            "dag_run_id": basic_run,
            "task_ids": [task_id],
            "only_failed": False,
            "include_downstream": True,
        },
    )

    def rerun_done() -> bool:
        tis = server.task_instances("sched_basic", basic_run)
        return (
            tis[task_id]["try_number"] == 2
            and tis[task_id]["state"] == "success"
            and server.run("sched_basic", basic_run)["state"] == "success"
        )

    server.wait_for("the cleared export to rerun", rerun_done, 120)
    tis = server.task_instances("sched_basic", basic_run)
    assert tis["write_manifest"]["try_number"] == 2  # downstream reran too
    assert tis["build_audience"]["try_number"] == 1  # upstream did not
    # The rerun resumed from its checkpoint: no batch reached Criteo again.
    again = [r for r in criteo.requests if r.path.endswith(f"/{audience}/contact-list")]
    assert len(again) == len(uploads)
    rows = criteo.received_rows("add", audience)
    assert rows == rows_before
    assert max(Counter(r["email"] for r in rows).values()) == 1
    sent = destination_of(airflow.manifest("sched_basic", basic_run), "treatment", "criteo")
    assert sent["batches"] == 0 and sent["batches_resumed"] >= 1
    assert any(
        "1 resumed" in line for line in server.task_log("sched_basic", basic_run, task_id, 2)
    )


def _leavers(db: Any, count: int, offset: int) -> dict[str, str]:
    """Customers whose email is unique and already normalized: Criteo gets SHA-256(email)."""
    rows = db.execute(
        """
        SELECT customer_id, email FROM merged_customers m
        WHERE regexp_full_match(email, '[a-z0-9._]+@[a-z0-9-]+(\\.[a-z]+)+')
          AND (SELECT count(*) FROM merged_customers n WHERE n.email = m.email) = 1
        ORDER BY customer_id LIMIT ? OFFSET ?
        """,
        [count, offset],
    ).fetchall()
    return {cid: hashlib.sha256(email.encode()).hexdigest() for cid, email in rows}


def _change_source(path: Any, leaving: list[str]) -> None:
    """Delete customers from the mutable source (retrying while a finished task's read-only
    connection may still hold the file)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            with duckdb.connect(str(path)) as db:
                db.execute(
                    f"DELETE FROM merged_customers WHERE customer_id IN "
                    f"({', '.join('?' for _ in leaving)})",
                    leaving,
                )
            return
        except duckdb.IOException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_scheduler_backfill_three_dates_in_order_mirror_removes_leavers(
    airflow, capsys, monkeypatch
):
    """Three backfilled dates, one run each, in order, with a ``mirror`` Criteo destination.

    A campaign's source SQL cannot see the logical date, so membership cannot follow a date
    column. Instead the test changes the source table between runs, as a warehouse refresh
    would: while run N is still running (its audience already built), it deletes some
    customers. The campaign allows one active run (``max_active_runs=1``), so run N+1 builds
    its audience only after run N has finished; the test checks that run N+1's build_audience
    had not started when the table changed, so the window cannot be missed silently.
    Then run 2 must remove exactly the customers deleted after run 1's audience, and run 3
    those deleted after run 2's.
    """
    server, criteo = airflow.server, airflow.fakes["criteo"]
    with duckdb.connect(str(airflow.mutable_db), read_only=True) as db:
        size = db.execute("SELECT count(*) FROM merged_customers").fetchone()[0]
        chosen = _leavers(db, 60, 0)
    waves = [dict(list(chosen.items())[:30]), dict(list(chosen.items())[30:])]

    backfill = server.create_backfill(
        {
            "dag_id": "sched_mirror",
            "from_date": "2026-01-01T00:00:00Z",
            "to_date": "2026-01-03T00:00:00Z",
            "max_active_runs": 1,
            "reprocess_behavior": "none",
        }
    )

    def runs() -> list[dict[str, Any]]:
        found = server.api("GET", "/dags/sched_mirror/dagRuns", params={"order_by": "logical_date"})
        return found["dag_runs"]

    listed = server.wait_for("three backfill runs", lambda: len(runs()) == 3 and runs(), 60)
    assert [r["logical_date"][:10] for r in listed] == ["2026-01-01", "2026-01-02", "2026-01-03"]
    assert {r["run_type"] for r in listed} == {"backfill"}
    ids = [r["dag_run_id"] for r in listed]

    for n, wave in enumerate(waves):
        server.wait_for(
            f"run {n + 1}'s audience",
            lambda n=n: (
                server.task_instances("sched_mirror", ids[n])["build_audience"]["state"]
                == "success"
            ),
            180,
        )
        _change_source(airflow.mutable_db, list(wave))
        following = server.task_instances("sched_mirror", ids[n + 1]).get("build_audience")
        assert following is None or following["state"] in (None, "scheduled", "queued"), (
            f"run {n + 2} started before the source changed: {following}"
        )
    finished = [server.wait_run("sched_mirror", run_id) for run_id in ids]
    assert [r["state"] for r in finished] == ["success"] * 3
    for earlier, later in itertools.pairwise(finished):
        # One after the other, in date order.
        assert _time(earlier["end_date"]) <= _time(later["start_date"])
    backfill_info = server.api("GET", f"/backfills/{backfill['id']}")
    assert backfill_info["dag_id"] == "sched_mirror"

    manifests = [airflow.manifest("sched_mirror", run_id) for run_id in ids]
    assert [m["run_id"] for m in manifests] == ids  # each run has its own outputs
    assert [m["logical_date"][:10] for m in manifests] == [r["logical_date"][:10] for r in listed]
    assert [m["audience_size"] for m in manifests] == [size, size - 30, size - 60]
    sent = [destination_of(m, "all", "criteo") for m in manifests]
    assert [s["mode"] for s in sent] == ["mirror"] * 3
    assert [s["removed"] for s in sent] == [0, 30, 30]
    assert [s["added"] for s in sent[1:]] == [0, 0]

    # The newest run by its own times is the last logical date.
    monkeypatch.setenv("CAMPAIGN_SYNC_STAGING_ROOT", str(airflow.staging))
    assert cli.main(["summary", "--latest", "sched_mirror"]) == 0
    assert f"run {ids[2]}" in capsys.readouterr().out.splitlines()[0]

    audience = _audience_id(criteo, "sched_mirror")
    removed = [row["email"] for row in criteo.received_rows("remove", audience)]
    # Removes arrive run by run: exactly the leavers of each wave, each once.
    assert set(removed[:30]) == set(waves[0].values())
    assert set(removed[30:]) == set(waves[1].values())
    assert len(removed) == 60
    members = set(criteo.members[audience])
    assert not members & set(chosen.values())
    # Customers sharing an email are one member on Criteo.
    assert 0 < len(members) <= sent[2]["rows_sent"]


def test_scheduler_failed_export_fails_then_airflow_retry_resumes_from_checkpoint(airflow):
    server, tiktok = airflow.server, airflow.fakes["tiktok_ads"]
    # First upload accepted; then 500s until the client's 2 attempts are spent: the try fails.
    tiktok.inject("slow", 1, seconds=0)
    tiktok.inject("server_error", 2)
    run_id = server.trigger("sched_retry")
    assert server.wait_run("sched_retry", run_id)["state"] == "success"

    task_id = _export_task(RETRY, "all", "tiktok")
    ti = server.task_instances("sched_retry", run_id)[task_id]
    assert (ti["state"], ti["try_number"]) == ("success", 2)
    first_try = "\n".join(server.task_log("sched_retry", run_id, task_id, 1))
    assert "server error (500)" in first_try and "failed after 2 attempts" in first_try

    sent = destination_of(airflow.manifest("sched_retry", run_id), "all", "tiktok")
    uploads = [r for r in tiktok.requests if r.path.endswith("/segment/mapping/")]
    batches = -(-sent["rows_sent"] // 1000)
    assert batches >= 3
    # Every batch once, plus the two refused attempts at batch 2; batch 1 was not sent again.
    assert len(uploads) == batches + 2
    assert sent["batches_resumed"] == 1 and sent["batches"] == batches - 1
    bodies = [json.dumps(r.body["batch_data"], sort_keys=True) for r in uploads]
    assert bodies[1] == bodies[2] == bodies[3] and len(set(bodies)) == batches
    users = [row["user"] for row in tiktok.received_rows("add")]
    assert len(users) == len(set(users)) == sent["rows_sent"]


BROKEN = {
    **HEALTHY,
    "name": "sched_broken",
    "sub_audiences": [
        {
            "name": "everyone",
            "condition": "TRUE",
            "treatment_groups": [{"name": "all", "percentage": 90, "destinations": ["review"]}],
        }
    ],
}


@pytest.fixture(scope="module")
def broken_file_run(airflow) -> str:
    """A broken campaign file added while the scheduler runs; then a healthy campaign's run."""
    airflow.add_campaign(BROKEN_FILE, yaml.safe_dump(BROKEN, sort_keys=False))
    airflow.server.wait_dag("sched_broken")
    run_id = airflow.server.trigger("sched_healthy")
    airflow.server.wait_run("sched_healthy", run_id)
    return run_id


def test_scheduler_broken_campaign_file_others_keep_running(airflow, broken_file_run):
    server = airflow.server
    assert server.run("sched_healthy", broken_file_run)["state"] == "success"
    details = server.api("GET", "/dags/sched_broken/details")
    shown = f"{details['description']}\n{details['doc_md']}"
    assert f"{BROKEN_FILE}.yaml" in shown
    assert "percentages sum to 90, not 100" in shown
    assert "invalid-campaign" in {t["name"] for t in details["tags"]}
    assert details["is_paused"] is True


def test_scheduler_broken_campaign_file_stays_out_of_healthy_task_logs(airflow, broken_file_run):
    server = airflow.server
    tis = server.task_instances("sched_healthy", broken_file_run)
    assert set(tis) >= {"build_audience", "write_manifest"}
    for task_id, ti in tis.items():
        lines = server.task_log("sched_healthy", broken_file_run, task_id, ti["try_number"])
        assert lines, task_id  # the log is there: the check below can fail
        leaked = [line for line in lines if BROKEN_FILE in line or "sched_broken" in line]
        assert leaked == [], f"{task_id}: {leaked[:3]}"
