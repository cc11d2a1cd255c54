"""The end-to-end benchmark's small mode (``benchmarks/end_to_end.py``): every task of the
campaign DAG runs in its own process and reports its peak RSS, and all nine destinations get
rows, on the suite's own storage servers. ``make bench`` runs the same stage at 10M."""

from __future__ import annotations

from pathlib import Path

import pytest
from campaign_sync.sample_data import generate_merged_customers

from benchmarks.end_to_end import Stores, run_e2e

pytest_plugins = ["servers"]

ROWS = 20_000
NINE = {
    "klaviyo",
    "attentive",
    "criteo",
    "tiktok_ads",
    "facebook_ads",
    "s3",
    "gcs",
    "azure_blob",
    "sftp",
}


@pytest.fixture
def work(tmp_path: Path) -> Path:
    # The stage reuses customers_<rows>.duckdb from its work folder, as after the pipeline stage.
    generate_merged_customers(tmp_path / "data" / f"customers_{ROWS}.duckdb", ROWS)
    return tmp_path


def test_every_task_measured_and_all_nine_destinations_receive_rows(
    work, s3_server, gcs_server, azurite_server, sftp_server
):
    stores = Stores(
        s3_server, gcs_server, azurite_server, sftp_server.connection(), sftp_server.home
    )

    result = run_e2e(work, ROWS, stores)

    tasks = result["tasks"]
    kinds = [t["kind"] for t in tasks]
    # build_audience, 7 groups' projections, 9 exports, write_manifest.
    assert (kinds[0], kinds[-1], kinds.count("project"), kinds.count("export")) == (
        "build",
        "manifest",
        7,
        9,
    )
    assert all(t["maxrss_mb"] > 50 and t["wall_s"] >= t["task_s"] > 0 for t in tasks), tasks
    assert tasks[0]["rows"] == result["audience_size"] == ROWS
    destinations = result["destinations"]
    assert {d["type"] for d in destinations.values()} == NINE
    for name, d in destinations.items():
        # What the servers hold equals what the manifest says was sent, and it is not nothing.
        assert d["received"] == d["rows_sent"] > 0, (name, d)
        assert d["files"] > 0 or d["audiences"] == 1, (name, d)
    exports = {t["task"].split("export_")[1]: t["rows"] for t in tasks if t["kind"] == "export"}
    assert exports == {n: d["rows_sent"] for n, d in destinations.items()}
