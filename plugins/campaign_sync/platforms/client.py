"""HTTP for platform hooks: one rate-limited client, retried with backoff and jitter, honouring
each platform's own limit signals, with pluggable authentication. Never logs request or response
bodies (they hold PII).

Failures are classified for Airflow: a ``PermanentPlatformError`` (refused credentials or
permissions, a missing object, a request the platform calls invalid) is an
``AirflowFailException`` and ends the task without retries; a plain ``PlatformError`` (limits,
5xx, timeouts, resets, retries used up) fails the try, and the task's retry resumes from its
checkpoint.
"""

from __future__ import annotations

import email.utils
import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests
from airflow.sdk.exceptions import AirflowFailException

from campaign_sync.platforms.clock import SYSTEM, Clock
from campaign_sync.platforms.ratelimit import RateLimiter

log = logging.getLogger(__name__)


class _RedactQueries(logging.Filter):
    """Drops query strings from urllib3's request lines: some platforms take identifiers and
    tokens in the URL (Meta's DELETE /users), and DEBUG logging must not print them."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                a.split("?", 1)[0] + "?<redacted>" if isinstance(a, str) and "?" in a else a
                for a in record.args
            )
        return True


logging.getLogger("urllib3.connectionpool").addFilter(_RedactQueries())

# What a permanent failure is about, and what the person reading the task log should do.
FIXES = {
    "credentials": "the platform refused the credentials; fix them in the Airflow connection",
    "permission": "the credentials lack a permission this needs; grant it on the platform",
    "missing": "the object does not exist (deleted, or another account's); check the "
    "connection's ids, or clear the task to create the audience again",
    "contract": "the platform refused the request as invalid; this is a campaign-sync bug or "
    "an unsupported value, not something a retry can fix",
    "config": "the Airflow connection is incomplete; fill in the field named",
}


class PlatformError(RuntimeError):
    """A platform call failed; Airflow retries the task (``retryable``: a retry may succeed)."""

    def __init__(self, message: str, *, status: int | None = None, retryable: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable


class PermanentPlatformError(PlatformError, AirflowFailException):
    """A failure no retry can fix: the task fails at once, naming what to fix."""

    def __init__(self, message: str, *, kind: str = "contract", status: int | None = None) -> None:
        fix = f" ({FIXES[kind]})"
        # Unpickling passes the finished message back in: add what to fix once.
        super().__init__(message if message.endswith(fix) else message + fix, status=status)
        self.kind = kind

    def __reduce__(self) -> tuple[Any, ...]:
        return (_permanent, (str(self), self.kind, self.status))


def _permanent(message: str, kind: str, status: int | None) -> PermanentPlatformError:
    return PermanentPlatformError(message, kind=kind, status=status)


@dataclass(frozen=True)
class Outcome:
    """How to treat a response: ``ok``, ``retry`` (optionally after ``wait`` s) or ``fail``
    (``kind`` says which permanent failure, see ``FIXES``)."""

    action: str
    wait: float | None = None
    reason: str = ""
    kind: str = "contract"
    throttled: bool = False

    @classmethod
    def ok(cls) -> Outcome:
        """The call succeeded."""
        return cls("ok")

    @classmethod
    def retry(cls, reason: str, wait: float | None = None, *, throttled: bool = False) -> Outcome:
        """Try again, after ``wait`` seconds if the platform said so; ``throttled`` marks a
        limit signal without a wait (backed off with the client's throttle backoff)."""
        return cls("retry", wait, reason, throttled=throttled)

    @classmethod
    def fail(cls, reason: str, kind: str = "contract") -> Outcome:
        """Give up: retrying cannot help."""
        return cls("fail", None, reason, kind)


def retry_after_seconds(headers: Any, now: float | None = None) -> float | None:
    """Seconds to wait from ``Retry-After`` (seconds or HTTP date), if present."""
    value = headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value)
        return max(0.0, parsed.timestamp() - (now if now is not None else SYSTEM.time()))


