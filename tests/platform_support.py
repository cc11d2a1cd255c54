"""Helpers for platform export tests: a one-group campaign, staged projected rows, a run."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from campaign_sync import config
from campaign_sync.layout import RunLayout
from campaign_sync.plan import CampaignPlan, build_plan
from campaign_sync.platforms.clock import Clock
from campaign_sync.spec.model import Campaign

DEST = "dest"


def sha(value: str) -> str:
    """SHA-256 hex, as projection writes hashed identifiers."""
    return hashlib.sha256(value.encode()).hexdigest()


def one_group_plan(
    dest_type: str, attributes: dict[str, str], options: dict[str, Any] | None = None
) -> CampaignPlan:
    """A campaign with one sub-audience and one treatment group sent to ``dest``."""
    campaign = Campaign.model_validate(
        {
            "name": "platform test",
            "source": {"conn_id": "unused", "table": "customers"},
            "sub_audiences": [
                {
                    "name": "everyone",
                    "condition": "TRUE",
                    "treatment_groups": [
                        {"name": "treatment", "percentage": 100, "destinations": [DEST]}
                    ],
                }
            ],
            "destinations": {
                DEST: {
                    "type": dest_type,
                    "conn_id": "plat",
                    "attributes": attributes,
                    "options": options or {},
                }
            },
        }
    )
    return build_plan(campaign)


def set_connection(monkeypatch: Any, conn_id: str, conn_type: str, **fields: Any) -> None:
    """Define an Airflow connection through its environment variable."""
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": conn_type, **fields})
    )


def stage_projected(plan: CampaignPlan, run_id: str, rows: list[dict[str, Any]]) -> Path:
    """Write rows (with ``__customer_id``) where projection would put them for ``run_id``."""
    group = plan.groups[0]
    rel = RunLayout(plan.dag_id, run_id).projected(group.group_id, DEST)
    path = Path(config.staging_root()) / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = sorted(rows, key=lambda r: r["__customer_id"])
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def prepared_export(
    operator_class: type,
    plan: CampaignPlan,
    run_id: str,
    rows: list[dict[str, Any]],
    **operator_args: Any,
) -> tuple[Any, Path, dict[str, Any]]:
    """Stage ``rows`` for ``run_id``; return the export operator, the staged file and the
    task context, ready for ``operator.deliver(source, context)``."""
    source = stage_projected(plan, run_id, rows)
    dest = plan.campaign.destinations[DEST]
    operator = operator_class(
        task_id=RunLayout.export_task(DEST),
        plan=plan,
        group_id=plan.groups[0].group_id,
        destination=DEST,
        conn_id=dest.conn_id,
        options=dest.options,
        **operator_args,
    )
    context = {"run_id": run_id, "logical_date": datetime(2026, 11, 27, tzinfo=UTC)}
    return operator, source, context


def run_export(
    operator_class: type,
    plan: CampaignPlan,
    run_id: str,
    rows: list[dict[str, Any]],
    **operator_args: Any,
) -> dict[str, Any]:
    """Stage ``rows`` for ``run_id`` and deliver them with ``operator_class``."""
    operator, source, context = prepared_export(operator_class, plan, run_id, rows, **operator_args)
    return operator.deliver(source, context)


class FakeClock(Clock):
    """Time that jumps instead of passing: every wait of the kit is recorded and skipped."""

    def __init__(self) -> None:
        self.offset = 0.0
        self.slept: list[float] = []

    def time(self) -> float:
        """Wall time, moved on by every wait."""
        return time.time() + self.offset

    def monotonic(self) -> float:
        """Monotonic time, moved on by every wait."""
        return time.monotonic() + self.offset

    def sleep(self, seconds: float) -> None:
        """Record the wait and jump past it."""
        self.slept.append(seconds)
        self.offset += max(0.0, seconds)


def small_batches(monkeypatch: Any, hook: type, rows: int) -> None:
    """Cut batches of ``rows`` (small test data still makes several requests)."""
    caps = dataclasses.replace(hook.capabilities, max_batch_rows=rows)
    monkeypatch.setattr(hook, "capabilities", caps)


def inject_clock(monkeypatch: Any) -> FakeClock:
    """Give every platform hook a clock that skips waits; returns it."""
    from campaign_sync.hooks.audience import AudienceHook

    clock = FakeClock()
    monkeypatch.setattr(AudienceHook, "clock", clock)
    return clock


def real_time(monkeypatch: Any) -> None:
    """Back to the system clock, for tests of limits that fakes count in real time."""
    from campaign_sync.hooks.audience import AudienceHook
    from campaign_sync.platforms.clock import SYSTEM

    monkeypatch.setattr(AudienceHook, "clock", SYSTEM)


def start_fakes() -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """One started contract fake per platform, and the connection fields (no ``conn_type``)
    that point each platform's hook at its fake."""
    from fakes.attentive import FakeAttentive
    from fakes.criteo import FakeCriteo
    from fakes.facebook_ads import FakeFacebookAds
    from fakes.klaviyo import FakeKlaviyo
    from fakes.tiktok_ads import API as TIKTOK_API
    from fakes.tiktok_ads import FakeTikTokAds

    fakes: dict[str, Any] = {
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
    return fakes, connections
