"""Attentive (SMS): a phone number or an email address, never both."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from campaign_sync.destinations.base import AttributeRule, DestinationType


class AttentiveOptions(BaseModel):
    """Attentive segment the group's subscribers are uploaded to."""

    model_config = ConfigDict(extra="forbid")

    segment_name: str | None = None


ATTENTIVE = DestinationType(
    name="attentive",
    label="Attentive",
    attributes={
        "phone": AttributeRule(kind="phone_e164"),
        "email": AttributeRule(kind="email"),
    },
    exactly_one_of=frozenset({"phone", "email"}),
    options_model=AttentiveOptions,
)