def default_classify(response: requests.Response) -> Outcome:
    """2xx ok; 408, 429 and 5xx retried (Retry-After honoured); 401/403/404 and other 4xx fail
    for good."""
    status = response.status_code
    if 200 <= status < 300:
        return Outcome.ok()
    if status == 429:
        return Outcome.retry("rate limited (429)", retry_after_seconds(response.headers))
    if status >= 500 or status == 408:
        return Outcome.retry(f"server error ({status})", retry_after_seconds(response.headers))
    kind = {401: "credentials", 403: "permission", 404: "missing", 410: "missing"}
    return Outcome.fail(f"HTTP {status}", kind.get(status, "contract"))


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with jitter: attempt n waits up to ``min(cap, base * 2**n)``;
    ``floor`` is the share of that always waited (0: full jitter, which spreads the retries
    of parallel tasks instead of synchronising them)."""

    base: float = 1.0
    cap: float = 60.0
    floor: float = 0.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry ``attempt`` (from 0)."""
        ceiling = min(self.cap, self.base * 2**attempt)
        return ceiling * self.floor + random.uniform(0, ceiling * (1 - self.floor))


class Auth:
    """How calls are authenticated; ``headers`` is asked before every call, ``renew`` after a
    401 (an auth that can renew its credentials returns True and the call is sent again)."""

    def headers(self, client: PlatformClient) -> dict[str, str]:
        """Headers for the next call."""
        return {}

    def renew(self, client: PlatformClient) -> bool:
        """Get fresh credentials after a 401; False when there is nothing to renew."""
        return False


class HeaderAuth(Auth):
    """A fixed secret in a header (API keys: ``Authorization: Klaviyo-API-Key ...``,
    ``Access-Token: ...``)."""

    def __init__(self, name: str, value: str) -> None:
        self._header = {name: value}

    def headers(self, client: PlatformClient) -> dict[str, str]:
        """The key's header."""
        return self._header


class BearerAuth(HeaderAuth):
    """A fixed bearer token (``Authorization: Bearer ...``)."""

    def __init__(self, token: str) -> None:
        super().__init__("Authorization", f"Bearer {token}")


class ClientCredentialsAuth(Auth):
    """OAuth 2 client credentials: a bearer token from ``token_path``, renewed a minute before it
    expires and once more if the platform revokes it early. The token call goes through the
    client (limits, retries); a refused client id or secret is a permanent failure."""

    def __init__(self, token_path: str, client_id: str, client_secret: str) -> None:
        self.token_path = token_path
        self._form = {
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": client_secret,
        }
        self._token: str | None = None
        self._expires = 0.0
        # Batches in flight share the token: one of them fetches it, the others wait for it.
        self._lock = threading.Lock()

    def headers(self, client: PlatformClient) -> dict[str, str]:
        """A current bearer token."""
        with self._lock:
            if self._token is None or client.clock.monotonic() >= self._expires:
                body = client.request(
                    "POST", self.token_path, data=self._form, authenticate=False, what="token"
                ).json()
                # Renew a minute early: a token that expires mid-batch costs a failed call.
                self._expires = client.clock.monotonic() + float(body.get("expires_in", 900)) - 60
                self._token = str(body["access_token"])
            return {"Authorization": f"Bearer {self._token}"}

    def renew(self, client: PlatformClient) -> bool:
        """Forget the token: the next call fetches a new one."""
        self._token = None
        return True


