"""TikTok Ads (API for Business v1.3): partner custom audiences of SHA-256 identifiers."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any, ClassVar

from campaign_sync.digests import sha256_prefix
from campaign_sync.hooks.audience import AudienceHook, BatchResult, Row
from campaign_sync.platforms.audiences import Audience, Page
from campaign_sync.platforms.batches import SHA256_HEX
from campaign_sync.platforms.client import (
    Auth,
    Backoff,
    HeaderAuth,
    Outcome,
    PermanentPlatformError,
    PlatformError,
    default_classify,
    retry_after_seconds,
)

log = logging.getLogger(__name__)

# Destination attribute -> TikTok id_schema entry, in the order id_schema lists them.
ID_SCHEMA: dict[str, str] = {
    "EMAIL": "EMAIL_SHA256",
    "PHONE": "PHONE_SHA256",
    "IDFA": "IDFA_SHA256",
    "AAID": "AAID_SHA256",
}
SUCCESS, PARTIAL = 0, 20001
# Limit codes: 40100 (app QPS/QPM/QPD), 40016 (endpoint), 40133 (advertiser QPS), 42900.
THROTTLE_CODES = frozenset({40016, 40100, 40133, 42900})
# Conflicts, system errors and maintenance: TikTok says a later retry may succeed.
RETRYABLE_CODES = frozenset({40202, 50000, 50002, 51305, 60001})
CREDENTIAL_CODES = frozenset({40102, 40104, 40105, 40106})
PERMISSION_CODES = frozenset({40001, 40119, 40300, 40301})
# Undocumented for /segment/mapping/: where a partial success (20001) would carry its count.
PARTIAL_COUNT_FIELD = "fail_count"
MAX_NAME = 70  # longer custom_audience_name values are cut to 67 characters + "..."
_SECRET_LOOKING = re.compile(r"[0-9A-Fa-f]{16,}|[^\s@]+@[^\s@]+")


def audience_name(name: str) -> str:
    """The name sent to TikTok: ``name`` itself, or a unique 70-character form of a longer one.

    TikTok cuts names over 70 characters, so two long names sharing a prefix would collide;
    a digest of the full name keeps the shortened one distinct and stable across runs.
    """
    if len(name) <= MAX_NAME:
        return name
    return f"{name[: MAX_NAME - 9].rstrip()} #{sha256_prefix(name, 7)}"


def truncated_by_tiktok(name: str) -> str:
    """How TikTok stores ``name`` when it is sent unshortened."""
    return name if len(name) <= MAX_NAME else f"{name[: MAX_NAME - 3]}..."


def _redact(text: str) -> str:
    # Platform messages may echo identifiers from the request: keep them out of logs.
    return _SECRET_LOOKING.sub("<redacted>", text)[:200]


class TikTokAdsHook(AudienceHook):
    """TikTok API for Business with a long-lived access token (the connection's password).

    Extra fields: ``advertiser_id`` (required). Published limits (Basic tier, per developer
    app): 10 calls per second and 600 per minute. TikTok has no replace operation.
    """

    conn_type = "tiktok_ads"
    default_base_url = "https://business-api.tiktok.com/open_api/v1.3"
    rate_limits: ClassVar[list[tuple[int, float]]] = [(10, 1.0), (600, 60.0)]
    # No Retry-After from TikTok: wait past the current second, doubling while the limit holds
    # (a per-minute limit suspends for up to 5 minutes), with jitter.
    throttle_backoff: ClassVar[Backoff | None] = Backoff(base=2.0, cap=600.0, floor=0.5)
    page_size = 100  # the list endpoint's maximum

    def auth(self) -> Auth:
        """TikTok's ``Access-Token`` header."""
        return HeaderAuth("Access-Token", self.secret())

    def classify(self, response: Any) -> Outcome:
        """TikTok answers HTTP 200 with a non-zero ``code`` for errors and limits."""
        status = response.status_code
        if status == 429:
            wait = retry_after_seconds(response.headers)
            return Outcome.retry("rate limited (HTTP 429)", wait, throttled=wait is None)
        if not 200 <= status < 300:
            return default_classify(response)
        try:
            body = response.json()
        except ValueError:
            return Outcome.retry("unreadable response body")
        if not isinstance(body, dict):
            return Outcome.retry("unexpected response body")
        code = body.get("code", SUCCESS)  # documented as present on errors only
        request_id = body.get("request_id", "?")
        if code in (SUCCESS, PARTIAL):
            return Outcome.ok()
        if code in THROTTLE_CODES:
            return Outcome.retry(f"rate limited (code {code})", throttled=True)
        if code in RETRYABLE_CODES:
            return Outcome.retry(f"code {code}, request {request_id}")
        message = _redact(str(body.get("message", "")))
        reason = f"code {code}: {message} (request {request_id})"
        if code in CREDENTIAL_CODES:
            return Outcome.fail(f"{reason}; check the connection's access token", "credentials")
        if code in PERMISSION_CODES:
            return Outcome.fail(
                f"{reason}; check the connection's advertiser_id and the token's access to it",
                "permission",
            )
        return Outcome.fail(reason)

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        return self.client.request(method, path, **kwargs).json()

    @property
    def advertiser_id(self) -> str:
        """The connection's advertiser."""
        return str(self.field("advertiser_id"))

    def audience_page(self, name: str, cursor: Any) -> Page[Audience]:
        """This advertiser's own audiences (TikTok cannot filter by name); the cursor is a
        page number. Audiences shared by other advertisers are listed too, but cannot be
        written, so they are left out."""
        page = cursor or 1
        data = (
            self._call(
                "GET",
                "/dmp/custom_audience/list/",
                params={"advertiser_id": self.advertiser_id, "page": page,
                        "page_size": self.page_size},
            ).get("data")
            or {}
        )  # fmt: skip
        audiences = [
            Audience(str(item["audience_id"]), str(item.get("name", "")).strip(),
                     str(item.get("create_time", "")))
            for item in data.get("list") or []
            if item.get("is_creator") is not False
        ]  # fmt: skip
        total_pages = int((data.get("page_info") or {}).get("total_page") or 1)
        return audiences, page + 1 if page < total_pages else None

    def audience_matches(self, audience: Audience, name: str) -> bool:
        """The name as sent, or as TikTok cuts a longer one."""
        return audience.name in {audience_name(name), truncated_by_tiktok(name)}

    def create_audience(self, name: str) -> str:
        """Create the custom audience, sent once."""
        body = self._call(
            "POST",
            "/segment/audience/",
            attempts=1,
            json={
                "advertiser_id": self.advertiser_id,
                "custom_audience_name": audience_name(name),
                "action": "create",
            },
        )
        created = (body.get("data") or {}).get("audience_id")
        if not created:
            raise PlatformError(
                f"{self.label}: creating the audience returned no id"
                f" (request {body.get('request_id', '?')})"
            )
        return str(created)

    def _map(self, action: str, audience_id: str, rows: Sequence[Row]) -> BatchResult:
        attributes = [a for a in ID_SCHEMA if a in rows[0]]
        if not attributes:
            raise PermanentPlatformError(
                f"{self.label}: rows carry none of {', '.join(ID_SCHEMA)}", kind="contract"
            )
        batch_data: list[list[dict[str, Any]]] = []
        malformed = 0
        for row in rows:
            values = [row.get(a) or None for a in attributes]
            # Projection writes lowercase SHA-256 hex; anything else would fail the request.
            if all(v is None for v in values) or any(
                v is not None and not SHA256_HEX.fullmatch(str(v)) for v in values
            ):
                malformed += 1
                continue
            batch_data.append(
                [{} if v is None else {"id": v, "audience_ids": [audience_id]} for v in values]
            )
        if malformed:
            log.warning("%d rows without a well-formed SHA-256 identifier not sent", malformed)
        if not batch_data:
            return BatchResult(received=0, invalid=malformed)
        body = self._call(
            "POST",
            "/segment/mapping/",
            json={
                "advertiser_ids": [self.advertiser_id],
                "action": action,
                "id_schema": [ID_SCHEMA[a] for a in attributes],
                "batch_data": batch_data,
            },
        )
        rejected = 0
        if body.get("code") == PARTIAL:
            count = (body.get("data") or {}).get(PARTIAL_COUNT_FIELD)
            if isinstance(count, int) and 0 <= count <= len(batch_data):
                rejected = count
            log.warning(
                "TikTok accepted a batch of %d users in part: %s rejected (request %s)",
                len(batch_data), rejected if count is not None else "an unreported number",
                body.get("request_id", "?"),
            )  # fmt: skip
        return BatchResult(received=len(batch_data) - rejected, invalid=malformed + rejected)

    def add(self, audience_id: str, rows: Sequence[Row]) -> BatchResult:
        """Map users' hashed identifiers to the audience."""
        return self._map("add", audience_id, rows)

    def remove(self, audience_id: str, rows: Sequence[Row]) -> BatchResult:
        """Unmap users' hashed identifiers from the audience."""
        return self._map("delete", audience_id, rows)
