"""Klaviyo: one list per audience, filled by Bulk Import Profiles jobs, emptied by profile id."""

from __future__ import annotations

import json
import logging
import math
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

from campaign_sync.hooks.audience import AudienceHook, BatchResult, Row
from campaign_sync.platforms.audiences import Audience, Page, paginate
from campaign_sync.platforms.batches import json_value
from campaign_sync.platforms.client import (
    Auth,
    HeaderAuth,
    Outcome,
    PlatformError,
    default_classify,
    retry_after_seconds,
)

log = logging.getLogger(__name__)

JSON_API = "application/vnd.api+json"
# Profile attributes of the destination contract; every other attribute is a custom property.
PROFILE_FIELDS = frozenset({"email", "phone_number", "external_id", "first_name", "last_name"})
MAX_PROFILE_BYTES = 100_000  # per profile in a bulk import job
REMOVE_MAX_IDS = 1000  # profile ids per Remove Profiles from List call
PROFILES_PAGE = 100  # Get Profiles page[size] maximum
# Emails per Get Profiles look-up. Klaviyo documents no cap on `any` values; one page's worth
# keeps each look-up to one page, and the character cap keeps the URL well under proxy limits.
LOOKUP_MAX_EMAILS = PROFILES_PAGE
LOOKUP_MAX_CHARS = 6000
IMPORT_ERRORS_READ = 1000  # import errors read to summarise failure codes
_THROTTLE_DETAIL = re.compile(r"expected available in (\d+(?:\.\d+)?) second", re.IGNORECASE)
_SLOT = "\x00profiles\x00"  # where the encoded profiles go in the job envelope


class _HideProfileQueries(logging.Filter):
    """Drop the query of Get Profiles calls from urllib3's debug lines: it holds emails."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                a.split("?", 1)[0] if isinstance(a, str) and "/api/profiles?" in a else a
                for a in record.args
            )
        return True


_urllib3_log = logging.getLogger("urllib3.connectionpool")
if not any(isinstance(f, _HideProfileQueries) for f in _urllib3_log.filters):
    _urllib3_log.addFilter(_HideProfileQueries())


def _profile(row: Row) -> dict[str, Any]:
    """One bulk-import profile: contract fields as attributes, the rest as properties.

    Null values are left out: a bulk import cannot clear a field, and a null would only be noise.
    """
    attributes: dict[str, Any] = {}
    properties: dict[str, Any] = {}
    for name, raw in row.items():
        value = json_value(raw)
        if value is None:
            continue
        if name in PROFILE_FIELDS:
            if str(value):
                attributes[name] = str(value)
        else:
            properties[name] = value
    if properties:
        attributes["properties"] = properties
    return {"type": "profile", "attributes": attributes}


def _encode(payload: Any) -> bytes:
    """The exact bytes sent: compact UTF-8 JSON (what the byte limits are measured on)."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def _quote(value: str) -> str:
    """A string literal of Klaviyo's filter syntax."""
    return json.dumps(value, ensure_ascii=False)


def _next_cursor(body: dict[str, Any]) -> str | None:
    """The page[cursor] of the next page, from the response's ``links.next``."""
    nxt = (body.get("links") or {}).get("next")
    if not nxt:
        return None
    return parse_qs(urlsplit(nxt).query).get("page[cursor]", [None])[0]


def _chunks(items: Sequence[str], max_items: int, max_chars: int) -> Iterator[list[str]]:
    """Consecutive runs of ``items`` within an item count and a total character count."""
    chunk: list[str] = []
    chars = 0
    for item in items:
        if chunk and (len(chunk) >= max_items or chars + len(item) + 1 > max_chars):
            yield chunk
            chunk, chars = [], 0
        chunk.append(item)
        chars += len(item) + 1
    if chunk:
        yield chunk


