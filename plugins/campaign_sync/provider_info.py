"""Airflow provider metadata: the package's connection types and their connection forms.

The forms are declared here (``conn-fields`` and ``ui-field-behaviour``, Airflow >= 3.2), so
the API server shows them without importing the hooks.
"""

from __future__ import annotations

from typing import Any

from campaign_sync import __version__


def _text(label: str, description: str = "", default: str | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": ["string", "null"]}
    if default is not None:
        schema["default"] = default
    return {"label": label, "description": description, "schema": schema}


_TIMEOUT = {
    "label": "Timeout (seconds)",
    "description": "Per-call timeout.",
    "schema": {"type": ["integer", "null"], "default": 60},
}
_BASE_URL = "Base URL (leave empty for the platform's; set for a proxy or a test server)"


def _platform(
    conn_type: str,
    name: str,
    hook: str,
    *,
    password_label: str,
    fields: dict[str, Any],
    login_label: str | None = None,
) -> dict[str, Any]:
    hidden = ["schema", "port"] + ([] if login_label else ["login"])
    relabeling = {"host": _BASE_URL, "password": password_label}
    if login_label:
        relabeling["login"] = login_label
    return {
        "connection-type": conn_type,
        "hook-class-name": hook,
        "hook-name": name,
        "conn-fields": {**fields, "timeout": _TIMEOUT},
        "ui-field-behaviour": {
            "hidden-fields": hidden,
            "relabeling": relabeling,
            "placeholders": {},
        },
    }


CONNECTION_TYPES: list[dict[str, Any]] = [
    {
        "connection-type": "duckdb",
        "hook-class-name": "campaign_sync.hooks.duckdb.DuckDBHook",
        "hook-name": "DuckDB",
        "ui-field-behaviour": {
            "hidden-fields": ["login", "password", "port", "schema"],
            "relabeling": {"host": "Database file"},
            "placeholders": {},
        },
    },
    _platform(
        "klaviyo",
        "Klaviyo",
        "campaign_sync.hooks.klaviyo.KlaviyoHook",
        password_label="Private API key",
        fields={"revision": _text("API revision", "Klaviyo `revision` header.", "2025-10-15")},
    ),
    _platform(
        "attentive",
        "Attentive",
        "campaign_sync.hooks.attentive.AttentiveHook",
        password_label="API key",
        fields={},
    ),
    _platform(
        "criteo",
        "Criteo",
        "campaign_sync.hooks.criteo.CriteoHook",
        password_label="Client secret",
        login_label="Client ID",
        fields={
            "advertiser_id": _text("Advertiser ID"),
            "api_version": _text("API version", "Version in the API paths.", "2026-01"),
        },
    ),
    _platform(
        "tiktok_ads",
        "TikTok Ads",
        "campaign_sync.hooks.tiktok_ads.TikTokAdsHook",
        password_label="Access token",
        fields={"advertiser_id": _text("Advertiser ID")},
    ),
    _platform(
        "facebook_ads",
        "Facebook Ads",
        "campaign_sync.hooks.facebook_ads.FacebookAdsHook",
        password_label="Access token",
        fields={
            "ad_account_id": _text("Ad account ID", "Without the act_ prefix."),
            "api_version": _text("Graph API version", "", "v24.0"),
            "app_secret": {
                "label": "App secret",
                "description": "Signs calls with appsecret_proof when set.",
                "schema": {"type": ["string", "null"], "format": "password"},
            },
        },
    ),
]


def get_provider_info() -> dict[str, Any]:
    """Provider info in the shape of Airflow's provider_info.schema.json."""
    return {
        "package-name": "campaign-sync",
        "name": "campaign-sync",
        "description": "Campaign audiences from a warehouse to marketing destinations.",
        "versions": [__version__],
        "connection-types": CONNECTION_TYPES,
    }
