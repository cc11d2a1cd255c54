"""Attentive export against a local server following Attentive's documented v2 contract."""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from campaign_sync.destinations.audience_options import AudienceOptions
from campaign_sync.hooks.attentive import AttentiveHook
from campaign_sync.operators.attentive import AttentiveExportOperator
from campaign_sync.platforms.client import PlatformError
from fakes.attentive import FakeAttentive
from fakes.base import Response
from platform_support import one_group_plan, run_export, set_connection
from pydantic import ValidationError

NAME = "platform test - everyone - treatment"
PHONES = {"phone": "phone"}
EMAILS = {"email": "email"}
DECLARED_MAX_BATCH = AttentiveHook.max_batch_rows  # before any test patches it


def rows(n: int, start: int = 0, key: str = "phone") -> list[dict]:
    def value(i: int) -> str:
        return f"+1415{i:07d}" if key == "phone" else f"user{i}@example.com"

    return [{"__customer_id": f"C{i:06d}", key: value(i)} for i in range(start, start + n)]


@pytest.fixture
def attentive(monkeypatch, staging_root):
    fake = FakeAttentive()
    url = fake.start()
    set_connection(
        monkeypatch, "plat", "attentive", host=url, password="attn-key",
        extra={"timeout": 2, "max_attempts": 4},
    )  # fmt: skip
    # Small batches make several requests out of small test data.
    monkeypatch.setattr(AttentiveHook, "max_batch_rows", 100)
    yield fake
    fake.stop()


def members(fake: FakeAttentive) -> set[str]:
    (segment,) = fake.members.values()
    return set(segment)


def bulk_requests(fake: FakeAttentive) -> list:
    return [r for r in fake.requests if r.path == "/v2/bulk/segments/members"]


@pytest.mark.parametrize(("attributes", "key"), [(PHONES, "phone"), (EMAILS, "email")])
def test_add_sends_every_row_once_in_batches_with_its_identifier(attentive, attributes, key):
    data = rows(450, key=key)
    result = run_export(
        AttentiveExportOperator, one_group_plan("attentive", attributes), "r1", data
    )
    assert result["rows_sent"] == 450 and result["batches"] == 5 and result["mode"] == "add"
    assert members(attentive) == {r[key] for r in data}
    sent = attentive.received_rows("add")
    assert len(sent) == 450 and len({r[key] for r in sent}) == 450
    assert max(len(b["rows"]) for b in attentive.received) <= 100
    assert attentive.contract_errors == []
    for request in bulk_requests(attentive):
        assert request.method == "POST" and request.headers["authorization"] == "Bearer attn-key"
        # Exactly the identifier the rows carry, nothing else (no customer id, no other key).
        assert all(m.keys() == {key} for m in request.body["members"])
    ((external_id, segment),) = attentive.segments.items()
    assert segment["name"] == NAME and result["location"] == f"attentive:{external_id}"
    assert {r.body["externalId"] for r in bulk_requests(attentive)} == {external_id}


def test_batches_stay_within_ten_thousand_members(attentive, monkeypatch):
    monkeypatch.setattr(AttentiveHook, "max_batch_rows", DECLARED_MAX_BATCH)
    assert DECLARED_MAX_BATCH == 10_000
    run_export(AttentiveExportOperator, one_group_plan("attentive", PHONES), "r1", rows(10_001))
    assert [len(b["rows"]) for b in attentive.received] == [10_000, 1]
    assert attentive.contract_errors == []
    # One member more is a contract break Attentive refuses (the fake checks the limit).
    with pytest.raises(PlatformError, match="HTTP 400"):
        AttentiveHook("plat").add(next(iter(attentive.segments)), rows(10_001))
    assert attentive.contract_errors == ["members: 1..10000 allowed"]


def test_segment_is_created_once_and_reused_by_name(attentive):
    plan = one_group_plan("attentive", PHONES)
    run_export(AttentiveExportOperator, plan, "r1", rows(10))
    run_export(AttentiveExportOperator, plan, "r2", rows(10, 5))
    assert attentive.segments_created == 1
    assert members(attentive) == {r["phone"] for r in rows(15)}


def test_existing_segment_found_across_pages_by_exact_name(attentive, monkeypatch):
    monkeypatch.setattr(AttentiveHook, "page_size", 10)
    # Partial-match names fill the first pages; the exact one comes last.
    for i in range(25):
        attentive.add_segment(f"{NAME} (old {i})")
    made_in_ui = attentive.add_segment(NAME)
    result = run_export(
        AttentiveExportOperator, one_group_plan("attentive", PHONES), "r1", rows(20)
    )
    assert attentive.segments_created == 0 and result["location"] == f"attentive:{made_in_ui}"
    pages = [r for r in attentive.requests if r.path == "/v2/segments" and r.method == "GET"]
    assert len(pages) == 3 and pages[0].query["name"] == [NAME]
    assert set(attentive.members) == {made_in_ui}


