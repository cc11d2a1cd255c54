"""TikTok API for Business v1.3, as documented and as integrators observe it: ``Access-Token``
header, errors as HTTP 200 with a non-zero ``code`` in the JSON envelope (``code``, ``message``,
``request_id``, ``data``), paginated /dmp/custom_audience/list/ (page >= 1, page_size 1-100),
/segment/audience/ creation (names over 70 characters cut to 67 + "..."), /segment/mapping/
add/delete with ``id_schema`` and per-user ``batch_data`` aligned to it ({} for a missing id),
limits as code 40100 in a 200 (or HTTP 429), partial success as code 20001."""

from __future__ import annotations

import itertools
import re
import time
from datetime import datetime, timedelta
from typing import Any

from fakes.base import ContractError, FakePlatform, Request, Response

API = "/open_api/v1.3"
HEX64 = re.compile(r"^[0-9a-f]{64}$")
SCHEMAS = {"EMAIL_SHA256", "PHONE_SHA256", "IDFA_SHA256", "AAID_SHA256", "GAID_SHA256"}
# Not published by TikTok; the hook's chosen batch size, enforced so a larger one is caught.
MAX_USERS = 1000


class FakeTikTokAds(FakePlatform):
    """TikTok with one advertiser and one access token."""

    name = "tiktok_ads"

    def __init__(self, token: str = "tt-token", advertiser: str = "7001") -> None:
        super().__init__()
        self.token, self.advertiser = token, advertiser
        # audience id -> {"name", "is_creator", "create_time"}
        self.audiences: dict[str, dict[str, Any]] = {}
        self.audiences_created = 0
        self.data_times: list[float] = []  # arrival of every member upload
        self._ids = itertools.count(7_100_000_000_000)
        self._request_ids = itertools.count(1)

    # --- helpers for tests ---------------------------------------------------------------
    def add_audience(self, name: str, *, is_creator: bool = True) -> str:
        """An audience already in the account (shared from elsewhere if not ``is_creator``)."""
        audience_id = str(next(self._ids))
        created = datetime(2026, 1, 1) + timedelta(seconds=len(self.audiences))
        self.audiences[audience_id] = {
            "name": name,
            "is_creator": is_creator,
            "create_time": created.strftime("%Y-%m-%d %H:%M:%S"),
        }
        return audience_id

    @staticmethod
    def user_key(ids: dict[str, str]) -> str:
        """How the fake names a user: its ids by schema (what membership is keyed by)."""
        return "|".join(f"{kind}={ids[kind]}" for kind in sorted(ids))

    # --- rendering -------------------------------------------------------------------------
    def _envelope(self, code: int, message: str, data: Any = None) -> Response:
        return Response(
            200,
            {
                "code": code,
                "message": message,
                "request_id": f"2026112700000000{next(self._request_ids):06d}",
                "data": {} if data is None else data,
            },
        )

    def is_data_request(self, request: Request) -> bool:
        return request.path == f"{API}/segment/mapping/"

    def throttle_response(self, with_retry_after: bool, params: dict[str, Any]) -> Response:
        if with_retry_after:
            return Response(
                429,
                {"code": 42900, "message": "Too many requests.", "request_id": "429"},
                {"Retry-After": str(params.get("retry_after", 1))},
            )
        # TikTok's own signal: HTTP 200, code 40100, no rate-limit headers.
        return self._envelope(40100, "Too many requests. Please retry in some time.")

    # --- routes ----------------------------------------------------------------------------
    def route(self, request: Request, fault: tuple[str, dict[str, Any]] | None) -> Response:
        if self.is_data_request(request):
            with self.lock:
                self.data_times.append(time.monotonic())
        if not request.path.startswith(f"{API}/") or not request.path.endswith("/"):
            raise ContractError(f"unknown path {request.path}")  # TikTok: 404 page not found
        token = request.headers.get("access-token")
        if not token:
            return self._envelope(
                40104,
                "Access token is null, you should set it in http header with key Access-Token.",
            )
        if token != self.token:
            return self._envelope(40105, "Access token is incorrect or has been revoked.")
        rest = request.path[len(API) :]
        if rest == "/dmp/custom_audience/list/":
            return self._list(request)
        if rest == "/segment/audience/":
            return self._create(request)
        if rest == "/segment/mapping/":
            return self._mapping(request, fault)
        raise ContractError(f"unknown path {request.path}")

    def _list(self, request: Request) -> Response:
        if request.method != "GET":
            raise ContractError("/dmp/custom_audience/list/ is GET")
        query = {k: v[0] for k, v in request.query.items()}
        if query.get("advertiser_id") != self.advertiser:
            return self._envelope(40001, "No permission to operate advertiser.")
        page = int(query.get("page", "1"))
        size = int(query.get("page_size", "10"))
        if page < 1 or not 1 <= size <= 100:
            raise ContractError(f"page {page} / page_size {size} out of range")
        items = [
            {
                "audience_id": aid,
                "name": a["name"],
                "is_creator": a["is_creator"],
                "audience_type": "Partner Audience",
                "create_time": a["create_time"],
                "is_valid": True,
                "is_expiring": False,
                "shared": not a["is_creator"],
            }
            for aid, a in self.audiences.items()
        ]
        total_page = max(1, -(-len(items) // size))
        return self._envelope(
            0,
            "OK",
            {
                "list": items[(page - 1) * size : page * size],
                "page_info": {
                    "page": page,
                    "page_size": size,
                    "total_number": len(items),
                    "total_page": total_page,
                },
            },
        )

    def _create(self, request: Request) -> Response:
        body = request.body
        if request.method != "POST" or not isinstance(body, dict):
            raise ContractError("/segment/audience/ is POST with a JSON body")
        if body.get("action") != "create":
            raise ContractError("action must be create")
        name = body.get("custom_audience_name")
        if not isinstance(name, str) or not name.strip():
            raise ContractError("custom_audience_name is required")
        if body.get("advertiser_id") != self.advertiser:
            return self._envelope(40001, "No permission to operate advertiser.")
        stored = name if len(name) <= 70 else f"{name[:67]}..."
        with self.lock:
            audience_id = self.add_audience(stored)
            self.audiences_created += 1
        return self._envelope(0, "OK", {"audience_id": audience_id})

    def _mapping(self, request: Request, fault: tuple[str, dict[str, Any]] | None) -> Response:
        body = request.body
        if request.method != "POST" or not isinstance(body, dict):
            raise ContractError("/segment/mapping/ is POST with a JSON body")
        if set(body) != {"advertiser_ids", "action", "id_schema", "batch_data"}:
            raise ContractError(f"unexpected fields {sorted(body)}")
        if body["action"] not in ("add", "delete"):
            raise ContractError("action must be add or delete")
        schema = body["id_schema"]
        if (
            not isinstance(schema, list)
            or not schema
            or len(set(schema)) != len(schema)
            or not set(schema) <= SCHEMAS
        ):
            raise ContractError(f"bad id_schema {schema}")
        users = body["batch_data"]
        if not isinstance(users, list) or not 1 <= len(users) <= MAX_USERS:
            raise ContractError(f"{len(users)} users in batch_data (1..{MAX_USERS})")
        if body["advertiser_ids"] != [self.advertiser]:
            return self._envelope(40001, "No permission to operate advertiser.")
        parsed: list[tuple[dict[str, Any], set[str]]] = []
        for user in users:
            if not isinstance(user, list) or len(user) != len(schema):
                raise ContractError("each user must hold one entry per id_schema item")
            row: dict[str, Any] = {}
            audience_ids: set[str] = set()
            for kind, entry in zip(schema, user, strict=True):
                if entry == {}:
                    continue
                if set(entry) != {"id", "audience_ids"} or not entry["audience_ids"]:
                    raise ContractError("an entry is {} or {id, audience_ids}")
                if not HEX64.match(str(entry["id"])):
                    raise ContractError(f"{kind} is not a lowercase SHA-256 hex digest")
                row[kind] = entry["id"]
                audience_ids.update(str(a) for a in entry["audience_ids"])
            if not row:
                raise ContractError("a user with no id")
            parsed.append((row, audience_ids))
        unknown = {a for _, ids in parsed for a in ids} - {
            aid for aid, a in self.audiences.items() if a["is_creator"]
        }
        if unknown:
            return self._envelope(40002, "Parameter error: invalid audience ID.")
        rejected = fault[1].get("reject", 1) if fault is not None and fault[0] == "partial" else 0
        accepted = parsed[rejected:]
        op = "add" if body["action"] == "add" else "remove"
        for audience in sorted({a for _, ids in accepted for a in ids}):
            rows = [{**row, "user": self.user_key(row)} for row, ids in accepted if audience in ids]
            self.record(op, audience, rows, "user")
        if rejected:
            return self._envelope(20001, "Partially successful.", {"fail_count": rejected})
        return self._envelope(0, "OK")
