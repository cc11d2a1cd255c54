"""TikTok Ads export against a local server following TikTok's API for Business contract."""

from __future__ import annotations

import logging

import pytest
from campaign_sync.hooks.tiktok_ads import TikTokAdsHook, audience_name, truncated_by_tiktok
from campaign_sync.operators.audience_export import (
    PlatformExportOperator as TikTokAdsExportOperator,
)
from campaign_sync.platforms.client import PermanentPlatformError, PlatformError
from fakes.tiktok_ads import API, FakeTikTokAds
from platform_support import (
    inject_clock,
    one_group_plan,
    real_time,
    run_export,
    set_connection,
    sha,
    small_batches,
)

ATTRS = {"email": "EMAIL", "phone": "PHONE", "idfa": "IDFA", "aaid": "AAID"}
SCHEMA = {
    "EMAIL": "EMAIL_SHA256",
    "PHONE": "PHONE_SHA256",
    "IDFA": "IDFA_SHA256",
    "AAID": "AAID_SHA256",
}
DEFAULT_NAME = "platform test - everyone - treatment"


def rows(n: int, start: int = 0, ad_ids: bool = True) -> list[dict]:
    out = []
    for i in range(start, start + n):
        row = {
            "__customer_id": f"C{i:06d}",
            "EMAIL": sha(f"user{i}@example.com"),
            "PHONE": sha(f"+1555{i:07d}"),
        }
        if ad_ids:  # optional ids: present on some rows only
            row["IDFA"] = sha(f"idfa-{i}") if i % 2 == 0 else None
            row["AAID"] = sha(f"aaid-{i}") if i % 3 == 0 else None
        out.append(row)
    return out


def key(row: dict) -> str:
    return FakeTikTokAds.user_key({SCHEMA[a]: row[a] for a in SCHEMA if row.get(a) is not None})


def keys(data: list[dict]) -> set[str]:
    return {key(r) for r in data}


def plan(options: dict | None = None, attributes: dict | None = None):
    return one_group_plan("tiktok_ads", attributes or ATTRS, options)


def connect(monkeypatch, url: str, token: str = "tt-token", **extra) -> None:
    set_connection(
        monkeypatch, "plat", "tiktok_ads", host=f"{url}{API}", password=token,
        extra={"advertiser_id": "7001", "timeout": 2, "max_attempts": 4, **extra},
    )  # fmt: skip


@pytest.fixture
def tiktok(monkeypatch, staging_root):
    fake = FakeTikTokAds()
    connect(monkeypatch, fake.start())
    # Small batches make several requests out of small test data.
    small_batches(monkeypatch, TikTokAdsHook, 100)
    inject_clock(monkeypatch)  # waits are skipped, never slept
    yield fake
    fake.stop()


def members(fake: FakeTikTokAds) -> set[str]:
    (audience,) = fake.members.values()
    return set(audience)


def mapping_requests(fake: FakeTikTokAds) -> list:
    return [r for r in fake.requests if fake.is_data_request(r)]


def test_add_sends_every_row_once_in_documented_batches(tiktok):
    data = rows(450)
    result = run_export(TikTokAdsExportOperator, plan(), "r1", data)
    assert result["rows_sent"] == 450 and result["batches"] == 5 and result["mode"] == "add"
    assert members(tiktok) == keys(data)
    sent = tiktok.received_rows("add")
    assert len(sent) == 450 and len({r["user"] for r in sent}) == 450
    assert tiktok.contract_errors == []
    (audience_id,) = tiktok.audiences
    assert tiktok.audiences[audience_id]["name"] == DEFAULT_NAME
    uploads = mapping_requests(tiktok)
    assert len(uploads) == 5 and max(len(r.body["batch_data"]) for r in uploads) <= 100
    first = uploads[0].body
    assert first["advertiser_ids"] == ["7001"] and first["action"] == "add"
    assert first["id_schema"] == ["EMAIL_SHA256", "PHONE_SHA256", "IDFA_SHA256", "AAID_SHA256"]
    # One object per id_schema entry, aligned; {} where the optional id is missing.
    ordered = sorted(data, key=lambda r: r["__customer_id"])
    assert first["batch_data"][1] == [
        {"id": ordered[1]["EMAIL"], "audience_ids": [audience_id]},
        {"id": ordered[1]["PHONE"], "audience_ids": [audience_id]},
        {},
        {},
    ]
    # Already-hashed values are sent as projection wrote them, never hashed again.
    assert first["batch_data"][0][2]["id"] == ordered[0]["IDFA"]
    assert all(r.headers.get("access-token") == "tt-token" for r in tiktok.requests)


def test_only_mapped_identifiers_are_in_id_schema(tiktok):
    data = rows(30, ad_ids=False)
    run_export(TikTokAdsExportOperator, plan(attributes={"e": "EMAIL", "p": "PHONE"}), "r1", data)
    (upload,) = mapping_requests(tiktok)
    assert upload.body["id_schema"] == ["EMAIL_SHA256", "PHONE_SHA256"]
    assert all(len(user) == 2 for user in upload.body["batch_data"])
    assert members(tiktok) == keys(data)


