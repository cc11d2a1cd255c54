"""The sample campaign delivered live to all five platforms (local contract servers), through
Airflow's dag.test(): every group's valid rows land in its own audience, once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fakes.attentive import FakeAttentive
from fakes.criteo import FakeCriteo
from fakes.facebook_ads import FakeFacebookAds
from fakes.klaviyo import FakeKlaviyo
from fakes.tiktok_ads import API as TIKTOK_API
from fakes.tiktok_ads import FakeTikTokAds
from helpers import REPO, sample_doc, write_campaign

PLATFORMS = ("klaviyo", "attentive", "criteo", "tiktok_ads", "facebook_ads")


@pytest.fixture
def platforms(monkeypatch):
    fakes = {
        "klaviyo": FakeKlaviyo(),
        "attentive": FakeAttentive(),
        "criteo": FakeCriteo(),
        "tiktok_ads": FakeTikTokAds(),
        "facebook_ads": FakeFacebookAds(),
    }
    urls = {name: fake.start() for name, fake in fakes.items()}
    connections = {
        "klaviyo": {"host": urls["klaviyo"], "password": fakes["klaviyo"].api_key,
                    "extra": {"revision": "2025-10-15"}},
        "attentive": {"host": urls["attentive"], "password": fakes["attentive"].api_key},
        "criteo": {"host": urls["criteo"], "login": "client-1", "password": "s3cret",
                   "extra": {"advertiser_id": "4242"}},
        "tiktok_ads": {"host": urls["tiktok_ads"] + TIKTOK_API, "password": "tt-token",
                       "extra": {"advertiser_id": "7001"}},
        "facebook_ads": {"host": urls["facebook_ads"], "password": "EAAtoken123",
                         "extra": {"ad_account_id": "1029384756"}},
    }  # fmt: skip
    for name, fields in connections.items():
        monkeypatch.setenv(
            f"AIRFLOW_CONN_{name.upper()}_DEFAULT", json.dumps({"conn_type": name, **fields})
        )
    yield fakes
    for fake in fakes.values():
        fake.stop()


def test_sample_campaign_to_all_five_platforms(
    platforms, airflow_db, sample_db, campaigns_dir, staging_root, tmp_path, monkeypatch
):
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("CAMPAIGN_SYNC_OUTPUT_ROOT", str(tmp_path / "outputs"))
    doc = sample_doc()
    for dest in doc["destinations"].values():
        # Platforms for real; file drops stay dry runs here (their servers are tested elsewhere).
        dest["dry_run"] = dest["type"] not in PLATFORMS and dest["type"] != "local"
    write_campaign(campaigns_dir, "live", doc)
    dag = DagBag(dag_folder=str(REPO / "dags")).dags["lifecycle_winback"]
    run = dag.test()
    assert run.state == "success", [
        (ti.task_id, ti.state) for ti in run.get_task_instances() if ti.state != "success"
    ]
    (manifest_path,) = Path(staging_root).glob("lifecycle_winback/*/history/manifest.json")
    manifest = json.loads(manifest_path.read_text())

    delivered: dict[str, int] = dict.fromkeys(PLATFORMS, 0)
    for sub in manifest["sub_audiences"].values():
        for group in sub["treatment_groups"].values():
            for dest in group["destinations"].values():
                if dest["type"] not in PLATFORMS:
                    continue
                assert dest["dry_run"] is False and dest["mode"] == "add"
                assert dest["rows_sent"] + dest["rows_rejected"] == group["members"]
                fake = platforms[dest["type"]]
                audience = dest["location"].split(":", 1)[1]
                # Each group has its own audience; every valid row was sent to it once (customers
                # sharing an email or phone are one member on the platform).
                assert len(fake.received_rows("add", audience)) == dest["rows_sent"], dest
                assert 0 < len(fake.members[audience]) <= dest["rows_sent"]
                delivered[dest["type"]] += dest["rows_sent"]
    for name, fake in platforms.items():
        assert fake.contract_errors == [], name
        assert delivered[name] > 0, name
        assert len(fake.received_rows("add")) == delivered[name], name


def test_permanent_failure_ends_the_export_on_try_1_despite_retries(
    platforms, airflow_db, sample_db, campaigns_dir, staging_root, tmp_path, monkeypatch
):
    """A refused API key fails Klaviyo's exports once, in Airflow itself: no retry is spent,
    where a transient failure uses the campaign's three retries (four tries)."""
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("CAMPAIGN_SYNC_OUTPUT_ROOT", str(tmp_path / "outputs"))
    monkeypatch.setenv(
        "AIRFLOW_CONN_KLAVIYO_DEFAULT",
        json.dumps({"conn_type": "klaviyo", "host": platforms["klaviyo"].start(),
                    "password": "pk_wrong", "extra": {"revision": "2025-10-15"}}),
    )  # fmt: skip
    doc = sample_doc()
    doc["retries"] = {"count": 3, "delay_seconds": 1, "exponential_backoff": False}
    for dest in doc["destinations"].values():
        dest["dry_run"] = dest["type"] != "klaviyo"
    write_campaign(campaigns_dir, "live", doc)
    dag = DagBag(dag_folder=str(REPO / "dags")).dags["lifecycle_winback"]
    run = dag.test()
    exports = [ti for ti in run.get_task_instances() if ti.task_id.endswith("export_klaviyo")]
    assert exports and all((ti.state, ti.try_number) == ("failed", 1) for ti in exports), [
        (ti.task_id, ti.state, ti.try_number) for ti in exports
    ]
    assert platforms["klaviyo"].received == []
