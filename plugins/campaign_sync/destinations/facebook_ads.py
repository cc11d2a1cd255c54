"""Facebook (Meta) Custom Audiences: Meta's multi-key schema names, hashed by Meta's rules."""

from __future__ import annotations

from campaign_sync.destinations.base import AttributeRule, platform_type
from campaign_sync.platforms.capabilities import Capabilities
from campaign_sync.platforms.connection_form import ConnectionForm, secret_field, text_field


def _hashed(kind: str) -> AttributeRule:
    return AttributeRule(kind=kind, hashed=True)


# Meta's customer-file normalization table. EXTERN_ID is sent unhashed and MADID hashed, as
# Meta's own SDK does in multi-key uploads (sources disagree on MADID; we follow the SDK).
# The hook lowercases EXTERN_ID on the wire, as the SDK does.
# Where the SDK cleans less than Meta's table asks, we follow the table, so our hashes equal
# Meta's of its own users' data: a phone without country code gets the source's
# phone_country_code (the SDK keeps the digits given); names and cities keep accented letters
# (the SDK keeps a-z only); country names map to ISO codes and US state names to their codes
# (the SDK keeps letters as given); UK postcodes lose their space; an unknown value is sent as
# "" (the SDK hashes the empty string). tests/test_vendor_oracle_meta.py pins each case.
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
        "MADID": _hashed("mobile_ad_id"),
    },
    # <= 10,000 rows per users/usersreplace call; replace = a usersreplace session.
    capabilities=Capabilities(
        sync_modes=("add", "mirror", "replace"),
        replace="session",
        max_batch_rows=10_000,
        identifiers=("EXTERN_ID", "EMAIL", "PHONE", "MADID"),
        identifier_rule="any",
        concurrency=1,
        concurrency_source="one replace session at a time per ad account is commonly cited "
        "(not confirmed in Meta's published docs); rate-limit errors are per ad account",
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
