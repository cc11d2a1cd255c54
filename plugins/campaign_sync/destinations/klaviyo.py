"""Klaviyo (email): profiles keyed by email; other profile fields and properties allowed."""

from __future__ import annotations

from campaign_sync.destinations.base import AttributeRule, platform_type
from campaign_sync.platforms.capabilities import Capabilities
from campaign_sync.platforms.connection_form import ConnectionForm, text_field

# Klaviyo takes plain values (it does its own matching); phone_number must be E.164.
KLAVIYO = platform_type(
    "klaviyo",
    "Klaviyo",
    attributes={
        "email": AttributeRule(kind="email"),
        "phone_number": AttributeRule(kind="phone_e164"),
        "external_id": AttributeRule(kind="text"),
        "first_name": AttributeRule(kind="text"),
        "last_name": AttributeRule(kind="text"),
    },
    others=AttributeRule(kind="passthrough"),
    # Bulk Import Profiles: <= 10,000 profiles and <= 5 MB per job.
    capabilities=Capabilities(
        sync_modes=("add", "mirror"),
        max_batch_rows=10_000,
        max_batch_bytes=5_000_000,
        identifiers=("email",),
        note="Klaviyo has no operation that swaps a list's whole membership",
    ),
    form=ConnectionForm(
        "Klaviyo",
        password_label="Private API key",
        fields={"revision": text_field("API revision", "Klaviyo `revision` header.", "2025-10-15")},
    ),
    hook="campaign_sync.hooks.klaviyo.KlaviyoHook",
)
