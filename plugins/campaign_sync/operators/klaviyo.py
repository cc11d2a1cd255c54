"""Export a treatment group to a Klaviyo list."""

from __future__ import annotations

from campaign_sync.hooks.klaviyo import KlaviyoHook
from campaign_sync.operators.audience_export import AudienceExportOperator


class KlaviyoExportOperator(AudienceExportOperator):
    """Add or mirror a group's profiles in a Klaviyo list (Klaviyo has no replace)."""

    hook_class = KlaviyoHook
