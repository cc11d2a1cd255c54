"""Klaviyo export against a local server following Klaviyo's documented contract."""

from __future__ import annotations

import json
import logging
import os
from datetime import date
from decimal import Decimal
from urllib.parse import quote, quote_plus

import pytest
from campaign_sync.hooks.klaviyo import KlaviyoHook
from campaign_sync.operators.audience_export import PlatformExportOperator as KlaviyoExportOperator
from campaign_sync.platforms.client import PlatformError
from fakes.klaviyo import FakeKlaviyo
from platform_support import (
    one_group_plan,
    real_time,
    run_export,
    set_connection,
    small_batches,
)

ATTRIBUTES = {
    "email": "email",
    "given_name": "first_name",
    "mobile": "phone_number",
    "predicted_clv": "predicted_clv",
}
LIST_NAME = "platform test - everyone - treatment"
IMPORT = ("POST", "/api/profile-bulk-import-jobs")


def rows(n: int, start: int = 0) -> list[dict]:
    """Projected rows: destination attribute names, some optional values missing."""
    return [
        {
            "__customer_id": f"C{i:06d}",
            "email": f"user{i}@example.com",
            "first_name": f"Fn{i:05d}x",
            "phone_number": f"+1555{i:07d}" if i % 3 == 0 else None,
            "predicted_clv": float(i) if i % 2 == 0 else None,
        }
        for i in range(start, start + n)
    ]


def plan(options: dict | None = None):
    return one_group_plan("klaviyo", ATTRIBUTES, options)


@pytest.fixture
def klaviyo(monkeypatch, staging_root):
    fake = FakeKlaviyo()
    url = fake.start()
    set_connection(
        monkeypatch, "plat", "klaviyo", host=url, password=fake.api_key,
        extra={"revision": "2025-10-15", "timeout": 2, "max_attempts": 4},
    )  # fmt: skip
    # Small batches make several jobs out of small test data; jobs are polled quickly.
    small_batches(monkeypatch, KlaviyoHook, 100)
    monkeypatch.setattr(KlaviyoHook, "poll_interval", 0.02)
    yield fake
    fake.stop()


def members(fake: FakeKlaviyo) -> set[str]:
    (members_,) = fake.members.values()
    return set(members_)


def emails(data: list[dict]) -> set[str]:
    return {r["email"] for r in data}


def imports(fake: FakeKlaviyo) -> list:
    return [r for r in fake.requests if (r.method, r.path) == IMPORT]


def test_add_sends_every_row_once_in_batches(klaviyo):
    data = rows(450)
    result = run_export(KlaviyoExportOperator, plan(), "r1", data)
    assert result["rows_sent"] == 450 and result["batches"] == 5 and result["mode"] == "add"
    assert result["platform_invalid"] == 0
    assert members(klaviyo) == emails(data)
    sent = klaviyo.received_rows("add")
    assert len(sent) == 450 and len({r["email"] for r in sent}) == 450
    assert (
        max(len(r.body["data"]["attributes"]["profiles"]["data"]) for r in imports(klaviyo)) == 100
    )
    assert klaviyo.contract_errors == [] and klaviyo.limit_refusals == 0
    assert klaviyo.lists == {"Ls0001": LIST_NAME}
    # Every job was polled until Klaviyo reported it complete.
    assert all(job["polls"] == klaviyo.processing_polls + 1 for job in klaviyo.jobs.values())
    request = imports(klaviyo)[0]
    assert request.headers["authorization"] == f"Klaviyo-API-Key {klaviyo.api_key}"
    assert request.headers["revision"] == "2025-10-15"
    assert request.headers["content-type"] == "application/vnd.api+json"
    assert request.body["data"]["relationships"] == {
        "lists": {"data": [{"type": "list", "id": "Ls0001"}]}
    }


