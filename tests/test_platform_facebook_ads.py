"""Facebook (Meta) custom audience export against a local server following Meta's contract."""

from __future__ import annotations

import json
import logging
import uuid

import pytest
import requests
from campaign_sync.hooks.facebook_ads import FacebookAdsHook, regain_seconds
from campaign_sync.operators.audience_export import (
    PlatformExportOperator as FacebookAdsExportOperator,
)
from campaign_sync.platforms.client import PermanentPlatformError, PlatformError
from fakes.base import Response
from fakes.facebook_ads import FakeFacebookAds, graph_error, member_key
from platform_support import (
    inject_clock,
    one_group_plan,
    run_export,
    set_connection,
    sha,
    small_batches,
)

TOKEN = "EAAtoken123"
ACCOUNT = "1029384756"
ATTRS = {
    "crm_id": "EXTERN_ID",
    "email": "EMAIL",
    "phone": "PHONE",
    "first_name": "FN",
    "maid": "MADID",
}
NAME = "platform test - everyone - treatment"
META_MAX_ROWS = FacebookAdsHook.capabilities.max_batch_rows  # before fixtures shrink it


def rows(n: int, start: int = 0) -> list[dict]:
    """Projected rows as projection writes them: hashed keys hex, EXTERN_ID/MADID plain."""
    return [
        {
            "__customer_id": f"C{i:06d}",
            "EXTERN_ID": f"crm-{i:06d}",
            "EMAIL": sha(f"user{i}@example.com"),
            "PHONE": sha(f"1555{i:07d}") if i % 3 else None,
            "FN": sha(f"name{i % 7}"),
            "MADID": str(uuid.UUID(int=i + 1)) if i % 2 else None,
        }
        for i in range(start, start + n)
    ]


def keys(data: list[dict]) -> set[str]:
    """Who the rows designate, by the fake's matching rule."""
    return {member_key({k: v or "" for k, v in r.items() if not k.startswith("__")}) for r in data}


def members(fake: FakeFacebookAds) -> set[str]:
    (audience,) = fake.members.values()
    return set(audience)


def sent(fake: FakeFacebookAds, op: str) -> list[str]:
    return [r["member"] for r in fake.received_rows(op)]


def data_requests(fake: FakeFacebookAds) -> list:
    return [r for r in fake.requests if fake.is_data_request(r)]


def connect(monkeypatch, url: str, password: str = TOKEN, **extra) -> None:
    set_connection(
        monkeypatch, "plat", "facebook_ads", host=url, password=password,
        extra={"ad_account_id": ACCOUNT, "timeout": 2, "max_attempts": 4, **extra},
    )  # fmt: skip


@pytest.fixture
def meta(monkeypatch, staging_root):
    fake = FakeFacebookAds(token=TOKEN, ad_account=ACCOUNT)
    fake.url = fake.start()
    connect(monkeypatch, fake.url)
    # Small batches make several requests out of small test data.
    small_batches(monkeypatch, FacebookAdsHook, 100)
    inject_clock(monkeypatch)  # waits are skipped, never slept
    yield fake
    fake.stop()


def plan(mode: str = "add"):
    return one_group_plan("facebook_ads", ATTRS, {"sync_mode": mode})


def test_add_sends_every_row_once_in_documented_payloads(meta):
    data = rows(450)
    result = run_export(FacebookAdsExportOperator, plan(), "r1", data)
    assert result["rows_sent"] == 450 and result["batches"] == 5 and result["mode"] == "add"
    assert meta.contract_errors == []
    assert members(meta) == keys(data)
    assert len(sent(meta, "add")) == 450 and set(sent(meta, "add")) == keys(data)
    uploads = data_requests(meta)
    assert len(uploads) == 5 and {r.method for r in uploads} == {"POST"}
    payload = json.loads(uploads[0].body["payload"])
    assert payload["schema"] == ["EXTERN_ID", "EMAIL", "PHONE", "FN", "MADID"]
    assert payload["is_raw"] is True and max(len(b["rows"]) for b in meta.received) <= 100
    # Hashes and ids go as projection wrote them (no second hash); NULL becomes "".
    assert payload["data"][0] == ["crm-000000", sha("user0@example.com"), "", sha("name0"), ""]
    assert payload["data"][1][4] == str(uuid.UUID(int=2))
    (audience,) = meta.audiences.values()
    assert audience["name"] == NAME and audience["customer_file_source"] == "USER_PROVIDED_ONLY"


