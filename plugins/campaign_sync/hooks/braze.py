"""Braze: profiles upserted through /users/track; audience membership as an array attribute."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from campaign_sync.hooks.audience import AudienceHook, BatchResult, Row
from campaign_sync.platforms.batches import json_value
from campaign_sync.platforms.client import (
    Outcome,
    PermanentPlatformError,
    default_classify,
    retry_after_seconds,
)

# The array custom attribute that holds, on each profile, the audiences it belongs to; a Braze
# segment filters on it ("campaign_sync_audiences includes value ...").
AUDIENCES_ATTRIBUTE = "campaign_sync_audiences"
MAX_VALUE_LENGTH = 255  # custom attribute values


class BrazeHook(AudienceHook):
    """Braze REST API with a REST API key holding ``users.track`` (the connection's password),
    sent as ``Authorization: Bearer``; the host is the workspace's REST endpoint.

    Braze has no audience object: an audience is a value of the array custom attribute
    ``campaign_sync_audiences``, added to each member's profile (``{"add": [name]}``) with its
    attributes, and removed in ``mirror`` mode (``{"remove": [name]}``) from members who left,
    leaving their profiles alone. ``/users/delete`` is never called: it erases profiles.

    Published limits: 3,000 /users/track requests per 3 seconds per workspace, 75 attribute
    objects per request; 429 with ``X-RateLimit-Reset`` (epoch seconds). Non-fatal errors come
    back in a 201 as ``errors`` naming the object's index; those objects count as invalid.
    """

    conn_type = "braze"
    default_base_url = "https://rest.iad-01.braze.com"
    rate_limits: ClassVar[list[tuple[int, float]]] = [(2700, 3.0)]  # 10% under the limit

    def classify(self, response: Any) -> Outcome:
        """429 waits for ``X-RateLimit-Reset``; 401/403 name the key."""
        status = response.status_code
        if status == 429 and "Retry-After" not in response.headers:
            reset = response.headers.get("X-RateLimit-Reset")
            if reset is not None:
                wait = max(0.0, float(reset) - self.clock.time())
                return Outcome.retry("rate limited (429)", wait)
            return Outcome.retry("rate limited (429)", retry_after_seconds(response.headers))
        if status == 401:
            return Outcome.fail("HTTP 401: Braze refused the REST API key", "credentials")
        if status == 403:
            return Outcome.fail(
                "HTTP 403: the key or workspace may not use /users/track (the key's users.track "
                "permission, the rate plan, or an inactive account)",
                "permission",
            )
        return default_classify(response)

    def ensure_audience(self, name: str) -> str:
        """The audience is its name: nothing to find or create on Braze."""
        if not 1 <= len(name) <= MAX_VALUE_LENGTH:
            raise PermanentPlatformError(
                f"{self.label}: Braze attribute values take 1-{MAX_VALUE_LENGTH} characters; "
                f"the audience name has {len(name)}",
                kind="contract",
            )
        return name

    def probe(self) -> str:
        """An empty /users/track request (every array is optional): checks the key and its
        permission without touching a profile."""
        self.client.request("POST", "/users/track", json={"attributes": []})
        return "REST API key accepted"

    def _track(self, objects: list[dict[str, Any]]) -> BatchResult:
        body = self.client.request("POST", "/users/track", json={"attributes": objects}).json()
        errors = body.get("errors") or []
        failed = {
            e.get("index") for e in errors if isinstance(e, dict) and e.get("input_array") in (
                None, "attributes")
        }  # fmt: skip
        if failed:
            types = sorted({str(e.get("type")) for e in errors if isinstance(e, dict)})
            self.log.warning("%s: %d of %d profiles refused (%s)", self.label, len(failed),
                             len(objects), ", ".join(types))  # fmt: skip
        return BatchResult(received=len(objects) - len(failed), invalid=len(failed))

    def add(self, audience_id: str, rows: Sequence[Row]) -> BatchResult:
        """Upsert the profiles' attributes and add the audience to their array attribute.
        Missing values are left out: a null would erase the attribute on Braze."""
        objects = []
        for row in rows:
            attributes = {k: json_value(v) for k, v in row.items()}
            profile = {k: v for k, v in attributes.items() if v is not None and v != ""}
            objects.append({**profile, AUDIENCES_ATTRIBUTE: {"add": [audience_id]}})
        return self._track(objects)

    def remove(self, audience_id: str, rows: Sequence[Row]) -> BatchResult:
        """Remove the audience from the profiles' array attribute (the profiles stay)."""
        objects = [
            {"external_id": str(row["external_id"]), AUDIENCES_ATTRIBUTE: {"remove": [audience_id]}}
            for row in rows
        ]
        return self._track(objects)
