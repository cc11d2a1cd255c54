"""Airflow DAG file: one DAG per campaign file in include/campaigns.

Everything is in ``campaign_sync.factory``; set CAMPAIGN_SYNC_CAMPAIGNS_DIR to read another folder.
"""

from campaign_sync.factory import build_dags

globals().update(build_dags())