def test_batches_stay_within_metas_row_limit(meta, monkeypatch):
    assert META_MAX_ROWS == 10_000
    small_batches(monkeypatch, FacebookAdsHook, META_MAX_ROWS)
    data = [{"__customer_id": f"C{i:06d}", "EMAIL": sha(f"u{i}@x.org")} for i in range(10_050)]
    result = run_export(FacebookAdsExportOperator, one_group_plan("facebook_ads", {"e": "EMAIL"}),
                        "r1", data)  # fmt: skip
    assert result["batches"] == 2 and meta.contract_errors == []
    assert [len(b["rows"]) for b in meta.received] == [10_000, 50]


def test_existing_audience_is_found_across_pages(meta):
    for i in range(250):
        meta.add_existing(f"other audience {i}")
    existing = meta.add_existing(NAME)
    run_export(FacebookAdsExportOperator, plan(), "r1", rows(10))
    # Three pages of 100 followed by cursor on the connection's base URL, nothing created.
    assert meta.list_pages == 3 and meta.audiences_created == 0
    assert set(meta.members) == {existing}


def test_meta_errors_fail_at_once_naming_connection_and_code(meta):
    original_route = meta.route

    def flagged(request, fault):
        if not meta.is_data_request(request):
            return original_route(request, fault)
        body = graph_error(100, "Invalid parameter", 1713230, error_user_msg="Audience blocked")
        return Response(400, body)

    meta.route = flagged
    with pytest.raises(PlatformError) as caught:
        run_export(FacebookAdsExportOperator, plan(), "r1", rows(5, 100))
    message = str(caught.value)
    assert "Facebook Ads (plat)" in message and "Meta error 100 subcode 1713230" in message
    assert "flagged" in message and "crm-" not in message and sha("user100@example.com")[:12] \
        not in message  # fmt: skip
    assert len(data_requests(meta)) == 1  # not retried


def test_replace_swaps_membership_when_the_last_batch_arrives(meta):
    run_export(FacebookAdsExportOperator, plan("replace"), "r1", rows(250))
    assert members(meta) == keys(rows(250))
    original_route = meta.route
    seen: list[set[str]] = []

    def watch(request, fault):
        response = original_route(request, fault)
        seen.append(members(meta))
        return response

    meta.route = watch
    new = rows(120, 1000)
    result = run_export(FacebookAdsExportOperator, plan("replace"), "r2", new)
    assert result["batches"] == 2 and meta.contract_errors == []
    # Old members stay until the last batch; then exactly the new ones remain.
    assert seen[-2] == keys(rows(250)) and seen[-1] == keys(new) == members(meta)
    batches = meta.replace_batches
    assert [(b["batch_seq"], b["last"]) for b in batches] == [
        (1, False), (2, False), (3, True), (1, False), (2, True),
    ]  # fmt: skip
    assert batches[0]["session_id"] != batches[3]["session_id"]
    assert meta.replaces_completed == 2 and len(meta.received_rows("add")) == 0
    session = json.loads(data_requests(meta)[-1].body["session"])
    assert session["estimated_num_total"] == 120 and session["last_batch_flag"] is True


