"""Vendor oracle for Klaviyo: our requests against the official ``klaviyo-api`` SDK.

The hook runs against the local contract fake, which records each request. Every JSON body we
sent is then read by the SDK's own request model for that operation (pydantic, generated from
Klaviyo's OpenAPI spec) and must come back unchanged: an unknown key, a wrong type or enum value
is refused or dropped, and either fails the test. The same model is then sent by the SDK itself
to the fake, and its request must match ours: method, path, headers, and body (the SDK also
writes explicit nulls for every unset attribute, which Klaviyo ignores; they are left out).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pytest
from campaign_sync.hooks.klaviyo import KlaviyoHook
from fakes.base import Request
from fakes.klaviyo import FakeKlaviyo
from klaviyo_api import KlaviyoAPI
from openapi_client.models.list_create_query import ListCreateQuery
from openapi_client.models.list_members_delete_query import ListMembersDeleteQuery
from openapi_client.models.profile_import_job_create_query import ProfileImportJobCreateQuery
from platform_support import set_connection, small_batches
from pydantic import BaseModel

# (method, path prefix) -> the SDK's request model for that operation.
MODELS: dict[tuple[str, str], type[BaseModel]] = {
    ("POST", "/api/lists"): ListCreateQuery,
    ("POST", "/api/profile-bulk-import-jobs"): ProfileImportJobCreateQuery,
    ("DELETE", "/api/lists/"): ListMembersDeleteQuery,
}


def rows(n: int) -> list[dict[str, Any]]:
    """Projected Klaviyo rows: contract fields, custom properties of several types, gaps."""
    return [
        {
            "email": f"user{i}@example.com",
            "first_name": f"Ana{i}",
            "phone_number": f"+1555201{i:04d}" if i % 3 == 0 else None,
            "external_id": f"crm-{i}" if i % 2 else None,
            "predicted_clv": Decimal("12.50") + i,
            "churn_score": 0.25 * (i % 4),
            "signup_date": date(2024, 1, 1 + i % 28),
            "last_seen": datetime(2026, 11, 1, 12, 30),
            "vip": i % 5 == 0,
            "tier": None if i % 4 else "gold",
        }
        for i in range(n)
    ]


def drop_nulls(value: Any) -> Any:
    """``value`` without null members (the SDK writes one for every unset attribute)."""
    if isinstance(value, dict):
        return {k: drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [drop_nulls(v) for v in value]
    return value


def model_for(request: Request) -> type[BaseModel]:
    for (method, prefix), model in MODELS.items():
        if request.method == method and request.path.startswith(prefix):
            return model
    raise AssertionError(f"no SDK model for {request.method} {request.path}")


def through_sdk_model(model: type[BaseModel], body: Any) -> Any:
    """``body`` read by the SDK's model and written back as the SDK would send it."""
    return drop_nulls(json.loads(model.from_dict(body).to_json()))


@pytest.fixture
def klaviyo(monkeypatch) -> Iterator[FakeKlaviyo]:
    fake = FakeKlaviyo()
    fake.url = fake.start()
    set_connection(
        monkeypatch, "klaviyo_oracle", "klaviyo", host=fake.url, password=fake.api_key,
        extra={"timeout": 5, "max_attempts": 1},
    )  # fmt: skip
    small_batches(monkeypatch, KlaviyoHook, 40)
    monkeypatch.setattr(KlaviyoHook, "poll_interval", 0.01)
    yield fake
    fake.stop()


def writes(fake: FakeKlaviyo) -> list[Request]:
    return [r for r in fake.requests if r.method in ("POST", "DELETE", "PATCH")]


def run_hook(fake: FakeKlaviyo) -> list[Request]:
    """Create a list, import 100 profiles into it, remove 30: our write requests."""
    hook = KlaviyoHook("klaviyo_oracle")
    list_id = hook.ensure_audience("oracle list")
    data = rows(100)
    result = hook.add(list_id, data)
    assert result.received + result.invalid == 100
    hook.remove(list_id, data[:30])
    assert fake.contract_errors == []
    return writes(fake)


def test_oracle_klaviyo_every_body_we_send_is_an_sdk_request_model(klaviyo):
    sent = run_hook(klaviyo)
    operations = [(r.method, model_for(r).__name__) for r in sent]
    assert operations == [
        ("POST", "ListCreateQuery"),
        *[("POST", "ProfileImportJobCreateQuery")] * 3,  # 40 + 40 + 20 profiles
        ("DELETE", "ListMembersDeleteQuery"),
    ]
    for request in sent:
        assert through_sdk_model(model_for(request), request.body) == request.body


