"""The package's connection types are registered with Airflow, with their form fields."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

PLATFORMS = {
    "duckdb": "campaign_sync.hooks.duckdb.DuckDBHook",
    "klaviyo": "campaign_sync.hooks.klaviyo.KlaviyoHook",
    "attentive": "campaign_sync.hooks.attentive.AttentiveHook",
    "criteo": "campaign_sync.hooks.criteo.CriteoHook",
    "tiktok_ads": "campaign_sync.hooks.tiktok_ads.TikTokAdsHook",
    "facebook_ads": "campaign_sync.hooks.facebook_ads.FacebookAdsHook",
}


def _airflow(*args: str) -> str:
    airflow = str(Path(sys.executable).parent / "airflow")
    out = subprocess.run([airflow, *args], capture_output=True, text=True, check=True)
    return out.stdout


def test_hooks_listed_by_airflow():
    hooks = {
        h["connection_type"]: h for h in json.loads(_airflow("providers", "hooks", "-o", "json"))
    }
    for conn_type, hook_class in PLATFORMS.items():
        assert hooks[conn_type]["class"] == hook_class, conn_type
        assert hooks[conn_type]["package_name"] == "campaign-sync"


def test_connection_forms_have_their_fields():
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    widgets = manager.connection_form_widgets
    behaviours = manager.field_behaviours
    expected = {
        "klaviyo": ["revision", "timeout"],
        "attentive": ["timeout"],
        "criteo": ["advertiser_id", "api_version", "timeout"],
        "tiktok_ads": ["advertiser_id", "timeout"],
        "facebook_ads": ["ad_account_id", "api_version", "app_secret", "timeout"],
    }
    for conn_type, fields in expected.items():
        for field in fields:
            assert f"extra__{conn_type}__{field}" in widgets, (conn_type, field)
        assert behaviours[conn_type]["relabeling"]["password"]
        assert "Base URL" in behaviours[conn_type]["relabeling"]["host"]
    assert widgets["extra__facebook_ads__app_secret"].is_sensitive
    assert behaviours["criteo"]["relabeling"]["login"] == "Client ID"
    assert "login" in behaviours["klaviyo"]["hidden_fields"]


def test_connection_can_be_added_with_a_platform_type(airflow_db):
    _airflow(
        "connections", "add", "criteo_probe", "--conn-type", "criteo", "--conn-login", "id",
        "--conn-password", "secret", "--conn-extra", json.dumps({"advertiser_id": "42"}),
    )  # fmt: skip
    from airflow.models.connection import Connection
    from airflow.utils.session import create_session

    with create_session() as session:
        conn = session.query(Connection).filter_by(conn_id="criteo_probe").one()
        assert (conn.conn_type, conn.login, conn.extra_dejson) == (
            "criteo",
            "id",
            {"advertiser_id": "42"},
        )
