"""Export a treatment group to a Facebook (Meta) customer-file custom audience."""

from __future__ import annotations

from campaign_sync.hooks.facebook_ads import FacebookAdsHook
from campaign_sync.operators.audience_export import AudienceExportOperator


class FacebookAdsExportOperator(AudienceExportOperator):
    """Add, mirror or replace (usersreplace sessions) a group's rows in a Meta custom audience."""

    hook_class = FacebookAdsHook
