"""Criteo Marketing Solutions, as documented: OAuth2 client credentials, contact-list audience
segments (search, create), PATCH contact-list amendments (<= 50,000 identifiers), DELETE to
clear, partial acceptance in nbValidIdentifiers / nbInvalidIdentifiers, 429 limits."""

from __future__ import annotations

import math
import re
import time
from typing import Any

from fakes.base import ContractError, FakePlatform, Request, Response

HEX64 = re.compile(r"^[0-9a-f]{64}$")
MAX_IDENTIFIERS = 50_000


class FakeCriteo(FakePlatform):
    """Criteo with one advertiser and one API client."""

    name = "criteo"

    def __init__(
        self, client_id: str = "client-1", secret: str = "s3cret", advertiser: str = "4242"
    ) -> None:
        super().__init__()
        self.client_id, self.secret, self.advertiser = client_id, secret, advertiser
        self.version = "2026-01"
        self.tokens: set[str] = set()
        self.segments: dict[str, str] = {}  # id -> name
        self.segments_created = 0
        self.clears = 0

    def is_data_request(self, request: Request) -> bool:
        return request.path.endswith("/contact-list")

    def throttle_response(self, with_retry_after: bool, params: dict[str, Any]) -> Response:
        wait = params.get("retry_after", 1)
        if with_retry_after:
            return Response(
                429, {"errors": [{"code": "too-many-requests"}]}, {"Retry-After": str(wait)}
            )
        # Criteo's documented header: the epoch second when the window resets.
        return Response(
            429,
            {"errors": [{"code": "too-many-requests"}]},
            {"x-ratelimit-reset": str(math.ceil(time.time() + wait))},
        )

    def route(self, request: Request, fault: tuple[str, dict[str, Any]] | None) -> Response:
        if request.path == "/oauth2/token" and request.method == "POST":
            form = request.body or {}
            if form.get("grant_type") != "client_credentials":
                raise ContractError("grant_type must be client_credentials")
            if (form.get("client_id"), form.get("client_secret")) != (self.client_id, self.secret):
                return Response(401, {"error": "invalid_client"})
            token = f"token-{len(self.tokens) + 1}"
            self.tokens.add(token)
            return Response(200, {"access_token": token, "token_type": "Bearer", "expires_in": 900})
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Bearer ") or auth[7:] not in self.tokens:
            return Response(401, {"errors": [{"code": "authorization-token-invalid"}]})
        prefix = f"/{self.version}/marketing-solutions/audience-segments"
        if not request.path.startswith(prefix):
            raise ContractError(f"unknown path {request.path}")
        rest = request.path[len(prefix) :]
        if rest == "/search" and request.method == "POST":
            attrs = request.body["data"]["attributes"]
            if attrs.get("advertiserIds") != [self.advertiser]:
                return Response(403, {"errors": [{"code": "forbidden"}]})
            limit = int(request.query.get("limit", ["50"])[0])
            offset = int(request.query.get("offset", ["0"])[0])
            items = [
                {"id": sid, "type": "AudienceSegment", "attributes": {"name": name}}
                for sid, name in sorted(self.segments.items())
            ]
            return Response(200, {"data": items[offset : offset + limit], "errors": []})
        if rest == "/create" and request.method == "POST":
            item = request.body["data"][0]
            attrs = item["attributes"]
            if item.get("type") != "AudienceSegment" or "contactList" not in attrs:
                raise ContractError("create expects an AudienceSegment with contactList")
            if attrs.get("advertiserId") != self.advertiser:
                return Response(403, {"errors": [{"code": "forbidden"}]})
            sid = str(1000 + len(self.segments))
            self.segments[sid] = attrs["name"]
            self.segments_created += 1
            return Response(200, {"data": [{"id": sid, "type": "AudienceSegment"}], "errors": []})
        match = re.fullmatch(r"/(\d+)/contact-list", rest)
        if match is None or match.group(1) not in self.segments:
            return Response(404, {"errors": [{"code": "not-found"}]})
        sid = match.group(1)
        if request.method == "DELETE":
            with self.lock:
                self.members[sid].clear()
                self.clears += 1
                self.received.append({"op": "clear", "audience": sid, "rows": []})
            return Response(200, {"data": {"type": "AudienceContactlist", "id": sid}})
        if request.method != "PATCH":
            raise ContractError(f"{request.method} not allowed on contact-list")
        data = request.body.get("data", {})
        attrs = data.get("attributes", {})
        if data.get("type") != "ContactlistAmendment":
            raise ContractError("type must be ContactlistAmendment")
        if (
            attrs.get("operation") not in ("add", "remove")
            or attrs.get("identifierType") != "email"
        ):
            raise ContractError("operation add/remove with identifierType email expected")
        identifiers = attrs.get("identifiers") or []
        if not 1 <= len(identifiers) <= MAX_IDENTIFIERS:
            raise ContractError(f"{len(identifiers)} identifiers (1..{MAX_IDENTIFIERS} allowed)")
        valid = [i for i in identifiers if HEX64.match(i)]
        if fault is not None and fault[0] == "partial":
            valid = valid[fault[1].get("reject", 1) :]
        self.record(attrs["operation"], sid, [{"email": i} for i in valid], "email")
        return Response(
            200,
            {
                "data": {
                    "type": "ContactlistAmendment",
                    "attributes": {
                        "contactListId": int(sid),
                        "operation": attrs["operation"],
                        "identifierType": "email",
                        "nbValidIdentifiers": len(valid),
                        "nbInvalidIdentifiers": len(identifiers) - len(valid),
                        "sampleInvalidIdentifiers": [],
                    },
                },
                "errors": [],
                "warnings": [],
            },
        )
