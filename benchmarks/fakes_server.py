"""The five platforms' contract fakes in a process of their own, for the end-to-end benchmark.

    python benchmarks/fakes_server.py

Prints one JSON line: each platform's connection fields (no ``conn_type``) pointing at its fake.
Then serves until a line arrives on stdin (or stdin closes) and prints one more JSON line: per
platform, the rows each audience accepted, the data requests and the contract errors. The fakes
run without rate limits or added latency; their contract checks run on every request.
"""

from __future__ import annotations

import json
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

PLATFORMS = ("klaviyo", "attentive", "criteo", "tiktok_ads", "facebook_ads")


def counting(fake_class: type) -> Any:
    """An instance of ``fake_class`` that counts what it accepts instead of keeping it.

    The fakes keep every request and row for the tests to inspect; at millions of rows that
    would hold gigabytes in this process. Routes and checks are the fake's own; only ``record``
    (after a batch was accepted) and the request log are lighter.
    """

    class Counting(fake_class):  # type: ignore[misc,valid-type]
        def __init__(self) -> None:
            super().__init__()
            self.accepted: Counter[tuple[str, str]] = Counter()
            self.data_requests = 0

        def record(self, op: str, audience: str, rows: list[dict[str, Any]], key: str) -> None:
            with self.lock:
                self.accepted[(op, audience)] += len(rows)
                members = self.members[audience]
                for row in rows:  # membership stays exact (distinct keys), values are dropped
                    if op == "add":
                        members[row[key]] = True
                    elif op == "remove":
                        members.pop(row[key], None)

        def route(self, request: Any, fault: Any) -> Any:
            if self.is_data_request(request):
                with self.lock:
                    self.data_requests += 1
            with self.lock:
                self.requests.clear()  # only tests read it; keep no request bodies
            return super().route(request, fault)

        def report(self) -> dict[str, Any]:
            with self.lock:
                return {
                    "added": {a: n for (op, a), n in self.accepted.items() if op == "add"},
                    "members": {a: len(m) for a, m in self.members.items()},
                    "data_requests": self.data_requests,
                    "throttled": self.throttled,
                    "contract_errors": list(self.contract_errors),
                }

    return Counting()


def main() -> None:
    from platform_table import BY_TYPE

    fakes: dict[str, Any] = {}
    connections: dict[str, dict[str, Any]] = {}
    for name in PLATFORMS:
        platform = BY_TYPE[name]
        fake = counting(platform.fake)
        fakes[name] = fake
        connections[name] = platform.connection(fake.start(), None)
    print(json.dumps(connections), flush=True)
    done = threading.Event()

    def wait_stdin() -> None:
        sys.stdin.readline()
        done.set()

    threading.Thread(target=wait_stdin, daemon=True).start()
    done.wait()
    for fake in fakes.values():
        fake.wait_idle()
    print(json.dumps({name: fake.report() for name, fake in fakes.items()}), flush=True)
    for fake in fakes.values():
        fake.stop()


if __name__ == "__main__":
    main()
