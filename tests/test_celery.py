"""Campaigns on a distributed Airflow (``scripts/cluster.py``, what ``make cluster`` runs):
CeleryExecutor with two workers, Postgres metadata and warehouse, Redis broker, staging on S3.
Driven only through the REST API v2; the run's files are read back from S3.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from contextlib import suppress
from pathlib import Path
from typing import Any

import psutil
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from campaign_sync.layout import RunLayout
from campaign_sync.plan import build_plan
from campaign_sync.pools import pool_of
from campaign_sync.spec.ids import MAINTENANCE_DAG_ID
from campaign_sync.spec.model import Campaign
from helpers import REPO, SAMPLE_CAMPAIGN, sample_doc, write_campaign

SAMPLE = "lifecycle_winback"
WORKERS = {"worker-1", "worker-2"}
KILL = {
    "name": "celery_kill",
    "source": {"conn_id": "campaign_sync_sample", "table": "merged_customers"},
    "retries": {"count": 2, "delay_seconds": 1, "exponential_backoff": False},
    "sub_audiences": [
        {
            "name": "everyone",
            "condition": "TRUE",
            "treatment_groups": [{"name": "all", "percentage": 100, "destinations": ["tiktok"]}],
        }
    ],
    "destinations": {
        "tiktok": {
            "type": "tiktok_ads",
            "conn_id": "sched_tiktok_ads",
            "attributes": {"email": "EMAIL", "phone": "PHONE"},
        }
    },
}


@pytest.fixture(scope="module")
def sample_run(celery_cluster) -> str:
    """One run of the sample campaign on the cluster, finished."""
    server = celery_cluster.server
    celery_cluster.add_campaign(SAMPLE, SAMPLE_CAMPAIGN.read_text())
    server.unpause(SAMPLE)
    started = time.monotonic()
    run_id = server.trigger(SAMPLE)
    server.wait_run(SAMPLE, run_id, timeout=600)
    print(f"celery sample run: {time.monotonic() - started:.1f}s wall")
    return run_id


def test_celery_sample_campaign_runs_on_both_workers(celery_cluster, sample_run):
    server = celery_cluster.server
    assert server.run(SAMPLE, sample_run)["state"] == "success"
    tis = server.task_instances(SAMPLE, sample_run)
    assert {ti["state"] for ti in tis.values()} == {"success"}, tis
    hosts = Counter(ti["hostname"] for ti in tis.values())
    assert set(hosts) == WORKERS, hosts  # every task on a worker, and both workers used

    layout = RunLayout(SAMPLE, sample_run)
    manifest = json.loads(celery_cluster.staged(layout.manifest))
    groups = [
        group
        for sub in manifest["sub_audiences"].values()
        for group in sub["treatment_groups"].values()
    ]
    assert manifest["source_rows"] > 0
    assert sum(g["members"] for g in groups) == manifest["audience_size"] - manifest["unassigned"]
    sent = 0
    for group in groups:
        for dest in group["destinations"].values():
            assert dest["rows_sent"] + dest["rows_rejected"] == group["members"], group
            sent += dest["rows_sent"]
    # The recipients history, written by one worker, read back from S3 (no local disk).
    recipients = pq.read_table(io.BytesIO(celery_cluster.staged(layout.recipients_history)))
    print(
        f"celery manifest: {manifest['audience_size']} members, {sent} rows sent, "
        f"{recipients.num_rows} recipients rows"
    )
    control = sum(g["members"] for g in groups if g["is_control"])
    delivered = recipients.filter(pc.is_valid(recipients["destination"])).num_rows
    assert (delivered, recipients.num_rows - delivered) == (sent, control)


def _export_task(doc: dict[str, Any], destination: str) -> str:
    (group,) = build_plan(Campaign.model_validate(doc)).groups
    return RunLayout.export_task_id(group.group_id, destination)


def _kill_tree(pid: int) -> int:
    """SIGKILL a worker and every process below it (its task processes too); returns how
    many were killed."""
    worker = psutil.Process(pid)
    processes = [worker, *worker.children(recursive=True)]
    for process in processes:
        with suppress(psutil.Error):
            os.kill(process.pid, signal.SIGKILL)
    psutil.wait_procs(processes, timeout=10)
    return len(processes)


def test_celery_worker_killed_mid_export_retries_on_the_other_worker(celery_cluster, sample_run):
    server, tiktok = celery_cluster.server, celery_cluster.fakes["tiktok_ads"]
    dag_id, task_id = KILL["name"], _export_task(KILL, "tiktok")
    celery_cluster.add_campaign(dag_id, KILL)
    server.unpause(dag_id)

    def uploads() -> list[Any]:
        return [r for r in tiktok.requests if r.path.endswith("/segment/mapping/")]

    tiktok.slow_seconds = 3.0  # each 1000-row batch takes a while: the kill lands mid-export
    run_id = server.trigger(dag_id)

    def in_flight() -> dict[str, Any] | None:
        ti = server.task_instances(dag_id, run_id).get(task_id)
        running = ti and ti["state"] == "running" and len(uploads()) >= 2
        return ti if running else None

    ti = server.wait_for("the export to be mid-way", in_flight, 300, interval=0.2)
    killed_on = ti["hostname"]
    assert killed_on in WORKERS
    assert _kill_tree(celery_cluster.info["workers"][killed_on]) >= 2
    tiktok.wait_idle(30)  # the batch in flight still reaches TikTok: applied, never acknowledged
    at_kill = len(uploads())
    tiktok.slow_seconds = 0
    assert server.wait_run(dag_id, run_id, timeout=300)["state"] == "success"

    ti = server.task_instances(dag_id, run_id)[task_id]
    assert ti["try_number"] >= 2 and ti["hostname"] == (WORKERS - {killed_on}).pop()
    layout = RunLayout(dag_id, run_id)
    manifest = json.loads(celery_cluster.staged(layout.manifest))
    sent = manifest["sub_audiences"]["everyone"]["treatment_groups"]["all"]["destinations"][
        "tiktok"
    ]
    batches = -(-sent["rows_sent"] // 1000)
    assert batches >= 4 and 2 <= at_kill < batches
    # The retry resumed after the acknowledged batches: only those in flight at the kill (the
    # export keeps in_flight at once) came again.
    in_flight = pool_of(Campaign.model_validate(KILL).destinations["tiktok"]).in_flight
    assert batches <= len(uploads()) <= batches + in_flight
    rows = [json.dumps(r, sort_keys=True) for r in tiktok.received_rows("add")]
    counts = Counter(rows)
    assert len(counts) == sent["rows_sent"]
    assert sum(1 for n in counts.values() if n > 1) <= 1000 * in_flight
    assert max(counts.values()) <= 2
    (members,) = [m for m in tiktok.members.values() if m]
    assert len(members) == len(counts)  # every member once
    assert tiktok.contract_errors == []


# --- a worker's parse for one task --------------------------------------------------------------

PARSE = """
import json, os, sys, time
from airflow.dag_processing.dagbag import DagBag

