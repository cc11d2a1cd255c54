"""The shared platform table: one row per audience platform, from which every per-platform
behaviour (batches, mirror, resume, failure classes, limits, the Test button, kill and rerun) is
tested once. Adding a platform adds one row here."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fakes.attentive import FakeAttentive
from fakes.base import FakePlatform, Response
from fakes.braze import FakeBraze
from fakes.criteo import FakeCriteo
from fakes.facebook_ads import FakeFacebookAds, graph_error
from fakes.klaviyo import FakeKlaviyo
from fakes.tiktok_ads import API as TIKTOK_API
from fakes.tiktok_ads import FakeTikTokAds
from platform_support import sha


def _tiktok(code: int, message: str) -> Response:
    return Response(200, {"code": code, "message": message, "request_id": "1", "data": {}})


def _klaviyo_list(fake: Any, name: str, n: int) -> str:
    fake.lists[f"Lx{n:04d}"] = name
    return f"Lx{n:04d}"


def _criteo_segment(fake: Any, name: str, n: int) -> str:
    fake.segments[str(900 + n)] = name
    return str(900 + n)


@dataclass(frozen=True)
class Platform:
    """How to reach one platform's contract fake, and what it answers when it refuses."""

    dtype: str
    fake: Callable[[], FakePlatform]
    # Connection fields for the fake at ``url``; ``secret`` replaces the credentials.
    connection: Callable[[str, str | None], dict[str, Any]]
    attributes: dict[str, str]  # source column -> destination attribute
    row: Callable[[int], dict[str, Any]]  # projected values of customer i
    forbidden: Response  # the platform's answer to credentials lacking a permission
    missing: Response | None  # ... to a data call naming an audience that no longer exists
    missing_kind: str | None  # how that answer is classified
    # The request that creates an audience (method, path ending), and how to make one by hand
    # in the fake (returning its id); None for platforms without audience objects.
    creates: tuple[str, str] | None = None
    existing: Callable[[Any, str, int], str] | None = None
    tuning: tuple[tuple[str, Any], ...] = ()  # hook attributes that shorten waits
    modes: tuple[str, ...] = field(default=("add", "mirror"))


PLATFORMS = [
    Platform(
        "klaviyo", FakeKlaviyo,
        lambda url, secret=None: {"host": url, "password": secret or "pk_test_0123456789",
                                  "extra": {"revision": "2025-10-15"}},
        {"email": "email"}, lambda i: {"email": f"user{i}@example.com"},
        Response(403, {"errors": [{"code": "permission_denied"}]}),
        Response(404, {"errors": [{"code": "not_found"}]}), "missing",
        ("POST", "/api/lists"), _klaviyo_list, (("poll_interval", 0.0),),
    ),
    Platform(
        "attentive", FakeAttentive,
        lambda url, secret=None: {"host": url, "password": secret or "attn-key"},
        {"phone": "phone"}, lambda i: {"phone": f"+1415{i:07d}"},
        Response(403, {"message": "Forbidden"}),
        Response(404, {"message": "Segment not found"}), "missing",
        ("POST", "/v2/segments"), lambda fake, name, n: fake.add_segment(name, f"SEG_{n:04d}"),
    ),
    Platform(
        "criteo", FakeCriteo,
        lambda url, secret=None: {"host": url, "login": "client-1",
                                  "password": secret or "s3cret",
                                  "extra": {"advertiser_id": "4242"}},
        {"email": "email"}, lambda i: {"email": sha(f"user{i}@example.com")},
        Response(403, {"errors": [{"code": "forbidden"}]}),
        Response(404, {"errors": [{"code": "not-found"}]}), "missing",
        ("POST", "/audience-segments/create"), _criteo_segment,
        modes=("add", "mirror", "replace"),
    ),
    Platform(
        "tiktok_ads", FakeTikTokAds,
        lambda url, secret=None: {"host": url + TIKTOK_API, "password": secret or "tt-token",
                                  "extra": {"advertiser_id": "7001"}},
        {"email": "EMAIL", "phone": "PHONE"},
        lambda i: {"EMAIL": sha(f"user{i}@example.com"), "PHONE": sha(f"+1415{i:07d}")},
        _tiktok(40001, "No permission to operate advertiser."),
        # TikTok documents no code for a deleted audience: any other code is a refusal.
        _tiktok(40002, "Audience does not exist."), "contract",
        ("POST", "/segment/audience/"), lambda fake, name, n: fake.add_audience(name),
    ),
    Platform(
        "facebook_ads", FakeFacebookAds,
        lambda url, secret=None: {"host": url, "password": secret or "EAAtoken123",
                                  "extra": {"ad_account_id": "1029384756"}},
        {"email": "EMAIL"}, lambda i: {"EMAIL": sha(f"user{i}@example.com")},
        Response(400, graph_error(200, "Permissions error")),
        Response(400, graph_error(100, "Object does not exist", 33)), "missing",
        ("POST", "/customaudiences"), lambda fake, name, n: fake.add_existing(name),
        modes=("add", "mirror", "replace"),
    ),
    Platform(
        "braze", FakeBraze,
        lambda url, secret=None: {"host": url, "password": secret or "braze-rest-key"},
        {"customer_id": "external_id", "email": "email"},
        lambda i: {"external_id": f"C{i:06d}", "email": f"user{i}@example.com"},
        Response(403, {"message": "Forbidden"}),
        None, None,  # no audience object to lose
    ),
]  # fmt: skip

BY_TYPE = {p.dtype: p for p in PLATFORMS}
IDS = [p.dtype for p in PLATFORMS]


def rows(platform: Platform, n: int, start: int = 0) -> list[dict[str, Any]]:
    """Projected rows of customers ``start`` .. ``start + n - 1``."""
    return [{"__customer_id": f"C{i:06d}", **platform.row(i)} for i in range(start, start + n)]


def member_count(fake: FakePlatform) -> int:
    """Members of the one audience the fake holds."""
    audiences = [m for m in fake.members.values() if m]
    assert len(audiences) <= 1, "one audience expected"
    return len(audiences[0]) if audiences else 0


def sent_twice(fake: FakePlatform) -> int:
    """Rows the fake received more than once."""
    seen: dict[str, int] = {}
    for row in fake.received_rows("add"):
        key = json.dumps(row, sort_keys=True, default=str)
        seen[key] = seen.get(key, 0) + 1
    return sum(1 for n in seen.values() if n > 1)
