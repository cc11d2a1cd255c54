"""HTTP for platform hooks: rate-limited, retried with backoff and jitter, honouring each
platform's own limit signals. Never logs request or response bodies (they hold PII)."""

from __future__ import annotations

import email.utils
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests

from campaign_sync.platforms.ratelimit import RateLimiter

log = logging.getLogger(__name__)


class PlatformError(RuntimeError):
    """A platform call failed for good (or ran out of retries)."""

    def __init__(self, message: str, *, status: int | None = None, retryable: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable


@dataclass(frozen=True)
class Outcome:
    """How to treat a response: ``ok``, ``retry`` (optionally after ``wait`` s) or ``fail``."""

    action: str
    wait: float | None = None
    reason: str = ""

    @classmethod
    def ok(cls) -> Outcome:
        """The call succeeded."""
        return cls("ok")

    @classmethod
    def retry(cls, reason: str, wait: float | None = None) -> Outcome:
        """Try again, after ``wait`` seconds if the platform said so."""
        return cls("retry", wait, reason)

    @classmethod
    def fail(cls, reason: str) -> Outcome:
        """Give up: retrying cannot help."""
        return cls("fail", None, reason)


def retry_after_seconds(headers: Any, now: float | None = None) -> float | None:
    """Seconds to wait from ``Retry-After`` (seconds or HTTP date), if present."""
    value = headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value)
        return max(0.0, parsed.timestamp() - (now if now is not None else time.time()))


def default_classify(response: requests.Response) -> Outcome:
    """2xx ok; 429 and 5xx retried (Retry-After honoured); other 4xx fail."""
    status = response.status_code
    if 200 <= status < 300:
        return Outcome.ok()
    if status == 429:
        return Outcome.retry("rate limited (429)", retry_after_seconds(response.headers))
    if status >= 500:
        return Outcome.retry(f"server error ({status})", retry_after_seconds(response.headers))
    return Outcome.fail(f"HTTP {status}")


class PlatformClient:
    """A requests session bound to one platform: base URL, auth headers, limiter and retries."""

    def __init__(
        self,
        *,
        name: str,
        base_url: str,
        headers: dict[str, str],
        limiter: RateLimiter,
        classify: Callable[[requests.Response], Outcome] = default_classify,
        max_attempts: int = 6,
        max_wait: float = 900.0,
        backoff_base: float = 1.0,
        backoff_cap: float = 60.0,
        timeout: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.session = requests.Session()
        self.session.headers.update(headers)
        self.limiter = limiter
        self.classify = classify
        self.max_attempts = max_attempts
        self.max_wait = max_wait
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.timeout = timeout
        self._sleep = sleep
        self.stats = {"requests": 0, "retries": 0, "throttled": 0}

    def _backoff(self, attempt: int) -> float:
        # Full jitter: spreads retries of parallel tasks instead of synchronising them.
        return random.uniform(0, min(self.backoff_cap, self.backoff_base * 2**attempt))

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """Send one call, retrying retryable failures; return the successful response."""
        url = path if path.startswith("http") else f"{self.base_url}/{path.lstrip('/')}"
        kwargs.setdefault("timeout", self.timeout)
        last = ""
        for attempt in range(self.max_attempts):
            self.limiter.acquire()
            self.stats["requests"] += 1
            try:
                response = self.session.request(method, url, **kwargs)
            except (requests.ConnectionError, requests.Timeout) as exc:
                last = f"{type(exc).__name__}"
                outcome = Outcome.retry(last)
            else:
                outcome = self.classify(response)
                if outcome.action == "ok":
                    return response
                last = outcome.reason
                if outcome.action == "fail":
                    raise PlatformError(
                        f"{self.name}: {method} {path} failed: {outcome.reason}",
                        status=response.status_code,
                    )
            if attempt == self.max_attempts - 1:
                break
            self.stats["retries"] += 1
            if outcome.wait is not None and outcome.wait > self.max_wait:
                # Do not hold a worker for longer: the task's retry resumes from the checkpoint.
                raise PlatformError(
                    f"{self.name}: {method} {path}: {last}; the platform asks to wait "
                    f"{outcome.wait:.0f}s, more than {self.max_wait:.0f}s",
                    retryable=True,
                )
            if outcome.wait is not None:
                # The platform named the wait: hold every call of this hook until then.
                self.stats["throttled"] += 1
                wait = outcome.wait + random.uniform(0, 0.25)
                self.limiter.pause_for(wait)
            else:
                wait = self._backoff(attempt)
            log.warning(
                "%s: %s %s: %s; retry %d/%d in %.1fs",
                self.name, method, path, last, attempt + 1, self.max_attempts - 1, wait,
            )  # fmt: skip
            if outcome.wait is None:
                self._sleep(wait)
        raise PlatformError(
            f"{self.name}: {method} {path} failed after {self.max_attempts} attempts: {last}",
            retryable=True,
        )