def parse(folder, dag_id):
    os.environ["CAMPAIGN_SYNC_CAMPAIGNS_DIR"] = folder
    for key in ("_AIRFLOW_PARSING_CONTEXT_DAG_ID", "_AIRFLOW_PARSING_CONTEXT_TASK_ID"):
        os.environ.pop(key, None)
    if dag_id:  # what a Celery worker's task runner sets before it parses the DAG file
        os.environ["_AIRFLOW_PARSING_CONTEXT_DAG_ID"] = dag_id
        os.environ["_AIRFLOW_PARSING_CONTEXT_TASK_ID"] = "build_audience"
    best, ids = None, None
    for _ in range(2):
        started = time.perf_counter()
        bag = DagBag(dag_folder=sys.argv[1])
        took = time.perf_counter() - started
        best, ids = min(took, best or took), sorted(bag.dag_ids)
    return best, ids

one, many = sys.argv[2], sys.argv[3]
print(json.dumps({
    "one": parse(one, "campaign_000"),
    "many": parse(many, "campaign_000"),
    "many_full": parse(many, None),
}))
"""


def _campaign_folder(folder: Path, count: int) -> Path:
    folder.mkdir()
    for i in range(count):
        doc = sample_doc()
        doc["name"] = f"campaign_{i:03d}"
        write_campaign(folder, doc["name"], doc)
    return folder


def test_celery_worker_parse_for_one_task_stays_flat_with_200_campaign_files(tmp_path):
    """The task runner sets the parsing context; with 200 files the parse for one task costs
    about what it costs with one file, while the dag-processor's full parse grows with them."""
    one = _campaign_folder(tmp_path / "one", 1)
    many = _campaign_folder(tmp_path / "many", 200)
    result = subprocess.run(
        [sys.executable, "-c", PARSE, str(REPO / "dags"), str(one), str(many)],
        capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    times = json.loads(result.stdout.strip().splitlines()[-1])
    (t_one, ids_one), (t_many, ids_many), (t_full, ids_full) = (
        times["one"],
        times["many"],
        times["many_full"],
    )
    print(f"celery worker parse: 1 file {t_one:.2f}s, 200 files {t_many:.2f}s "
          f"(full parse of 200 files {t_full:.2f}s)")  # fmt: skip
    assert ids_one == ids_many == ["campaign_000", MAINTENANCE_DAG_ID]
    assert len(ids_full) == 201
    assert t_many < 1.5 * t_one + 0.5
    assert t_full > 3 * t_many  # the measurement can tell a full parse from a one-DAG parse


@pytest.mark.parametrize(
    ("wanted", "unreadable", "shortcut"),
    [
        ("campaign_001", False, True),
        ("broken", False, False),  # an invalid file's DAG: ids come from the full parse
        ("twin", False, False),  # two files claiming one id: both invalid
        ("campaign_002", True, False),  # a name YAML reads differently from a line scan
    ],
)
def test_celery_worker_parse_builds_what_a_full_parse_builds(
    campaigns_dir, monkeypatch, wanted, unreadable, shortcut
):
    """The one-file shortcut and the full parse agree, error DAG ids included."""
    from campaign_sync import factory

    for i in range(3):
        doc = sample_doc()
        doc["name"] = f"campaign_{i:03d}"
        write_campaign(campaigns_dir, doc["name"], doc)
    bad = sample_doc()
    bad["name"], bad["retries"] = "broken", {"count": -1}
    write_campaign(campaigns_dir, "broken", bad)
    for n in (1, 2):
        twin = sample_doc()
        twin["name"] = "twin"
        write_campaign(campaigns_dir, f"twin_{n}", twin)
    if unreadable:
        (campaigns_dir / "z_unreadable.yaml").write_text("name: [campaign_002\n")

    full = factory.build_dags()
    assert wanted in full
    full_parses = []
    real = factory.load_folder
    monkeypatch.setattr(
        factory, "load_folder", lambda f, cache=None: full_parses.append(f) or real(f, cache)
    )
    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", wanted)
    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_TASK_ID", "build_audience")
    one = factory.build_dags()
    assert list(one) == [wanted]
    assert sorted(one[wanted].task_ids) == sorted(full[wanted].task_ids)
    assert one[wanted].tags == full[wanted].tags
    assert (full_parses == []) is shortcut
