"""Child process of the API export benchmark: one platform's contract fake, limited to the
platform's published rate limits with a fixed latency per data call, and a real export to it.

    python benchmarks/export_child.py PLATFORM ROWS LATENCY_S STAGING
"""

from __future__ import annotations

import bisect
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

# Published limits of the data endpoint each export calls: (calls, window seconds).
PUBLISHED_LIMITS: dict[str, list[tuple[int, float]]] = {
    # Klaviyo profile bulk import jobs: burst 10/s, steady 150/min.
    "klaviyo": [(10, 1.0), (150, 60.0)],
    # Attentive: 100 requests per second per endpoint (the fake enforces it itself too).
    "attentive": [(100, 1.0)],
    # Criteo audience contact list: 250 calls per minute.
    "criteo": [(250, 60.0)],
    # TikTok custom audience file upload: 10 per second, 600 per minute.
    "tiktok_ads": [(10, 1.0), (600, 60.0)],
    # Meta custom audience users: the hook's figure for one ad account, 80 per minute.
    "facebook_ads": [(80, 60.0)],
}


class WindowLimit:
    """Sliding windows as a platform counts them; ``take`` says whether a call is allowed."""

    def __init__(self, limits: list[tuple[int, float]]) -> None:
        self.limits = limits
        self.calls: list[float] = []  # arrival times, sorted
        self.lock = threading.Lock()

    def take(self, now: float) -> float | None:
        """None when a call arriving at ``now`` is allowed (and counted), else seconds until it
        would be."""
        with self.lock:
            longest = max(w for _, w in self.limits)
            while self.calls and now - self.calls[0] > longest:
                self.calls.pop(0)
            for n, w in self.limits:
                # Calls stamped later than this one but counted first stay counted: stricter.
                recent = [t for t in self.calls if now - t < w]
                if len(recent) >= n:
                    return w - (now - recent[-n])
            bisect.insort(self.calls, now)
            return None


def limited(fake_class: type, limits: list[tuple[int, float]]) -> Any:
    """An instance of ``fake_class`` that answers 429 (the platform's own signal) past
    ``limits``."""

    class Limited(fake_class):  # type: ignore[misc,valid-type]
        def __init__(self) -> None:
            super().__init__()
            self.window = WindowLimit(limits)
            self.limit_429s = 0
            self.data_calls = 0
            self.arrival = threading.local()

        def _dispatch(self, handler: Any) -> None:
            # A platform counts a call when it arrives, before the work (the latency) it takes.
            self.arrival.at = time.monotonic()
            super()._dispatch(handler)

        def route(self, request: Any, fault: Any) -> Any:
            if self.is_data_request(request):
                wait = self.window.take(self.arrival.at)
                if wait is not None:
                    with self.lock:
                        self.limit_429s += 1
                    return self.throttle_response(True, {"retry_after": max(1, round(wait))})
                with self.lock:
                    self.data_calls += 1
            return super().route(request, fault)

    return Limited()


def main() -> None:
    dtype, n_rows, latency, staging = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
    os.environ["CAMPAIGN_SYNC_STAGING_ROOT"] = staging
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    from campaign_sync.destinations import REGISTRY
    from campaign_sync.operators.audience_export import PlatformExportOperator
    from campaign_sync.platforms.batches import iter_batches  # noqa: F401 - same import as export
    from campaign_sync.pools import pool_of
    from platform_support import DEST, one_group_plan, prepared_export
    from platform_table import BY_TYPE, rows

    platform = BY_TYPE[dtype]
    fake = limited(platform.fake, PUBLISHED_LIMITS[dtype])
    fake.slow_seconds = latency
    url = fake.start()
    os.environ["AIRFLOW_CONN_PLAT"] = json.dumps(
        {"conn_type": dtype, **platform.connection(url, None)}
    )
    from airflow.sdk.module_loading import import_string

    hook_class = import_string(REGISTRY[dtype].hook)
    for name, value in platform.tuning:
        setattr(hook_class, name, value)
    caps = hook_class.capabilities
    plan = one_group_plan(dtype, platform.attributes)
    data = rows(platform, n_rows)
    # As the factory builds the task: the batches in flight and rate share of its pool.
    pool = pool_of(plan.campaign.destinations[DEST])
    assert pool is not None
    # The projected file is staged first (projection's work, not the export's): the timed
    # part is the export task's delivery, as Airflow runs it.
    operator, source, context = prepared_export(
        PlatformExportOperator,
        plan,
        "bench_export",
        data,
        in_flight=pool.in_flight,
        limit_share=pool.slots,
    )
    t0 = time.perf_counter()
    result = operator.deliver(source, context)
    elapsed = time.perf_counter() - t0
    fake.wait_idle()
    natural = getattr(fake, "natural_throttles", 0)
    fake.stop()
    print(
        json.dumps(
            {
                "platform": dtype,
                "rows": n_rows,
                "delivered": result["added"],
                "batches": result["batches"],
                "batch_rows": caps.max_batch_rows,
                "data_calls": fake.data_calls,
                "seconds": elapsed,
                "limits": PUBLISHED_LIMITS[dtype],
                "hook_limits": hook_class.rate_limits,
                "in_flight": pool.in_flight,
                "http_429": fake.limit_429s + natural + fake.throttled,
                "http_429_parts": [fake.limit_429s, natural, fake.throttled],
                "received_rows": len(fake.received_rows("add")),
                "dest": DEST,
            }
        )
    )


if __name__ == "__main__":
    main()
