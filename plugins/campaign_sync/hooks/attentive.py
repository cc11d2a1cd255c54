"""Attentive: API v2 segments filled through the bulk segment-member endpoints."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from campaign_sync.digests import sha256_prefix
from campaign_sync.hooks.audience import AudienceHook, BatchResult, Row
from campaign_sync.platforms.audiences import Audience, Page
from campaign_sync.platforms.client import Outcome, PermanentPlatformError, default_classify

MAX_NAME_LENGTH = 240  # CreateSegmentRequest.name
RATE_WINDOW_SECONDS = 1.0  # x-ratelimit-* headers count requests per second


class AttentiveHook(AudienceHook):
    """Attentive API v2 with a private app's API key (the connection's password), sent as
    ``Authorization: Bearer``.

    Segments are found by name (``GET /v2/segments``) or created once (``POST /v2/segments``,
    with an external id derived from the name) and addressed by their external id. Members are
    added (``POST``) and removed (``DELETE``) through ``/v2/bulk/segments/members``, 1-10,000
    per request, each identified by the one identifier the rows carry: an E.164 phone or a
    normalized email, sent as projected.

    Published limits: 150 requests per second per endpoint (rate-limit guide), 100 per second
    on the v2 segment, bulk and job endpoints (API reference); 429 with per-second
    ``x-ratelimit-limit`` / ``x-ratelimit-remaining`` headers.

    Bulk requests are asynchronous: 202 means queued, and per-member outcomes exist only in the
    job's result file hours later (``GET /v2/bulk/job/{id}`` gives status and total, not counts),
    so a batch is acknowledged on 202 and no invalid count is available at export time. Job ids
    are logged for auditing in Attentive.
    """

    conn_type = "attentive"
    default_base_url = "https://api.attentivemobile.com"
    # 10% under the lowest published figure: one limiter spans every endpoint and leaves room
    # for clock and latency differences between us and Attentive's window.
    rate_limits: ClassVar[list[tuple[int, float]]] = [(90, 1.0)]
    page_size: ClassVar[int] = 1000  # GET /v2/segments maximum

    def classify(self, response: Any) -> Outcome:
        """429 waits out the per-second window; 401/403 fail with what to check."""
        status = response.status_code
        if status == 429 and "Retry-After" not in response.headers:
            if response.headers.get("x-ratelimit-remaining") == "0":
                # Attentive's quota is per second: the next window is at most a second away.
                return Outcome.retry("rate limited (429)", RATE_WINDOW_SECONDS)
            return Outcome.retry("rate limited (429)")  # backoff with jitter, as advised
        if status == 401:
            return Outcome.fail(
                "unauthorized (401); check the API key in the password field", "credentials"
            )
        if status == 403:
            return Outcome.fail(
                "access denied (403); the API key needs the Segments permission", "permission"
            )
        return default_classify(response)

    @staticmethod
    def external_id_for(name: str) -> str:
        """External id given to a segment this hook creates: stable per name."""
        return "campaign-sync-" + sha256_prefix(name, 32)

    def ensure_audience(self, name: str) -> str:
        """External id of the segment named ``name``, created (empty) if there is none."""
        name = name.strip()  # Attentive trims names
        if not 1 <= len(name) <= MAX_NAME_LENGTH:
            raise PermanentPlatformError(
                f"{self.label}: Attentive segment names take 1-{MAX_NAME_LENGTH} characters; "
                f"the audience name has {len(name)}",
                kind="contract",
            )
        return super().ensure_audience(name)

    def audience_page(self, name: str, cursor: Any) -> Page[Audience]:
        """Segments whose name contains ``name`` (Attentive's filter is a partial match)."""
        params = {"name": name, "limit": self.page_size}
        body = self.get_json("/v2/segments", params, cursor=cursor)
        segments = [
            Audience(str(s["externalId"]), str(s.get("name")), str(s.get("created") or ""))
            for s in body.get("segments") or []
        ]
        more = body.get("hasMore") and body.get("cursor")
        return segments, body["cursor"] if more else None

    def create_audience(self, name: str) -> str:
        """Create the segment, sent once."""
        external_id = self.external_id_for(name)
        created = self.client.request(
            "POST",
            "/v2/segments",
            attempts=1,
            json={
                "name": name,
                "description": "Managed by campaign-sync",
                "externalId": external_id,
            },
        ).json()
        return str(created.get("externalId") or external_id)

    def _members(self, rows: Sequence[Row]) -> list[dict[str, str]]:
        members = []
        unusable = 0
        for row in rows:
            present = [key for key in self.capabilities.identifiers if row.get(key)]
            if len(present) != 1:
                unusable += 1
                continue
            members.append({present[0]: str(row[present[0]])})
        if unusable:
            # Projection guarantees one identifier per row: anything else is a bug upstream.
            raise PermanentPlatformError(
                f"{self.label}: {unusable} of {len(rows)} rows carry not exactly one of phone "
                "or email",
                kind="contract",
            )
        return members

    def _bulk(self, method: str, audience_id: str, rows: Sequence[Row]) -> BatchResult:
        members = self._members(rows)
        body = self.client.request(
            method,
            "/v2/bulk/segments/members",
            json={"externalId": audience_id, "members": members},
        ).json()
        self.log.info(
            "%s: %s of %d members queued as bulk job %s",
            self.label, "removal" if method == "DELETE" else "addition",
            len(members), body.get("batchJobId"),
        )  # fmt: skip
        return BatchResult(received=len(members))

    def add(self, audience_id: str, rows: Sequence[Row]) -> BatchResult:
        """Add members to the segment (an asynchronous bulk job)."""
        return self._bulk("POST", audience_id, rows)

    def remove(self, audience_id: str, rows: Sequence[Row]) -> BatchResult:
        """Remove members from the segment (an asynchronous bulk job)."""
        return self._bulk("DELETE", audience_id, rows)
