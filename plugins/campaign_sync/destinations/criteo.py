"""Criteo (display): an email address only, sent SHA-256 hashed after normalization."""

from __future__ import annotations

from campaign_sync.destinations.base import AttributeRule, platform_type
from campaign_sync.platforms.capabilities import Capabilities
from campaign_sync.platforms.connection_form import ConnectionForm, text_field

# Criteo accepts plain or SHA-256 emails; hashing here keeps plain addresses off the wire.
CRITEO = platform_type(
    "criteo",
    "Criteo",
    attributes={"email": AttributeRule(kind="email", hashed=True)},
    # Contact-list amendments: <= 50,000 identifiers; replace = clear the list, then add.
    capabilities=Capabilities(
        sync_modes=("add", "mirror", "replace"),
        replace="clear",
        max_batch_rows=50_000,
        identifiers=("email",),
    ),
    form=ConnectionForm(
        "Criteo",
        password_label="Client secret",
        login_label="Client ID",
        fields={
            "advertiser_id": text_field("Advertiser ID"),
            "api_version": text_field("API version", "Version in the API paths.", "2026-01"),
        },
    ),
    hook="campaign_sync.hooks.criteo.CriteoHook",
)
