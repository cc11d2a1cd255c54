"""TikTok Ads: email and phone required, Apple (IDFA) and Android (AAID) ad IDs optional."""

from __future__ import annotations

from campaign_sync.destinations.audience_options import AudienceOptions
from campaign_sync.destinations.base import AttributeRule, DestinationType

# Names follow TikTok's id_schema (EMAIL_SHA256, PHONE_SHA256, IDFA_SHA256, AAID_SHA256).
# Email drops a "+tag" as TikTok's customer-file guide asks; phone is E.164 before hashing.
TIKTOK_ADS = DestinationType(
    name="tiktok_ads",
    label="TikTok Ads",
    attributes={
        "EMAIL": AttributeRule(kind="email_no_tag", hashed=True, required=True),
        "PHONE": AttributeRule(kind="phone_e164", hashed=True, required=True),
        "IDFA": AttributeRule(kind="mobile_ad_id", hashed=True),
        "AAID": AttributeRule(kind="mobile_ad_id", hashed=True),
    },
    options_model=AudienceOptions,
    exporter="campaign_sync.operators.tiktok_ads.TikTokAdsExportOperator",
)