def test_two_segments_with_the_name_is_an_error(attentive):
    attentive.add_segment(NAME)
    attentive.add_segment(NAME)
    with pytest.raises(PlatformError, match=r"2 segments are named"):
        run_export(AttentiveExportOperator, one_group_plan("attentive", PHONES), "r1", rows(5))
    assert attentive.segments_created == 0 and attentive.received == []


def test_create_with_lost_response_does_not_make_a_twin(attentive):
    original_route = attentive.route
    slowed = {"done": False}

    def slow_create(request, fault):
        response = original_route(request, fault)
        if request.path == "/v2/segments" and request.method == "POST" and not slowed["done"]:
            slowed["done"] = True
            time.sleep(3)  # created, but the answer comes after the client's 2 s timeout
        return response

    attentive.route = slow_create
    run_export(AttentiveExportOperator, one_group_plan("attentive", PHONES), "r1", rows(30))
    attentive.wait_idle()
    assert attentive.segments_created == 1 and len(attentive.segments) == 1
    assert members(attentive) == {r["phone"] for r in rows(30)}


@pytest.mark.parametrize(
    "fault", ["throttle", "throttle_no_retry_after", "server_error", "reset", "slow"]
)
def test_transient_faults_are_retried_without_loss(attentive, fault):
    attentive.inject(fault, times=2, retry_after=1, seconds=3)
    started = time.monotonic()
    data = rows(300)
    run_export(AttentiveExportOperator, one_group_plan("attentive", PHONES), "r1", data)
    attentive.wait_idle()
    assert members(attentive) == {r["phone"] for r in data}
    # A response that never arrives (too slow) is indistinguishable from a lost request: that
    # batch is sent again (adding twice is harmless); nothing else repeats.
    resent = 2 * 100 if fault == "slow" else 0
    assert len(attentive.received_rows("add")) == 300 + resent
    assert attentive.contract_errors == []
    if fault.startswith("throttle"):
        assert attentive.throttled == 2
        # Retry-After, or the one-second window of x-ratelimit-remaining: 0, waited twice.
        assert time.monotonic() - started >= 1.9


def response(status: int, **headers: str) -> requests.Response:
    r = requests.Response()
    r.status_code = status
    r.headers.update({k.replace("_", "-"): v for k, v in headers.items()})
    return r


def test_limit_signals_are_read_as_attentive_sends_them():
    classify = AttentiveHook("plat").classify
    # Per-second quota used up: wait for the next one-second window.
    assert classify(response(429, x_ratelimit_limit="100", x_ratelimit_remaining="0")).wait == 1.0
    assert classify(response(429, Retry_After="3", x_ratelimit_remaining="0")).wait == 3.0
    # No usable header: exponential backoff with jitter (the client's own wait).
    bare = classify(response(429))
    assert bare.action == "retry" and bare.wait is None
    assert classify(response(503)).action == "retry"
    assert classify(response(202, x_ratelimit_remaining="0")).action == "ok"
    for status, hint in ((401, "API key"), (403, "Segments permission")):
        outcome = classify(response(status))
        assert outcome.action == "fail" and hint in outcome.reason
    assert classify(response(400)).action == "fail"


def test_requests_stay_under_the_per_second_limit(attentive):
    hook = AttentiveHook("plat")
    segment = hook.ensure_audience(NAME)
    started = time.monotonic()
    # Parallel callers (one hook, one limiter) could reach ~200 calls a second unchecked.
    with ThreadPoolExecutor(max_workers=10) as pool:
        list(pool.map(lambda row: hook.add(segment, [row]), rows(300)))
    # At most 90 calls a second: over three seconds, and Attentive never refused one.
    assert time.monotonic() - started >= 3.0
    assert attentive.natural_throttles == 0 and attentive.throttled == 0
    assert len(attentive.received_rows("add")) == 300


def test_partial_acceptance_is_reported_only_by_the_async_job(attentive):
    attentive.inject("partial", times=1, reject=3)
    result = run_export(
        AttentiveExportOperator, one_group_plan("attentive", PHONES), "r1", rows(250)
    )
    # The 202 answer says nothing about members the job later fails to apply, and the job
    # status carries no counts: nothing to count at export time, and no blocking poll.
    assert result["platform_invalid"] == 0 and result["batches"] == 3
    assert not any(r.path.startswith("/v2/bulk/job/") for r in attentive.requests)
    assert len(members(attentive)) == 247
    assert sorted(j["failedRecords"] for j in attentive.jobs.values()) == [0, 0, 3]


