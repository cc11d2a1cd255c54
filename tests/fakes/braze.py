"""Braze REST API, as documented: ``Authorization: Bearer`` REST API key; POST /users/track with
up to 75 attribute objects, each identified by ``external_id`` (a string), profile fields and
custom attributes, array custom attributes changed with ``{"add": [...]}`` / ``{"remove": [...]}``;
201 ``{"message": "success", "attributes_processed": n}`` with non-fatal ``errors`` naming the
refused objects' index; 401 for a bad key; 429 with ``X-RateLimit-*`` headers (reset in epoch
seconds). Membership of an audience is its name in the ``campaign_sync_audiences`` array."""

from __future__ import annotations

import math
import time
from typing import Any

from fakes.base import ContractError, FakePlatform, Request, Response

MAX_OBJECTS = 75
ARRAY = "campaign_sync_audiences"


class FakeBraze(FakePlatform):
    """One Braze workspace and one REST API key."""

    name = "braze"

    def __init__(self, api_key: str = "braze-rest-key") -> None:
        super().__init__()
        self.api_key = api_key
        self.profiles: dict[str, dict[str, Any]] = {}

    def is_data_request(self, request: Request) -> bool:
        return request.path == "/users/track" and bool((request.body or {}).get("attributes"))

    def throttle_response(self, with_retry_after: bool, params: dict[str, Any]) -> Response:
        wait = params.get("retry_after", 1)
        headers = {"X-RateLimit-Limit": "3000", "X-RateLimit-Remaining": "0"}
        if with_retry_after:
            headers["Retry-After"] = str(wait)
        else:
            headers["X-RateLimit-Reset"] = str(math.ceil(time.time() + wait))
        return Response(429, {"message": "Too Many Requests"}, headers)

    def route(self, request: Request, fault: tuple[str, dict[str, Any]] | None) -> Response:
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            return Response(401, {"message": "Invalid API key"})
        if (request.method, request.path) != ("POST", "/users/track"):
            raise ContractError(f"no route for {request.method} {request.path}")
        if not isinstance(request.body, dict) or set(request.body) - {
            "attributes", "events", "purchases"
        }:  # fmt: skip
            raise ContractError("body takes attributes, events and purchases arrays")
        objects = request.body.get("attributes") or []
        if len(objects) > MAX_OBJECTS:
            raise ContractError(f"{len(objects)} attribute objects (<= {MAX_OBJECTS} allowed)")
        reject = fault[1].get("reject", 1) if fault is not None and fault[0] == "partial" else 0
        errors = []
        applied: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for index, obj in enumerate(objects):
            external_id = obj.get("external_id")
            if not isinstance(external_id, str) or not external_id or index < reject:
                errors.append({"type": "'external_id' is required", "input_array": "attributes",
                               "index": index})  # fmt: skip
                continue
            if any(v is None for v in obj.values()):
                raise ContractError("null erases an attribute; campaign-sync never sends one")
            for op, name in self._apply(obj):
                row = {k: v for k, v in obj.items() if k != ARRAY}
                applied.setdefault((op, name), []).append(row)
        for (op, name), rows in applied.items():  # one batch per request, as other fakes
            self.record(op, name, rows, "external_id")
        body: dict[str, Any] = {
            "message": "success",
            "attributes_processed": len(objects) - len(errors),
        }
        if errors:
            body["errors"] = errors
        return Response(201, body)

    def _apply(self, obj: dict[str, Any]) -> list[tuple[str, str]]:
        change = obj.get(ARRAY)
        if not isinstance(change, dict) or len(change) != 1 or set(change) - {"add", "remove"}:
            raise ContractError(f"{ARRAY} must be changed with add or remove")
        ((op, names),) = change.items()
        if not all(isinstance(n, str) and 0 < len(n) <= 255 for n in names):
            raise ContractError("array values are strings of 1-255 characters")
        external_id = obj["external_id"]
        with self.lock:
            profile = self.profiles.setdefault(external_id, {ARRAY: []})
            profile.update({k: v for k, v in obj.items() if k != ARRAY})
            for name in names:
                if op == "add" and name not in profile[ARRAY]:
                    profile[ARRAY].append(name)
                elif op == "remove" and name in profile[ARRAY]:
                    profile[ARRAY].remove(name)
        return [(op, name) for name in names]
