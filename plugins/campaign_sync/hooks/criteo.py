"""Criteo Marketing Solutions: contact-list audience segments of hashed emails."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, ClassVar

import requests

from campaign_sync.hooks.audience import AudienceHook, BatchResult, Row
from campaign_sync.platforms.client import Outcome, PlatformError, default_classify


class CriteoHook(AudienceHook):
    """Criteo API through OAuth2 client credentials (login = client id, password = secret).

    Extra fields: ``advertiser_id`` (required), ``api_version`` (default 2026-01).
    Published limits: 250 calls per minute per application; 50,000 identifiers per amendment.
    """

    conn_type = "criteo"
    hook_name = "Criteo"
    default_conn_name = "criteo_default"
    default_base_url = "https://api.criteo.com"
    max_batch_rows: ClassVar[int] = 50_000
    rate_limits: ClassVar[list[tuple[int, float]]] = [(250, 60.0)]
    replace_style: ClassVar[str | None] = "clear"
    page_size = 100

    _token: str | None = None
    _token_expires = 0.0

    @property
    def api_version(self) -> str:
        """Criteo API version in every path."""
        return str(self.extra.get("api_version") or "2026-01")

    def _path(self, suffix: str) -> str:
        return f"/{self.api_version}/marketing-solutions/{suffix}"

    def _fetch_token(self) -> str:
        if not self.connection.login:
            raise ValueError(f"connection {self.conn_id!r} has no client id in its login")
        response = requests.post(
            f"{self.base_url}/oauth2/token",
            data={
                "grant_type": "client_credentials",
                "client_id": self.connection.login,
                "client_secret": self.secret(),
            },
            timeout=float(self.extra.get("timeout", 60)),
        )
        if response.status_code != 200:
            raise PlatformError(
                f"Criteo ({self.conn_id}): token request refused (HTTP {response.status_code});"
                " check the connection's client id and secret",
                status=response.status_code,
            )
        body = response.json()
        # Renew a minute early: a token that expires mid-batch costs a failed call.
        self._token_expires = time.monotonic() + float(body.get("expires_in", 900)) - 60
        return str(body["access_token"])

    def auth_headers(self) -> dict[str, str]:
        """Bearer token from the client-credentials flow."""
        if self._token is None or time.monotonic() >= self._token_expires:
            self._token = self._fetch_token()
        return {"Authorization": f"Bearer {self._token}"}

    def classify(self, response: Any) -> Outcome:
        """Criteo signals limits with 429 and an epoch ``x-ratelimit-reset``."""
        if response.status_code == 429 and "Retry-After" not in response.headers:
            reset = response.headers.get("x-ratelimit-reset")
            if reset is not None:
                return Outcome.retry("rate limited (429)", max(0.0, float(reset) - time.time()))
        return default_classify(response)

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        # Refresh the header before each call: the token may have expired since the last one.
        self.client.session.headers.update(self.auth_headers())
        try:
            return self.client.request(method, path, **kwargs)
        except PlatformError as exc:
            if exc.status != 401:
                raise
            self._token = None  # revoked early: get a new one and try once more
            self.client.session.headers.update(self.auth_headers())
            return self.client.request(method, path, **kwargs)

    def ensure_audience(self, name: str) -> str:
        """Contact-list segment named ``name`` of the connection's advertiser."""
        advertiser = str(self.field("advertiser_id"))
        offset = 0
        while True:
            body = self._call(
                "POST",
                self._path("audience-segments/search"),
                params={"limit": self.page_size, "offset": offset},
                json={
                    "data": {
                        "type": "AudienceSegment",
                        "attributes": {
                            "advertiserIds": [advertiser],
                            "audienceSegmentTypes": ["ContactList"],
                        },
                    }
                },
            ).json()
            for segment in body.get("data", []):
                if segment.get("attributes", {}).get("name") == name:
                    return str(segment["id"])
            if len(body.get("data", [])) < self.page_size:
                break
            offset += self.page_size
        created = self._call(
            "POST",
            self._path("audience-segments/create"),
            json={
                "data": [
                    {
                        "type": "AudienceSegment",
                        "attributes": {
                            "name": name,
                            "description": "Managed by campaign-sync",
                            "advertiserId": advertiser,
                            "contactList": {},
                        },
                    }
                ]
            },
        ).json()
        if created.get("errors") or not created.get("data"):
            raise PlatformError(f"Criteo ({self.conn_id}): could not create segment {name!r}")
        return str(created["data"][0]["id"])

    def _amend(self, audience_id: str, operation: str, rows: Sequence[Row]) -> BatchResult:
        body = self._call(
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
        self._call("DELETE", self._path(f"audience-segments/{audience_id}/contact-list"))
