"""Criteo Marketing Solutions: contact-list audience segments of hashed emails."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from campaign_sync.hooks.audience import AudienceHook, BatchResult, Row
from campaign_sync.platforms.audiences import Audience, Page
from campaign_sync.platforms.client import (
    Auth,
    ClientCredentialsAuth,
    Outcome,
    PlatformError,
    default_classify,
)


class CriteoHook(AudienceHook):
    """Criteo API through OAuth2 client credentials (login = client id, password = secret).

    Extra fields: ``advertiser_id`` (required), ``api_version`` (default 2026-01).
    Published limits: 250 calls per minute per application; 50,000 identifiers per amendment.
    """

    conn_type = "criteo"
    default_base_url = "https://api.criteo.com"
    rate_limits: ClassVar[list[tuple[int, float]]] = [(250, 60.0)]
    page_size = 100

    def _path(self, suffix: str) -> str:
        return f"/{self.api_version}/marketing-solutions/{suffix}"

    def auth(self) -> Auth:
        """Bearer tokens from the client-credentials flow, renewed before they expire."""
        return ClientCredentialsAuth("/oauth2/token", self.login(), self.secret())

    @property
    def api_version(self) -> str:
        """Criteo API version in every path."""
        return str(self.field("api_version"))

    def classify(self, response: Any) -> Outcome:
        """Criteo signals limits with 429 and an epoch ``x-ratelimit-reset``."""
        if response.status_code == 429 and "Retry-After" not in response.headers:
            reset = response.headers.get("x-ratelimit-reset")
            if reset is not None:
                wait = max(0.0, float(reset) - self.clock.time())
                return Outcome.retry("rate limited (429)", wait)
        if response.status_code == 401:
            return Outcome.fail(
                "HTTP 401: check the connection's client id and secret", "credentials"
            )
        if response.status_code == 403:
            return Outcome.fail(
                "HTTP 403: the API client has no access to the connection's advertiser_id",
                "permission",
            )
        return default_classify(response)

    def audience_page(self, name: str, cursor: Any) -> Page[Audience]:
        """Contact-list segments of the connection's advertiser (Criteo cannot filter by name);
        the cursor is an offset."""
        offset = cursor or 0
        body = self.client.request(
            "POST",
            self._path("audience-segments/search"),
            params={"limit": self.page_size, "offset": offset},
            json={
                "data": {
                    "type": "AudienceSegment",
                    "attributes": {
                        "advertiserIds": [str(self.field("advertiser_id"))],
                        "audienceSegmentTypes": ["ContactList"],
                    },
                }
            },
        ).json()
        data = body.get("data") or []
        segments = [
            Audience(
                str(s["id"]),
                str((s.get("attributes") or {}).get("name")),
                str((s.get("attributes") or {}).get("createdAt") or ""),
            )
            for s in data
        ]
        return segments, offset + self.page_size if len(data) >= self.page_size else None

    def create_audience(self, name: str) -> str:
        """Create a contact-list segment for the connection's advertiser, sent once."""
        created = self.client.request(
            "POST",
            self._path("audience-segments/create"),
            attempts=1,
            json={
                "data": [
                    {
                        "type": "AudienceSegment",
                        "attributes": {
                            "name": name,
                            "description": "Managed by campaign-sync",
                            "advertiserId": str(self.field("advertiser_id")),
                            "contactList": {},
                        },
                    }
                ]
            },
        ).json()
        if created.get("errors") or not created.get("data"):
            raise PlatformError(f"{self.label}: the segment was not created")
        return str(created["data"][0]["id"])

    def _amend(self, audience_id: str, operation: str, rows: Sequence[Row]) -> BatchResult:
        body = self.client.request(
            "PATCH",
            self._path(f"audience-segments/{audience_id}/contact-list"),
            json={
                "data": {
                    "type": "ContactlistAmendment",
                    "attributes": {
                        "operation": operation,
                        "identifierType": "email",
                        "identifiers": [row["email"] for row in rows],
                    },
                }
            },
        ).json()
        attributes = body.get("data", {}).get("attributes", {})
        return BatchResult(
            received=int(attributes.get("nbValidIdentifiers", len(rows))),
            invalid=int(attributes.get("nbInvalidIdentifiers", 0)),
        )

    def add(self, audience_id: str, rows: Sequence[Row]) -> BatchResult:
        """Add SHA-256 emails to the contact list."""
        return self._amend(audience_id, "add", rows)

    def remove(self, audience_id: str, rows: Sequence[Row]) -> BatchResult:
        """Remove SHA-256 emails from the contact list."""
        return self._amend(audience_id, "remove", rows)

    def clear(self, audience_id: str) -> None:
        """Empty the contact list (replace = clear, then add)."""
        self.client.request("DELETE", self._path(f"audience-segments/{audience_id}/contact-list"))
