"""Attentive export against a local server following Attentive's documented v2 contract."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from campaign_sync.hooks.attentive import AttentiveHook
from campaign_sync.operators.audience_export import (
    PlatformExportOperator as AttentiveExportOperator,
)
from campaign_sync.platforms.client import PermanentPlatformError, PlatformError
from fakes.attentive import FakeAttentive
from platform_support import (
    inject_clock,
    one_group_plan,
    real_time,
    run_export,
    set_connection,
    small_batches,
)

NAME = "platform test - everyone - treatment"
PHONES = {"phone": "phone"}
EMAILS = {"email": "email"}
DECLARED_MAX_BATCH = AttentiveHook.capabilities.max_batch_rows  # before any test patches it


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
    small_batches(monkeypatch, AttentiveHook, 100)
    inject_clock(monkeypatch)  # waits are skipped, never slept
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
    small_batches(monkeypatch, AttentiveHook, DECLARED_MAX_BATCH)
    assert DECLARED_MAX_BATCH == 10_000
    run_export(AttentiveExportOperator, one_group_plan("attentive", PHONES), "r1", rows(10_001))
    assert [len(b["rows"]) for b in attentive.received] == [10_000, 1]
    assert attentive.contract_errors == []
    # One member more is a contract break Attentive refuses (the fake checks the limit).
    with pytest.raises(PlatformError, match="HTTP 400"):
        AttentiveHook("plat").add(next(iter(attentive.segments)), rows(10_001))
    assert attentive.contract_errors == ["members: 1..10000 allowed"]


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


def test_requests_stay_under_the_per_second_limit(attentive, monkeypatch):
    real_time(monkeypatch)  # the fake counts calls per real second
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


def test_rows_without_one_identifier_are_refused_without_values(attentive):
    hook = AttentiveHook("plat")
    bad = [{"phone": "+14155550100", "email": "a@example.com"}, {"phone": None}]
    with pytest.raises(PermanentPlatformError, match=r"2 of 3 rows") as info:
        hook.add("SEG_1", [{"phone": "+14155550199"}, *bad])
    assert "+1415" not in str(info.value) and "example.com" not in str(info.value)
    assert attentive.requests == []