def test_profiles_carry_contract_fields_properties_and_no_nulls(klaviyo):
    data = rows(4)
    data[0]["signup"], data[1]["signup"] = date(2026, 1, 31), None
    data[0]["ltv"], data[1]["ltv"] = Decimal("12.50"), Decimal("3")
    run_export(KlaviyoExportOperator, plan(), "r1", data)
    profiles = [
        p for r in imports(klaviyo) for p in r.body["data"]["attributes"]["profiles"]["data"]
    ]
    assert profiles[0] == {
        "type": "profile",
        "attributes": {
            "email": "user0@example.com",
            "first_name": "Fn00000x",
            "phone_number": "+15550000000",
            "properties": {"predicted_clv": 0.0, "signup": "2026-01-31", "ltv": 12.5},
        },
    }
    # Missing values are left out, never sent as null (a bulk import cannot clear a field).
    assert profiles[1]["attributes"] == {
        "email": "user1@example.com",
        "first_name": "Fn00001x",
        "properties": {"ltv": 3},
    }
    assert all(b"null" not in r.raw for r in imports(klaviyo))


def test_rate_limit_headers_hold_calls_until_the_window_resets(klaviyo, monkeypatch):
    real_time(monkeypatch)  # the fake counts calls per real window
    klaviyo.steady = (3, 2.0)  # three calls per endpoint per 2 s window
    data = rows(300)
    run_export(KlaviyoExportOperator, plan(), "r1", data)
    assert members(klaviyo) == emails(data)
    assert klaviyo.limit_refusals == 0  # paused on RateLimit-Remaining 0 instead of a 429


@pytest.mark.parametrize("counts_reported", [True, False])
def test_partial_acceptance_is_counted_once_the_job_is_complete(
    klaviyo, monkeypatch, caplog, counts_reported
):
    small_batches(monkeypatch, KlaviyoHook, 250)
    klaviyo.processing_polls = 3  # counts are 0 until the job completes
    klaviyo.counts_reported = counts_reported  # else the import errors are counted
    klaviyo.inject("partial", times=1, reject=150)
    result = run_export(KlaviyoExportOperator, plan(), "r1", rows(400))
    assert result["platform_invalid"] == 150
    assert len(members(klaviyo)) == 250
    # The failed job's import errors are read (two pages of 100) by code only, never their
    # payloads; a job without failures needs no read unless Klaviyo left its count out.
    reads = [r for r in klaviyo.requests if r.path.endswith("/import-errors")]
    assert all(r.query["fields[import-error]"] == ["code"] for r in reads)
    first_job = sorted(klaviyo.jobs)[0]
    assert [r.path.split("/")[3] for r in reads] == [first_job] * 2 + (
        [] if counts_reported else [sorted(klaviyo.jobs)[1]]
    )
    assert "150 of 250 profiles failed (invalid: 150)" in caplog.text


def test_unfinished_jobs_fail_the_batch_and_the_rerun_completes(klaviyo, monkeypatch):
    data = rows(250)
    klaviyo.cancel_jobs = 1  # batch 1's job is cancelled
    with pytest.raises(PlatformError, match=r"Klaviyo \(plat\): bulk import job \w+ was cancelled"):
        run_export(KlaviyoExportOperator, plan(), "r1", data)
    set_connection(
        monkeypatch, "plat", "klaviyo", host=klaviyo.start(), password=klaviyo.api_key,
        extra={"revision": "2025-10-15", "timeout": 2, "job_timeout": 0.3},
    )  # fmt: skip
    klaviyo.processing_polls = 10**6  # never completes
    with pytest.raises(PlatformError, match=r"bulk import job \w+ not complete after 0s"):
        run_export(KlaviyoExportOperator, plan(), "r1", data)
    klaviyo.processing_polls = 1
    result = run_export(KlaviyoExportOperator, plan(), "r1", data)
    assert result["batches"] == 3 and result["batches_resumed"] == 0
    assert members(klaviyo) == emails(data)


