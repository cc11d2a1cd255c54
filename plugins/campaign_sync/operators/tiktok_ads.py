"""Export a treatment group to a TikTok Ads custom audience."""

from __future__ import annotations

from campaign_sync.hooks.tiktok_ads import TikTokAdsHook
from campaign_sync.operators.audience_export import AudienceExportOperator


class TikTokAdsExportOperator(AudienceExportOperator):
    """Add or mirror a group's hashed emails, phones and mobile ad IDs in a TikTok audience."""

    hook_class = TikTokAdsHook