def test_audience_is_found_across_pages_and_reused_by_name(tiktok):
    for i in range(230):  # the match sits on the third page of 100
        tiktok.add_audience(f"other audience {i}")
    shared = tiktok.add_audience(DEFAULT_NAME, is_creator=False)  # another advertiser's
    run_export(TikTokAdsExportOperator, plan(), "r1", rows(10))
    run_export(TikTokAdsExportOperator, plan(), "r2", rows(10, 5))
    assert tiktok.audiences_created == 1
    (audience_id,) = tiktok.members
    assert audience_id != shared and tiktok.audiences[audience_id]["name"] == DEFAULT_NAME
    assert members(tiktok) == keys(rows(15))
    pages = {r.query["page"][0] for r in tiktok.requests if r.path.endswith("/list/")}
    assert pages == {"1", "2", "3"}


def test_long_names_stay_distinct_and_are_reused(tiktok):
    stem = "Winter reactivation for customers who bought twice and then went quiet in the autumn"
    names = [f"{stem} - north", f"{stem} - south"]
    assert len(stem) > 70
    for run in ("r1", "r2"):
        for name in names:
            the_plan = plan({"audience_name": name})
            run_export(TikTokAdsExportOperator, the_plan, f"{run}-{name[-5:]}", rows(5))
    assert tiktok.audiences_created == 2
    stored = sorted(a["name"] for a in tiktok.audiences.values())
    assert stored == sorted(audience_name(n) for n in names)
    assert len(set(stored)) == 2 and all(len(n) <= 70 for n in stored)


def test_an_audience_truncated_by_tiktok_is_reused(tiktok):
    name = "Audience made before names were shortened by this package: a long one too"
    existing = tiktok.add_audience(truncated_by_tiktok(name))
    run_export(TikTokAdsExportOperator, plan({"audience_name": name}), "r1", rows(5))
    assert tiktok.audiences_created == 0 and set(tiktok.members) == {existing}


def test_malformed_identifiers_are_not_sent_and_counted(tiktok):
    data = rows(120)
    data[7]["IDFA"] = "not-a-digest"
    data[90]["EMAIL"] = data[90]["EMAIL"].upper()
    result = run_export(TikTokAdsExportOperator, plan(), "r1", data)
    assert result["platform_invalid"] == 2 and tiktok.contract_errors == []
    assert members(tiktok) == keys(data[:7] + data[8:90] + data[91:])


def test_calls_stay_under_the_published_rate_limits(tiktok, monkeypatch):
    real_time(monkeypatch)  # arrival times are measured on the real clock
    small_batches(monkeypatch, TikTokAdsHook, 5)
    run_export(TikTokAdsExportOperator, plan(), "r1", rows(120))
    times = tiktok.data_times
    assert len(times) == 24
    # Basic tier: 10 calls per second; the 11th call in any window waits for the window.
    assert all(times[i + 10] - times[i] >= 0.95 for i in range(len(times) - 10))


def test_wrong_or_missing_advertiser_names_the_connection(tiktok, monkeypatch):
    url = tiktok.start()
    connect(monkeypatch, url, advertiser_id="9999")
    with pytest.raises(PlatformError, match=r"TikTok Ads \(plat\).*code 40001.*advertiser_id"):
        run_export(TikTokAdsExportOperator, plan(), "r1", rows(5))
    connect(monkeypatch, url, advertiser_id="")
    with pytest.raises(PermanentPlatformError, match="connection 'plat' has no 'advertiser_id'"):
        run_export(TikTokAdsExportOperator, plan(), "r2", rows(5))


def test_no_identifiers_in_logs_or_errors(tiktok, caplog):
    caplog.set_level(logging.DEBUG)
    tiktok.inject("throttle", retry_after=0)
    tiktok.inject("throttle_no_retry_after")
    tiktok.inject("server_error")
    tiktok.inject("partial", reject=2)
    data = rows(120)
    data[3]["AAID"] = "malformed"
    run_export(TikTokAdsExportOperator, plan(), "r1", data)
    original_route = tiktok.route

    def echoing(request, fault):
        if tiktok.is_data_request(request):  # an error message quoting a sent identifier
            echoed = request.body["batch_data"][0][0]["id"]
            return tiktok._envelope(40002, f"Parameter error: id {echoed} is invalid.")
        return original_route(request, fault)

    tiktok.route = echoing
    more = rows(10, 1000)
    with pytest.raises(PlatformError, match="code 40002") as failure:
        run_export(TikTokAdsExportOperator, plan(), "r2", more)
    text = caplog.text + str(failure.value)
    assert "TikTok accepted a batch" in caplog.text  # the partial warning was logged
    for row in data + more:
        assert not any(str(v) in text for k, v in row.items() if v and k != "AAID")
        assert row["AAID"] is None or row["AAID"] not in text
