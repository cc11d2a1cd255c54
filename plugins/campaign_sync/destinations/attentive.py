"""Attentive (SMS): a phone number or an email address, never both."""

from __future__ import annotations

from campaign_sync.destinations.audience_options import AudienceOptions
from campaign_sync.destinations.base import AttributeRule, DestinationType

ATTENTIVE = DestinationType(
    name="attentive",
    label="Attentive",
    attributes={
        "phone": AttributeRule(kind="phone_e164"),
        "email": AttributeRule(kind="email"),
    },
    exactly_one_of=frozenset({"phone", "email"}),
    options_model=AudienceOptions,
    exporter="campaign_sync.operators.attentive.AttentiveExportOperator",
)
