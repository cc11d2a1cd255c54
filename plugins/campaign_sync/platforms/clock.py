"""Time for the platform kit, in one place so tests can inject it instead of sleeping."""

from __future__ import annotations

import time


class Clock:
    """Wall time, monotonic time and sleeping (the system's)."""

    def time(self) -> float:
        """Seconds since the epoch."""
        return time.time()

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back."""
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds``."""
        time.sleep(seconds)


SYSTEM = Clock()
