"""API export benchmark: each platform's contract fake at its published limits and a fixed
latency per data call; delivered rows per second against the ceiling those limits set."""

from __future__ import annotations

import math
import shutil
import sys
from pathlib import Path
from typing import Any

from benchmarks.proc import run_measured

HERE = Path(__file__).resolve().parent
# Rows per platform: enough calls to meet each platform's per-second window at least once.
EXPORT_ROWS = {
    "klaviyo": 150_000,
    "attentive": 200_000,
    "criteo": 250_000,
    "tiktok_ads": 30_000,
    "facebook_ads": 100_000,
}


def ceiling_seconds(calls: int, limits: list[tuple[int, float]], latency: float) -> float:
    """Least time ``calls`` calls can take under sliding windows ``limits`` when any number
    may be in flight: the last call may start after floor((calls-1)/n) full windows of each
    (n, w), and then takes ``latency``."""
    start = max((math.floor((calls - 1) / n) * w for n, w in limits), default=0.0)
    return start + latency


def export_suite(work: Path, latency: float, scale: float = 1.0) -> list[dict[str, Any]]:
    """One export per platform, each in its own process."""
    results = []
    for dtype, rows in EXPORT_ROWS.items():
        n = max(1, int(rows * scale))
        staging = work / f"export_{dtype}"
        shutil.rmtree(staging, ignore_errors=True)
        cmd = [sys.executable, str(HERE / "export_child.py"), dtype, str(n), str(latency)]
        r = run_measured([*cmd, str(staging)])
        calls = math.ceil(n / r["batch_rows"])
        r["ceiling_s"] = ceiling_seconds(calls, [tuple(x) for x in r["limits"]], latency)
        r["rows_per_s"] = r["delivered"] / r["seconds"]
        r["ceiling_rows_per_s"] = n / r["ceiling_s"]
        results.append(r)
        shutil.rmtree(staging, ignore_errors=True)
    return results
