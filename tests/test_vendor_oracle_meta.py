"""Vendor oracle for Meta: our custom-audience requests against what Meta's own Python SDK
(``facebook_business``) sends for the same rows.

Both clients talk to the local contract fake, which records every request as it arrived; the
SDK's ``FacebookAdsApi`` is simply pointed at the fake's URL. Our side goes through projection's
normalizers (the destination contract's rules) and the hook, as in a run.

Where the SDK and Meta's normalization table disagree, we follow the table; those differences
are pinned at the end of this file and written down in the README (Facebook Ads).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import duckdb
import pyarrow as pa
import pytest
import requests
from campaign_sync.destinations import REGISTRY
from campaign_sync.hooks.audience import ReplaceStep
from campaign_sync.hooks.facebook_ads import MAX_DELETE_QUERY_BYTES, FacebookAdsHook
from campaign_sync.projection import normalize
from facebook_business.adobjects.customaudience import CustomAudience
from facebook_business.api import FacebookAdsApi
from facebook_business.session import FacebookSession
from fakes.base import Request
from fakes.facebook_ads import FakeFacebookAds
from platform_support import set_connection, sha

TOKEN = "EAAtoken123"
ACCOUNT = "1029384756"
VERSION = "v24.0"
APP_SECRET = "app-s3cret"
# Source column -> Meta key, as a campaign maps them (FI and DOB* come from other columns).
MAPPING = {
    "crm_id": "EXTERN_ID",
    "email": "EMAIL",
    "phone": "PHONE",
    "first_name": "FN",
    "last_name": "LN",
    "first_name_initial": "FI",
    "city": "CT",
    "state": "ST",
    "zip": "ZIP",
    "country": "COUNTRY",
    "gender": "GEN",
    "birth_year": "DOBY",
    "birth_month": "DOBM",
    "birth_day": "DOBD",
    "maid": "MADID",
}
SCHEMA = list(MAPPING.values())
# People whose every value is already in a form both Meta's table and the SDK read the same way
# (mixed case, spaces and punctuation the SDK also cleans): both sides must send the same bytes.
PEOPLE = [
    {
        "crm_id": "CRM-0001", "email": " Mary.Smith@Example.com", "phone": "+1 (555) 201-3344",
        "first_name": "Mary", "last_name": "O'Brien", "city": "New York", "state": "NY",
        "zip": "10001-1234", "country": "US", "gender": "Female", "birth_date": "1980-03-07",
        "maid": "6D92078A-8246-4BA4-AE5B-76104861E7DC",
    },
    {
        "crm_id": "crm-0002", "email": "jo@example.org", "phone": "+1 212 555 0143",
        "first_name": "Jo", "last_name": "Smith-Jones", "city": "San Francisco", "state": "ca",
        "zip": "94105", "country": "us", "gender": "m", "birth_date": "1975-12-25",
        "maid": "ab12cd34-0000-4000-8000-1234567890ab",
    },
    {
        "crm_id": "Crm-0003 ", "email": "LEE@EXAMPLE.CO.UK", "phone": "+44 20 7946 0958",
        "first_name": "Lee", "last_name": "Ng", "city": "London", "state": "WA",
        "zip": "EC1A1BB", "country": "GB", "gender": "F", "birth_date": "2001-01-30",
        "maid": "0f8fad5b-d9cb-469f-a165-70867728950e",
    },
]  # fmt: skip


def sdk_values(person: dict[str, str]) -> list[str]:
    """The person's row as an SDK user passes it to ``add_users``: one string per key."""
    year, month, day = person["birth_date"].split("-")
    split = {
        "first_name_initial": person["first_name"][0],
        "birth_year": year,
        "birth_month": str(int(month)),  # the SDK pads months and days itself
        "birth_day": str(int(day)),
    }
    return [split.get(source, person.get(source, "")) for source in MAPPING]


