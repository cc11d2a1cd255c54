"""Criteo export against a local server following Criteo's documented contract."""

from __future__ import annotations

import pytest
from campaign_sync.hooks.criteo import CriteoHook
from campaign_sync.operators.audience_export import PlatformExportOperator as CriteoExportOperator
from fakes.criteo import FakeCriteo
from platform_support import (
    FakeClock,
    inject_clock,
    one_group_plan,
    run_export,
    set_connection,
    sha,
    small_batches,
)


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
    small_batches(monkeypatch, CriteoHook, 100)
    inject_clock(monkeypatch)  # waits are skipped, never slept
    yield fake
    fake.stop()


def members(fake: FakeCriteo) -> set[str]:
    (segment,) = fake.members.values()
    return set(segment)


def test_replace_clears_then_adds(criteo):
    plan = one_group_plan("criteo", {"email": "email"}, {"sync_mode": "replace"})
    run_export(CriteoExportOperator, plan, "r1", rows(200))
    run_export(CriteoExportOperator, plan, "r2", rows(50, 1000))
    assert criteo.clears == 2
    assert members(criteo) == {r["email"] for r in rows(50, 1000)}
    ops = [b["op"] for b in criteo.received]
    assert ops == ["clear", "add", "add", "clear", "add"]


def test_oauth_token_is_renewed_before_it_expires_and_after_a_revocation(criteo, monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(CriteoHook, "clock", clock)
    hook = CriteoHook("plat")
    segment = hook.ensure_audience("renewal")
    hook.add(segment, rows(5))
    assert len(criteo.tokens) == 1
    clock.offset += 850  # within a minute of the 900 s expiry: renewed before the next call
    hook.add(segment, rows(5, 5))
    assert len(criteo.tokens) == 2
    criteo.tokens.clear()  # revoked early: the 401 gets one new token and the call goes again
    hook.add(segment, rows(5, 10))
    assert len(criteo.tokens) == 1 and members(criteo) == {r["email"] for r in rows(15)}
    token_calls = [r for r in criteo.requests if r.path == "/oauth2/token"]
    assert len(token_calls) == 3
