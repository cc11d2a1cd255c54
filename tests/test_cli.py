"""The ``campaign-sync`` command: in-process through ``main``, and via the console script."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from campaign_sync import cli
from campaign_sync.layout import RunLayout
from helpers import REPO, SAMPLE_CAMPAIGN, sample_doc, write_campaign

CONSOLE_SCRIPT = REPO / ".venv" / "bin" / "campaign-sync"
COMMITTED_SCHEMA = REPO / "include" / "campaign.schema.json"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run the command in-process; a ``SystemExit(message)`` behaves as it does in a process."""
    try:
        code = cli.main(list(argv))
    except SystemExit as exc:
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
            code = 1
        else:
            code = exc.code or 0
    out, err = capsys.readouterr()
    return code, out, err


def run_script(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CONSOLE_SCRIPT), *argv],
        capture_output=True,
        text=True,
        check=False,
        env=os.environ.copy(),
        timeout=60,
    )


def bad_doc(name: str = "broken") -> dict:
    doc = sample_doc()
    doc["name"] = name
    doc["sub_audiences"][0]["treatment_groups"][1]["colour"] = "red"
    return doc


BAD_FIELD = "sub_audiences[0].treatment_groups[1].colour"


# --- the console script -----------------------------------------------------------------------


def test_console_script_validates_the_sample_folder() -> None:
    result = run_script("validate", str(SAMPLE_CAMPAIGN.parent))

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"ok: {SAMPLE_CAMPAIGN} (campaign 'lifecycle_winback', DAG lifecycle_winback)",
        "1 valid, 0 invalid",
    ]
    assert result.stderr == ""


def test_console_script_fails_on_a_bad_folder_and_an_unknown_plan(campaigns_dir: Path) -> None:
    bad = write_campaign(campaigns_dir, "broken", bad_doc())

    result = run_script("validate")

    assert result.returncode == 1
    assert f"{bad}: campaign 'broken': {BAD_FIELD}: unknown key" in result.stderr
    assert result.stdout.splitlines()[-1] == "0 valid, 1 invalid"

    result = run_script("plan", "no_such_campaign")

    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"no campaign named 'no_such_campaign' in {campaigns_dir} (valid: none)"
    )


def test_console_script_usage_error() -> None:
    result = run_script("frobnicate")

    assert result.returncode == 2
    assert "invalid choice: 'frobnicate'" in result.stderr


# --- validate ---------------------------------------------------------------------------------


def test_validate_sample_folder(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "validate", str(SAMPLE_CAMPAIGN.parent))

    assert code == 0
    assert out.splitlines() == [
        f"ok: {SAMPLE_CAMPAIGN} (campaign 'lifecycle_winback', DAG lifecycle_winback)",
        "1 valid, 0 invalid",
    ]
    assert err == ""


def test_validate_defaults_to_the_campaigns_folder(
    capsys: pytest.CaptureFixture[str], campaigns_dir: Path
) -> None:
    good = write_campaign(campaigns_dir, "mine", {**sample_doc(), "name": "Mine"})

    code, out, _ = run(capsys, "validate")

    assert code == 0
    assert out.splitlines() == [f"ok: {good} (campaign 'Mine', DAG mine)", "1 valid, 0 invalid"]


def test_validate_folder_with_one_good_and_one_bad_file(
    capsys: pytest.CaptureFixture[str], campaigns_dir: Path
) -> None:
    good = write_campaign(campaigns_dir, "a_good", sample_doc())
    bad = write_campaign(campaigns_dir, "b_bad", bad_doc())

    code, out, err = run(capsys, "validate", str(campaigns_dir))

    assert code == 1
    assert out.splitlines() == [
        f"ok: {good} (campaign 'lifecycle_winback', DAG lifecycle_winback)",
        "1 valid, 1 invalid",
    ]
    assert err.splitlines() == [f"{bad}: campaign 'broken': {BAD_FIELD}: unknown key"]


