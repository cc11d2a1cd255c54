"""Test setup: a private Airflow home with a migrated SQLite database, and sample data.

Environment variables are set before anything imports Airflow, so every test, and every
subprocess a test starts, sees the same isolated Airflow.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLE_CAMPAIGN = REPO / "include" / "campaigns" / "lifecycle_winback.yaml"
_HOME = Path(tempfile.mkdtemp(prefix="campaign_sync_tests_"))

os.environ.update(
    {
        "AIRFLOW_HOME": str(_HOME / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_HOME / 'airflow.db'}",
        "CAMPAIGN_SYNC_STAGING_ROOT": str(_HOME / "staging"),
        "CAMPAIGN_SYNC_OUTPUT_ROOT": str(_HOME / "outputs"),
        "CAMPAIGN_SYNC_CAMPAIGNS_DIR": str(REPO / "include" / "campaigns"),
        # Connections stored by tests are encrypted like a deployment's.
        "AIRFLOW__CORE__FERNET_KEY": "x2ENq3c1_7J3pG-mt6ENj9rZtxWS9rx0kTzj5VrOvb8=",
    }
)
for _key in [k for k in os.environ if k.startswith("AWS_")]:
    del os.environ[_key]  # never reach a real cloud account from tests


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated Airflow metadata database (once per session)."""
    done = _HOME / "migrated"
    if not done.exists():
        result = subprocess.run(
            [str(Path(sys.executable).parent / "airflow"), "db", "migrate"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        done.touch()
    return _HOME / "airflow.db"


@pytest.fixture(scope="session")
def sample_db() -> Path:
    """The sample Merged Customers table (100k rows) with its Airflow connection set."""
    from campaign_sync.sample_data import generate_merged_customers

    path = _HOME / "data" / "merged_customers.duckdb"
    if not path.exists():
        generate_merged_customers(path, 100_000)
    os.environ["AIRFLOW_CONN_CAMPAIGN_SYNC_SAMPLE"] = json.dumps(
        {"conn_type": "duckdb", "host": str(path)}
    )
    return path


@pytest.fixture
def staging_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh local staging root for one test."""
    root = tmp_path / "staging"
    monkeypatch.setenv("CAMPAIGN_SYNC_STAGING_ROOT", str(root))
    return root


@pytest.fixture
def campaigns_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty campaigns folder the factory and CLI read instead of include/campaigns."""
    folder = tmp_path / "campaigns"
    folder.mkdir()
    monkeypatch.setenv("CAMPAIGN_SYNC_CAMPAIGNS_DIR", str(folder))
    yield folder


@pytest.fixture(scope="session")
def real_airflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A real Airflow (api-server, scheduler, dag-processor, triggerer; LocalExecutor) with the
    contract fakes, a moto S3 server and sample sources (see ``airflow_server.RealAirflow``).
    Tests add campaign files and drive it through the REST API v2 only."""
    from airflow_server import start_real_airflow, stop_real_airflow

    world = start_real_airflow(tmp_path_factory.mktemp("real_airflow"))
    yield world
    survivors = stop_real_airflow(world)
    assert survivors == [], f"processes left after Airflow stopped: {survivors}"


@pytest.fixture(scope="session")
def celery_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A distributed Airflow (``scripts/cluster.py``: CeleryExecutor, two workers, Redis,
    Postgres, staging on S3) with the contract fakes (see ``airflow_server.CeleryCluster``)."""
    from airflow_server import start_celery_cluster, stop_celery_cluster

    cluster = start_celery_cluster(tmp_path_factory.mktemp("celery_cluster"))
    yield cluster
    survivors = stop_celery_cluster(cluster)
    assert survivors == [], f"processes left after the cluster stopped: {survivors}"
