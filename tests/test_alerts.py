"""Alerts: the thresholds checked between projection and export (warn or fail), the campaign's
``alerts:`` block, and email notifications received by a real local SMTP server."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from campaign_sync.alerts import (
    audience_change_finding,
    notification_callbacks,
    previous_audience_size,
    rejected_share_findings,
)
from campaign_sync.layout import RunLayout
from campaign_sync.spec.model import Alerts, AudienceChange, RejectedShare
from helpers import REPO, write_campaign
from smtp_inbox import Inbox


def _group(members: int, **rejected: int) -> dict[str, Any]:
    return {
        "members": members,
        "destinations": {name: {"rejected": n} for name, n in rejected.items()},
    }


def test_alert_rejected_share_per_destination_over_groups():
    groups = {"a": _group(100, klaviyo=30, criteo=0), "b": _group(100, klaviyo=0, criteo=0)}
    (found,) = rejected_share_findings(groups, RejectedShare(max_percent=Decimal(10)))
    assert found.check == "rejected_share" and found.action == "warn"
    assert "'klaviyo': 30 of 200 rows set aside (15.00%)" in found.message
    # At the limit is within bounds; a control group (no destination) counts for nothing.
    assert rejected_share_findings(groups, RejectedShare(max_percent=Decimal(15))) == []
    assert rejected_share_findings({"c": _group(0, klaviyo=0)}, RejectedShare(max_percent=0)) == []


def test_alert_audience_change_both_directions():
    rule = AudienceChange(max_percent=Decimal(50), action="fail")
    assert audience_change_finding(150, 100, rule) is None
    assert audience_change_finding(50, 100, rule) is None
    grown = audience_change_finding(151, 100, rule)
    assert grown and grown.action == "fail" and "(+51.00%)" in grown.message
    shrunk = audience_change_finding(40, 100, rule)
    assert shrunk and "(-60.00%)" in shrunk.message
    assert audience_change_finding(10, None, rule) is None  # nothing to compare with
    assert audience_change_finding(5, 0, rule) is not None


def test_alert_previous_audience_from_newest_other_manifest():
    def manifest(size: int, logical: str) -> str:
        return json.dumps({"audience_size": size, "logical_date": logical, "completed_at": logical})

    found = {
        "run_a/history/manifest.json": manifest(100, "2026-01-01T00:00:00+00:00"),
        "run_c/history/manifest.json": manifest(300, "2026-01-03T00:00:00+00:00"),
        "run_b/history/manifest.json": manifest(200, "2026-01-02T00:00:00+00:00"),
        "broken/history/manifest.json": "{not json",
    }
    assert previous_audience_size(found, "run_x") == 300
    assert previous_audience_size(found, "run_c") == 200  # the current run is left out
    assert previous_audience_size({}, "run_x") is None


def test_alert_block_errors_name_the_field(campaigns_dir):
    from campaign_sync.spec.loader import CampaignError, load_file
    from helpers import sample_doc

    doc = sample_doc()
    doc["alerts"] = {
        "email": {"smtp_conn_id": "smtp_alerts", "to": ["not-an-address"]},
        "thresholds": {"rejected_share": {"max_percent": 120, "action": "stop"}},
    }
    with pytest.raises(CampaignError) as caught:
        load_file(write_campaign(campaigns_dir, "bad_alerts", doc))
    text = caught.value.describe()
    assert "bad_alerts.yaml" in text and "lifecycle_winback" in text
    assert "alerts.email.to[0]: 'not-an-address' is not an email address" in text
    assert "alerts.thresholds.rejected_share.max_percent" in text
    assert "alerts.thresholds.rejected_share.action" in text


def test_alert_callbacks_are_smtp_notifiers():
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier

    alerts = Alerts.model_validate(
        {"email": {"smtp_conn_id": "smtp_alerts", "to": ["crm@example.com"], "on_success": True}}
    )
    found = notification_callbacks(alerts)
    assert set(found) == {"on_failure_callback", "on_success_callback"}
    assert all(isinstance(n, SmtpNotifier) for n in found.values())
    assert found["on_failure_callback"].smtp_conn_id == "smtp_alerts"
    assert notification_callbacks(Alerts()) == {}


# --- through Airflow: a gate before every export, and emails from real runs ---------------------


@pytest.fixture
def inbox(monkeypatch):
    box = Inbox().start()
    monkeypatch.setenv("AIRFLOW_CONN_ALERT_SMTP", json.dumps(box.connection()))
    yield box
    box.stop()


def _alert_campaign(name: str, **alerts: Any) -> dict[str, Any]:
    return {
        "name": name,
        "source": {"conn_id": "campaign_sync_sample", "table": "merged_customers"},
        "retries": {"count": 0},
        "sub_audiences": [
            {
                "name": "vip",
                "condition": "lifecycle_status = 'at risk' AND is_high_value",
                "treatment_groups": [{"name": "all", "percentage": 100, "destinations": ["files"]}],
            }
        ],
        # A dry run writes its payload under the output root; invalid emails are set aside.
        "destinations": {
            "files": {"type": "klaviyo", "dry_run": True, "attributes": {"email": "email"}}
        },
        "alerts": alerts,
    }


def _run(campaigns_dir: Path, doc: dict[str, Any], day: int):
    from airflow.dag_processing.dagbag import DagBag

    write_campaign(campaigns_dir, doc["name"], doc)
    bag = DagBag(dag_folder=str(REPO / "dags" / "campaign_sync_dags.py"))
    dag = bag.dags[doc["name"]]
    when = datetime(2026, 11, day, 12, tzinfo=UTC)
    run = dag.test(logical_date=when, run_after=when)
    return dag, run, {ti.task_id: ti.state for ti in run.get_task_instances()}


EMAIL = {
    "smtp_conn_id": "alert_smtp",
    "to": ["crm-data@example.com"],
    "from_email": "campaign-sync@example.com",
    "on_failure": True,
    "on_success": True,
}


def test_alert_threshold_fail_stops_every_export_and_emails(
    airflow_db, sample_db, campaigns_dir, staging_root, tmp_path, monkeypatch, inbox
):
    monkeypatch.setenv("CAMPAIGN_SYNC_OUTPUT_ROOT", str(tmp_path / "outputs"))
    # Every sample email is checked: some are invalid, so 0% allowed is crossed.
    doc = _alert_campaign(
        "alert_gate",
        email=EMAIL,
        thresholds={"rejected_share": {"max_percent": 0, "action": "fail"}},
    )
    dag, run, states = _run(campaigns_dir, doc, 2)
    gate = RunLayout.CHECK_THRESHOLDS
    export = RunLayout.export_task_id("vip__all", "files")
    assert dag.get_task(gate).downstream_task_ids == {export}
    assert dag.get_task("vip__all.project").downstream_task_ids == {gate, export}
    assert run.state == "failed"
    assert states[gate] == "failed" and states[export] == "upstream_failed", states
    assert not list((tmp_path / "outputs").rglob("*.*"))  # nothing was sent
    assert inbox.received.wait(10)
    (mail,) = inbox.messages
    assert mail["Subject"] == f"campaign-sync: alert_gate FAILED (run {run.run_id})"
    assert mail["To"] == "crm-data@example.com"


def test_alert_success_email_then_audience_change_fails(
    airflow_db, sample_db, campaigns_dir, staging_root, tmp_path, monkeypatch, inbox
):
    monkeypatch.setenv("CAMPAIGN_SYNC_OUTPUT_ROOT", str(tmp_path / "outputs"))
    thresholds = {
        "rejected_share": {"max_percent": 0, "action": "warn"},
        "audience_change": {"max_percent": 10, "action": "fail"},
    }
    email = {**EMAIL, "subject_on_success": "OK {{ dag.dag_id }}"}
    doc = _alert_campaign("alert_ok", email=email, thresholds=thresholds)
    _, first, states = _run(campaigns_dir, doc, 2)
    assert first.state == "success", states
    assert inbox.received.wait(10)
    assert [m["Subject"] for m in inbox.messages] == ["OK alert_ok"]
    gate = first.get_task_instance(RunLayout.CHECK_THRESHOLDS).xcom_pull(
        task_ids=RunLayout.CHECK_THRESHOLDS
    )
    size = gate["audience_size"]["current"]
    assert size > 0 and gate["audience_size"]["previous"] is None  # first run: nothing to compare
    assert [f["check"] for f in gate["findings"]] == ["rejected_share"]  # warned, still sent
    assert list((tmp_path / "outputs").rglob("*.*"))

    # The last successful run saw twice the audience: this run's -50% stops it before export.
    layout = RunLayout("alert_ok", first.run_id)
    manifest = staging_root / layout.manifest
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "audience_size": 2 * size}))
    inbox.received.clear()
    _, second, states = _run(campaigns_dir, doc, 3)
    assert second.state == "failed"
    assert states[RunLayout.CHECK_THRESHOLDS] == "failed"
    assert states[RunLayout.export_task_id("vip__all", "files")] == "upstream_failed"
    assert inbox.received.wait(10)
    assert inbox.messages[-1]["Subject"] == f"campaign-sync: alert_ok FAILED (run {second.run_id})"
