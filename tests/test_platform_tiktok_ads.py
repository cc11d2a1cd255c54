"""TikTok Ads export against a local server following TikTok's API for Business contract."""

from __future__ import annotations

import logging
import time

import pytest
from campaign_sync.hooks.tiktok_ads import TikTokAdsHook, audience_name, truncated_by_tiktok
from campaign_sync.operators.tiktok_ads import TikTokAdsExportOperator
from campaign_sync.platforms.client import PlatformError
from fakes.tiktok_ads import API, FakeTikTokAds
from platform_support import one_group_plan, run_export, set_connection, sha

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
    monkeypatch.setattr(TikTokAdsHook, "max_batch_rows", 100)
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


@pytest.mark.parametrize(
    "fault", ["throttle", "throttle_no_retry_after", "server_error", "reset", "slow"]
)
def test_transient_faults_are_retried_without_loss_or_duplicates(tiktok, fault):
    tiktok.inject(fault, times=2, retry_after=1, seconds=3)
    started = time.monotonic()
    data = rows(300)
    run_export(TikTokAdsExportOperator, plan(), "r1", data)
    tiktok.wait_idle()
    assert members(tiktok) == keys(data)
    # A response that never arrives (too slow) is indistinguishable from a lost request: that
    # batch is sent again (the server applied it, membership stays exact); nothing else repeats.
    resent = 2 * 100 if fault == "slow" else 0
    assert len(tiktok.received_rows("add")) == 300 + resent
    if fault.startswith("throttle"):
        assert tiktok.throttled == 2
        # Retry-After: 1 s twice; code 40100: past the current second, then doubled.
        floor = 1.5 if fault == "throttle" else 2.5
        assert time.monotonic() - started >= floor


def test_partial_acceptance_is_counted(tiktok):
    tiktok.inject("partial", times=1, reject=3)
    result = run_export(TikTokAdsExportOperator, plan(), "r1", rows(250))
    assert result["platform_invalid"] == 3
    assert len(members(tiktok)) == 247


def test_malformed_identifiers_are_not_sent_and_counted(tiktok):
    data = rows(120)
    data[7]["IDFA"] = "not-a-digest"
    data[90]["EMAIL"] = data[90]["EMAIL"].upper()
    result = run_export(TikTokAdsExportOperator, plan(), "r1", data)
    assert result["platform_invalid"] == 2 and tiktok.contract_errors == []
    assert members(tiktok) == keys(data[:7] + data[8:90] + data[91:])


def test_failed_batch_is_retried_alone_and_resumes_after_task_failure(tiktok):
    the_plan = plan()
    data = rows(500)
    original_route = tiktok.route
    calls = {"n": 0}

    def flaky(request, fault):
        if tiktok.is_data_request(request):
            calls["n"] += 1
            if calls["n"] >= 3:  # TikTok's system error: HTTP 200, code 50000
                return tiktok._envelope(50000, "System error.")
        return original_route(request, fault)

    tiktok.route = flaky
    with pytest.raises(PlatformError, match="failed after 4 attempts: code 50000"):
        run_export(TikTokAdsExportOperator, the_plan, "r1", data)
    assert len(tiktok.received_rows("add")) == 200
    failing = mapping_requests(tiktok)[2:]
    assert len(failing) == 4 and all(r.body == failing[0].body for r in failing)
    tiktok.route = original_route
    result = run_export(TikTokAdsExportOperator, the_plan, "r1", data)  # the task's retry
    assert result["batches_resumed"] == 2 and result["batches"] == 3
    assert len(tiktok.received_rows("add")) == 500  # no acknowledged row sent twice
    assert members(tiktok) == keys(data)


def test_mirror_sends_exactly_the_joiners_and_leavers(tiktok):
    the_plan = plan({"sync_mode": "mirror"})
    first = rows(1000)
    run_export(TikTokAdsExportOperator, the_plan, "r1", first)
    tiktok.received.clear()
    second = first[100:] + rows(100, 5000)  # 10% leave, 10% join
    result = run_export(TikTokAdsExportOperator, the_plan, "r2", second)
    assert (result["added"], result["removed"], result["rows_sent"]) == (100, 100, 1000)
    assert [b["op"] for b in tiktok.received] == ["remove", "add"]
    assert {r["user"] for r in tiktok.received_rows("add")} == keys(second[-100:])
    assert {r["user"] for r in tiktok.received_rows("remove")} == keys(first[:100])
    assert len(tiktok.received_rows("add")) == 100 and len(tiktok.received_rows("remove")) == 100
    assert [r.body["action"] for r in mapping_requests(tiktok)[-2:]] == ["delete", "add"]
    assert members(tiktok) == keys(second)
    # A retry of run 2 diffs against run 1 again, and resends nothing.
    tiktok.received.clear()
    again = run_export(TikTokAdsExportOperator, the_plan, "r2", second)
    assert tiktok.received == [] and again["batches_resumed"] == 2


def test_replace_mode_is_not_offered(tiktok):
    with pytest.raises(ValueError, match="sync_mode"):
        run_export(TikTokAdsExportOperator, plan({"sync_mode": "replace"}), "r1", rows(5))
    assert mapping_requests(tiktok) == []
    with pytest.raises(TypeError):
        TikTokAdsHook("plat").clear("1")


def test_calls_stay_under_the_published_rate_limits(tiktok, monkeypatch):
    monkeypatch.setattr(TikTokAdsHook, "max_batch_rows", 5)
    run_export(TikTokAdsExportOperator, plan(), "r1", rows(120))
    times = tiktok.data_times
    assert len(times) == 24
    # Basic tier: 10 calls per second; the 11th call in any window waits for the window.
    assert all(times[i + 10] - times[i] >= 0.95 for i in range(len(times) - 10))


def test_wrong_credentials_name_the_connection(tiktok, monkeypatch):
    connect(monkeypatch, tiktok.start(), token="nope")
    with pytest.raises(
        PlatformError, match=r"TikTok Ads \(plat\): GET .* failed: code 40105.*access token"
    ):
        run_export(TikTokAdsExportOperator, plan(), "r1", rows(5))


def test_wrong_or_missing_advertiser_names_the_connection(tiktok, monkeypatch):
    url = tiktok.start()
    connect(monkeypatch, url, advertiser_id="9999")
    with pytest.raises(PlatformError, match=r"TikTok Ads \(plat\).*code 40001.*advertiser_id"):
        run_export(TikTokAdsExportOperator, plan(), "r1", rows(5))
    connect(monkeypatch, url, advertiser_id="")
    with pytest.raises(ValueError, match="connection 'plat' has no 'advertiser_id'"):
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
