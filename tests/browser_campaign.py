"""The sample campaign as the browser check runs it on the real-Airflow fixture: the same
sub-audiences, groups and destinations as include/campaigns/lifecycle_winback.yaml, on the
fixture's connections (sample source, moto S3; the SFTP drop as a dry run) with alerts."""

from __future__ import annotations

from typing import Any

from helpers import sample_doc


def browser_sample(smtp_conn_id: str) -> dict[str, Any]:
    """The sample campaign on the fixture's connections, emailing through ``smtp_conn_id``."""
    doc = sample_doc()
    doc["source"]["conn_id"] = "sched_sample"
    doc["retries"] = {"count": 0}
    doc["destinations"]["journey_files"]["dry_run"] = True
    doc["destinations"]["winback_s3"]["conn_id"] = "sched_s3"
    doc["destinations"]["winback_s3"]["options"]["bucket"] = "sched-drop"
    doc["alerts"] = {
        "email": {
            "smtp_conn_id": smtp_conn_id,
            "to": ["crm-data@example.com"],
            "from_email": "campaign-sync@example.com",
            "on_failure": True,
            "on_success": True,
        },
        "thresholds": {"rejected_share": {"max_percent": 90, "action": "warn"}},
    }
    return doc
