"""Attentive: API v2 segments filled through the bulk segment-member endpoints."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any, ClassVar

from campaign_sync.hooks.audience import AudienceHook, BatchResult, Row
from campaign_sync.platforms.client import Outcome, PlatformError, default_classify

# Rows carry exactly one of these (the destination contract); Attentive takes either as a
# segment member's identifier.
IDENTIFIERS = ("phone", "email")
MAX_NAME_LENGTH = 240  # CreateSegmentRequest.name
RATE_WINDOW_SECONDS = 1.0  # x-ratelimit-* headers count requests per second


class AttentiveHook(AudienceHook):
    """Attentive API v2 with a private app's API key (the connection's password), sent as
    ``Authorization: Bearer``.

    Segments are found by name (``GET /v2/segments``) or created once (``POST /v2/segments``)
    and addressed by their external id. Members are added (``POST``) and removed (``DELETE``)
    through ``/v2/bulk/segments/members``, 1-10,000 per request, each identified by the one
    identifier the rows carry: an E.164 phone or a normalized email, sent as projected.

    Published limits: 150 requests per second per endpoint (rate-limit guide), 100 per second
    on the v2 segment, bulk and job endpoints (API reference); 429 with per-second
    ``x-ratelimit-limit`` / ``x-ratelimit-remaining`` headers.

    Bulk requests are asynchronous: 202 means queued, and per-member outcomes exist only in the
    job's result file hours later (``GET /v2/bulk/job/{id}`` gives status and total, not counts),
    so a batch is acknowledged on 202 and no invalid count is available at export time. Job ids
    are logged for auditing in Attentive.
    """

    conn_type = "attentive"
    hook_name = "Attentive"
    default_conn_name = "attentive_default"
    default_base_url = "https://api.attentivemobile.com"
    max_batch_rows: ClassVar[int] = 10_000
    # 10% under the lowest published figure: one limiter spans every endpoint and leaves room
    # for clock and latency differences between us and Attentive's window.
    rate_limits: ClassVar[list[tuple[int, float]]] = [(90, 1.0)]
    replace_style: ClassVar[str | None] = None
    page_size: ClassVar[int] = 1000  # GET /v2/segments maximum

    def auth_headers(self) -> dict[str, str]:
        """Bearer API key of the connection."""
        return {"Authorization": f"Bearer {self.secret()}", "Accept": "application/json"}

    def classify(self, response: Any) -> Outcome:
        """429 waits out the per-second window; 401/403 fail with what to check."""
        status = response.status_code
        if status == 429 and "Retry-After" not in response.headers:
            if response.headers.get("x-ratelimit-remaining") == "0":
                # Attentive's quota is per second: the next window is at most a second away.
                return Outcome.retry("rate limited (429)", RATE_WINDOW_SECONDS)
            return Outcome.retry("rate limited (429)")  # backoff with jitter, as advised
        if status == 401:
            return Outcome.fail("unauthorized (401); check the API key in the password field")
        if status == 403:
            return Outcome.fail("access denied (403); the API key needs the Segments permission")
        return default_classify(response)

    @staticmethod
    def external_id_for(name: str) -> str:
        """External id given to a segment this hook creates: stable per name, so a create
        whose response was lost is found again instead of creating a twin."""
        return "campaign-sync-" + hashlib.sha256(name.encode()).hexdigest()[:32]

    def _find(self, name: str, external_id: str) -> str | None:
        matches: list[str] = []
        params: dict[str, Any] = {"name": name, "limit": self.page_size}
        while True:
            body = self.client.request("GET", "/v2/segments", params=params).json()
            # The name filter is a partial match: keep exact names only.
            matches += [
                str(s["externalId"]) for s in body.get("segments") or [] if s.get("name") == name
            ]
            if not body.get("hasMore") or not body.get("cursor"):
                break
            params = {**params, "cursor": body["cursor"]}
        if external_id in matches:
            return external_id
        if len(matches) > 1:
            raise PlatformError(
                f"{self.hook_name} ({self.conn_id}): {len(matches)} segments are named {name!r} "
                f"(external ids {', '.join(sorted(matches))}); rename or archive all but one"
            )
        return matches[0] if matches else None

    def ensure_audience(self, name: str) -> str:
        """External id of the segment named ``name``, created (empty) if there is none."""
        name = name.strip()  # Attentive trims names
        if not 1 <= len(name) <= MAX_NAME_LENGTH:
            raise ValueError(
                f"connection {self.conn_id!r}: Attentive segment names take 1-{MAX_NAME_LENGTH} "
                f"characters; {name!r} has {len(name)}"
            )
        external_id = self.external_id_for(name)
        found = self._find(name, external_id)
        if found is not None:
            return found
        try:
            created = self.client.request(
                "POST",
                "/v2/segments",
                json={
                    "name": name,
                    "description": "Managed by campaign-sync",
                    "externalId": external_id,
                },
            ).json()
        except PlatformError as exc:
            if exc.status != 400:
                raise
            # A retried create after a lost response is refused as a duplicate external id.
            if self._find(name, external_id) != external_id:
                raise PlatformError(
                    f"{exc}; no segment named {name!r} has external id {external_id!r} "
                    "(an archived segment may hold it: restore it or change audience_name)",
                    status=exc.status,
                ) from exc
            return external_id
        return str(created.get("externalId") or external_id)

    def _members(self, rows: Sequence[Row]) -> list[dict[str, str]]:
        members = []
        unusable = 0
        for row in rows:
            present = [key for key in IDENTIFIERS if row.get(key)]
            if len(present) != 1:
                unusable += 1
                continue
            members.append({present[0]: str(row[present[0]])})
        if unusable:
            # Projection guarantees one identifier per row: anything else is a bug upstream.
            raise ValueError(
                f"{self.hook_name} ({self.conn_id}): {unusable} of {len(rows)} rows carry not "
                "exactly one of phone or email"
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
            "%s (%s): %s of %d members queued as bulk job %s",
            self.hook_name, self.conn_id, "removal" if method == "DELETE" else "addition",
            len(members), body.get("batchJobId"),
        )  # fmt: skip
        return BatchResult(received=len(members))

    def add(self, audience_id: str, rows: Sequence[Row]) -> BatchResult:
        """Add members to the segment (an asynchronous bulk job)."""
        return self._bulk("POST", audience_id, rows)

    def remove(self, audience_id: str, rows: Sequence[Row]) -> BatchResult:
        """Remove members from the segment (an asynchronous bulk job)."""
        return self._bulk("DELETE", audience_id, rows)
