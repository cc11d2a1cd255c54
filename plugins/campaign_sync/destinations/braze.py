"""Braze (messaging): user profiles keyed by external_id, with any other profile attribute."""

from __future__ import annotations

from campaign_sync.destinations.base import AttributeRule, platform_type
from campaign_sync.platforms.capabilities import Capabilities
from campaign_sync.platforms.connection_form import ConnectionForm

# Braze matches profiles by external_id and takes plain values; phone is E.164.
BRAZE = platform_type(
    "braze",
    "Braze",
    attributes={
        "external_id": AttributeRule(kind="text"),
        "email": AttributeRule(kind="email"),
        "phone": AttributeRule(kind="phone_e164"),
        "first_name": AttributeRule(kind="text"),
        "last_name": AttributeRule(kind="text"),
    },
    others=AttributeRule(kind="passthrough"),
    # /users/track: <= 75 attribute objects per request. Membership is a value of an array
    # custom attribute, removed without touching the profile; /users/delete would delete
    # whole profiles, so there is no replace.
    capabilities=Capabilities(
        sync_modes=("add", "mirror"),
        max_batch_rows=75,
        identifiers=("external_id",),
        note="Braze has no audience whose whole membership could be swapped, and deleting "
        "users (/users/delete) would erase their profiles",
    ),
    form=ConnectionForm("Braze", password_label="REST API key (users.track permission)"),
    hook="campaign_sync.hooks.braze.BrazeHook",
)