def test_payload_bytes_are_measured_on_the_request_body(klaviyo, monkeypatch):
    small_batches(monkeypatch, KlaviyoHook, 10_000)
    # A 5 MB body takes the fake seconds to check on a loaded machine: a short client timeout
    # would resend it and count a third import.
    conn = json.loads(os.environ["AIRFLOW_CONN_PLAT"])
    conn["extra"]["timeout"] = 120
    monkeypatch.setenv("AIRFLOW_CONN_PLAT", json.dumps(conn))
    note = "n" * 440
    data = [{"__customer_id": f"C{i:06d}", "email": f"u{i:05d}@example.com", "note": note}
            for i in range(10_000)]  # fmt: skip
    # By the rows' own size this is one batch under 5 MB; the JSON:API body is over 5 MB.
    row_bytes = sum(
        len(json.dumps({k: v for k, v in r.items() if k != "__customer_id"}, separators=(",", ":")))
        for r in data
    )
    assert row_bytes < 5_000_000
    result = run_export(
        KlaviyoExportOperator,
        one_group_plan("klaviyo", {"email": "email", "note": "note"}),
        "r1",
        data,
    )
    assert result["batches"] == 1
    assert len(imports(klaviyo)) == 2
    assert all(len(r.raw) <= 5_000_000 for r in imports(klaviyo))
    assert klaviyo.contract_errors == []
    assert len(members(klaviyo)) == 10_000


def test_mirror_sends_exactly_the_joiners_and_leavers(klaviyo):
    mirror = plan({"sync_mode": "mirror"})
    first = rows(1000)
    run_export(KlaviyoExportOperator, mirror, "r1", first)
    klaviyo.received.clear()
    requests_before = len(klaviyo.requests)
    second = first[100:] + rows(100, 5000)  # 10% leave, 10% join
    result = run_export(KlaviyoExportOperator, mirror, "r2", second)
    assert (result["added"], result["removed"], result["rows_sent"]) == (100, 100, 1000)
    assert {r["email"] for r in klaviyo.received_rows("add")} == emails(second[-100:])
    assert {r["key"] for r in klaviyo.received_rows("remove")} == emails(first[:100])
    assert len(klaviyo.received_rows("add")) == 100 and len(klaviyo.received_rows("remove")) == 100
    assert members(klaviyo) == emails(second)
    # Profile ids were looked up by email (at most 100 a call), then removed by id.
    calls = klaviyo.requests[requests_before:]
    lookups = [r for r in calls if (r.method, r.path) == ("GET", "/api/profiles")]
    assert lookups and all(r.query["filter"][0].startswith("any(email,[") for r in lookups)
    assert sum(r.query["filter"][0].count("@") for r in lookups) == 100
    deletes = [r for r in calls if r.method == "DELETE"]
    assert [len(r.body["data"]) for r in deletes] == [100]
    assert klaviyo.contract_errors == [] and klaviyo.limit_refusals == 0
    # A retry of run 2 diffs against run 1 again, and resends nothing.
    klaviyo.received.clear()
    again = run_export(KlaviyoExportOperator, mirror, "r2", second)
    assert klaviyo.received == [] and again["batches_resumed"] == 2


def test_no_identifiers_in_logs(klaviyo, caplog):
    caplog.set_level(logging.DEBUG)
    mirror = plan({"sync_mode": "mirror"})
    first = rows(120)
    klaviyo.inject("throttle", retry_after=0)
    klaviyo.inject("partial", reject=2)
    run_export(KlaviyoExportOperator, mirror, "r1", first)
    klaviyo.inject("server_error")
    run_export(KlaviyoExportOperator, mirror, "r2", first[20:])  # look-ups by email, removals
    text = caplog.text
    assert "failed" in text  # the partial job was logged (by counts)
    values = [v for r in first for k, v in r.items() if v is not None and k != "predicted_clv"]
    forms = {f(str(v)) for v in values for f in (str, quote, quote_plus)}
    assert not [v for v in forms if v in text]