def test_validate_reports_duplicates(
    capsys: pytest.CaptureFixture[str], campaigns_dir: Path
) -> None:
    first = write_campaign(campaigns_dir, "a", sample_doc())
    second = write_campaign(campaigns_dir, "b", sample_doc())

    code, out, err = run(capsys, "validate")

    assert code == 1
    assert out.splitlines()[-1] == "0 valid, 2 invalid"
    claimed = "rename one campaign (no file takes an id from another)"
    assert err.splitlines() == [
        f"{first}: campaign 'lifecycle_winback': name: DAG id 'lifecycle_winback' is also "
        f"claimed by {second}; {claimed}",
        f"{second}: campaign 'lifecycle_winback': name: DAG id 'lifecycle_winback' is also "
        f"claimed by {first}; {claimed}",
    ]


def test_validate_single_bad_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = write_campaign(tmp_path, "bad", bad_doc())

    code, out, err = run(capsys, "validate", str(bad))

    assert code == 1
    assert out == ""
    assert err.splitlines() == [f"{bad}: campaign 'broken': {BAD_FIELD}: unknown key"]


def test_validate_single_file_with_a_contract_problem(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    doc = sample_doc()
    doc["destinations"]["criteo"]["attributes"]["given_name"] = "first_name"
    bad = write_campaign(tmp_path, "criteo", doc)

    code, _, err = run(capsys, "validate", str(bad))

    assert code == 1
    assert err.splitlines() == [
        f"{bad}: campaign 'lifecycle_winback': destinations.criteo.attributes: "
        "Criteo does not accept first_name; allowed: email"
    ]


def test_validate_single_good_file(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "validate", str(SAMPLE_CAMPAIGN))

    assert (code, out, err) == (0, f"ok: {SAMPLE_CAMPAIGN}\n", "")


def test_validate_missing_path(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"

    code, out, err = run(capsys, "validate", str(missing))

    assert code == 1
    assert out == ""
    assert err == f"{missing}: no such file or folder\n"


# --- plan -------------------------------------------------------------------------------------

SAMPLE_PLAN = """\
  build_audience
  [active__control] active / control 10%  control: recorded, not sent
    project
  [active__treatment] active / treatment 90%
    project
    export_klaviyo  (klaviyo, dry run)
    export_attentive  (attentive, dry run)
    export_criteo  (criteo, dry run)
    export_review_files  (local, local)
    export_journey_files  (sftp, campaign_sync_demo_sftp)
  [cooling_down__control] cooling down / control 10%  control: recorded, not sent
    project
  [cooling_down__treatment] cooling down / treatment 90%
    project
    export_klaviyo  (klaviyo, dry run)
    export_attentive  (attentive, dry run)
    export_criteo  (criteo, dry run)
    export_review_files  (local, local)
    export_journey_files  (sftp, campaign_sync_demo_sftp)
  [at_risk__control] at risk / control 10%  control: recorded, not sent
    project
  [at_risk__treatment] at risk / treatment 90%
    project
    export_klaviyo  (klaviyo, dry run)
    export_attentive  (attentive, dry run)
    export_criteo  (criteo, dry run)
    export_tiktok  (tiktok_ads, dry run)
    export_facebook  (facebook_ads, dry run)
    export_review_files  (local, local)
    export_winback_s3  (s3, campaign_sync_demo_s3)
  [other_at_risk__email_only] other at risk / email only 100%
    project
    export_klaviyo  (klaviyo, dry run)
  write_manifest
"""


@pytest.mark.parametrize(
    "name", ["lifecycle_winback", str(SAMPLE_CAMPAIGN)], ids=["by name", "by path"]
)
def test_plan_prints_the_dag(capsys: pytest.CaptureFixture[str], name: str) -> None:
    code, out, err = run(capsys, "plan", name)

    assert code == 0, err
    assert out == f"DAG lifecycle_winback  (from {SAMPLE_CAMPAIGN})\n" + SAMPLE_PLAN
    assert "Audience query" not in out


def test_plan_finds_a_campaign_by_name_dag_id_or_file_stem(
    capsys: pytest.CaptureFixture[str], campaigns_dir: Path
) -> None:
    path = write_campaign(campaigns_dir, "winback_file", {**sample_doc(), "name": "Win Back!"})

    for name in ("Win Back!", "win_back", "winback_file"):
        code, out, err = run(capsys, "plan", name)
        assert code == 0, err
        assert out.splitlines()[0] == f"DAG win_back  (from {path})"


def test_plan_prints_the_task_ids_the_dag_uses(
    capsys: pytest.CaptureFixture[str], campaigns_dir: Path
) -> None:
    doc = sample_doc()
    doc["destinations"]["Review Files"] = doc["destinations"].pop("review_files")
    for sub in doc["sub_audiences"]:
        for group in sub["treatment_groups"]:
            group["destinations"] = [
                "Review Files" if d == "review_files" else d for d in group.get("destinations", [])
            ]
    write_campaign(campaigns_dir, "spaced", doc)

    code, out, err = run(capsys, "plan", "lifecycle_winback")

    assert code == 0, err
    task_id = RunLayout.export_task("Review Files")
    assert task_id == "export_review_files"
    assert out.count(f"    {task_id}  (local, local)\n") == 3


def test_plan_with_sql(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "plan", "lifecycle_winback", "--sql")

    assert code == 0, err
    assert out.startswith(f"DAG lifecycle_winback  (from {SAMPLE_CAMPAIGN})\n" + SAMPLE_PLAN)
    query = out.split("\nAudience query pushed down to the source:\n", 1)[1]
    assert query.splitlines() == [
        "SELECT",
        "  customer_id AS __cid,",
        "  email,",
        "  given_name,",
        "  surname,",
        "  phone,",
        "  predicted_clv,",
        "  apple_ad_id,",
        "  android_ad_id,",
        "  city,",
        "  state,",
        "  postal,",
        "  country,",
        "  gender,",
        "  birthdate,",
        "  lifecycle_status,",
        "  CASE WHEN (lifecycle_status = 'active') THEN 1 ELSE 0 END AS __sa_0,",
        "  CASE WHEN (lifecycle_status = 'cooling down') THEN 1 ELSE 0 END AS __sa_1,",
        "  CASE WHEN (lifecycle_status = 'at risk' AND is_high_value) THEN 1 ELSE 0 END AS __sa_2",
        "FROM (SELECT * FROM merged_customers WHERE (lifecycle_status IN ('active', "
        "'cooling down', 'at risk')) AND NOT COALESCE((NOT email_opt_in AND NOT sms_opt_in), "
        "FALSE)) campaign_audience",
    ]


def test_plan_with_sql_source(capsys: pytest.CaptureFixture[str], campaigns_dir: Path) -> None:
    doc = sample_doc()
    doc["source"] = {
        "conn_id": "warehouse",
        "customer_id": "id",
        "sql": "SELECT * FROM customers WHERE active",
    }
    doc["destinations"] = {"files": {"type": "local", "attributes": {"id": "id", "email": "e"}}}
    groups = [g for s in doc["sub_audiences"] for g in s["treatment_groups"]]
    for g in [*groups, *doc["remaining"]["treatment_groups"]]:
        if not g.get("control"):
            g["destinations"] = ["files"]
    write_campaign(campaigns_dir, "sql_source", doc)

    code, out, err = run(capsys, "plan", "lifecycle_winback", "--sql")

    assert code == 0, err
    assert "    export_files  (local, local)\n" in out
    assert out.rstrip("\n").endswith(
        "  id AS __cid,\n  email,\n"
        "  CASE WHEN (lifecycle_status = 'active') THEN 1 ELSE 0 END AS __sa_0,\n"
        "  CASE WHEN (lifecycle_status = 'cooling down') THEN 1 ELSE 0 END AS __sa_1,\n"
        "  CASE WHEN (lifecycle_status = 'at risk' AND is_high_value) THEN 1 ELSE 0 END AS "
        "__sa_2\nFROM (SELECT * FROM customers WHERE active) campaign_audience"
    )


_SIZE = re.compile(r"^  \[(\S+)\] .*  \[(\d+) customers\]$")
_AUDIENCE = re.compile(
    r"^audience: (\d+) customers, (\d+) unassigned, (\d+) rows without a customer id$"
)


def _counts(out: str) -> tuple[dict[str, int], int, int]:
    lines = out.splitlines()
    audience = [m for m in map(_AUDIENCE.match, lines) if m]
    assert len(audience) == 1, out
    sizes = {m.group(1): int(m.group(2)) for m in map(_SIZE.match, lines) if m}
    return sizes, int(audience[0].group(1)), int(audience[0].group(2))


def test_plan_counts(capsys: pytest.CaptureFixture[str], sample_db: Path) -> None:
    code, out, err = run(capsys, "plan", "lifecycle_winback", "--counts")

    assert code == 0, err
    sizes, audience, unassigned = _counts(out)
    assert list(sizes) == [
        "active__control",
        "active__treatment",
        "cooling_down__control",
        "cooling_down__treatment",
        "at_risk__control",
        "at_risk__treatment",
        "other_at_risk__email_only",
    ]
    assert audience > 0
    assert unassigned == 0  # the sample has a remaining sub-audience
    assert sum(sizes.values()) + unassigned == audience
    assert all(size > 0 for size in sizes.values())
    # 10% control groups: within a few points of a tenth of their sub-audience.
    for sub in ("active", "cooling_down", "at_risk"):
        control, treatment = sizes[f"{sub}__control"], sizes[f"{sub}__treatment"]
        assert 0.07 < control / (control + treatment) < 0.13, sub


def test_plan_counts_with_unassigned_customers(
    capsys: pytest.CaptureFixture[str], sample_db: Path, campaigns_dir: Path
) -> None:
    doc = sample_doc()
    del doc["remaining"]
    write_campaign(campaigns_dir, "no_remaining", doc)

    code, out, err = run(capsys, "plan", "lifecycle_winback", "--counts")

    assert code == 0, err
    sizes, audience, unassigned = _counts(out)
    assert len(sizes) == 6
    assert unassigned > 0
    assert sum(sizes.values()) + unassigned == audience


def test_plan_unknown_campaign(capsys: pytest.CaptureFixture[str], campaigns_dir: Path) -> None:
    write_campaign(campaigns_dir, "winback", sample_doc())

    code, out, err = run(capsys, "plan", "nope")

    assert code == 1
    assert out == ""
    assert err == f"no campaign named 'nope' in {campaigns_dir} (valid: lifecycle_winback)\n"


def test_plan_invalid_campaign_shows_its_problems(
    capsys: pytest.CaptureFixture[str], campaigns_dir: Path
) -> None:
    bad = write_campaign(campaigns_dir, "broken_file", bad_doc())

    for name in ("broken", "broken_file", str(bad)):
        code, out, err = run(capsys, "plan", name)
        assert code == 1, name
        assert out == "", name
        assert err == f"{bad}: campaign 'broken': {BAD_FIELD}: unknown key\n", name


# --- schema -----------------------------------------------------------------------------------


@pytest.fixture
def committed_schema() -> Iterator[bytes]:
    """The committed schema's bytes, checked unchanged after the test."""
    before = COMMITTED_SCHEMA.read_bytes()
    yield before
    assert COMMITTED_SCHEMA.read_bytes() == before, "a test modified the committed schema"


def test_schema_check_passes_on_the_committed_schema(
    capsys: pytest.CaptureFixture[str], committed_schema: bytes
) -> None:
    assert cli.SCHEMA_PATH == COMMITTED_SCHEMA

    code, out, err = run(capsys, "schema", "--check")

    assert (code, out, err) == (0, "", "")


def test_schema_output_writes_the_committed_schema(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, committed_schema: bytes
) -> None:
    target = tmp_path / "schema.json"

    code, out, err = run(capsys, "schema", "--output", str(target))

    assert (code, out, err) == (0, f"wrote {target}\n", "")
    assert target.read_bytes() == committed_schema


def test_schema_check_fails_on_a_stale_schema(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    committed_schema: bytes,
) -> None:
    stale = tmp_path / "campaign.schema.json"
    stale.write_text('{"title": "Campaign"}\n')
    monkeypatch.setattr(cli, "SCHEMA_PATH", stale)

    code, out, err = run(capsys, "schema", "--check")

    assert code == 1
    assert out == ""
    assert err == f"{stale} is out of date: run campaign-sync schema\n"

    # Regenerating it (the default output is SCHEMA_PATH) makes the check pass.
    assert run(capsys, "schema") == (0, f"wrote {stale}\n", "")
    assert stale.read_bytes() == committed_schema
    assert run(capsys, "schema", "--check") == (0, "", "")


def test_schema_check_fails_when_the_schema_is_missing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "missing.json"
    monkeypatch.setattr(cli, "SCHEMA_PATH", missing)

    code, _, err = run(capsys, "schema", "--check")

    assert code == 1
    assert err == f"{missing} is out of date: run campaign-sync schema\n"
    assert not missing.exists()


def _manifest(run_id: str, logical_date: str | None, run_after: str, completed_at: str) -> dict:
    return {
        "campaign": "lifecycle_winback",
        "dag_id": "lifecycle_winback",
        "run_id": run_id,
        "logical_date": logical_date,
        "run_after": run_after,
        "completed_at": completed_at,
        "audience_size": 0,
        "unassigned": 0,
        "rows_without_customer_id": 0,
        "sub_audiences": {},
        "recipients_history": f"{run_id}/recipients.parquet",
    }


def test_summary_latest_goes_by_run_times_not_file_times(capsys, staging_root):
    """A backfill run late for old dates: the newest file is not the newest run."""
    from campaign_sync.layout import RunLayout

    MANIFEST_FILE = RunLayout.MANIFEST_FILE

    runs = [
        # (run id, logical date, run_after, completed), written in this order
        ("scheduled__2026-11-30", "2026-11-30T11:00:00+00:00", "2026-12-01T11:00:00+00:00",
         "2026-12-01T11:05:00+00:00"),
        # A manual run has no logical date: it counts from when it was due (run_after).
        ("manual__2026-12-01", None, "2026-12-01T15:00:00+00:00", "2026-12-01T15:02:00+00:00"),
        ("backfill__2026-11-02", "2026-11-02T06:00:00-05:00", "2026-11-02T11:00:00+00:00",
         "2026-12-02T09:00:00+00:00"),
        ("backfill__2026-11-09", "2026-11-09T06:00:00-05:00", "2026-11-09T11:00:00+00:00",
         "2026-12-02T09:01:00+00:00"),
    ]  # fmt: skip
    for number, (run_id, logical, run_after, completed) in enumerate(runs):
        path = staging_root / "lifecycle_winback" / run_id / "history" / MANIFEST_FILE
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(_manifest(run_id, logical, run_after, completed)))
        os.utime(path, (1_800_000_000 + number, 1_800_000_000 + number))

    code, out, _ = run(capsys, "summary", "--latest", "lifecycle_winback")
    assert code == 0
    assert "run manual__2026-12-01" in out.splitlines()[0]

    # Without the manual run, the newest logical date wins over two later-written backfills.
    shutil.rmtree(staging_root / "lifecycle_winback" / "manual__2026-12-01")
    code, out, _ = run(capsys, "summary", "--latest", "lifecycle_winback")
    assert code == 0
    assert "run scheduled__2026-11-30" in out.splitlines()[0]