def project(people: list[dict[str, str]]) -> list[dict[str, Any]]:
    """The rows projection stages for facebook_ads: each mapped source column normalized, and
    hashed where the destination contract says so (``normalize``'s SQL, run in DuckDB)."""
    dtype = REGISTRY["facebook_ads"]
    sources = {
        **{s: s for s in MAPPING},
        "first_name_initial": "first_name",
        "birth_year": "birth_date",
        "birth_month": "birth_date",
        "birth_day": "birth_date",
    }
    select = []
    for source, key in MAPPING.items():
        rule = dtype.rule_for(key)
        raw = f'"{sources[source]}"'
        value = normalize.normalize(rule.kind, raw)
        if rule.hashed:
            value = normalize.sha256(raw, value)
        select.append(f'{value} AS "{key}"')
    con = duckdb.connect()
    con.register("people", pa.Table.from_pylist(people))
    cursor = con.execute(f"SELECT {', '.join(select)} FROM people")
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


@pytest.fixture
def meta(monkeypatch) -> Iterator[FakeFacebookAds]:
    fake = FakeFacebookAds(token=TOKEN, ad_account=ACCOUNT, app_secret=APP_SECRET, version=VERSION)
    fake.url = fake.start()
    set_connection(
        monkeypatch, "meta_oracle", "facebook_ads", host=fake.url, password=TOKEN,
        extra={"ad_account_id": ACCOUNT, "api_version": VERSION, "app_secret": APP_SECRET,
               "timeout": 5, "max_attempts": 1},
    )  # fmt: skip
    yield fake
    fake.stop()


def sdk_audience(fake: FakeFacebookAds, name: str) -> CustomAudience:
    """A custom audience object of Meta's SDK, its API client aimed at the fake."""
    session = FacebookSession(access_token=TOKEN, app_secret=APP_SECRET, timeout=5)
    session.GRAPH = fake.url  # instead of graph.facebook.com
    api = FacebookAdsApi(session, api_version=VERSION)
    return CustomAudience(fake.add_existing(name), api=api)


def last_upload(fake: FakeFacebookAds) -> Request:
    return [r for r in fake.requests if fake.is_data_request(r)][-1]


def where(request: Request) -> dict[str, str]:
    """Each parameter of a request and where it travelled: "query" or "body"."""
    located = {k: "query" for k in request.query}
    if isinstance(request.body, dict):
        located.update({k: "body" for k in request.body})
    return located


def params(request: Request) -> dict[str, Any]:
    """The request's parameters, wherever they travelled, JSON-valued ones decoded."""
    merged = {k: v[0] for k, v in request.query.items()}
    if isinstance(request.body, dict):
        merged.update(request.body)
    return {k: json.loads(v) if k in ("payload", "session") else v for k, v in merged.items()}


def test_oracle_meta_projection_of_clean_rows_hashes_what_the_sdk_hashes():
    # Same rows, same bytes: normalization then SHA-256, key by key.
    ours = [[row[k] or "" for k in SCHEMA] for row in project(PEOPLE)]
    sdk = CustomAudience.format_params(SCHEMA, [sdk_values(p) for p in PEOPLE], is_raw=True)
    theirs = sdk["payload"]["data"]
    extern = SCHEMA.index("EXTERN_ID")
    # EXTERN_ID leaves projection as written; the hook lowercases it on the wire (next tests).
    assert [r[extern] for r in theirs] == ["crm-0001", "crm-0002", "crm-0003"]
    assert [[v for i, v in enumerate(r) if i != extern] for r in ours] == [
        [v for i, v in enumerate(r) if i != extern] for r in theirs
    ]


def test_oracle_meta_add_sends_what_the_sdk_sends(meta):
    theirs_audience = sdk_audience(meta, "sdk")
    theirs_audience.add_users(SCHEMA, [sdk_values(p) for p in PEOPLE], is_raw=True)
    theirs = last_upload(meta)
    hook = FacebookAdsHook("meta_oracle")
    ours_audience = meta.add_existing("ours")
    result = hook.add(ours_audience, project(PEOPLE))
    ours = last_upload(meta)

    assert meta.contract_errors == []  # the fake takes the SDK's own request, token in the URL
    assert (ours.method, theirs.method) == ("POST", "POST")
    assert ours.path == f"/{VERSION}/{ours_audience}/users"
    assert theirs.path == f"/{VERSION}/{theirs_audience['id']}/users"
    assert params(ours)["payload"] == params(theirs)["payload"]
    assert where(ours)["payload"] == where(theirs)["payload"] == "body"
    # The SDK puts the token and proof in every URL; we keep them in the body of writes. Meta
    # takes either, and both are signed the same way.
    assert where(theirs)["access_token"] == "query" and where(ours)["access_token"] == "body"
    assert params(ours)["appsecret_proof"] == params(theirs)["appsecret_proof"]
    assert set(params(ours)) == set(params(theirs))
    assert result.received == len(PEOPLE) and result.invalid == 0
    assert set(meta.members[ours_audience]) == set(meta.members[theirs_audience["id"]])


