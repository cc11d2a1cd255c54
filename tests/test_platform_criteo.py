"""Criteo export against a local server following Criteo's documented contract."""

from __future__ import annotations

import logging
import time

import pytest
from campaign_sync.hooks.criteo import CriteoHook
from campaign_sync.operators.audience_export import PlatformExportOperator as CriteoExportOperator
from campaign_sync.platforms.client import PlatformError
from fakes.criteo import FakeCriteo
from platform_support import one_group_plan, run_export, set_connection, sha


def rows(n: int, start: int = 0) -> list[dict]:
    return [
        {"__customer_id": f"C{i:06d}", "email": sha(f"user{i}@example.com")}
        for i in range(start, start + n)
    ]


@pytest.fixture
def criteo(monkeypatch, staging_root):
    fake = FakeCriteo()
    url = fake.start()
    set_connection(
        monkeypatch, "plat", "criteo", host=url, login="client-1", password="s3cret",
        extra={"advertiser_id": "4242", "timeout": 2, "max_attempts": 4},
    )  # fmt: skip
    # Small batches make several requests out of small test data.
    monkeypatch.setattr(CriteoHook, "max_batch_rows", 100)
    yield fake
    fake.stop()


def members(fake: FakeCriteo) -> set[str]:
    (segment,) = fake.members.values()
    return set(segment)


def test_add_sends_every_row_once_in_batches(criteo):
    data = rows(450)
    result = run_export(
        CriteoExportOperator, one_group_plan("criteo", {"email": "email"}), "r1", data
    )
    assert result["rows_sent"] == 450 and result["batches"] == 5 and result["mode"] == "add"
    assert members(criteo) == {r["email"] for r in data}
    sent = criteo.received_rows("add")
    assert len(sent) == 450 and len({r["email"] for r in sent}) == 450
    assert max(len(b["rows"]) for b in criteo.received) <= 100
    assert criteo.contract_errors == []
    assert criteo.segments == {"1000": "platform test - everyone - treatment"}


def test_audience_is_reused_by_name_across_runs(criteo):
    plan = one_group_plan("criteo", {"email": "email"})
    run_export(CriteoExportOperator, plan, "r1", rows(10))
    run_export(CriteoExportOperator, plan, "r2", rows(10, 5))
    assert criteo.segments_created == 1


@pytest.mark.parametrize(
    "fault", ["throttle", "throttle_no_retry_after", "server_error", "reset", "slow"]
)
def test_transient_faults_are_retried_without_loss_or_duplicates(criteo, fault):
    criteo.inject(fault, times=2, retry_after=1, seconds=3)
    started = time.monotonic()
    data = rows(300)
    run_export(CriteoExportOperator, one_group_plan("criteo", {"email": "email"}), "r1", data)
    criteo.wait_idle()
    assert members(criteo) == {r["email"] for r in data}
    # A response that never arrives (too slow) is indistinguishable from a lost request: that
    # batch is sent again (the server applied it, membership stays exact); nothing else repeats.
    resent = 2 * 100 if fault == "slow" else 0
    assert len(criteo.received_rows("add")) == 300 + resent
    if fault.startswith("throttle"):
        assert criteo.throttled == 2
        assert time.monotonic() - started >= 1.5  # the limit signal was honoured, twice


def test_partial_acceptance_is_counted(criteo):
    criteo.inject("partial", times=1, reject=3)
    result = run_export(
        CriteoExportOperator, one_group_plan("criteo", {"email": "email"}), "r1", rows(250)
    )
    assert result["platform_invalid"] == 3
    assert len(members(criteo)) == 247


def test_failed_batch_is_retried_alone_and_resumes_after_task_failure(criteo):
    plan = one_group_plan("criteo", {"email": "email"})
    data = rows(500)
    # Batches 1-2 pass; batch 3 fails on every attempt: the task fails.
    criteo.faults.clear()
    original_route = criteo.route
    calls = {"n": 0}

    def flaky(request, fault):
        if request.method == "PATCH":
            calls["n"] += 1
            if calls["n"] >= 3:
                from fakes.base import Response

                return Response(503, {"errors": [{"code": "unavailable"}]})
        return original_route(request, fault)

    criteo.route = flaky
    with pytest.raises(PlatformError, match="failed after 4 attempts"):
        run_export(CriteoExportOperator, plan, "r1", data)
    assert len(criteo.received_rows("add")) == 200
    criteo.route = original_route
    result = run_export(CriteoExportOperator, plan, "r1", data)  # the task's retry
    assert result["batches_resumed"] == 2 and result["batches"] == 3
    assert len(criteo.received_rows("add")) == 500  # no acknowledged row sent twice
    assert members(criteo) == {r["email"] for r in data}


def test_mirror_sends_exactly_the_joiners_and_leavers(criteo):
    plan = one_group_plan("criteo", {"email": "email"}, {"sync_mode": "mirror"})
    first = rows(1000)
    run_export(CriteoExportOperator, plan, "r1", first)
    criteo.received.clear()
    second = first[100:] + rows(100, 5000)  # 10% leave, 10% join
    result = run_export(CriteoExportOperator, plan, "r2", second)
    assert (result["added"], result["removed"], result["rows_sent"]) == (100, 100, 1000)
    assert {r["email"] for r in criteo.received_rows("add")} == {r["email"] for r in second[-100:]}
    assert {r["email"] for r in criteo.received_rows("remove")} == {r["email"] for r in first[:100]}
    assert len(criteo.received_rows("add")) == 100 and len(criteo.received_rows("remove")) == 100
    assert members(criteo) == {r["email"] for r in second}
    # A retry of run 2 diffs against run 1 again, and resends nothing.
    criteo.received.clear()
    again = run_export(CriteoExportOperator, plan, "r2", second)
    assert criteo.received == [] and again["batches_resumed"] == 2


def test_replace_clears_then_adds(criteo):
    plan = one_group_plan("criteo", {"email": "email"}, {"sync_mode": "replace"})
    run_export(CriteoExportOperator, plan, "r1", rows(200))
    run_export(CriteoExportOperator, plan, "r2", rows(50, 1000))
    assert criteo.clears == 2
    assert members(criteo) == {r["email"] for r in rows(50, 1000)}
    ops = [b["op"] for b in criteo.received]
    assert ops == ["clear", "add", "add", "clear", "add"]


def test_wrong_credentials_name_the_connection(criteo, monkeypatch):
    set_connection(
        monkeypatch, "plat", "criteo", host=criteo.start(), login="client-1", password="nope",
        extra={"advertiser_id": "4242"},
    )  # fmt: skip
    with pytest.raises(PlatformError, match=r"Criteo \(plat\): token request refused"):
        run_export(
            CriteoExportOperator, one_group_plan("criteo", {"email": "email"}), "r1", rows(5)
        )


def test_no_identifiers_in_logs(criteo, caplog):
    caplog.set_level(logging.DEBUG)
    criteo.inject("throttle", retry_after=0)
    data = rows(120)
    run_export(CriteoExportOperator, one_group_plan("criteo", {"email": "email"}), "r1", data)
    text = caplog.text
    assert not any(r["email"] in text or r["__customer_id"] in text for r in data)
