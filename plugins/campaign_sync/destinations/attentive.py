"""Attentive (SMS): a phone number or an email address, never both."""

from __future__ import annotations

from campaign_sync.destinations.base import AttributeRule, platform_type
from campaign_sync.platforms.capabilities import Capabilities
from campaign_sync.platforms.connection_form import ConnectionForm

ATTENTIVE = platform_type(
    "attentive",
    "Attentive",
    attributes={
        "phone": AttributeRule(kind="phone_e164"),
        "email": AttributeRule(kind="email"),
    },
    # Bulk segment members: 1-10,000 per request.
    capabilities=Capabilities(
        sync_modes=("add", "mirror"),
        max_batch_rows=10_000,
        identifiers=("phone", "email"),
        identifier_rule="one",
        note="Attentive has no operation that swaps a segment's whole membership",
    ),
    form=ConnectionForm("Attentive"),
    hook="campaign_sync.hooks.attentive.AttentiveHook",
)
