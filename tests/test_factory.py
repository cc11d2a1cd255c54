"""DAG integrity: the factory turns campaign files into the expected DAGs, and bad files into
visible failing DAGs, without touching data libraries at parse time."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
from helpers import REPO, sample_doc, write_campaign

SAMPLE_GROUPS = {
    "active__control": [],
    "active__treatment": ["klaviyo", "attentive", "criteo", "review_files", "journey_files"],
    "cooling_down__control": [],
    "cooling_down__treatment": [
        "klaviyo",
        "attentive",
        "criteo",
        "review_files",
        "journey_files",
    ],
    "at_risk__control": [],
    "at_risk__treatment": [
        "klaviyo",
        "attentive",
        "criteo",
        "tiktok",
        "facebook",
        "review_files",
        "winback_s3",
    ],
    "other_at_risk__email_only": ["klaviyo"],
}


def _dagbag():
    from airflow.dag_processing.dagbag import DagBag

    # The campaign DAG file only: dags/ also holds the maintenance DAG.
    return DagBag(dag_folder=str(REPO / "dags" / "campaign_sync_dags.py"))


def test_sample_dag_loads_without_import_errors():
    bag = _dagbag()
    assert bag.import_errors == {}
    assert set(bag.dag_ids) == {"lifecycle_winback"}


def test_sample_dag_structure():
    dag = _dagbag().dags["lifecycle_winback"]
    expected = {"build_audience", "write_manifest"}
    for group, destinations in SAMPLE_GROUPS.items():
        expected.add(f"{group}.project")
        expected.update(f"{group}.export_{d}" for d in destinations)
    assert set(dag.task_dict) == expected
    assert set(dag.task_group.children) == {"build_audience", "write_manifest", *SAMPLE_GROUPS}

    audience = dag.get_task("build_audience")
    assert audience.downstream_task_ids == {f"{g}.project" for g in SAMPLE_GROUPS}
    for group, destinations in SAMPLE_GROUPS.items():
        project = dag.get_task(f"{group}.project")
        exports = {f"{group}.export_{d}" for d in destinations}
        assert project.downstream_task_ids == (exports or {"write_manifest"})
        for export in exports:
            assert dag.get_task(export).downstream_task_ids == {"write_manifest"}
    assert dag.get_task("write_manifest").downstream_task_ids == set()


def test_sample_dag_settings_and_docs():
    from airflow.sdk import CronTriggerTimetable

    dag = _dagbag().dags["lifecycle_winback"]
    assert set(dag.tags) == {"campaign-sync", "lifecycle", "sample"}
    assert dag.max_active_runs == 1
    assert dag.catchup is False
    assert isinstance(dag.timetable, CronTriggerTimetable)
    assert dag.start_date.year == 2026 and dag.start_date.month == 11
    task = dag.get_task("build_audience")
    assert task.owner == "crm-data"
    assert task.retries == 2
    assert task.retry_exponential_backoff
    assert task.retry_delay.total_seconds() == 30
    # The plan is readable in the UI: sub-audiences, groups, percentages, destinations, attributes.
    for text in ("| active |", "cooling down", "| 90 |", "control", "tiktok_ads", "email -> EMAIL"):
        assert text in dag.doc_md
    # Export operators by kind: a dry-run platform is visibly one; the local folder writes files.
    from campaign_sync.operators.export import DryRunExportOperator, LocalExportOperator

    tiktok = dag.get_task("at_risk__treatment.export_tiktok")
    assert isinstance(tiktok, DryRunExportOperator) and tiktok.dry_run
    assert tiktok.task_display_name == "export_tiktok (dry run)"
    assert not tiktok.outlets and tiktok.pool == "default_pool"
    review = dag.get_task("active__treatment.export_review_files")
    assert isinstance(review, LocalExportOperator) and not review.dry_run


def test_bad_campaign_is_a_visible_failing_dag_and_others_still_load(campaigns_dir: Path):
    write_campaign(campaigns_dir, "good", sample_doc())
    bad = sample_doc()
    bad["name"] = "broken_one"
    bad["sub_audiences"][0]["treatment_groups"][1]["percentage"] = 80
    write_campaign(campaigns_dir, "broken", bad)
    write_campaign(campaigns_dir, "garbled", "name: [unclosed\n  sub_audiences: {")

    bag = _dagbag()
    assert bag.import_errors == {}
    assert set(bag.dag_ids) == {"lifecycle_winback", "broken_one", "invalid_campaign__garbled"}

    broken = bag.dags["broken_one"]
    assert "invalid-campaign" in broken.tags
    assert broken.description.startswith("INVALID campaign file broken.yaml")
    assert "sub_audiences[0].treatment_groups" in broken.doc_md
    assert "sum to 90" in broken.doc_md
    assert broken.timetable.can_be_scheduled is False
    assert list(broken.task_dict) == ["campaign_is_invalid"]

    from airflow.sdk.exceptions import AirflowFailException

    with pytest.raises(AirflowFailException, match=re.escape("broken.yaml: campaign 'broken_one'")):
        broken.get_task("campaign_is_invalid").execute({})

    garbled = bag.dags["invalid_campaign__garbled"]
    assert "YAML error" in garbled.doc_md


def test_duplicate_campaign_name_refuses_both_files(campaigns_dir: Path):
    write_campaign(campaigns_dir, "a_first", sample_doc())
    write_campaign(campaigns_dir, "b_second", sample_doc())
    bag = _dagbag()
    assert bag.import_errors == {}
    # Both files are invalid; the contested id shows the first one's error, never a valid DAG.
    assert set(bag.dag_ids) == {"lifecycle_winback", "invalid_campaign__b_second"}
    first, second = bag.dags["lifecycle_winback"], bag.dags["invalid_campaign__b_second"]
    assert "invalid-campaign" in first.tags and "invalid-campaign" in second.tags
    assert "also claimed by" in first.doc_md and "b_second.yaml" in first.doc_md
    assert "also claimed by" in second.doc_md and "a_first.yaml" in second.doc_md


def test_parse_imports_no_data_libraries(campaigns_dir: Path):
    write_campaign(campaigns_dir, "good", sample_doc())
    code = (
        "import runpy, sys, json;"
        f"ns = runpy.run_path({str(REPO / 'dags' / 'campaign_sync_dags.py')!r});"
        "print(json.dumps({'dags': sorted(k for k in ns if k == 'lifecycle_winback'),"
        " 'heavy': sorted(m for m in ('pandas', 'pyarrow', 'duckdb') if m in sys.modules)}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=os.environ
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"dags": ["lifecycle_winback"], "heavy": []}


def test_parsing_for_one_task_builds_only_that_dag(campaigns_dir: Path, monkeypatch):
    from campaign_sync.factory import build_dags

    other = sample_doc()
    other["name"] = "second campaign"
    write_campaign(campaigns_dir, "one", sample_doc())
    write_campaign(campaigns_dir, "two", other)
    assert set(build_dags()) == {"lifecycle_winback", "second_campaign"}
    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", "second_campaign")
    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_TASK_ID", "build_audience")
    assert set(build_dags()) == {"second_campaign"}


def test_campaigns_dir_setting_is_honoured(campaigns_dir: Path):
    doc = sample_doc()
    doc["name"] = "Spring Sale 2027!"
    write_campaign(campaigns_dir, "spring", doc)
    assert set(_dagbag().dag_ids) == {"spring_sale_2027"}


def test_schedule_args():
    from campaign_sync.factory import schedule_args
    from campaign_sync.spec.model import Schedule

    assert schedule_args(None)["schedule"] is None
    once = schedule_args(Schedule(cron="@once", start_date="2026-01-01"))
    assert once["schedule"] == "@once" and once["end_date"] is None
    daily = schedule_args(
        Schedule(cron="@daily", start_date="2026-01-01", max_runs=3, timezone="UTC")
    )
    # Runs on Jan 1, 2 and 3: the third fire time is the last logical date.
    assert daily["end_date"].replace(tzinfo=None) == datetime(2026, 1, 3)
    assert daily["schedule"].expression == "0 0 * * *"
    weekly = schedule_args(
        Schedule(cron="0 6 * * 1", start_date="2026-11-02", end_date="2026-12-31", catchup=True)
    )
    assert weekly["catchup"] is True
    assert weekly["end_date"].replace(tzinfo=None) == datetime(2026, 12, 31)
    ny = schedule_args(
        Schedule(cron="0 6 * * *", start_date="2026-11-02", timezone="America/New_York")
    )
    assert str(ny["start_date"].tzinfo) == "America/New_York"


def test_dag_docs_show_operation_and_campaign_file(campaigns_dir):
    """The docs give the schedule and timezone, retries, each destination's connection,
    options and output, and the campaign file itself (capped)."""
    from campaign_sync.docs import MAX_CAMPAIGN_FILE_CHARS, plan_markdown
    from campaign_sync.plan import build_plan
    from campaign_sync.spec.loader import load_file

    doc = sample_doc()
    doc["alerts"] = {
        "email": {"smtp_conn_id": "smtp_alerts", "to": ["crm@example.com"]},
        "thresholds": {"audience_change": {"max_percent": 50, "action": "fail"}},
    }
    path = write_campaign(campaigns_dir, "docs", doc)
    text = plan_markdown(build_plan(load_file(path)), path)
    assert "`0 6 * * 1` in timezone **America/New_York**" in text
    assert "- retries: 2 per task, 30s apart (doubling up to 1800s)" in text
    assert '| winback_s3 | `campaign_sync_demo_s3` | {"bucket": "campaign-sync-demo"' in text
    assert "`s3://campaign-sync-demo/winback` |" in text
    assert "email alerts on failure through SMTP connection `smtp_alerts`" in text
    assert "audience size change against the last successful run above 50% -> fail" in text
    assert "history/manifest.json`" in text
    assert "```yaml\nname: lifecycle_winback" in text and text.rstrip().endswith("```")

    big = path.read_text() + "#" * (2 * MAX_CAMPAIGN_FILE_CHARS) + "\n"
    path.write_text(big)
    capped = plan_markdown(build_plan(load_file(path)), path)
    assert f"# ... cut at {MAX_CAMPAIGN_FILE_CHARS} characters" in capped
    assert len(capped) < len(text) + MAX_CAMPAIGN_FILE_CHARS
