"""Stable Airflow ids derived from campaign, sub-audience and group names."""

from __future__ import annotations

import re

MAINTENANCE_DAG_ID = "campaign_sync_maintenance"  # dags/campaign_sync_maintenance.py
MAX_GROUP_ID = 200  # Airflow's limits (airflow.sdk.definitions._internal.node)
MAX_TASK_ID = 250
_DAG_ID_UNSAFE = re.compile(r"[^a-z0-9_.-]+")
_GROUP_ID_UNSAFE = re.compile(r"[^a-z0-9_-]+")


def dag_id_for(campaign_name: str) -> str:
    """DAG id for a campaign name: lowercased, runs of other characters become '_'."""
    return _DAG_ID_UNSAFE.sub("_", campaign_name.lower()).strip("_.-")[:250]


def slug(name: str) -> str:
    """A task-group-safe id part (Airflow group ids allow no dots)."""
    return _GROUP_ID_UNSAFE.sub("_", name.lower()).strip("_-") or "x"


def group_id_for(sub_audience: str, treatment_group: str) -> str:
    """Task group id of one (sub-audience, treatment group)."""
    return f"{slug(sub_audience)}__{slug(treatment_group)}"
