"""TikTok Ads: email and phone required, Apple (IDFA) and Android (AAID) ad IDs optional."""

from __future__ import annotations

from campaign_sync.destinations.base import AttributeRule, platform_type
from campaign_sync.platforms.capabilities import Capabilities
from campaign_sync.platforms.connection_form import ConnectionForm, text_field

# Names follow TikTok's id_schema (EMAIL_SHA256, PHONE_SHA256, IDFA_SHA256, AAID_SHA256).
# Email drops a "+tag" as TikTok's customer-file guide asks; phone is E.164 before hashing.
TIKTOK_ADS = platform_type(
    "tiktok_ads",
    "TikTok Ads",
    attributes={
        "EMAIL": AttributeRule(kind="email_no_tag", hashed=True),
        "PHONE": AttributeRule(kind="phone_e164", hashed=True),
        "IDFA": AttributeRule(kind="mobile_ad_id", hashed=True),
        "AAID": AttributeRule(kind="mobile_ad_id", hashed=True),
    },
    # No per-request limit is published for /segment/mapping/; batches hold 1,000 users.
    capabilities=Capabilities(
        sync_modes=("add", "mirror"),
        max_batch_rows=1000,
        identifiers=("EMAIL", "PHONE"),
        note="TikTok has no operation that swaps an audience's whole membership",
    ),
    form=ConnectionForm(
        "TikTok Ads",
        password_label="Access token",
        fields={"advertiser_id": text_field("Advertiser ID")},
    ),
    hook="campaign_sync.hooks.tiktok_ads.TikTokAdsHook",
)
