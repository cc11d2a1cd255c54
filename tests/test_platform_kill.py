"""A worker killed mid-export (SIGKILL, not an exception) and the task rerun: on every platform,
each valid row ends up in the audience, and acknowledged batches are not sent again."""

from __future__ import annotations

import importlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fakes.attentive import FakeAttentive
from fakes.criteo import FakeCriteo
from fakes.facebook_ads import FakeFacebookAds
from fakes.klaviyo import FakeKlaviyo
from fakes.tiktok_ads import API as TIKTOK_API
from fakes.tiktok_ads import FakeTikTokAds
from platform_support import one_group_plan, run_export, set_connection, sha, stage_projected

ROWS = 1_000
BATCH = 50


@dataclass(frozen=True)
class Platform:
    dtype: str
    module: str  # hooks.<module> / operators.<module>
    hook: str
    operator: str
    fake: Callable[[], Any]
    connection: Callable[[str], dict[str, Any]]
    attributes: dict[str, str]
    row: Callable[[int], dict[str, Any]]
    tuning: tuple[tuple[str, Any], ...] = ()  # hook class attributes that shorten waits


PLATFORMS = [
    Platform(
        "criteo", "criteo", "CriteoHook", "CriteoExportOperator", FakeCriteo,
        lambda url: {"host": url, "login": "client-1", "password": "s3cret",
                     "extra": {"advertiser_id": "4242"}},
        {"email": "email"}, lambda i: {"email": sha(f"user{i}@example.com")},
    ),
    Platform(
        "klaviyo", "klaviyo", "KlaviyoHook", "KlaviyoExportOperator", FakeKlaviyo,
        lambda url: {"host": url, "password": "pk_test_0123456789",
                     "extra": {"revision": "2025-10-15"}},
        {"email": "email"}, lambda i: {"email": f"user{i}@example.com"},
        (("poll_interval", 0.02),),
    ),
    Platform(
        "attentive", "attentive", "AttentiveHook", "AttentiveExportOperator", FakeAttentive,
        lambda url: {"host": url, "password": "attn-key"},
        {"phone": "phone"}, lambda i: {"phone": f"+1415{i:07d}"},
    ),
    Platform(
        "tiktok_ads", "tiktok_ads", "TikTokAdsHook", "TikTokAdsExportOperator", FakeTikTokAds,
        lambda url: {"host": url + TIKTOK_API, "password": "tt-token",
                     "extra": {"advertiser_id": "7001"}},
        {"email": "EMAIL", "phone": "PHONE"},
        lambda i: {"EMAIL": sha(f"user{i}@example.com"), "PHONE": sha(f"+1415{i:07d}")},
    ),
    Platform(
        "facebook_ads", "facebook_ads", "FacebookAdsHook", "FacebookAdsExportOperator",
        FakeFacebookAds,
        lambda url: {"host": url, "password": "EAAtoken123",
                     "extra": {"ad_account_id": "1029384756"}},
        {"email": "EMAIL"}, lambda i: {"EMAIL": sha(f"user{i}@example.com")},
    ),
]  # fmt: skip

WORKER = textwrap.dedent(
    """
    import json, sys
    sys.path.insert(0, {tests!r})
    from platform_support import one_group_plan, run_export
    from campaign_sync.hooks.{module} import {hook} as Hook
    from campaign_sync.operators.{module} import {operator} as Operator
    Hook.max_batch_rows = {batch}
    for name, value in {tuning!r}:
        setattr(Hook, name, value)
    plan = one_group_plan({dtype!r}, {attributes!r})
    run_export(Operator, plan, "r1", json.load(open({rows_file!r})))
    """
)


def _rows(platform: Platform) -> list[dict[str, Any]]:
    return [{"__customer_id": f"C{i:06d}", **platform.row(i)} for i in range(ROWS)]


@pytest.mark.parametrize("platform", PLATFORMS, ids=[p.dtype for p in PLATFORMS])
def test_killed_worker_then_rerun_delivers_each_row(platform, staging_root, tmp_path, monkeypatch):
    fake = platform.fake()
    url = fake.start()
    try:
        set_connection(monkeypatch, "plat", platform.dtype, **platform.connection(url))
        fake.slow_seconds = 0.15  # each batch takes a while, so the kill lands mid-export
        rows = _rows(platform)
        rows_file = tmp_path / "rows.json"
        rows_file.write_text(json.dumps(rows))
        script = WORKER.format(
            tests=str(Path(__file__).parent), module=platform.module, hook=platform.hook,
            operator=platform.operator, batch=BATCH, dtype=platform.dtype,
            attributes=platform.attributes, rows_file=str(rows_file), tuning=platform.tuning,
        )  # fmt: skip
        worker = subprocess.Popen([sys.executable, "-c", script], env=os.environ.copy())
        deadline = time.monotonic() + 60
        while len(fake.received) < 4 and time.monotonic() < deadline:
            assert worker.poll() is None, "the worker ended before it could be killed"
            time.sleep(0.01)
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait()
        fake.wait_idle()
        before = len(fake.received)
        assert 4 <= before < ROWS // BATCH

        hook = getattr(
            importlib.import_module(f"campaign_sync.hooks.{platform.module}"), platform.hook
        )
        operator = getattr(
            importlib.import_module(f"campaign_sync.operators.{platform.module}"), platform.operator
        )
        monkeypatch.setattr(hook, "max_batch_rows", BATCH)
        for name, value in platform.tuning:
            monkeypatch.setattr(hook, name, value)
        fake.slow_seconds = 0
        plan = one_group_plan(platform.dtype, platform.attributes)
        result = run_export(operator, plan, "r1", rows)
        fake.wait_idle()

        assert result["rows_sent"] == ROWS
        assert result["batches_resumed"] >= before - 1
        (members,) = [m for m in fake.members.values() if m]
        assert len(members) == ROWS  # every valid row is in the audience
        counts = Counter(json.dumps(r, sort_keys=True) for r in fake.received_rows("add"))
        assert len(counts) == ROWS
        # Only the batch in flight at the kill (applied, never acknowledged) may come twice.
        assert max(counts.values()) <= 2
        assert sum(1 for n in counts.values() if n == 2) <= BATCH
        assert fake.contract_errors == []
    finally:
        fake.stop()


def test_projection_order_makes_batches_repeatable(staging_root):
    """Projection writes rows sorted by customer id, so a rerun cuts the same batches."""
    platform = PLATFORMS[0]
    plan = one_group_plan(platform.dtype, platform.attributes)
    rows = _rows(platform)
    first = stage_projected(plan, "r1", rows).read_bytes()
    second = stage_projected(plan, "r1", list(reversed(rows))).read_bytes()
    assert first == second