def test_oracle_klaviyo_the_sdk_sends_the_same_requests(klaviyo):
    sent = run_hook(klaviyo)
    api = KlaviyoAPI(api_key=klaviyo.api_key, test_host=klaviyo.url, max_retries=0)
    for ours in sent:
        model = model_for(ours).from_dict(ours.body)
        if ours.path == "/api/lists":
            api.Lists.create_list(model)
        elif ours.path == "/api/profile-bulk-import-jobs":
            api.Profiles.bulk_import_profiles(model)
        else:
            list_id = ours.path.split("/")[3]
            api.Lists.remove_profiles_from_list(list_id, model)
        theirs = klaviyo.requests[-1]
        assert (theirs.method, theirs.path) == (ours.method, ours.path)
        for header in ("authorization", "content-type", "accept"):
            assert theirs.headers[header] == ours.headers[header], header
        assert theirs.headers["revision"] and ours.headers["revision"]
        assert drop_nulls(theirs.body) == ours.body
    assert klaviyo.contract_errors == []


# Query parameter of ours -> keyword of the SDK's read operations (lists are comma-joined).
QUERY_KEYWORDS = {
    "filter": "filter",
    "page[size]": "page_size",
    "page[cursor]": "page_cursor",
    "fields[list]": "fields_list",
    "fields[profile]": "fields_profile",
    "fields[import-error]": "fields_import_error",
}


def sdk_read(api: KlaviyoAPI, path: str, query: dict[str, list[str]]) -> None:
    """Make the SDK's own call for one of our GETs, with the same arguments."""
    kwargs: dict[str, Any] = {}
    for name, (value,) in query.items():
        keyword = QUERY_KEYWORDS[name]  # a KeyError: a parameter the SDK does not have
        kwargs[keyword] = (
            int(value) if keyword == "page_size" else value.split(",") if "fields" in keyword
            else value
        )  # fmt: skip
    parts = path.strip("/").split("/")
    if path == "/api/lists":
        api.Lists.get_lists(**kwargs)
    elif path == "/api/profiles":
        api.Profiles.get_profiles(**kwargs)
    elif parts[:2] == ["api", "profile-bulk-import-jobs"] and len(parts) == 3:
        api.Profiles.get_bulk_import_profiles_job(parts[2], **kwargs)
    elif parts[:2] == ["api", "profile-bulk-import-jobs"] and parts[3:] == ["import-errors"]:
        api.Profiles.get_errors_for_bulk_import_profiles_job(parts[2], **kwargs)
    else:
        raise AssertionError(f"no SDK read for {path}")


def test_oracle_klaviyo_reads_use_the_sdks_query_parameters(klaviyo):
    klaviyo.inject("partial", reject=2)  # so that the job's import errors are read too
    run_hook(klaviyo)
    reads = [r for r in klaviyo.requests if r.method == "GET"]
    assert any(r.path.endswith("/import-errors") for r in reads)
    assert {r.path.split("/")[2] for r in reads} == {
        "lists",
        "profiles",
        "profile-bulk-import-jobs",
    }
    api = KlaviyoAPI(api_key=klaviyo.api_key, test_host=klaviyo.url, max_retries=0)
    for ours in reads:
        sdk_read(api, ours.path, ours.query)  # the SDK validates the values (page size <= 100)
        theirs = klaviyo.requests[-1]
        assert (theirs.method, theirs.path, theirs.query) == ("GET", ours.path, ours.query)
        assert theirs.headers["authorization"] == ours.headers["authorization"]
        assert theirs.headers["accept"] == ours.headers["accept"]


@pytest.mark.parametrize(
    ("path", "change"),
    [
        (["data", "type"], "profile-import-job"),  # not the operation's resource type
        (["data", "attributes", "profiles", "data", 0, "type"], "person"),
        (["data", "attributes", "profiles", "data", 0, "attributes", "emial"], "x@y.co"),
        (["data", "relationships", "lists", "data", 0, "type"], "segment"),
        (["data", "relationships", "lists", "data", 0, "idx"], "L1"),
    ],
)
def test_oracle_klaviyo_model_check_fails_on_a_wrong_body(path, change):
    # The oracle can fail: a body that strays from the spec is refused or does not round-trip.
    body: Any = {
        "data": {
            "type": "profile-bulk-import-job",
            "attributes": {
                "profiles": {"data": [{"type": "profile", "attributes": {"email": "a@b.co"}}]}
            },
            "relationships": {"lists": {"data": [{"type": "list", "id": "L1"}]}},
        }
    }
    assert through_sdk_model(ProfileImportJobCreateQuery, body) == body
    target = body
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = change
    try:
        again = through_sdk_model(ProfileImportJobCreateQuery, body)
    except ValueError:  # pydantic's ValidationError
        return
    assert again != body
