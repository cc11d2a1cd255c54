"""Child process of the API export benchmark: a real export to one platform's contract fake,
which runs in a process of its own (``benchmarks/fake_server.py``), limited to the platform's
published rate limits with a fixed latency per data call.

    python benchmarks/export_child.py PLATFORM ROWS LATENCY_S STAGING
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE))

from fake_server import PUBLISHED_LIMITS, cpu_seconds  # noqa: E402


class FakeProcess:
    """The platform's limited contract fake, served by ``fake_server.py`` in its own process."""

    def __init__(self, dtype: str, latency: float) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "fake_server.py"), dtype, str(latency)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        self.url: str = json.loads(self.proc.stdout.readline())["url"]

    def stop(self) -> dict[str, Any]:
        """Stop serving; the fake's statistics."""
        out, _ = self.proc.communicate("stop\n", timeout=60)
        if self.proc.returncode != 0:
            raise RuntimeError(f"fake server exited with {self.proc.returncode}")
        return json.loads(out.strip().splitlines()[-1])


def gc_pauses() -> list[float]:
    """A list that fills with the duration of every full (oldest generation) collection."""
    pauses: list[float] = []
    began = [0.0]

    def note(phase: str, info: dict[str, int]) -> None:
        if info["generation"] == 2:
            if phase == "start":
                began[0] = time.perf_counter()
            else:
                pauses.append(time.perf_counter() - began[0])

    gc.callbacks.append(note)
    return pauses


def granted_times() -> list[float]:
    """A list that fills with the time of every call the hooks' rate limiters grant."""
    from campaign_sync.platforms.ratelimit import RateLimiter

    grants: list[float] = []
    acquire = RateLimiter.acquire

    def noting(self: RateLimiter) -> float:
        waited = acquire(self)
        grants.append(time.monotonic())
        return waited

    RateLimiter.acquire = noting  # type: ignore[method-assign]
    return grants


def main() -> None:
    dtype, n_rows, latency, staging = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
    os.environ["CAMPAIGN_SYNC_STAGING_ROOT"] = staging
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    from campaign_sync.destinations import REGISTRY
    from campaign_sync.operators.audience_export import PlatformExportOperator
    from campaign_sync.platforms.batches import iter_batches  # noqa: F401 - same import as export
    from campaign_sync.pools import held_up, pool_of, shared_limits
    from platform_support import DEST, one_group_plan, prepared_export
    from platform_table import BY_TYPE, rows

    platform = BY_TYPE[dtype]
    fake = FakeProcess(dtype, latency)
    os.environ["AIRFLOW_CONN_PLAT"] = json.dumps(
        {"conn_type": dtype, **platform.connection(fake.url, None)}
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
    del data
    pauses = gc_pauses()
    grants = granted_times()
    start, cpu0 = time.monotonic(), cpu_seconds()
    result = operator.deliver(source, context)
    end, cpu = time.monotonic(), cpu_seconds() - cpu0
    served = fake.stop()
    arrivals = served.pop("data_arrivals")
    # When the refused data calls arrived (seconds from the start), and the allowed ones
    # before them: what bunched.
    served["refusals"] = [
        [round(t - start, 3), [round(a - start, 3) for a in arrivals if t - 1.0 < a <= t]]
        for t in served["refusals"]
    ]
    # The data calls are the last ones granted (audience calls come first): how long each took
    # from its grant to its arrival at the fake.
    late = [a - g for a, g in zip(arrivals, grants[-len(arrivals) :], strict=False)]
    print(
        json.dumps(
            {
                "platform": dtype,
                "rows": n_rows,
                "delivered": result["added"],
                "batches": result["batches"],
                "batch_rows": caps.max_batch_rows,
                "seconds": end - start,
                "limits": PUBLISHED_LIMITS[dtype],
                "hook_limits": shared_limits(hook_class.rate_limits, pool.slots, pool.in_flight),
                "held_up_s": held_up(pool.in_flight),
                "in_flight": pool.in_flight,
                # Where the time went: before the first data call arrived (connection, audience,
                # sync plan, first batch), between the first and last, and after the last.
                "first_call_s": arrivals[0] - start if arrivals else None,
                "calls_span_s": arrivals[-1] - arrivals[0] if arrivals else None,
                "after_last_s": end - arrivals[-1] if arrivals else None,
                "export_cpu_s": cpu,
                # Garbage collections of the oldest generation during the export (each holds
                # the GIL: a batch granted meanwhile reaches the platform late).
                "gc_full": len(pauses),
                "gc_full_max_s": max(pauses, default=0.0),
                # Median, 90th percentile and longest; None where grants and arrivals do not
                # pair up (a 429's retry is granted again; Klaviyo polls between data calls).
                "grant_to_arrival_s": (
                    [sorted(late)[int(q * (len(late) - 1))] for q in (0.5, 0.9, 1.0)]
                    if late and min(late) >= 0 and not served["http_429"]
                    else None
                ),
                "dest": DEST,
                **served,
            }
        )
    )


if __name__ == "__main__":
    main()
