"""Pools per platform connection, shared rate limits, and asset schedules (unit level)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from campaign_sync.destinations import REGISTRY
from campaign_sync.factory import build_dag, schedule_args
from campaign_sync.pools import (
    HELD_UP_S,
    held_up,
    needed_pools,
    pool_name,
    pool_of,
    shared_limits,
)
from campaign_sync.spec.loader import LoadedCampaign
from campaign_sync.spec.model import Campaign, Schedule


def _campaign(name: str, **dest: Any) -> Campaign:
    return Campaign.model_validate(
        {
            "name": name,
            "source": {"conn_id": "src", "table": "t"},
            "sub_audiences": [
                {
                    "name": "all",
                    "condition": "TRUE",
                    "treatment_groups": [
                        {"name": "a", "percentage": 50, "destinations": ["ads", "files"]},
                        {"name": "b", "percentage": 50, "destinations": ["ads"]},
                    ],
                }
            ],
            "destinations": {
                "ads": {"type": "criteo", "conn_id": "criteo_x", "attributes": {"email": "email"},
                        **dest},
                "files": {"type": "local", "attributes": {"customer_id": "customer_id"}},
            },
        }
    )  # fmt: skip


def test_pool_shared_limits_stay_under_the_account():
    for limits, slots in ([(10, 1.0), (150, 60.0)], 2), ([(250, 60.0)], 3), ([(1, 1.0)], 4):
        share = shared_limits(limits, slots)
        for (calls, window), (total, same) in zip(share, limits, strict=True):
            assert window == same and calls >= 1
            assert calls * slots <= total or calls == 1
    assert shared_limits([(10, 1.0)], 1) == [(10, 1.0)]
    # An export holding k of the slots (k batches in flight) gets k shares, never more than all;
    # its batches in flight are allowed for in time (held_up), not in calls.
    assert shared_limits([(250, 60.0)], 5, taken=4) == [(200, 60.0)]
    assert shared_limits([(10, 1.0)], 2, taken=4) == [(10, 1.0)]
    assert held_up(1) == 0.0 and held_up(2) == held_up(4) == HELD_UP_S > 0
    for slots in range(1, 9):
        for taken in range(1, slots + 1):
            exports = slots // taken  # as many as the pool runs at once
            assert exports * shared_limits([(100, 1.0)], slots, taken)[0][0] <= 100


def test_pool_per_connection_with_declared_concurrency():
    caps = REGISTRY["criteo"].capabilities
    spec = pool_of(_campaign("c").destinations["ads"])
    assert spec is not None and spec.name == pool_name("criteo_x") == "campaign_sync__criteo_x"
    assert spec.slots == caps.concurrency and caps.concurrency_source in spec.description
    assert pool_of(_campaign("c").destinations["files"]) is None
    assert pool_of(_campaign("c", dry_run=True).destinations["ads"]) is None
    own = pool_of(_campaign("c", pool="shared_ads", concurrency=5).destinations["ads"])
    assert own is not None and (own.name, own.slots) == ("shared_ads", 5)
    # Two campaigns on one connection share one pool; the larger slots asked for wins.
    pools = needed_pools([_campaign("c"), _campaign("d", concurrency=3)])
    assert {n: p.slots for n, p in pools.items()} == {"campaign_sync__criteo_x": 3}
    assert REGISTRY["facebook_ads"].capabilities.concurrency == 1
    # An export keeps the platform's in_flight batches at once, at most the pool's slots.
    assert spec.in_flight == min(caps.in_flight, caps.concurrency) and own.in_flight == min(
        caps.in_flight, 5
    )
    assert pool_of(_campaign("c", concurrency=1).destinations["ads"]).in_flight == 1


def test_pool_exports_run_in_the_pool_with_their_share(campaigns_dir):
    campaign = _campaign("pooled", concurrency=5)
    dag = build_dag(LoadedCampaign(campaigns_dir / "pooled.yaml", campaign))
    export = dag.get_task("all__a.export_ads")
    in_flight = REGISTRY["criteo"].capabilities.in_flight
    assert export.pool == "campaign_sync__criteo_x" and export.limit_share == 5
    assert export.in_flight == export.pool_slots == in_flight < 5
    hook = export._hook("criteo")
    # Criteo's 250/min: this export holds in_flight of the 5 slots, so that share of the rate.
    assert hook.rate_limits == [(250 * in_flight // 5, 60.0)]
    # Its batches in flight: each window is kept longer by the time a call may be held up.
    assert hook.held_up == HELD_UP_S
    assert dag.get_task("all__a.export_files").pool == "default_pool"
    assert [a.uri for a in export.outlets] == ["x-campaign-sync://pooled/ads"]


def test_pools_cli_creates_missing_and_keeps_existing(airflow_db, campaigns_dir, capsys):
    from airflow.models.pool import Pool
    from campaign_sync import cli
    from helpers import write_campaign

    doc = _campaign("cli_pools").model_dump(mode="json", exclude_defaults=True)
    doc["destinations"]["ads"]["conn_id"] = "criteo_cli_pools"
    write_campaign(campaigns_dir, "cli_pools", doc)
    name = "campaign_sync__criteo_cli_pools"
    Pool.delete_pool(name) if Pool.get_pool(name) else None
    assert cli.main(["pools", "--check"]) == 1
    assert "MISSING" in capsys.readouterr().out
    assert cli.main(["pools"]) == 0
    assert Pool.get_pool(name).slots == 2 and "created" in capsys.readouterr().out
    Pool.create_or_update_pool(name, slots=7, description="changed", include_deferred=False)
    assert cli.main(["pools"]) == 0 and cli.main(["pools", "--check"]) == 0
    assert Pool.get_pool(name).slots == 7 and "exists, 7 slots" in capsys.readouterr().out
    Pool.create_or_update_pool(name, slots=1, description="shrunk", include_deferred=False)
    assert cli.main(["pools", "--check"]) == 1  # Criteo's exports take 2 slots each
    assert f"pool {name} has 1 slots; its exports take 2 each" in capsys.readouterr().err


def test_pool_check_at_run_start_names_what_waits(campaigns_dir):
    from campaign_sync import factory, listeners
    from campaign_sync.plugin import CampaignSyncPlugin

    assert listeners.TAG == factory.TAG and listeners in CampaignSyncPlugin.listeners
    dag = build_dag(LoadedCampaign(campaigns_dir / "pooled.yaml", _campaign("pooled")))
    needs = listeners.pool_needs(dag)
    in_flight = pool_of(_campaign("pooled").destinations["ads"]).in_flight
    assert in_flight == 2  # Criteo: 4 batches at once, but the pool's default slots are 2
    assert ("all__a.export_ads", in_flight) in needs["campaign_sync__criteo_x"]
    assert ("all__a.export_files", 1) in needs["default_pool"]
    enough = {"campaign_sync__criteo_x": in_flight, "default_pool": 128}
    assert listeners.pools_note(needs, enough) is None
    small = listeners.pools_note(needs, {**enough, "campaign_sync__criteo_x": in_flight - 1})
    assert f"`campaign_sync__criteo_x` has {in_flight - 1} slots, fewer than" in small
    assert "all__a.export_ads, all__b.export_ads" in small and "default_pool" not in small
    missing = {"p1": [(f"g{i}.export_x", 1) for i in range(7)]}
    note = listeners.pools_note(missing, {})
    assert "`p1` does not exist: g0.export_x, g1.export_x" in note and "and 2 more" in note
    assert "campaign-sync pools" in note
    # Sections: a person's note is kept, ours replaced; the whole fits Airflow's note column.
    mine = listeners.with_section("by hand\n\nsecond para", listeners.NOTE_HEADING, note)
    assert mine.startswith("by hand\n\nsecond para\n\n**campaign-sync: pools.**")
    assert listeners.with_section(mine, listeners.NOTE_HEADING, None) == "by hand\n\nsecond para"
    assert listeners.with_section(None, listeners.NOTE_HEADING, None) is None
    long = listeners.with_section("x" * 900, "h", "**h** " + "y" * 300)
    assert len(long) == listeners.NOTE_LIMIT and long.endswith("…")


# --- asset schedules ------------------------------------------------------------------------


def _schedule(**more: Any) -> Schedule:
    return Schedule.model_validate({"start_date": "2026-01-01", **more})


def test_asset_schedules_any_all_and_beside_cron():
    from airflow.sdk import AssetAll, AssetAny, AssetOrTimeSchedule

    any_of = schedule_args(_schedule(assets=["s3://b/customers", "warehouse.orders"]))["schedule"]
    assert isinstance(any_of, AssetAny)
    all_of = schedule_args(_schedule(assets=["s3://b/c"], assets_mode="all"))["schedule"]
    assert isinstance(all_of, AssetAll)
    both = schedule_args(_schedule(assets=["s3://b/c"], cron="@daily"))["schedule"]
    assert isinstance(both, AssetOrTimeSchedule)


@pytest.mark.parametrize(
    ("assets", "more", "error"),
    [
        (["airflow://x"], {}, "reserved"),
        (["https://user:secret@host/x"], {}, "password"),
        ([""], {}, "non-empty"),
        (["s3://b/c", "s3://b/c"], {}, "listed twice"),
        (["s3://b/c"], {"cron": "@once"}, "not @once"),
    ],
)
def test_asset_schedule_errors_name_the_field(tmp_path: Path, assets, more, error):
    from campaign_sync.spec.loader import CampaignError, load_file
    from helpers import write_campaign

    doc = _campaign("asset_bad").model_dump(mode="json", exclude_defaults=True)
    doc["schedule"] = {"start_date": "2026-01-01", "assets": assets, **more}
    path = write_campaign(tmp_path, "asset_bad", doc)
    with pytest.raises(CampaignError) as caught:
        load_file(path)
    text = caught.value.describe()
    assert "schedule" in text and error in text and "asset_bad" in text