def test_failed_batch_is_retried_alone_and_resumes_after_task_failure(attentive):
    plan = one_group_plan("attentive", PHONES)
    data = rows(500)
    original_route = attentive.route
    calls = {"n": 0}

    def flaky(request, fault):
        if request.path == "/v2/bulk/segments/members":
            calls["n"] += 1
            if calls["n"] >= 3:
                return Response(503, {"message": "Service Unavailable"})
        return original_route(request, fault)

    attentive.route = flaky
    with pytest.raises(PlatformError, match="failed after 4 attempts"):
        run_export(AttentiveExportOperator, plan, "r1", data)
    assert len(attentive.received_rows("add")) == 200
    # Only the failing batch was retried: 2 good calls, then 4 attempts of batch 3.
    assert calls["n"] == 6
    third = [r.body["members"] for r in bulk_requests(attentive)[2:]]
    assert all(m == third[0] for m in third) and len(third) == 4
    attentive.route = original_route
    result = run_export(AttentiveExportOperator, plan, "r1", data)  # the task's retry
    assert result["batches_resumed"] == 2 and result["batches"] == 3
    assert len(attentive.received_rows("add")) == 500  # no acknowledged row sent twice
    assert members(attentive) == {r["phone"] for r in data}
    assert attentive.segments_created == 1


def test_mirror_sends_exactly_the_joiners_and_leavers(attentive):
    plan = one_group_plan("attentive", EMAILS, {"sync_mode": "mirror"})
    first = rows(1000, key="email")
    run_export(AttentiveExportOperator, plan, "r1", first)
    attentive.received.clear()
    second = first[100:] + rows(100, 5000, key="email")  # 10% leave, 10% join
    result = run_export(AttentiveExportOperator, plan, "r2", second)
    assert (result["added"], result["removed"], result["rows_sent"]) == (100, 100, 1000)
    assert {r["email"] for r in attentive.received_rows("add")} == {
        r["email"] for r in second[-100:]
    }
    assert {r["email"] for r in attentive.received_rows("remove")} == {
        r["email"] for r in first[:100]
    }
    assert len(attentive.received_rows("add")) == 100
    assert len(attentive.received_rows("remove")) == 100
    removes = [r for r in bulk_requests(attentive) if r.method == "DELETE"]
    assert len(removes) == 1 and removes[0].body.keys() == {"externalId", "members"}
    assert members(attentive) == {r["email"] for r in second}
    # A retry of run 2 diffs against run 1 again, and resends nothing.
    attentive.received.clear()
    again = run_export(AttentiveExportOperator, plan, "r2", second)
    assert attentive.received == [] and again["batches_resumed"] == 2


def test_replace_mode_is_not_offered():
    # Attentive has no replace-all operation; the options refuse it before any call.
    with pytest.raises(ValidationError):
        AudienceOptions.model_validate({"sync_mode": "replace"})
    assert AttentiveHook.replace_style is None
    with pytest.raises(TypeError):
        AttentiveHook("plat").clear("SEG_1")


def test_wrong_credentials_name_the_connection(attentive, monkeypatch):
    set_connection(
        monkeypatch, "plat", "attentive", host=attentive.start(), password="nope",
    )  # fmt: skip
    with pytest.raises(PlatformError, match=r"Attentive \(plat\): .*401.*API key"):
        run_export(AttentiveExportOperator, one_group_plan("attentive", PHONES), "r1", rows(5))


def test_missing_api_key_names_the_connection(attentive, monkeypatch):
    set_connection(monkeypatch, "plat", "attentive", host="http://127.0.0.1:9")
    with pytest.raises(ValueError, match=r"connection 'plat' has no API key"):
        run_export(AttentiveExportOperator, one_group_plan("attentive", PHONES), "r1", rows(5))


def test_rows_without_one_identifier_are_refused_without_values(attentive):
    hook = AttentiveHook("plat")
    bad = [{"phone": "+14155550100", "email": "a@example.com"}, {"phone": None}]
    with pytest.raises(ValueError, match=r"2 of 3 rows") as info:
        hook.add("SEG_1", [{"phone": "+14155550199"}, *bad])
    assert "+1415" not in str(info.value) and "example.com" not in str(info.value)
    assert attentive.requests == []


def test_no_identifiers_in_logs(attentive, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    attentive.inject("throttle", retry_after=0)
    attentive.inject("server_error")
    plan = one_group_plan("attentive", EMAILS, {"sync_mode": "mirror"})
    first = rows(120, key="email")
    run_export(AttentiveExportOperator, plan, "r1", first)
    run_export(AttentiveExportOperator, plan, "r2", first[20:])
    captured = capsys.readouterr()  # Airflow's task and hook loggers write to stdout
    text = caplog.text + captured.out + captured.err
    assert "queued as bulk job" in text  # the job ids are logged, for auditing
    assert not any(r["email"] in text or r["__customer_id"] in text for r in first)
