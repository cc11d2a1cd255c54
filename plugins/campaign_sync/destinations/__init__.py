"""Registry of destination types. A new destination is one module plus one entry here."""

from __future__ import annotations

from campaign_sync.destinations.attentive import ATTENTIVE
from campaign_sync.destinations.azure_blob import AZURE_BLOB
from campaign_sync.destinations.base import AttributeRule, DestinationType
from campaign_sync.destinations.criteo import CRITEO
from campaign_sync.destinations.facebook_ads import FACEBOOK_ADS
from campaign_sync.destinations.gcs import GCS
from campaign_sync.destinations.klaviyo import KLAVIYO
from campaign_sync.destinations.local import LOCAL
from campaign_sync.destinations.s3 import S3
from campaign_sync.destinations.sftp import SFTP
from campaign_sync.destinations.tiktok_ads import TIKTOK_ADS

REGISTRY: dict[str, DestinationType] = {
    t.name: t
    for t in (
        KLAVIYO,
        ATTENTIVE,
        CRITEO,
        TIKTOK_ADS,
        FACEBOOK_ADS,
        S3,
        GCS,
        AZURE_BLOB,
        SFTP,
        LOCAL,
    )
}

__all__ = ["REGISTRY", "AttributeRule", "DestinationType"]
