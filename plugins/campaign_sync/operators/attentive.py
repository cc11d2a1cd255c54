"""Export a treatment group to an Attentive segment."""

from __future__ import annotations

from campaign_sync.hooks.attentive import AttentiveHook
from campaign_sync.operators.audience_export import AudienceExportOperator


class AttentiveExportOperator(AudienceExportOperator):
    """Add or mirror a group's phones or emails in an Attentive segment."""

    hook_class = AttentiveHook
