"""Airflow provider metadata: makes the package's connection types known to Airflow."""

from __future__ import annotations

from typing import Any

from campaign_sync import __version__


def get_provider_info() -> dict[str, Any]:
    """Provider info in the shape of Airflow's provider_info.schema.json."""
    return {
        "package-name": "campaign-sync",
        "name": "campaign-sync",
        "description": "Campaign audiences from a warehouse to marketing destinations.",
        "versions": [__version__],
        "connection-types": [
            {
                "connection-type": "duckdb",
                "hook-class-name": "campaign_sync.hooks.duckdb.DuckDBHook",
            }
        ],
    }
