"""Criteo (display): an email address only, sent SHA-256 hashed after normalization."""

from __future__ import annotations

from campaign_sync.destinations.audience_options import ReplaceableAudienceOptions
from campaign_sync.destinations.base import AttributeRule, DestinationType

# Criteo accepts plain or SHA-256 emails; hashing here keeps plain addresses off the wire.
CRITEO = DestinationType(
    name="criteo",
    label="Criteo",
    attributes={"email": AttributeRule(kind="email", hashed=True, required=True)},
    options_model=ReplaceableAudienceOptions,
    exporter="campaign_sync.operators.criteo.CriteoExportOperator",
)
