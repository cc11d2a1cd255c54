"""The package's connection types are registered with Airflow, with their form fields."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from campaign_sync.destinations import REGISTRY
from platform_table import IDS, PLATFORMS

HOOKS = {
    "duckdb": "campaign_sync.hooks.duckdb.DuckDBHook",
    **{t.name: t.hook for t in REGISTRY.values() if t.hook},
}


def _airflow(*args: str) -> str:
    airflow = str(Path(sys.executable).parent / "airflow")
    out = subprocess.run([airflow, *args], capture_output=True, text=True, check=True)
    return out.stdout


def test_hooks_listed_by_airflow():
    hooks = {
        h["connection_type"]: h for h in json.loads(_airflow("providers", "hooks", "-o", "json"))
    }
    assert len(HOOKS) == 1 + len(PLATFORMS)  # every platform of the table is registered
    for conn_type, hook_class in HOOKS.items():
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
        "braze": ["timeout"],
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


def test_hook_methods_return_the_generated_form():
    from airflow.providers_manager import ProvidersManager
    from airflow.sdk.module_loading import import_string

    manager = ProvidersManager()
    for conn_type, path in HOOKS.items():
        if conn_type == "duckdb":
            continue
        hook = import_string(path)
        assert hook.conn_name_attr == "conn_id" and hook.default_conn_name == f"{conn_type}_default"
        behaviour = hook.get_ui_field_behaviour()
        assert manager.field_behaviours[conn_type]["hidden_fields"] == behaviour["hidden_fields"]
        for field in hook.get_connection_form_fields():
            assert f"extra__{conn_type}__{field}" in manager.connection_form_widgets
        assert manager.hooks[conn_type].connection_testable


@pytest.mark.parametrize("platform", PLATFORMS, ids=IDS)
def test_ui_test_button_against_the_contract_fake(platform, monkeypatch):
    """The UI's Test button: Airflow builds the connection, calls test_connection on its hook."""
    from airflow.models.connection import Connection

    fake = platform.fake()
    url = fake.start()
    try:
        for secret, expected in ((None, True), ("wrong-secret", False)):
            fields = platform.connection(url, secret)
            conn = Connection(
                conn_id="ui_probe", conn_type=platform.dtype, host=fields["host"],
                login=fields.get("login"), password=fields["password"],
                extra=json.dumps(fields.get("extra", {})),
            )  # fmt: skip
            # Airflow's API exposes the unsaved connection to the hook the same way.
            monkeypatch.setenv("AIRFLOW_CONN_UI_PROBE", conn.as_json())
            ok, message = conn.test_connection()
            assert ok is expected, message
        assert fake.received == []  # probing never sends members
    finally:
        fake.stop()


def test_wtforms_widgets_match_the_declared_fields():
    """For UIs that still build the form from hooks (FAB provider installed)."""
    pytest.importorskip("wtforms")
    from airflow.sdk.module_loading import import_string

    for conn_type, path in HOOKS.items():
        if conn_type == "duckdb":
            continue
        hook = import_string(path)
        assert set(hook.get_connection_form_widgets()) == set(hook.get_connection_form_fields())