class PlatformClient:
    """A requests session bound to one platform: base URL, auth, limiter, attempts, backoff."""

    def __init__(
        self,
        *,
        name: str,
        base_url: str,
        headers: dict[str, str] | None = None,
        auth: Auth | None = None,
        limiter: RateLimiter,
        classify: Callable[[requests.Response], Outcome] = default_classify,
        max_attempts: int = 6,
        max_wait: float = 900.0,
        backoff: Backoff | None = None,
        throttle_backoff: Backoff | None = None,
        timeout: float = 60.0,
        clock: Clock = SYSTEM,
    ) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.session = requests.Session()
        self.session.headers.update(headers or {})
        self.auth = auth or Auth()
        self.limiter = limiter
        self.classify = classify
        self.max_attempts = max_attempts
        self.max_wait = max_wait
        self.backoff = backoff or Backoff()
        self.throttle_backoff = throttle_backoff or self.backoff
        self.timeout = timeout
        self.clock = clock
        self.stats = {"requests": 0, "retries": 0, "throttled": 0}
        self._stats_lock = threading.Lock()  # batches in flight count from several threads

    def _count(self, stat: str) -> None:
        with self._stats_lock:
            self.stats[stat] += 1

    def request(
        self,
        method: str,
        path: str,
        *,
        attempts: int | None = None,
        authenticate: bool = True,
        what: str | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        """Send one call, retrying retryable failures; return the successful response.

        ``attempts`` overrides the client's (1 for calls that must not be resent blindly);
        ``what`` names the call in errors instead of its path.
        """
        url = path if path.startswith("http") else f"{self.base_url}/{path.lstrip('/')}"
        label = f"{method} {what or path}"
        kwargs.setdefault("timeout", self.timeout)
        extra_headers = kwargs.pop("headers", None) or {}
        if kwargs.get("json") is not None and not kwargs.get("data"):
            # Encoded once, before the limiter grants the call (as requests would, byte for
            # byte): a granted call then reaches the wire at once, so calls in flight arrive
            # in the order and spacing the limiter gave them, and a retry is not re-encoded.
            body = requests.compat.json.dumps(kwargs.pop("json"), allow_nan=False)
            kwargs["data"] = body.encode()
            typed = {k.lower() for k in [*extra_headers, *self.session.headers]}
            if "content-type" not in typed:
                extra_headers = {**extra_headers, "Content-Type": "application/json"}
        attempts = attempts or self.max_attempts
        renewed = False
        throttled_in_a_row = 0
        last = ""
        attempt = 0
        while attempt < attempts:
            self.limiter.acquire()
            self._count("requests")
            headers = {**(self.auth.headers(self) if authenticate else {}), **extra_headers}
            try:
                response = self.session.request(method, url, headers=headers, **kwargs)
            except (requests.ConnectionError, requests.Timeout) as exc:
                outcome = Outcome.retry(type(exc).__name__)
            else:
                outcome = self.classify(response)
                if outcome.action == "ok":
                    return response
                if outcome.throttled or response.status_code == 429:
                    self.limiter.refused()
                if outcome.action == "fail":
                    if response.status_code == 401 and authenticate and not renewed:
                        # An expired or revoked token: renew it once and resend.
                        renewed = self.auth.renew(self)
                        if renewed:
                            continue
                    raise PermanentPlatformError(
                        f"{self.name}: {label} failed: {outcome.reason}",
                        kind=outcome.kind,
                        status=response.status_code,
                    )
            last = outcome.reason
            attempt += 1
            if attempt >= attempts:
                break
            self._count("retries")
            wait = self._wait(outcome, attempt - 1, throttled_in_a_row, label)
            throttled_in_a_row = throttled_in_a_row + 1 if outcome.throttled else 0
            log.warning(
                "%s: %s: %s; retry %d/%d in %.1fs",
                self.name, label, last, attempt, attempts - 1, wait,
            )  # fmt: skip
            if outcome.wait is None:
                self.clock.sleep(wait)
        raise PlatformError(
            f"{self.name}: {label} failed after {attempts} attempt{'s' * (attempts > 1)}: {last}",
            retryable=True,
        )

    def _wait(self, outcome: Outcome, attempt: int, throttled: int, label: str) -> float:
        if outcome.wait is None:
            backoff = self.throttle_backoff if outcome.throttled else self.backoff
            return backoff.delay(throttled if outcome.throttled else attempt)
        if outcome.wait > self.max_wait:
            # Do not hold a worker for longer: the task's retry resumes from the checkpoint.
            raise PlatformError(
                f"{self.name}: {label}: {outcome.reason}; the platform asks to wait "
                f"{outcome.wait:.0f}s, more than {self.max_wait:.0f}s",
                retryable=True,
            )
        # The platform named the wait: hold every call of this hook until then.
        self._count("throttled")
        wait = outcome.wait + random.uniform(0, 0.25)
        self.limiter.pause_for(wait)
        return wait
