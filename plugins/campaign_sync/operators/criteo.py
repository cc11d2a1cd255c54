"""Export a treatment group to a Criteo contact-list audience segment."""

from __future__ import annotations

from campaign_sync.hooks.criteo import CriteoHook
from campaign_sync.operators.audience_export import AudienceExportOperator


class CriteoExportOperator(AudienceExportOperator):
    """Add, mirror or replace a group's hashed emails in a Criteo contact list."""

    hook_class = CriteoHook