def test_oracle_meta_remove_sends_its_parameters_in_the_query_like_the_sdk(meta):
    theirs_audience = sdk_audience(meta, "sdk")
    theirs_audience.add_users(SCHEMA, [sdk_values(p) for p in PEOPLE], is_raw=True)
    theirs_audience.remove_users(SCHEMA, [sdk_values(p) for p in PEOPLE[:2]], is_raw=True)
    theirs = last_upload(meta)
    hook = FacebookAdsHook("meta_oracle")
    ours_audience = meta.add_existing("ours")
    hook.add(ours_audience, project(PEOPLE))
    hook.remove(ours_audience, project(PEOPLE[:2]))
    ours = last_upload(meta)

    assert meta.contract_errors == []
    assert (ours.method, theirs.method) == ("DELETE", "DELETE")
    assert ours.raw == theirs.raw == b""  # nothing in a body Meta may ignore
    assert where(ours) == where(theirs) == {
        "payload": "query", "access_token": "query", "appsecret_proof": "query",
    }  # fmt: skip
    assert params(ours) == params(theirs)
    assert len(meta.members[ours_audience]) == 1
    assert set(meta.members[ours_audience]) == set(meta.members[theirs_audience["id"]])


def test_oracle_meta_replace_batches_carry_the_sdks_payload_and_session(meta):
    session = {"session_id": 9778993, "batch_seq": 1, "last_batch_flag": True,
               "estimated_num_total": len(PEOPLE)}  # fmt: skip
    theirs_audience = sdk_audience(meta, "sdk")
    theirs_audience.create_users_replace(
        params=CustomAudience.format_params(
            SCHEMA, [sdk_values(p) for p in PEOPLE], is_raw=True, session=session
        )
    )
    theirs = last_upload(meta)
    hook = FacebookAdsHook("meta_oracle")
    ours_audience = meta.add_existing("ours")
    hook.replace_batch(ours_audience, project(PEOPLE), ReplaceStep(9778993, 1, True, len(PEOPLE)))
    ours = last_upload(meta)

    assert meta.contract_errors == [] and meta.replaces_completed == 2
    assert ours.path.endswith("/usersreplace") and theirs.path.endswith("/usersreplace")
    assert params(ours)["payload"] == params(theirs)["payload"]
    assert params(ours)["session"] == params(theirs)["session"] == session
    assert where(ours)["session"] == where(theirs)["session"] == "body"


def test_oracle_meta_fake_ignores_a_delete_body_as_meta_is_reported_to(meta):
    # What we sent before following the SDK: a form body on DELETE. The fake, like Meta as
    # Graph API users report it, reads DELETE parameters from the URL only.
    hook = FacebookAdsHook("meta_oracle")
    audience = meta.add_existing("ours")
    hook.add(audience, project(PEOPLE))
    payload = {"schema": SCHEMA, "is_raw": True, "data": [[""] * len(SCHEMA)]}
    body = {"payload": json.dumps(payload), **hook.auth_params()}
    response = requests.delete(f"{meta.url}/{VERSION}/{audience}/users", data=body, timeout=5)
    assert response.status_code == 400 and len(meta.members[audience]) == len(PEOPLE)


def test_oracle_meta_long_removals_are_split_under_the_url_limit(meta):
    people = [
        {**PEOPLE[i % 3], "crm_id": f"CRM-{i:05d}", "email": f"user{i}@example.com"}
        for i in range(600)
    ]
    rows = project(people)
    whole = len(urlencode({"payload": json.dumps({"schema": SCHEMA, "data": rows})}))
    assert whole > 3 * MAX_DELETE_QUERY_BYTES  # one URL would be far too long
    hook = FacebookAdsHook("meta_oracle")
    audience = meta.add_existing("ours")
    hook.add(audience, rows)
    result = hook.remove(audience, rows)
    deletes = [r for r in meta.requests if r.method == "DELETE"]
    assert result.received == 600 and meta.members[audience] == {}
    assert len(deletes) >= 4 and meta.contract_errors == []
    for request in deletes:
        query = urlencode({k: v[0] for k, v in request.query.items()})
        assert len(query) <= MAX_DELETE_QUERY_BYTES + 200  # payload budget plus token and proof
    sent = [row for r in deletes for row in params(r)["payload"]["data"]]
    assert [r[0] for r in sent] == [f"crm-{i:05d}" for i in range(600)]  # in order, once each


