"""Airflow DAG file: daily campaign-sync maintenance (retention of run files).

Staged run folders, dry-run payloads and local outputs hold raw PII; this deletes runs older than
CAMPAIGN_SYNC_RETENTION_DAYS (default 30), keeping what mirror syncs need. No work at parse time.
"""

from datetime import UTC, datetime, timedelta

from airflow.sdk import DAG
from campaign_sync.operators.retention import PurgeExpiredRunsOperator
from campaign_sync.spec.ids import MAINTENANCE_DAG_ID

with DAG(
    dag_id=MAINTENANCE_DAG_ID,
    description="Delete campaign-sync run files older than the retention window",
    schedule="@daily",
    start_date=datetime(2024, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    # Retention of customer data should not wait for someone to unpause it.
    is_paused_upon_creation=False,
    tags=["campaign-sync", "maintenance"],
    default_args={"retries": 1, "retry_delay": timedelta(minutes=10)},
    doc_md=__doc__,
):
    PurgeExpiredRunsOperator(task_id="purge_expired_runs")