def test_replace_resumes_the_same_session_after_task_failure(meta):
    old = rows(150)
    run_export(FacebookAdsExportOperator, plan("replace"), "r0", old)
    original_route = meta.route

    def failing_third(request, fault):
        if request.path.endswith("/usersreplace"):
            if json.loads(request.body["session"])["batch_seq"] == 3:
                return Response(500, graph_error(1, "An unknown error occurred", is_transient=True))
        return original_route(request, fault)

    meta.route = failing_third
    new = rows(350, 1000)
    with pytest.raises(PlatformError, match="failed after 4 attempts"):
        run_export(FacebookAdsExportOperator, plan("replace"), "r1", new)
    # Mid-session: Meta has batches 1-2 pending, the audience still holds the old members.
    assert members(meta) == keys(old)
    (state,) = meta.sessions.values()
    assert state["seq"] == 2 and not state["done"]
    meta.route = original_route
    result = run_export(FacebookAdsExportOperator, plan("replace"), "r1", new)  # task retry
    assert result["batches_resumed"] == 2 and result["batches"] == 2
    run1 = meta.replace_batches[2:]
    assert [(b["batch_seq"], b["last"]) for b in run1] == [
        (1, False), (2, False), (3, False), (4, True),
    ]  # fmt: skip
    assert {b["session_id"] for b in run1} == {state["session_id"]}  # the same session went on
    assert sum(b["rows"] for b in run1) == 350  # no acknowledged batch sent twice
    assert members(meta) == keys(new) and meta.contract_errors == []


def test_appsecret_proof_signs_every_call(monkeypatch, staging_root):
    fake = FakeFacebookAds(token=TOKEN, ad_account=ACCOUNT, app_secret="app-s3cret")
    url = fake.start()
    try:
        connect(monkeypatch, url, app_secret="app-s3cret")
        run_export(FacebookAdsExportOperator, plan(), "r1", rows(20))
        assert members(fake) == keys(rows(20))
        connect(monkeypatch, url, app_secret="not-the-secret")
        with pytest.raises(PlatformError, match=r"Facebook Ads \(plat\).*Meta error 100"):
            run_export(FacebookAdsExportOperator, plan(), "r2", rows(20))
    finally:
        fake.stop()


def test_unhashed_values_are_never_sent(meta):
    data = rows(10)
    data[4]["EMAIL"] = "user4@example.com"
    with pytest.raises(PermanentPlatformError, match="1 EMAIL value") as caught:
        run_export(FacebookAdsExportOperator, plan(), "r1", data)
    assert "user4" not in str(caught.value) and data_requests(meta) == []


def test_no_identifiers_or_token_in_logs(meta, caplog):
    caplog.set_level(logging.DEBUG)
    meta.inject("throttle_no_retry_after")
    meta.inject("partial", reject=2)
    data = rows(220)
    run_export(FacebookAdsExportOperator, plan(), "r1", data)
    text = caplog.text
    assert "Meta error 80003" in text  # the retry was logged, by code
    values = [v for r in data for v in r.values() if v]
    assert not any(v in text for v in values)
    # The token only travels in the query string of the audience lookup (GET, as Meta
    # documents), which urllib3 alone echoes at DEBUG; nothing of ours logs it.
    ours = [r.getMessage() for r in caplog.records if not r.name.startswith("urllib3")]
    assert not any(TOKEN in m for m in ours)


def _response(status: int, body: dict, headers: dict | None = None) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = json.dumps(body).encode()
    response.headers.update(headers or {})
    return response


@pytest.mark.parametrize(
    ("code", "action"),
    [(80003, "retry"), (80004, "retry"), (613, "retry"), (17, "retry"), (4, "retry"),
     (80000, "retry"), (2, "retry"), (100, "fail"), (190, "fail"), (200, "fail")],
)  # fmt: skip
def test_classify_by_graph_error_code(meta, code, action):
    hook = FacebookAdsHook("plat")
    outcome = hook.classify(_response(400, graph_error(code, "some message")))
    assert outcome.action == action and f"Meta error {code}" in outcome.reason
    assert "some message" not in outcome.reason


def test_regain_estimate_is_read_in_minutes():
    usage = {ACCOUNT: [{"type": "custom_audience", "estimated_time_to_regain_access": 3}]}
    assert regain_seconds(requests.structures.CaseInsensitiveDict(
        {"x-business-use-case-usage": json.dumps(usage)})) == 180  # fmt: skip
    none = {ACCOUNT: [{"type": "custom_audience", "estimated_time_to_regain_access": 0}]}
    assert regain_seconds({"X-Business-Use-Case-Usage": json.dumps(none)}) is None
    assert regain_seconds({}) is None