def test_oracle_meta_plain_madid_of_an_earlier_delivery_is_hashed_once(meta):
    # Deliveries staged before projection hashed MADID hold it plain; mirror reads them back
    # for removals. The wire value must be the SDK's either way, and a digest is not rehashed.
    hook = FacebookAdsHook("meta_oracle")
    audience = meta.add_existing("ours")
    plain = "6d92078a-8246-4ba4-ae5b-76104861e7dc"
    hook.add(
        audience, [{"EXTERN_ID": "A", "MADID": plain}, {"EXTERN_ID": "B", "MADID": sha(plain)}]
    )
    sdk = CustomAudience.format_params(["EXTERN_ID", "MADID"], [["A", plain]], is_raw=True)
    data = params(last_upload(meta))["payload"]["data"]
    assert data == [sdk["payload"]["data"][0], ["b", sha(plain)]]


# --- Differences we keep -------------------------------------------------------------------
# The SDK cleans less than Meta's normalization table asks; for these inputs we follow the
# table (README, "Facebook Ads (Meta): what is sent"). Each case: key, source column, raw value, the
# value we hash, the value the SDK hashes.
DIFFERENCES = [
    # Meta: "include the country code"; the SDK keeps the digits it is given, so a national
    # number would match nobody. We add the source's phone_country_code (default 1).
    ("PHONE", "phone", "(555) 201-3344", "15552013344", "5552013344"),
    # Meta: "lowercase, no punctuation, UTF-8 characters kept"; the SDK keeps a-z only.
    ("FN", "first_name", "José", "josé", "jos"),
    ("LN", "last_name", "Müller", "müller", "mller"),
    # Meta asks for the Roman alphabet translation of a city: accents are stripped, not dropped.
    ("CT", "city", "São Paulo", "saopaulo", "sopaulo"),
    # Meta: ISO 3166-1 alpha-2; the SDK takes the first two letters of whatever it is given.
    ("COUNTRY", "country", "United States", "us", "un"),
    # Meta: two-letter ANSI code for US states; the SDK only drops non-letters.
    ("ST", "state", "New York", "ny", "newyork"),
    # Meta: UK postcodes without the space; the SDK keeps it.
    ("ZIP", "zip", "SW1A 1AA", "sw1a1aa", "sw1a 1aa"),
]


@pytest.mark.parametrize(("key", "source", "raw", "ours", "sdk"), DIFFERENCES)
def test_oracle_meta_documented_normalization_differences(key, source, raw, ours, sdk):
    person = {**PEOPLE[0], source: raw}
    index = SCHEMA.index(key)
    projected = project([person])[0][key]
    theirs = CustomAudience.format_params(SCHEMA, [sdk_values(person)], is_raw=True)
    assert projected == sha(ours)
    assert theirs["payload"]["data"][0][index] == sha(sdk)
    assert ours != sdk


def test_oracle_meta_unknown_values_are_empty_not_the_hash_of_nothing(meta):
    # The SDK hashes an empty value into SHA-256(""), a key that matches nobody; Meta's docs
    # ask for an empty string for an unknown key, which is what we send.
    person = {**PEOPLE[0], "phone": ""}
    hook = FacebookAdsHook("meta_oracle")
    hook.add(meta.add_existing("ours"), project([person]))
    sent = params(last_upload(meta))["payload"]["data"][0][SCHEMA.index("PHONE")]
    theirs = CustomAudience.format_params(SCHEMA, [sdk_values(person)], is_raw=True)
    assert sent == ""
    assert theirs["payload"]["data"][0][SCHEMA.index("PHONE")] == hashlib.sha256(b"").hexdigest()
