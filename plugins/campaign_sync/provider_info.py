"""Airflow provider metadata: the package's connection types and their connection forms.

The forms are written into the metadata (``conn-fields`` and ``ui-field-behaviour``, Airflow
>= 3.2), so the API server shows them without importing hooks (this module is read while Airflow
starts, so it cannot import them). They are generated from each platform's declaration in its
destination module, the same one its hook's ``get_connection_form_fields`` and
``get_ui_field_behaviour`` return, so a new platform needs no entry here.
"""

from __future__ import annotations

from typing import Any

from campaign_sync import __version__

DUCKDB = {
    "connection-type": "duckdb",
    "hook-class-name": "campaign_sync.hooks.duckdb.DuckDBHook",
    "hook-name": "DuckDB",
    "ui-field-behaviour": {
        "hidden-fields": ["login", "password", "port", "schema"],
        "relabeling": {"host": "Database file"},
        "placeholders": {},
    },
}


def connection_types() -> list[dict[str, Any]]:
    """DuckDB's connection type and one per platform destination (its hook's form)."""
    from campaign_sync.destinations import REGISTRY

    return [
        DUCKDB,
        *(t.form.provider_entry(t.name, t.hook) for t in REGISTRY.values() if t.hook and t.form),
    ]


def get_provider_info() -> dict[str, Any]:
    """Provider info in the shape of Airflow's provider_info.schema.json."""
    return {
        "package-name": "campaign-sync",
        "name": "campaign-sync",
        "description": "Campaign audiences from a warehouse to marketing destinations.",
        "versions": [__version__],
        "connection-types": connection_types(),
    }
