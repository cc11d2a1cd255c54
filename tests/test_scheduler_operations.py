"""Operating campaigns on a real Airflow scheduler, through the REST API v2 only: trigger
parameters, a schedule on an asset, and shared pools keeping two campaigns on one account under
its concurrency.

Assertions are on what reached the destinations: the contract fakes count every request.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from airflow_server import destination_of, scheduler_campaign
from campaign_sync.layout import RunLayout
from campaign_sync.pools import pool_name
from campaign_sync.spec.ids import group_id_for
from helpers import write_campaign

CRITEO = {"type": "criteo", "conn_id": "sched_criteo", "attributes": {"email": "email"}}
TIKTOK = {
    "type": "tiktok_ads",
    "conn_id": "sched_tiktok_ads",
    "attributes": {"email": "EMAIL", "phone": "PHONE"},
}
PARAMS = scheduler_campaign(
    "sched_params",
    [{"name": "all", "percentage": 100, "destinations": ["criteo", "tiktok"]}],
    {"criteo": CRITEO, "tiktok": TIKTOK},
)
SOURCE_ASSET = "x-warehouse://sample/merged_customers"
ASSET = scheduler_campaign(
    "sched_asset",
    [{"name": "all", "percentage": 100, "destinations": ["review"]}],
    {"review": {"type": "local", "attributes": {"customer_id": "customer_id"}}},
    schedule={"assets": [SOURCE_ASSET], "start_date": "2026-01-01"},
)
ATTENTIVE = {"type": "attentive", "conn_id": "sched_attentive", "attributes": {"phone": "phone"}}
THIRDS = [
    {"name": f"t{i}", "percentage": p, "destinations": ["sms"]} for i, p in enumerate((34, 33, 33))
]
POOLED = [scheduler_campaign(f"sched_pool_{x}", THIRDS, {"sms": ATTENTIVE}) for x in "ab"]


def _requests(fakes: dict[str, Any], *names: str) -> dict[str, int]:
    return {name: len(fakes[name].requests) for name in names}


@pytest.fixture(scope="module")
def params_airflow(real_airflow):
    """The real Airflow with the params campaign, unpaused."""
    real_airflow.add_campaign(PARAMS["name"], PARAMS)
    real_airflow.server.unpause(PARAMS["name"])
    return real_airflow


def test_scheduler_params_bad_value_fails_at_build_audience(params_airflow):
    server, fakes = params_airflow.server, params_airflow.fakes
    before = _requests(fakes, "criteo", "tiktok_ads")
    # A value of the wrong type: Airflow refuses the run itself, naming the parameter.
    refused = server.api(
        "POST", "/dags/sched_params/dagRuns", expect=400,
        json={"logical_date": None, "conf": {"sample_size": -1}},
    )  # fmt: skip
    assert refused is None or "sample_size" in str(refused)
    # A key Airflow lets through (a typo): build_audience fails the run before anything is sent.
    run_id = server.trigger("sched_params", {"dry_rn": True})
    assert server.wait_run("sched_params", run_id)["state"] == "failed"
    states = {t: ti["state"] for t, ti in server.task_instances("sched_params", run_id).items()}
    assert states.pop("build_audience") == "failed"
    assert set(states.values()) == {"upstream_failed"}, states
    log = "\n".join(server.task_log("sched_params", run_id, "build_audience", 1))
    assert "trigger parameter 'dry_rn'" in log
    assert _requests(fakes, "criteo", "tiktok_ads") == before


def test_scheduler_params_dry_run_sends_nothing(params_airflow):
    server, fakes = params_airflow.server, params_airflow.fakes
    before = _requests(fakes, "criteo", "tiktok_ads")
    run_id = server.trigger("sched_params", {"dry_run": True})
    assert server.wait_run("sched_params", run_id)["state"] == "success"
    assert _requests(fakes, "criteo", "tiktok_ads") == before
    manifest = params_airflow.manifest("sched_params", run_id)
    assert manifest["params"]["dry_run"] is True
    for name in ("criteo", "tiktok"):
        sent = destination_of(manifest, "all", name)
        payload = Path(sent["location"])
        assert sent["dry_run"] is True and payload.exists() and "dry_run" in payload.parts
        assert len(payload.read_text().splitlines()) == sent["rows_sent"] + 1  # header
    task = "everyone__all.export_criteo"
    log = "\n".join(server.task_log("sched_params", run_id, task, 1))
    assert "DRY RUN (trigger parameter dry_run)" in log
    assert destination_of(manifest, "all", "criteo")["location"] in log


def test_scheduler_params_destinations_and_sample(params_airflow):
    server, fakes = params_airflow.server, params_airflow.fakes
    before = _requests(fakes, "criteo", "tiktok_ads")
    run_id = server.trigger("sched_params", {"destinations": ["criteo"], "sample_size": 25})
    assert server.wait_run("sched_params", run_id)["state"] == "success"
    states = {t: ti["state"] for t, ti in server.task_instances("sched_params", run_id).items()}
    assert states["everyone__all.export_tiktok"] == "skipped"
    assert states["everyone__all.export_criteo"] == "success"
    after = _requests(fakes, "criteo", "tiktok_ads")
    assert after["tiktok_ads"] == before["tiktok_ads"] and after["criteo"] > before["criteo"]
    manifest = params_airflow.manifest("sched_params", run_id)
    assert manifest["params"] == {"dry_run": False, "sample_size": 25, "destinations": ["criteo"]}
    assert destination_of(manifest, "all", "tiktok")["skipped"]
    criteo = destination_of(manifest, "all", "criteo")
    audience = criteo["location"].split(":", 1)[1]
    assert criteo["rows_sent"] <= 25
    assert len(fakes["criteo"].received_rows("add", audience)) == criteo["rows_sent"]


def test_scheduler_asset_event_starts_the_campaign(real_airflow):
    server = real_airflow.server
    real_airflow.add_campaign(ASSET["name"], ASSET)
    server.unpause("sched_asset")

    def source_asset() -> dict[str, Any] | None:
        found = server.api("GET", "/assets", params={"uri_pattern": "x-warehouse://sample"})
        return next((a for a in found["assets"] if a["uri"] == SOURCE_ASSET), None)

    asset = server.wait_for("the source asset to be registered", source_asset, 120)
    assert server.api("GET", "/dags/sched_asset/dagRuns")["dag_runs"] == []
    server.api("POST", "/assets/events", json={"asset_id": asset["id"], "extra": {"by": "test"}})

    def started() -> list[dict[str, Any]]:
        return server.api("GET", "/dags/sched_asset/dagRuns")["dag_runs"]

    (run,) = server.wait_for("the asset-triggered run", started, 120)
    assert run["run_type"] == "asset_triggered"
    assert server.wait_run("sched_asset", run["dag_run_id"])["state"] == "success"
    # The export announced its delivery on its own asset, for downstream DAGs.
    events = server.api("GET", "/assets/events", params={"source_dag_id": "sched_asset"})
    (event,) = [e for e in events["asset_events"] if e["source_run_id"] == run["dag_run_id"]]
    assert event["uri"] == "x-campaign-sync://sched_asset/review"
    assert event["extra"]["rows_sent"] > 0 and event["extra"]["dry_run"] is False


def test_scheduler_pool_keeps_two_campaigns_under_the_account_concurrency(real_airflow):
    server, attentive = real_airflow.server, real_airflow.fakes["attentive"]
    pool = pool_name("sched_attentive")
    for doc in POOLED:
        real_airflow.add_campaign(doc["name"], doc)
    slots = server.api("GET", f"/pools/{pool}")["slots"]
    assert slots == 2  # Attentive's declared concurrency
    attentive.slow_seconds, attentive.concurrency_limit = 0.5, slots
    attentive.max_in_flight = attentive.throttled = 0
    try:
        for doc in POOLED:
            server.unpause(doc["name"])
        runs = {doc["name"]: server.trigger(doc["name"]) for doc in POOLED}
        for dag_id, run_id in runs.items():
            assert server.wait_run(dag_id, run_id)["state"] == "success"
    finally:
        attentive.slow_seconds, attentive.concurrency_limit = 0.0, None
    assert 1 <= attentive.max_in_flight <= slots
    assert attentive.throttled == 0
    for dag_id, run_id in runs.items():
        tis = server.task_instances(dag_id, run_id)
        exports = [ti for t, ti in tis.items() if ".export_" in t]
        assert len(exports) == 3 and {ti["pool"] for ti in exports} == {pool}
        manifest = real_airflow.manifest(dag_id, run_id)
        sent = sum(
            g["destinations"]["sms"]["rows_sent"]
            for g in manifest["sub_audiences"]["everyone"]["treatment_groups"].values()
        )
        assert sent > 0


def test_scheduler_pool_missing_is_named_at_run_start(real_airflow):
    """A run whose export pool does not exist says so in its note as it starts (the scheduler's
    listener), waits with the export unscheduled, and finishes once the pool is created."""
    server, attentive = real_airflow.server, real_airflow.fakes["attentive"]
    pool = "sched_pool_not_created"
    doc = scheduler_campaign(
        "sched_pool_missing",
        [{"name": "all", "percentage": 100, "destinations": ["sms"]}],
        {"sms": {**ATTENTIVE, "pool": pool}},
    )
    assert server.api("GET", f"/pools/{pool}", expect=None).get("name") != pool
    write_campaign(real_airflow.campaigns, doc["name"], doc)  # no pool created, unlike add_campaign
    server.unpause(doc["name"])
    run_id = server.trigger(doc["name"])
    group = group_id_for("everyone", "all")
    export = RunLayout.export_task_id(group, "sms")

    def waiting() -> dict[str, Any] | None:
        run = server.run(doc["name"], run_id)
        tis = server.task_instances(doc["name"], run_id)
        upstream_done = tis[RunLayout.project_task_id(group)]["state"] == "success"
        return run if run.get("note") and upstream_done else None

    run = server.wait_for("the missing-pool note", waiting, 120)
    assert "campaign-sync: pools." in run["note"] and f"`{pool}` does not exist" in run["note"]
    assert export in run["note"] and "campaign-sync pools" in run["note"]
    sent_before = len(attentive.received)
    assert server.task_instances(doc["name"], run_id)[export]["state"] in ("scheduled", None)
    assert server.run(doc["name"], run_id)["state"] == "running"
    # Created as `campaign-sync pools` would: with the slots the export takes (its batches in
    # flight); a pool with fewer would hold it unscheduled for good.
    assert real_airflow.ensure_pools(doc) == {pool: 2}
    run = server.wait_run(doc["name"], run_id)
    assert run["state"] == "success"
    assert len(attentive.received) > sent_before
    # Past the wait, the note gives the run's counts instead.
    assert "campaign-sync: pools." not in run["note"]
    assert "campaign-sync: run counts" in run["note"]
