"""Attentive API v2, as its OpenAPI reference documents it: Bearer API key; segments listed with
a partial-match name filter and cursor pages (``segments``, ``cursor``, ``hasMore``), created
with an optional unique external id; bulk segment members added (POST) and removed (DELETE) with
``{externalId, members}``, 1-10,000 members each carrying email, phone (E.164) and/or
clientUserId, answered 202 with a ``batchJobId``; job status at ``/v2/bulk/job/{id}``; 429 with
per-second ``x-ratelimit-*`` headers past 100 requests per second per endpoint."""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections import defaultdict, deque
from typing import Any

from fakes.base import ContractError, FakePlatform, Request, Response

E164 = re.compile(r"^\+[1-9][0-9]{7,14}$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MEMBER_KEYS = ("email", "phone", "clientUserId")
MAX_MEMBERS = 10_000
RATE_LIMIT = 100  # per second per endpoint (v2 reference "Default Rate Limit")
TOO_MANY = {"message": "The user has sent too many requests in a given amount of time"}


class FakeAttentive(FakePlatform):
    """Attentive for one company and one private app's API key."""

    name = "attentive"

    def __init__(self, api_key: str = "attn-key") -> None:
        super().__init__()
        self.api_key = api_key
        self.segments: dict[str, dict[str, Any]] = {}  # external id -> segment, in creation order
        self.segments_created = 0
        self.jobs: dict[str, dict[str, Any]] = {}
        self.natural_throttles = 0  # 429s from the rate limit itself, not injected
        self._calls: dict[str, deque[float]] = defaultdict(deque)
        self._rate_lock = threading.Lock()

    def add_segment(self, name: str, external_id: str | None = None) -> str:
        """A segment made elsewhere (the UI, another tool)."""
        external_id = external_id or f"SEG_{uuid.uuid4().hex[:12]}"
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self.segments[external_id] = {
            "externalId": external_id,
            "name": name,
            "description": "Manual Segment Upload Public API V2",
            "created": now,
            "updated": now,
        }
        return external_id

    def is_data_request(self, request: Request) -> bool:
        return request.path == "/v2/bulk/segments/members"

    def _limit_headers(self, remaining: int) -> dict[str, str]:
        return {"x-ratelimit-limit": str(RATE_LIMIT), "x-ratelimit-remaining": str(remaining)}

    def throttle_response(self, with_retry_after: bool, params: dict[str, Any]) -> Response:
        # Attentive documents the per-second x-ratelimit-* headers on every response, a 429
        # included; Retry-After is what a gateway may add, and is honoured when present.
        headers = self._limit_headers(0)
        if with_retry_after:
            headers["Retry-After"] = str(params.get("retry_after", 1))
        return Response(429, TOO_MANY, headers)

    def _admit(self, endpoint: str) -> int | None:
        """Remaining calls this second on ``endpoint``, or None past the limit."""
        now = time.monotonic()
        with self._rate_lock:
            calls = self._calls[endpoint]
            while calls and calls[0] <= now - 1.0:
                calls.popleft()
            if len(calls) >= RATE_LIMIT:
                self.natural_throttles += 1
                return None
            calls.append(now)
            return RATE_LIMIT - len(calls)

    def route(self, request: Request, fault: tuple[str, dict[str, Any]] | None) -> Response:
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            return Response(401, {"message": "Unauthorized"})
        endpoint = re.sub(r"^/v2/(bulk/job|segments/external)/.+$", r"/v2/\1/{id}", request.path)
        remaining = self._admit(f"{request.method} {endpoint}")
        if remaining is None:
            return Response(429, TOO_MANY, self._limit_headers(0))
        response = self._route(request, fault)
        response.headers.update(self._limit_headers(remaining))
        return response

    def _route(self, request: Request, fault: tuple[str, dict[str, Any]] | None) -> Response:
        path, method = request.path, request.method
        if path == "/v2/segments" and method == "GET":
            return self._list_segments(request)
        if path == "/v2/segments" and method == "POST":
            return self._create_segment(request.body)
        if path.startswith("/v2/segments/external/") and method == "GET":
            segment = self.segments.get(path.rsplit("/", 1)[1])
            return Response(200, segment) if segment else Response(404, {"message": "Not Found"})
        if path == "/v2/bulk/segments/members" and method in ("POST", "DELETE"):
            return self._bulk_members(method, request.body, fault)
        if path.startswith("/v2/bulk/job/") and method == "GET":
            job = self.jobs.get(path.rsplit("/", 1)[1])
            if job is None:
                return Response(404, {"message": "Not Found"})
            return Response(200, {k: job[k] for k in ("bulkJobId", "status", "totalRecords")})
        raise ContractError(f"no route for {method} {path}")

    def _list_segments(self, request: Request) -> Response:
        query = {k: v[0] for k, v in request.query.items()}
        limit = int(query.get("limit", "20"))
        if not 1 <= limit <= 1000:
            raise ContractError(f"limit {limit} (1..1000 allowed)")
        for key in ("name", "externalId", "cursor"):
            if key in query and not query[key].strip():
                raise ContractError(f"{key} cannot be empty or whitespace only")
        if len(query.get("name", "")) > 240:
            raise ContractError("name filter longer than 240 characters")
        items = [
            s
            for s in self.segments.values()
            if query.get("name", "").lower() in s["name"].lower()
            and query.get("externalId", s["externalId"]) == s["externalId"]
        ]
        start = int(query.get("cursor", "0"))
        page = items[start : start + limit]
        more = start + limit < len(items)
        return Response(
            200,
            {"segments": page, "cursor": str(start + limit) if more else None, "hasMore": more},
        )

    def _create_segment(self, body: Any) -> Response:
        if not isinstance(body, dict) or set(body) - {"name", "description", "externalId"}:
            raise ContractError("CreateSegmentRequest takes name, description, externalId")
        name = str(body.get("name") or "").strip()
        if not 1 <= len(name) <= 240:
            raise ContractError("name must have 1..240 characters")
        description = body.get("description")
        if description is not None and not 2 <= len(str(description).strip()) <= 500:
            raise ContractError("description must have 2..500 characters")
        external_id = body.get("externalId")
        if external_id is not None:
            external_id = str(external_id).strip()
            if not 1 <= len(external_id) <= 255:
                raise ContractError("externalId must have 1..255 characters")
            if external_id in self.segments:
                return Response(400, {"message": f"externalId {external_id} already exists"})
        external_id = self.add_segment(name, external_id)
        if description is not None:
            self.segments[external_id]["description"] = str(description).strip()
        self.segments_created += 1
        segment = self.segments[external_id]
        return Response(201, {k: segment[k] for k in ("externalId", "name", "description")})

    def _bulk_members(
        self, method: str, body: Any, fault: tuple[str, dict[str, Any]] | None
    ) -> Response:
        if not isinstance(body, dict) or set(body) != {"externalId", "members"}:
            raise ContractError("SegmentMembers takes externalId and members")
        external_id = body["externalId"]
        members = body["members"]
        if not isinstance(members, list) or not 1 <= len(members) <= MAX_MEMBERS:
            raise ContractError(f"members: 1..{MAX_MEMBERS} allowed")
        for member in members:
            keys = set(member) if isinstance(member, dict) else set()
            if not keys or keys - set(MEMBER_KEYS) or not all(member.values()):
                raise ContractError("each member takes email, phone and/or clientUserId")
            if "phone" in member and not E164.match(str(member["phone"])):
                raise ContractError("phone must be E.164")
            if "email" in member and not EMAIL.match(str(member["email"])):
                raise ContractError("email must be an email address")
            if len(str(member.get("clientUserId", ""))) > 100:
                raise ContractError("clientUserId longer than 100 characters")
        if external_id not in self.segments:
            return Response(404, {"message": "Not Found"})
        # The job runs later; members it cannot apply (here: the first ``reject``) show only in
        # its result file, never in this response.
        rejected = fault[1].get("reject", 1) if fault and fault[0] == "partial" else 0
        applied = members[rejected:]
        op = "add" if method == "POST" else "remove"
        kinds = {next(k for k in MEMBER_KEYS if k in m) for m in applied}
        for kind in sorted(kinds):
            rows = [m for m in applied if next(k for k in MEMBER_KEYS if k in m) == kind]
            self.record(op, external_id, rows, kind)
        job_id = str(uuid.uuid4())
        with self.lock:
            self.jobs[job_id] = {
                "bulkJobId": job_id,
                "status": "COMPLETED",
                "totalRecords": len(members),
                "failedRecords": rejected,  # kept for tests: Attentive exposes no such field
            }
        action = "add" if op == "add" else "removal"
        return Response(
            202,
            {"message": f"Bulk segment member {action} job successfully submitted",
             "batchJobId": job_id},
        )  # fmt: skip
