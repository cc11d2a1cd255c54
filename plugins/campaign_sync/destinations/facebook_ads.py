"""Facebook (Meta) Custom Audiences: Meta's multi-key schema names, hashed by Meta's rules."""

from __future__ import annotations

from campaign_sync.destinations.base import AttributeRule, platform_type
from campaign_sync.platforms.capabilities import Capabilities
from campaign_sync.platforms.connection_form import ConnectionForm, secret_field, text_field


def _hashed(kind: str) -> AttributeRule:
    return AttributeRule(kind=kind, hashed=True)


# Meta's customer-file normalization table; EXTERN_ID and MADID are sent unhashed, as
# Meta's own SDK does for them.
FACEBOOK_ADS = platform_type(
    "facebook_ads",
    "Facebook Ads",
    attributes={
        "EXTERN_ID": AttributeRule(kind="text"),
        "EMAIL": _hashed("email"),
        "PHONE": _hashed("phone_digits"),
        "FN": _hashed("meta_name"),
        "LN": _hashed("meta_name"),
        "FI": _hashed("first_initial"),
        "CT": _hashed("meta_city"),
        "ST": _hashed("us_state"),
        "ZIP": _hashed("postal"),
        "COUNTRY": _hashed("country"),
        "GEN": _hashed("gender"),
        "DOBY": _hashed("birth_year"),
        "DOBM": _hashed("birth_month"),
        "DOBD": _hashed("birth_day"),
        "MADID": AttributeRule(kind="mobile_ad_id"),
    },
    # <= 10,000 rows per users/usersreplace call; replace = a usersreplace session.
    capabilities=Capabilities(
        sync_modes=("add", "mirror", "replace"),
        replace="session",
        max_batch_rows=10_000,
        identifiers=("EXTERN_ID", "EMAIL", "PHONE", "MADID"),
        identifier_rule="any",
    ),
    form=ConnectionForm(
        "Facebook Ads",
        password_label="Access token",
        fields={
            "ad_account_id": text_field("Ad account ID", "Without the act_ prefix."),
            "api_version": text_field("Graph API version", "", "v24.0"),
            "app_secret": secret_field("App secret", "Signs calls with appsecret_proof when set."),
        },
    ),
    hook="campaign_sync.hooks.facebook_ads.FacebookAdsHook",
)
