"""Criteo (display): an email address only, sent SHA-256 hashed after normalization."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from campaign_sync.destinations.base import AttributeRule, DestinationType


class CriteoOptions(BaseModel):
    """Criteo advertiser and audience (created once, reused by name)."""

    model_config = ConfigDict(extra="forbid")

    advertiser_id: str | None = None
    audience_name: str | None = None


# Criteo accepts plain or SHA-256 emails; hashing here keeps plain addresses off the wire.
CRITEO = DestinationType(
    name="criteo",
    label="Criteo",
    attributes={"email": AttributeRule(kind="email", hashed=True, required=True)},
    options_model=CriteoOptions,
)
