"""Vendor oracle for Criteo: our requests against the official marketing-solutions SDK
(``criteo_api_marketingsolutions_v2027_01``), checked strictly.

The hook runs against the local contract fake (speaking the SDK's API version), which records
each request. Every request must be one of the SDK's audience endpoints: same method, same path
template, query parameters it declares with its types, and a body that its request model reads
without complaint (types, enum values, required fields) and without a key it does not declare,
at any depth. The SDK's generated models accept unknown keys by default; that is refused here.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from campaign_sync.hooks.criteo import CriteoHook
from criteo_api_marketingsolutions_v2027_01.api.audience_api import AudienceApi
from criteo_api_marketingsolutions_v2027_01.configuration import Configuration
from criteo_api_marketingsolutions_v2027_01.model.contactlist_amendment_request import (
    ContactlistAmendmentRequest,
)
from criteo_api_marketingsolutions_v2027_01.model_utils import (
    OpenApiModel,
    validate_and_convert_types,
)
from fakes.base import Request
from fakes.criteo import FakeCriteo
from platform_support import set_connection, sha, small_batches

SDK_VERSION = "2027-01"  # the API version the installed SDK speaks
OPERATIONS = (
    "search_audience_segments",
    "create_audience_segments",
    "update_contact_list_by_audience_segment",
    "delete_contact_list_by_audience_segment",
)


def endpoints() -> list[Any]:
    """The SDK's endpoint descriptions for the audience operations we use."""
    api = AudienceApi()
    return [getattr(api, f"{name}_endpoint") for name in OPERATIONS]


def endpoint_for(request: Request) -> Any:
    for endpoint in endpoints():
        pattern = re.sub(r"\{[^}]+\}", "[^/]+", endpoint.settings["endpoint_path"])
        if endpoint.settings["http_method"] == request.method and re.fullmatch(
            pattern, request.path
        ):
            return endpoint
    raise AssertionError(f"{request.method} {request.path} is none of the SDK's endpoints")


def undeclared_keys(value: Any, types: tuple[Any, ...], where: str = "body") -> list[str]:
    """Keys of ``value`` that the SDK types ``types`` do not declare, at every depth."""
    found: list[str] = []
    for kind in types:
        if isinstance(kind, list) and isinstance(value, list):
            for i, item in enumerate(value):
                found += undeclared_keys(item, tuple(kind), f"{where}[{i}]")
        elif isinstance(kind, type) and issubclass(kind, OpenApiModel) and isinstance(value, dict):
            by_json = {json_key: attr for attr, json_key in kind.attribute_map.items()}
            for key, item in value.items():
                if key not in by_json:
                    found.append(f"{where}.{key}")
                else:
                    found += undeclared_keys(
                        item, kind.openapi_types[by_json[key]], f"{where}.{key}"
                    )
    return found


def check_body(body: Any, model: type[OpenApiModel]) -> None:
    """Raise unless ``body`` is exactly a ``model``: declared keys only, SDK-valid values."""
    extra = undeclared_keys(body, (model,))
    if extra:
        raise ValueError(f"keys the SDK's {model.__name__} does not declare: {extra}")
    validate_and_convert_types(
        body,
        (model,),
        ["body"],
        True,
        True,
        configuration=Configuration(discard_unknown_keys=False),
    )


def check_request(request: Request) -> str:
    """Check one request against the SDK's endpoint; return the endpoint's operation id."""
    endpoint = endpoint_for(request)
    located = endpoint.location_map
    query_names = {endpoint.attribute_map[p]: p for p, where in located.items() if where == "query"}
    for name, values in request.query.items():
        assert name in query_names, f"query parameter {name} is not the SDK's"
        (kind,) = endpoint.openapi_types[query_names[name]]
        assert kind is int and [str(int(v)) for v in values] == values, name
    body_params = [p for p, where in located.items() if where == "body"]
    if body_params:
        (model,) = endpoint.openapi_types[body_params[0]]
        check_body(request.body, model)
        assert request.headers["content-type"] in endpoint.headers_map["content_type"]
    else:
        assert not request.raw, "a body the SDK never sends"
    return str(endpoint.settings["operation_id"])


@pytest.fixture
def criteo(monkeypatch) -> Iterator[FakeCriteo]:
    fake = FakeCriteo()
    fake.version = SDK_VERSION
    url = fake.start()
    set_connection(
        monkeypatch, "criteo_oracle", "criteo", host=url, login="client-1", password="s3cret",
        extra={"advertiser_id": "4242", "api_version": SDK_VERSION, "timeout": 5,
               "max_attempts": 1},
    )  # fmt: skip
    small_batches(monkeypatch, CriteoHook, 40)
    yield fake
    fake.stop()


def test_oracle_criteo_every_request_is_an_sdk_endpoint_with_a_strict_body(criteo):
    hook = CriteoHook("criteo_oracle")
    segment = hook.ensure_audience("oracle segment")
    assert hook.ensure_audience("oracle segment") == segment  # found by search this time
    emails = [{"email": sha(f"user{i}@example.com")} for i in range(50)]
    hook.add(segment, emails[:40])
    hook.remove(segment, emails[:10])
    hook.clear(segment)
    calls = [r for r in criteo.requests if r.path != "/oauth2/token"]
    assert [check_request(r) for r in calls] == [
        "search_audience_segments",
        "create_audience_segments",
        "search_audience_segments",  # after creating: a twin created meanwhile settles oldest
        "search_audience_segments",
        "update_contact_list_by_audience_segment",
        "update_contact_list_by_audience_segment",
        "delete_contact_list_by_audience_segment",
    ]
    assert criteo.contract_errors == []


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"operation": "append"}, "operation"),
        ({"identifierType": "e-mail"}, "identifier_type"),
        ({"identifiers": [12]}, "Invalid type"),
        ({"gumCallerId": "x"}, "Invalid type"),
        ({"identifier": ["a" * 64]}, "does not declare"),
    ],
)
def test_oracle_criteo_strict_check_fails_on_a_wrong_amendment(change, error):
    # The oracle can fail: a body that strays from the SDK's model is refused.
    attributes = {"operation": "add", "identifierType": "email", "identifiers": ["a" * 64]}
    body = {"data": {"type": "ContactlistAmendment", "attributes": attributes}}
    check_body(body, ContactlistAmendmentRequest)
    body["data"]["attributes"] = {**attributes, **change}
    with pytest.raises((ValueError, TypeError), match=error):
        check_body(body, ContactlistAmendmentRequest)
