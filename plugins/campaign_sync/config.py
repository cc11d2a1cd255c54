"""Deployment settings, read from the environment so that DAG files, tasks and the CLI agree."""

from __future__ import annotations

import os
from pathlib import Path

CAMPAIGNS_DIR_ENV = "CAMPAIGN_SYNC_CAMPAIGNS_DIR"
STAGING_ROOT_ENV = "CAMPAIGN_SYNC_STAGING_ROOT"
OUTPUT_ROOT_ENV = "CAMPAIGN_SYNC_OUTPUT_ROOT"
DUCKDB_MEMORY_ENV = "CAMPAIGN_SYNC_DUCKDB_MEMORY_LIMIT"
BATCH_ROWS_ENV = "CAMPAIGN_SYNC_BATCH_ROWS"
RETENTION_DAYS_ENV = "CAMPAIGN_SYNC_RETENTION_DAYS"
DEFAULT_RETENTION_DAYS = 30

# include/campaigns sits beside dags/ and plugins/ in this repository and in the Docker image.
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def campaigns_dir() -> Path:
    """Folder the factory and the CLI read campaign files from."""
    return Path(os.environ.get(CAMPAIGNS_DIR_ENV) or PROJECT_ROOT / "include" / "campaigns")


def _airflow_home() -> Path:
    return Path(os.environ.get("AIRFLOW_HOME") or Path.home() / "airflow")


def staging_root() -> str:
    """Where runs stage their files: a local folder, or an object-store URL (s3://, gs://, abfs://)."""
    return os.environ.get(STAGING_ROOT_ENV) or str(_airflow_home() / "campaign_sync" / "staging")


def output_root() -> Path:
    """Base folder for the local destination's relative paths and for dry-run payloads."""
    return Path(os.environ.get(OUTPUT_ROOT_ENV) or _airflow_home() / "campaign_sync" / "outputs")


def duckdb_memory_limit() -> str:
    """Cap on DuckDB's working memory in tasks; DuckDB spills to disk beyond it."""
    # Airflow and Python hold about 240 MB of a task process: with this, it stays under 1 GiB
    # at 10M customers (BENCHMARKS.md).
    return os.environ.get(DUCKDB_MEMORY_ENV, "640MB")


def batch_rows() -> int:
    """Rows per streamed batch when reading a source or writing an export."""
    return int(os.environ.get(BATCH_ROWS_ENV, "100000"))


def retention_days() -> int:
    """Days a run's staged files and local outputs are kept (they hold raw PII)."""
    raw = os.environ.get(RETENTION_DAYS_ENV, "").strip()
    if not raw:
        return DEFAULT_RETENTION_DAYS
    return check_retention_days(raw, RETENTION_DAYS_ENV)


def check_retention_days(raw: str, source: str) -> int:
    """``raw`` as a whole number of days (at least 1), else ValueError naming ``source``."""
    try:
        days = int(raw)
    except ValueError:
        raise ValueError(f"{source}={raw!r}: not a whole number of days") from None
    if days < 1:
        # 0 would delete runs still being written (their files are minutes old).
        raise ValueError(f"{source}={raw!r}: must be at least 1 day")
    return days


PARSE_CACHE_ENV = "CAMPAIGN_SYNC_PARSE_CACHE"


def parse_cache_dir() -> Path | None:
    """Folder of the DAG factory's cache of validated campaigns; None when set to ``off``."""
    value = os.environ.get(PARSE_CACHE_ENV)
    if value and value.lower() == "off":
        return None
    return Path(value) if value else _airflow_home() / "campaign_sync" / "parse_cache"
