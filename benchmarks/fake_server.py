"""One platform's contract fake as a server process of its own, for the API export benchmark:
limited to the platform's published rate limits, with a fixed latency per data call.

    python benchmarks/fake_server.py PLATFORM LATENCY_S

Prints ``{"url": ...}`` once it serves, then serves until a line (or EOF) on stdin; then it
waits for requests still being handled and prints its statistics as one JSON line: data calls,
429s, rows received, contract errors, the arrival time (``time.monotonic``, the same clock as
the export's process) of every allowed data call, and its own CPU time while serving.

Running it apart from the export keeps the fake's contract checking (decoding and checking every
member in Python) off the exporter's GIL, so the export is measured alone.
"""

from __future__ import annotations

import bisect
import gc
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
    ``limits``, and notes when each allowed data call arrived."""

    class Limited(fake_class):  # type: ignore[misc,valid-type]
        def __init__(self) -> None:
            super().__init__()
            self.window = WindowLimit(limits)
            self.limit_429s = 0
            self.data_arrivals: list[float] = []
            self.refusals: list[float] = []  # arrival of every data call refused (429)
            self.arrival = threading.local()

        @property
        def data_calls(self) -> int:
            return len(self.data_arrivals)

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
                        self.refusals.append(self.arrival.at)
                    return self.throttle_response(True, {"retry_after": max(1, round(wait))})
                with self.lock:
                    self.data_arrivals.append(self.arrival.at)
            return super().route(request, fault)

    return Limited()


def cpu_seconds() -> float:
    """CPU time (user + system) of this process so far."""
    t = os.times()
    return t.user + t.system


def stats(fake: Any, cpu: float) -> dict[str, Any]:
    """What the export bench reads back from the fake."""
    natural = getattr(fake, "natural_throttles", 0)
    return {
        "data_calls": fake.data_calls,
        "data_arrivals": sorted(fake.data_arrivals),
        "refusals": fake.refusals,
        "http_429": fake.limit_429s + natural + fake.throttled,
        "http_429_parts": [fake.limit_429s, natural, fake.throttled],
        "received_rows": len(fake.received_rows("add")),
        "contract_errors": len(fake.contract_errors),
        "max_in_flight": fake.max_in_flight,
        "fake_cpu_s": cpu,
    }


def main() -> None:
    from platform_table import BY_TYPE

    dtype, latency = sys.argv[1], float(sys.argv[2])
    fake = limited(BY_TYPE[dtype].fake, PUBLISHED_LIMITS[dtype])
    fake.slow_seconds = latency
    url = fake.start()
    # The fake keeps every row it receives, so its full garbage collections grow with the run
    # (to 0.1 s and more), and a call arriving meanwhile is stamped late, bunched with the next
    # ones: 429s a platform's front door would not send. Its garbage is mostly not cyclic.
    gc.disable()
    cpu0 = cpu_seconds()
    print(json.dumps({"url": url}), flush=True)
    sys.stdin.readline()
    fake.wait_idle()
    fake.stop()
    print(json.dumps(stats(fake, cpu_seconds() - cpu0)), flush=True)


if __name__ == "__main__":
    main()