class KlaviyoHook(AudienceHook):
    """Klaviyo API with a private API key (the connection's password).

    Extra fields: ``revision`` (the required ``revision`` header; default: the form's),
    ``job_timeout`` (seconds to wait for one bulk import job, default 3600).
    Published limits used: Bulk Import Profiles <= 10,000 profiles, <= 5 MB per job and
    <= 100 KB per profile; 10/s burst and 150/min steady on the job, job status, import-error,
    list and list-membership endpoints (one limiter for all calls keeps every endpoint under).
    Needs scopes lists:read, lists:write, profiles:read, profiles:write.
    """

    conn_type = "klaviyo"
    default_base_url = "https://a.klaviyo.com"
    rate_limits: ClassVar[list[tuple[int, float]]] = [(10, 1.0), (150, 60.0)]
    poll_interval: ClassVar[float] = 1.0  # first wait for a job; grows to poll_interval_max
    poll_interval_max: ClassVar[float] = 15.0

    @property
    def revision(self) -> str:
        """The API revision sent with every call."""
        return str(self.field("revision"))

    def auth(self) -> Auth:
        """Private-key auth."""
        return HeaderAuth("Authorization", f"Klaviyo-API-Key {self.secret()}")

    def headers(self) -> dict[str, str]:
        """The revision, and JSON:API bodies."""
        return {"revision": self.revision, "Accept": JSON_API, "Content-Type": JSON_API}

    def classify(self, response: Any) -> Outcome:
        """Klaviyo signals limits with 429 (Retry-After, or the wait in the error detail) and
        reports its steady window in RateLimit-* headers on every other response."""
        status = response.status_code
        if status == 429:
            wait = retry_after_seconds(response.headers)
            if wait is None:
                wait = _wait(response)
            return Outcome.retry("rate limited (429)", wait)
        if status == 401:
            return Outcome.fail(
                "HTTP 401: Klaviyo refused the private API key (the password)", "credentials"
            )
        if status == 403:
            return Outcome.fail(
                "HTTP 403: the private API key lacks a scope this needs "
                "(lists:read, lists:write, profiles:read, profiles:write)",
                "permission",
            )
        outcome = default_classify(response)
        if outcome.action == "ok":
            self._respect_window(response.headers)
        elif outcome.action == "fail":
            codes = _error_codes(response)
            if codes:
                return Outcome.fail(f"HTTP {status} ({', '.join(codes)})", outcome.kind)
        return outcome

    def _respect_window(self, headers: Any) -> None:
        # The steady window is spent: hold every call until it resets instead of drawing 429s.
        try:
            remaining = float(headers.get("RateLimit-Remaining"))
            reset = float(headers.get("RateLimit-Reset"))
        except (TypeError, ValueError):
            return
        if remaining <= 0 < reset:
            self.client.limiter.pause_for(reset)

    def _pages(self, path: str, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """Every item of a paginated GET. The next page is asked with the same path and the
        cursor only: ``links.next`` names Klaviyo's host (bypassing a configured host) and
        would put the filter into the client's log lines."""

        def page(cursor: str | None) -> Page[dict[str, Any]]:
            query = params if cursor is None else {**params, "page[cursor]": cursor}
            body = self.client.request("GET", path, params=query).json()
            return body.get("data") or [], _next_cursor(body)

        return paginate(page, what=f"{self.label}: GET {path}")

    # --- lists ---------------------------------------------------------------------------
    def audience_page(self, name: str, cursor: Any) -> Page[Audience]:
        """Lists called ``name`` (Klaviyo filters by exact name)."""
        params = {"filter": f"equals(name,{_quote(name)})", "fields[list]": "name,created"}
        body = self.get_json("/api/lists", params, **{"page[cursor]": cursor})
        lists = [
            Audience(str(item["id"]), str(attrs.get("name")), str(attrs.get("created") or ""))
            for item in body.get("data") or []
            for attrs in [item.get("attributes") or {}]
        ]
        return lists, _next_cursor(body)

    def create_audience(self, name: str) -> str:
        """Create the list (Klaviyo caps new lists per day: never resent blindly)."""
        body = self.client.request(
            "POST",
            "/api/lists",
            attempts=1,
            data=_encode({"data": {"type": "list", "attributes": {"name": name}}}),
        ).json()
        return str(body["data"]["id"])

    # --- add -----------------------------------------------------------------------------
    def _job_bodies(self, audience_id: str, profiles: list[bytes]) -> Iterator[tuple[bytes, int]]:
        """Import job bodies of at most ``max_batch_rows`` profiles and ``max_batch_bytes``
        bytes, measured on the encoded body itself; yields (body, profile count)."""
        envelope = _encode(
            {
                "data": {
                    "type": "profile-bulk-import-job",
                    "attributes": {"profiles": {"data": _SLOT}},
                    "relationships": {"lists": {"data": [{"type": "list", "id": audience_id}]}},
                }
            }
        )
        head, tail = envelope.split(_encode(_SLOT))
        head, tail = head + b"[", b"]" + tail
        limit = self.capabilities.max_batch_bytes or math.inf
        chunk: list[bytes] = []
        size = len(head) + len(tail)
        for profile in profiles:
            extra = len(profile) + (1 if chunk else 0)  # the comma before it
            if chunk and (len(chunk) >= self.capabilities.max_batch_rows or size + extra > limit):
                yield head + b",".join(chunk) + tail, len(chunk)
                chunk, size = [], len(head) + len(tail)
                extra = len(profile)
            chunk.append(profile)
            size += extra
        if chunk:
            yield head + b",".join(chunk) + tail, len(chunk)

    def add(self, audience_id: str, rows: Sequence[Row]) -> BatchResult:
        """Upsert profiles and add them to the list, one bulk import job per body (a batch
        whose encoded body outgrows the limit is split); failed profiles count as invalid."""
        profiles = [_encode(_profile(row)) for row in rows]
        fitting = [p for p in profiles if len(p) <= MAX_PROFILE_BYTES]
        received, invalid = 0, len(profiles) - len(fitting)
        if invalid:
            log.warning("%s: %d profiles exceed Klaviyo's 100 KB per profile; not sent",
                        self.label, invalid)  # fmt: skip
        for body, count in self._job_bodies(audience_id, fitting):
            result = self._import(body, count)
            received += result.received
            invalid += result.invalid
        return BatchResult(received=received, invalid=invalid)

    def _import(self, body: bytes, count: int) -> BatchResult:
        created = self.client.request("POST", "/api/profile-bulk-import-jobs", data=body).json()
        job = self._wait_for(created["data"])
        attributes = job["attributes"]
        failed = attributes.get("failed_count")
        codes: Counter[str] = Counter()
        if failed is None:  # not reported: count the job's import errors instead
            codes = self._import_error_codes(job["id"], limit=None)
            failed = sum(codes.values())
        elif failed:
            codes = self._import_error_codes(job["id"], limit=IMPORT_ERRORS_READ)
        failed = int(failed)
        if failed:
            summary = ", ".join(f"{code}: {n}" for code, n in sorted(codes.items()))
            log.warning("%s: bulk import job %s: %d of %d profiles failed (%s)",
                        self.label, job["id"], failed, count, summary)  # fmt: skip
        total = int(attributes.get("total_count") or count)
        return BatchResult(received=total - failed, invalid=failed)

    def _wait_for(self, job: dict[str, Any]) -> dict[str, Any]:
        """Poll a bulk import job until Klaviyo has processed it."""
        timeout = float(self.extra.get("job_timeout", 3600))
        deadline = self.clock.monotonic() + timeout
        interval = self.poll_interval
        while job["attributes"]["status"] not in ("complete", "cancelled"):
            if self.clock.monotonic() >= deadline:
                raise PlatformError(
                    f"{self.label}: bulk import job {job['id']} not complete after {timeout:.0f}s",
                    retryable=True,
                )
            self.clock.sleep(interval)
            interval = min(self.poll_interval_max, interval * 1.5)
            job = self.client.request("GET", f"/api/profile-bulk-import-jobs/{job['id']}").json()[
                "data"
            ]
        if job["attributes"]["status"] == "cancelled":
            raise PlatformError(
                f"{self.label}: bulk import job {job['id']} was cancelled", retryable=True
            )
        return job

    def _import_error_codes(self, job_id: str, *, limit: int | None) -> Counter[str]:
        """Import errors of a job (up to ``limit``) counted by code. Only the code is fetched:
        the errors' original payloads hold the profiles."""
        codes: Counter[str] = Counter()
        params = {"page[size]": 100, "fields[import-error]": "code"}
        path = f"/api/profile-bulk-import-jobs/{job_id}/import-errors"
        for error in self._pages(path, params):
            codes[str((error.get("attributes") or {}).get("code") or "unknown")] += 1
            if limit is not None and codes.total() >= limit:
                break
        return codes

    # --- remove --------------------------------------------------------------------------
    def _profile_ids(self, emails: Sequence[str]) -> list[str]:
        ids: set[str] = set()
        literals = [_quote(e) for e in emails]
        for chunk in _chunks(literals, LOOKUP_MAX_EMAILS, LOOKUP_MAX_CHARS):
            params = {
                "filter": f"any(email,[{','.join(chunk)}])",
                "fields[profile]": "email",
                "page[size]": PROFILES_PAGE,
            }
            ids.update(str(p["id"]) for p in self._pages("/api/profiles", params))
        return sorted(ids)

    def remove(self, audience_id: str, rows: Sequence[Row]) -> BatchResult:
        """Remove members from the list: their profile ids are looked up by email first (the
        endpoint takes ids only); emails without a profile are not in the list anyway."""
        emails = sorted({str(row["email"]) for row in rows if row.get("email")})
        ids = self._profile_ids(emails)
        path = f"/api/lists/{audience_id}/relationships/profiles"
        for start in range(0, len(ids), REMOVE_MAX_IDS):
            members = [{"type": "profile", "id": i} for i in ids[start : start + REMOVE_MAX_IDS]]
            self.client.request("DELETE", path, data=_encode({"data": members}))
        return BatchResult(received=len(ids))


def _error_codes(response: Any) -> list[str]:
    """Klaviyo's error codes of a response (never its details: they may echo values)."""
    try:
        errors = response.json().get("errors") or []
    except (ValueError, AttributeError):
        return []
    return sorted({str(e.get("code")) for e in errors if isinstance(e, dict) and e.get("code")})


def _wait(response: Any) -> float | None:
    """The wait a 429 names in its error detail ("Expected available in N seconds")."""
    try:
        errors = response.json().get("errors") or []
    except (ValueError, AttributeError):
        return None
    for error in errors:
        match = _THROTTLE_DETAIL.search(str(error.get("detail", "")))
        if match:
            # Klaviyo's windows are whole seconds: "0 seconds" still means the next window.
            return max(1.0, float(match.group(1)))
    return None
