"""Klaviyo (email): profiles keyed by email; other profile fields and properties allowed."""

from __future__ import annotations

from campaign_sync.destinations.audience_options import AudienceOptions
from campaign_sync.destinations.base import AttributeRule, DestinationType

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
    options_model=AudienceOptions,
    exporter="campaign_sync.operators.klaviyo.KlaviyoExportOperator",
)
