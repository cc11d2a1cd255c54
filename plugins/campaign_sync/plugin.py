"""The Airflow plugin of campaign-sync (registered by the package's ``airflow.plugins`` entry
point): its scheduler-side listener."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from campaign_sync import listeners


class CampaignSyncPlugin(AirflowPlugin):
    """Registers the run-start checks of :mod:`campaign_sync.listeners`."""

    name = "campaign_sync"
    listeners = [listeners]  # noqa: RUF012 (AirflowPlugin declares it as a class attribute)
