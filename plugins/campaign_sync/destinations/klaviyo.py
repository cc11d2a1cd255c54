"""Klaviyo (email): profiles keyed by email; other profile fields and properties allowed."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from campaign_sync.destinations.base import AttributeRule, DestinationType


class KlaviyoOptions(BaseModel):
    """Klaviyo list the group's profiles are added to (created once, reused by name)."""

    model_config = ConfigDict(extra="forbid")

    list_name: str | None = None


# Klaviyo takes plain values (it does its own matching); phone_number must be E.164.
KLAVIYO = DestinationType(
    name="klaviyo",
    label="Klaviyo",
    attributes={
        "email": AttributeRule(kind="email", required=True),
        "phone_number": AttributeRule(kind="phone_e164"),
        "external_id": AttributeRule(kind="text"),
        "first_name": AttributeRule(kind="text"),
        "last_name": AttributeRule(kind="text"),
    },
    open_attributes=True,
    extra_rule=AttributeRule(kind="passthrough"),
    options_model=KlaviyoOptions,
)
