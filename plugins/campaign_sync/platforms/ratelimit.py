"""Client-side rate limiting: stay under a platform's per-second and per-minute limits."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

# Limits over windows this short are paced, not just counted (see RateLimiter).
PACED_WINDOW = 1.0
# The most ``held_up`` grows to after refusals.
MAX_HELD_UP = 0.2


class RateLimiter:
    """Sliding-window limiter over one or more (max calls, window seconds) limits.

    A limit over a window of a second or less is also paced: calls at least window / max
    calls apart. A platform counts calls as they arrive; a burst granted at once, with one call
    held up on its way (batches in flight share the process), could arrive bunched with the
    next window's calls and be refused. Longer windows keep their burst.

    ``held_up``: how late a granted call may reach the platform (batches in flight share the
    process and the GIL). Each window is kept that much longer, and paced over that length, so
    a late call still lands in a window of its own: a margin in time, which costs a limit of 10
    calls a second 5% at 50 ms where one call less would cost 10%.

    A platform's limit signal (``refused``) doubles ``held_up``, up to ``MAX_HELD_UP``: calls
    reached it later than allowed for (a loaded machine, a slow network), and would again.

    ``pause_for`` lets a limit signal from the server (Retry-After, reset headers) hold every
    later call, not just the one that was refused.
    """

    def __init__(
        self,
        limits: list[tuple[int, float]],
        *,
        held_up: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.limits = [(n, w) for n, w in limits if n > 0]
        self.held_up = max(0.0, held_up)
        self._calls: deque[float] = deque()
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._paused_until = 0.0

    def refused(self) -> None:
        """The platform refused a call for its rate: allow for later arrivals (a limiter
        without calls in flight, ``held_up`` 0, has none to allow for)."""
        with self._lock:
            self.held_up = min(MAX_HELD_UP, self.held_up * 2)

    def pause_for(self, seconds: float) -> None:
        """Make every call wait at least ``seconds`` from now."""
        with self._lock:
            self._paused_until = max(self._paused_until, self._clock() + seconds)

    def _wait_time(self, now: float) -> float:
        wait = self._paused_until - now
        for max_calls, window in self.limits:
            span = window + self.held_up
            recent = [t for t in self._calls if t > now - span]
            if len(recent) >= max_calls:
                wait = max(wait, recent[-max_calls] + span - now)
            if window <= PACED_WINDOW and self._calls:
                wait = max(wait, self._calls[-1] + span / max_calls - now)
        return wait

    def acquire(self) -> float:
        """Block until a call is allowed; return the seconds waited."""
        waited = 0.0
        longest = max((w for _, w in self.limits), default=0.0) + self.held_up
        while True:
            with self._lock:
                now = self._clock()
                wait = self._wait_time(now)
                if wait <= 0:
                    self._calls.append(now)
                    while self._calls and self._calls[0] <= now - longest:
                        self._calls.popleft()
                    return waited
            self._sleep(wait)
            waited += wait
