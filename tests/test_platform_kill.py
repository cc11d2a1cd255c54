"""A worker killed mid-export (SIGKILL, not an exception) and the task rerun: on every platform,
each valid row ends up in the audience, and acknowledged batches are not sent again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.module_loading import import_string
from campaign_sync.destinations import REGISTRY
from campaign_sync.operators.audience_export import PlatformExportOperator
from platform_support import one_group_plan, run_export, set_connection, small_batches
from platform_table import IDS, PLATFORMS, Platform, rows

ROWS = 1_000
BATCH = 50

WORKER = textwrap.dedent(
    """
    import dataclasses, json, sys
    sys.path.insert(0, {tests!r})
    from platform_support import one_group_plan, run_export
    from airflow.sdk.module_loading import import_string
    from campaign_sync.operators.audience_export import PlatformExportOperator
    Hook = import_string({hook!r})
    Hook.capabilities = dataclasses.replace(Hook.capabilities, max_batch_rows={batch})
    for name, value in {tuning!r}:
        setattr(Hook, name, value)
    plan = one_group_plan({dtype!r}, {attributes!r})
    run_export(PlatformExportOperator, plan, "r1", json.load(open({rows_file!r})))
    """
)


def _rows(platform: Platform) -> list[dict[str, Any]]:
    return rows(platform, ROWS)


@pytest.mark.parametrize("platform", PLATFORMS, ids=IDS)
def test_killed_worker_then_rerun_delivers_each_row(platform, staging_root, tmp_path, monkeypatch):
    fake = platform.fake()
    url = fake.start()
    try:
        set_connection(monkeypatch, "plat", platform.dtype, **platform.connection(url, None))
        fake.slow_seconds = 0.15  # each batch takes a while, so the kill lands mid-export
        rows = _rows(platform)
        rows_file = tmp_path / "rows.json"
        rows_file.write_text(json.dumps(rows))
        hook_path = REGISTRY[platform.dtype].hook
        script = WORKER.format(
            tests=str(Path(__file__).parent), hook=hook_path, batch=BATCH, dtype=platform.dtype,
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

        hook = import_string(hook_path)
        small_batches(monkeypatch, hook, BATCH)
        for name, value in platform.tuning:
            monkeypatch.setattr(hook, name, value)
        fake.slow_seconds = 0
        plan = one_group_plan(platform.dtype, platform.attributes)
        result = run_export(PlatformExportOperator, plan, "r1", rows)
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
