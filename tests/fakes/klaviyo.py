"""Klaviyo, as documented: private-key auth, a required ``revision`` header, JSON:API bodies.

- Get Lists (filter ``equals(name,"...")``, at most 10 a page, cursor in ``links.next``) and
  Create List (201).
- Bulk Import Profiles: <= 10,000 profiles, <= 5 MB body, <= 100 KB a profile; answers 202 with
  a job that is queued, then processing, then complete; failed profiles are reported in the
  job's ``failed_count`` and its import-errors (paginated, sparse fieldsets); a null attribute
  does not clear anything. Imported profiles join the lists in ``relationships.lists``.
- Get Profiles (filter ``any(email,[...])`` or ``equals(email,"...")``, at most 100 a page) and
  Remove Profiles from List (<= 1000 profile ids, 204).
- Limits per endpoint (burst per second, steady per minute, from the API reference): 429 with
  Klaviyo's ``throttled`` error naming the wait, and Retry-After; RateLimit-Limit/-Remaining/
  -Reset headers (the steady window) on every other answer.
"""

from __future__ import annotations

import base64
import json
import math
import re
import threading
import time
import uuid
from collections import defaultdict, deque
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import urlencode, urlsplit

from fakes.base import ContractError, FakePlatform, Request, Response

BASE = "https://a.klaviyo.com"  # links name Klaviyo's host, as the real API's do
JSON_API = "application/vnd.api+json"
REVISION = re.compile(r"^\d{4}-\d{2}-\d{2}(\.[a-z0-9]+)?$")
EMAIL = re.compile(r"^[^@\s\"]+@[^@\s\"]+\.[^@\s\"]+$")
E164 = re.compile(r"^\+[1-9]\d{1,14}$")
MAX_PROFILES = 10_000
MAX_BODY_BYTES = 5_000_000
MAX_PROFILE_BYTES = 100_000
MAX_REMOVE = 1000
STRING_ATTRIBUTES = frozenset(
    {"email", "phone_number", "external_id", "_kx", "first_name", "last_name", "organization",
     "locale", "title", "image"}
)  # fmt: skip
PROFILE_ATTRIBUTES = STRING_ATTRIBUTES | {"location", "properties"}
IMPORT_ERROR_FIELDS = {"code", "title", "detail", "source", "source.pointer", "original_payload"}
PROFILE_FIELDS = {"email", "phone_number", "external_id", "first_name", "last_name", "properties"}
# (burst per second, steady per minute) of each endpoint.
LIMITS = {
    "get_lists": (75, 750),
    "create_list": (10, 150),
    "bulk_import_profiles": (10, 150),
    "get_bulk_import_profiles_job": (10, 150),
    "get_errors_for_bulk_import_profiles_job": (10, 150),
    "get_profiles": (75, 750),
    "remove_profiles_from_list": (10, 150),
}


def _error(status: int, code: str, title: str, detail: str = "") -> dict[str, Any]:
    return {
        "errors": [
            {
                "id": str(uuid.uuid4()),
                "status": status,
                "code": code,
                "title": title,
                "detail": detail or title,
                "source": {"pointer": "/data/"},
                "links": {},
                "meta": {},
            }
        ]
    }


def _throttled(wait: float) -> dict[str, Any]:
    n = math.ceil(wait)
    return _error(
        429,
        "throttled",
        "Request was throttled.",
        f"Request was throttled. Expected available in {n} second{'' if n == 1 else 's'}.",
    )


def _cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode().rstrip("=")


def _offset(request: Request) -> int:
    cursor = request.query.get("page[cursor]", [None])[0]
    if cursor is None:
        return 0
    try:
        return int(base64.urlsafe_b64decode(cursor + "==").decode().split(":")[1])
    except (ValueError, IndexError) as exc:
        raise ContractError("page[cursor] is not a cursor Klaviyo gave") from exc


def _page_size(request: Request, default: int, maximum: int) -> int:
    size = int(request.query.get("page[size]", [default])[0])
    if not 1 <= size <= maximum:
        raise ContractError(f"page[size] {size} outside 1..{maximum}")
    return size


def _fields(request: Request, name: str, allowed: set[str]) -> set[str] | None:
    values = request.query.get(f"fields[{name}]")
    if values is None:
        return None
    fields = set(",".join(values).split(","))
    if not fields <= allowed:
        raise ContractError(f"fields[{name}] has unknown fields {sorted(fields - allowed)}")
    return fields


class FakeKlaviyo(FakePlatform):
    """One Klaviyo account with one private API key."""

    name = "klaviyo"

    def __init__(self, api_key: str = "pk_test_0123456789", processing_polls: int = 1) -> None:
        super().__init__()
        self.api_key = api_key
        self.processing_polls = processing_polls  # polls a job answers "processing" to
        self.steady: tuple[int, float] | None = None  # override every steady limit (tests)
        self.cancel_jobs = 0  # the next N import jobs end cancelled
        self.counts_reported = True  # False: failed_count stays null (the field is nullable)
        self.lists: dict[str, str] = {}  # id -> name
        self.lists_created = 0
        self.profiles: dict[str, dict[str, Any]] = {}  # key (email) -> {"id", "attributes"}
        self.by_id: dict[str, str] = {}  # profile id -> key
        self.jobs: dict[str, dict[str, Any]] = {}
        self.limit_refusals = 0  # 429s for calls over a published limit
        self.arrived: list[tuple[float, str, str]] = []  # (monotonic time, method, path)
        self._state = threading.RLock()
        self._arrivals: dict[str, deque[float]] = defaultdict(deque)
        self._windows: dict[str, dict[int, int]] = defaultdict(dict)

    def _dispatch(self, handler: BaseHTTPRequestHandler) -> None:
        # Arrival times of every call, faults included: tests check the waits between them.
        with self.lock:
            self.arrived.append((time.monotonic(), handler.command, urlsplit(handler.path).path))
        super()._dispatch(handler)

    def arrivals(self, method: str, path: str) -> list[float]:
        """When calls of ``method`` on ``path`` arrived."""
        return [t for t, m, p in self.arrived if (m, p) == (method, path)]

    def is_data_request(self, request: Request) -> bool:
        return (request.method, request.path.rstrip("/")) == (
            "POST",
            "/api/profile-bulk-import-jobs",
        ) or (request.method == "DELETE" and request.path.endswith("/relationships/profiles"))

    def throttle_response(self, with_retry_after: bool, params: dict[str, Any]) -> Response:
        wait = params.get("retry_after", 1)
        headers = {"Retry-After": str(wait)} if with_retry_after else {}
        return Response(429, _throttled(wait), headers)

    # --- routing ---------------------------------------------------------------------------
    def route(self, request: Request, fault: tuple[str, dict[str, Any]] | None) -> Response:
        with self._state:
            auth = request.headers.get("authorization")
            if auth is None:
                return Response(
                    401,
                    _error(
                        401, "not_authenticated", "Authentication credentials were not provided."
                    ),
                )
            if auth != f"Klaviyo-API-Key {self.api_key}":
                return Response(
                    401,
                    _error(401, "authentication_failed", "Incorrect authentication credentials."),
                )
            if not REVISION.match(request.headers.get("revision", "")):
                raise ContractError("the revision header (YYYY-MM-DD) is required")
            if request.method in ("POST", "DELETE", "PATCH"):
                if not request.headers.get("content-type", "").startswith(JSON_API):
                    raise ContractError(f"request bodies must be {JSON_API}")
            operation, handler, args = self._operation(request)
            admitted = self._admit(operation)
            if isinstance(admitted, Response):
                return admitted
            response = handler(request, fault, *args)
            response.headers.update(admitted)
            return response

    def _operation(self, request: Request) -> tuple[str, Any, tuple[str, ...]]:
        method, path = request.method, request.path.rstrip("/")
        routes: list[tuple[str, str, str, Any]] = [
            ("GET", r"/api/lists", "get_lists", self._get_lists),
            ("POST", r"/api/lists", "create_list", self._create_list),
            ("POST", r"/api/profile-bulk-import-jobs", "bulk_import_profiles", self._import),
            ("GET", r"/api/profile-bulk-import-jobs/([^/]+)", "get_bulk_import_profiles_job",
             self._get_job),
            ("GET", r"/api/profile-bulk-import-jobs/([^/]+)/import-errors",
             "get_errors_for_bulk_import_profiles_job", self._get_import_errors),
            ("GET", r"/api/profiles", "get_profiles", self._get_profiles),
            ("DELETE", r"/api/lists/([^/]+)/relationships/profiles", "remove_profiles_from_list",
             self._remove),
        ]  # fmt: skip
        for route_method, pattern, operation, handler in routes:
            match = re.fullmatch(pattern, path)
            if match and method == route_method:
                return operation, handler, match.groups()
        raise ContractError(f"no such endpoint: {method} {request.path}")

    def _admit(self, operation: str) -> Response | dict[str, str]:
        """Refuse a call over the endpoint's limits; else the RateLimit-* headers."""
        now = time.monotonic()
        burst, per_minute = LIMITS[operation]
        steady, window = self.steady or (per_minute, 60.0)
        arrivals = self._arrivals[operation]
        while arrivals and arrivals[0] <= now - 60:
            arrivals.popleft()
        # Burst over a slightly short window: arrival jitter must not fail a compliant client.
        recent = sum(1 for t in arrivals if t > now - 0.9)
        index = math.floor(now / window)
        used = self._windows[operation].get(index, 0)
        reset = (index + 1) * window - now
        if recent >= burst or used >= steady:
            self.limit_refusals += 1
            wait = 1.0 if recent >= burst else reset
            return Response(429, _throttled(wait), {"Retry-After": str(math.ceil(wait))})
        arrivals.append(now)
        self._windows[operation][index] = used + 1
        return {
            "RateLimit-Limit": str(steady),
            "RateLimit-Remaining": str(steady - used - 1),
            "RateLimit-Reset": str(math.ceil(reset)),
        }

    @staticmethod
    def _link(path: str, request: Request, offset: int | None) -> str | None:
        if offset is None:
            return None
        query = {k: v[0] for k, v in request.query.items() if k != "page[cursor]"}
        if offset:
            query["page[cursor]"] = _cursor(offset)
        return f"{BASE}{path}/?{urlencode(query)}" if query else f"{BASE}{path}/"

    def _page(
        self, request: Request, path: str, items: list[Any], size: int
    ) -> tuple[list[Any], dict[str, Any]]:
        offset = _offset(request)
        end = offset + size
        links = {
            "self": self._link(path, request, offset),
            "next": self._link(path, request, end) if end < len(items) else None,
            "prev": self._link(path, request, max(0, offset - size)) if offset else None,
        }
        return items[offset:end], links

    # --- lists -----------------------------------------------------------------------------
    def _get_lists(self, request: Request, fault: Any) -> Response:
        size = _page_size(request, 10, 10)
        fields = _fields(request, "list", {"name", "created", "updated", "opt_in_process"})
        items = sorted(self.lists.items())
        expression = request.query.get("filter", [None])[0]
        if expression is not None:
            match = re.fullmatch(r'equals\(name,(".*")\)', expression)
            if match is None:
                raise ContractError('this fake knows the list filter equals(name,"...")')
            name = json.loads(match.group(1))
            items = [(i, n) for i, n in items if n == name]
        page, links = self._page(request, "/api/lists", items, size)
        data = [
            {
                "type": "list",
                "id": list_id,
                "attributes": {"name": name} if fields is None or "name" in fields else {},
                "links": {"self": f"{BASE}/api/lists/{list_id}/"},
            }
            for list_id, name in page
        ]
        return Response(200, {"data": data, "links": links})

    def _create_list(self, request: Request, fault: Any) -> Response:
        data = (request.body or {}).get("data")
        if not isinstance(data, dict) or data.get("type") != "list":
            raise ContractError("Create List takes data of type list")
        name = (data.get("attributes") or {}).get("name")
        if not isinstance(name, str) or not name:
            raise ContractError("Create List requires attributes.name")
        self.lists_created += 1
        list_id = f"Ls{self.lists_created:04d}"
        self.lists[list_id] = name
        return Response(
            201,
            {
                "data": {
                    "type": "list",
                    "id": list_id,
                    "attributes": {"name": name, "opt_in_process": "single_opt_in"},
                    "links": {"self": f"{BASE}/api/lists/{list_id}/"},
                }
            },
        )

    # --- bulk import -----------------------------------------------------------------------
    def _check_profile(self, index: int, profile: Any) -> dict[str, Any]:
        if not isinstance(profile, dict) or profile.get("type") != "profile":
            raise ContractError(f"profiles.data[{index}] is not of type profile")
        attributes = profile.get("attributes")
        if not isinstance(attributes, dict):
            raise ContractError(f"profiles.data[{index}] has no attributes")
        unknown = set(attributes) - PROFILE_ATTRIBUTES
        if unknown:
            raise ContractError(
                f"profiles.data[{index}]: {sorted(unknown)} are not profile attributes"
                " (custom properties go under properties)"
            )
        for name in STRING_ATTRIBUTES & set(attributes):
            if attributes[name] is not None and not isinstance(attributes[name], str):
                raise ContractError(f"profiles.data[{index}].attributes.{name} must be a string")
        if attributes.get("properties") is not None and not isinstance(
            attributes["properties"], dict
        ):
            raise ContractError(f"profiles.data[{index}].attributes.properties must be an object")
        size = len(json.dumps(profile, separators=(",", ":"), ensure_ascii=False).encode())
        if size > MAX_PROFILE_BYTES:
            raise ContractError(f"profiles.data[{index}] is {size} bytes (100 KB allowed)")
        return attributes

    @staticmethod
    def _problem(attributes: dict[str, Any]) -> str | None:
        """Why Klaviyo would not import this profile (a per-profile import error)."""
        email, phone = attributes.get("email"), attributes.get("phone_number")
        if email is None and phone is None and attributes.get("external_id") is None:
            return "A profile needs an email, phone_number or external_id."
        if email is not None and not EMAIL.match(email):
            return "Invalid email address."
        if phone is not None and not E164.match(phone):
            return "Invalid phone number."
        return None

    def _upsert(self, attributes: dict[str, Any]) -> dict[str, Any]:
        key = attributes.get("email") or attributes.get("phone_number") or attributes["external_id"]
        stored = self.profiles.get(key)
        if stored is None:
            stored = {"id": f"01P{len(self.profiles) + 1:09d}", "attributes": {}}
            self.profiles[key] = stored
            self.by_id[stored["id"]] = key
        for name, value in attributes.items():
            if value is None:
                continue  # bulk import cannot clear a field: a null changes nothing
            if name == "properties":
                props = stored["attributes"].setdefault("properties", {})
                props.update({k: v for k, v in value.items() if v is not None})
            else:
                stored["attributes"][name] = value
        return {"key": key, "id": stored["id"], **stored["attributes"]}

    def _import(self, request: Request, fault: tuple[str, dict[str, Any]] | None) -> Response:
        if len(request.raw) > MAX_BODY_BYTES:
            raise ContractError(f"body of {len(request.raw)} bytes (5 MB allowed)")
        data = (request.body or {}).get("data")
        if not isinstance(data, dict) or data.get("type") != "profile-bulk-import-job":
            raise ContractError("Bulk Import Profiles takes data of type profile-bulk-import-job")
        profiles = ((data.get("attributes") or {}).get("profiles") or {}).get("data")
        if not isinstance(profiles, list) or not 1 <= len(profiles) <= MAX_PROFILES:
            count = len(profiles) if isinstance(profiles, list) else "no"
            raise ContractError(f"{count} profiles (1..{MAX_PROFILES} allowed)")
        lists = ((data.get("relationships") or {}).get("lists") or {}).get("data") or []
        for item in lists:
            if not isinstance(item, dict) or item.get("type") != "list" or "id" not in item:
                raise ContractError("relationships.lists.data takes {type: list, id}")
            if item["id"] not in self.lists:
                return Response(404, _error(404, "not_found", "List not found."))
        checked = [self._check_profile(i, p) for i, p in enumerate(profiles)]
        reject = fault[1].get("reject", 1) if fault is not None and fault[0] == "partial" else 0
        accepted, errors = [], []
        for index, attributes in enumerate(checked):
            problem = self._problem(attributes)
            if problem is None and reject > 0:
                problem, reject = "The profile could not be imported.", reject - 1
            if problem is not None:
                errors.append(
                    {
                        "type": "import-error",
                        "id": str(uuid.uuid4()),
                        "attributes": {
                            "code": "invalid",
                            "title": "Invalid input.",
                            "detail": problem,
                            "source": {"pointer": f"/data/attributes/profiles/data/{index}"},
                            "original_payload": profiles[index],
                        },
                    }
                )
                continue
            accepted.append(self._upsert(attributes))
        for item in lists:
            self.record("add", item["id"], accepted, "key")
        job_id = f"01J{len(self.jobs) + 1:09d}"
        self.jobs[job_id] = {
            "total": len(profiles),
            "errors": errors,
            "polls": 0,
            "lists": [item["id"] for item in lists],
            "bytes": len(request.raw),
            "cancelled": self.cancel_jobs > 0,
        }
        self.cancel_jobs = max(0, self.cancel_jobs - 1)
        return Response(202, {"data": self._job(job_id), "links": {"self": f"{BASE}/api/"}})

    def _job(self, job_id: str) -> dict[str, Any]:
        job = self.jobs[job_id]
        if job["polls"] == 0:
            status = "queued"
        elif job["polls"] <= self.processing_polls:
            status = "processing"
        else:
            status = "cancelled" if job["cancelled"] else "complete"
        done = status == "complete"
        failed = len(job["errors"])
        failed_count = (failed if self.counts_reported else None) if done else 0
        return {
            "type": "profile-bulk-import-job",
            "id": job_id,
            "attributes": {
                "status": status,
                "created_at": "2026-11-27T06:00:00+00:00",
                "total_count": job["total"],
                # Counts are final only once the job is complete.
                "completed_count": job["total"] - failed if done else 0,
                "failed_count": failed_count,
                "completed_at": "2026-11-27T06:01:00+00:00" if done else None,
                "expires_at": "2026-12-04T06:00:00+00:00",
                "started_at": "2026-11-27T06:00:01+00:00" if job["polls"] else None,
            },
            "relationships": {
                "lists": {"data": [{"type": "list", "id": i} for i in job["lists"]]},
            },
            "links": {"self": f"{BASE}/api/profile-bulk-import-jobs/{job_id}/"},
        }

    def _get_job(self, request: Request, fault: Any, job_id: str) -> Response:
        if job_id not in self.jobs:
            return Response(404, _error(404, "not_found", "Job not found."))
        self.jobs[job_id]["polls"] += 1
        return Response(200, {"data": self._job(job_id), "links": {"self": f"{BASE}/api/"}})

    def _get_import_errors(self, request: Request, fault: Any, job_id: str) -> Response:
        if job_id not in self.jobs:
            return Response(404, _error(404, "not_found", "Job not found."))
        size = _page_size(request, 20, 100)
        fields = _fields(request, "import-error", IMPORT_ERROR_FIELDS | {"id"})
        complete = self._job(job_id)["attributes"]["status"] == "complete"
        errors = self.jobs[job_id]["errors"] if complete else []
        path = f"/api/profile-bulk-import-jobs/{job_id}/import-errors"
        page, links = self._page(request, path, errors, size)
        if fields is not None:
            page = [
                {**e, "attributes": {k: v for k, v in e["attributes"].items() if k in fields}}
                for e in page
            ]
        return Response(200, {"data": page, "links": links})

    # --- profiles and membership -----------------------------------------------------------
    def _get_profiles(self, request: Request, fault: Any) -> Response:
        size = _page_size(request, 20, 100)
        fields = _fields(request, "profile", PROFILE_FIELDS)
        expression = request.query.get("filter", [""])[0]
        any_match = re.fullmatch(r"any\(email,(\[.*\])\)", expression)
        equals_match = re.fullmatch(r'equals\(email,(".*")\)', expression)
        try:
            if any_match:
                emails = json.loads(any_match.group(1))
            elif equals_match:
                emails = [json.loads(equals_match.group(1))]
            else:
                raise ContractError(
                    "this fake knows the filters any(email,[...]), equals(email,..)"
                )
        except json.JSONDecodeError as exc:
            raise ContractError("the email filter is not valid filter syntax") from exc
        found = sorted(
            (self.profiles[e] for e in set(emails) if e in self.profiles), key=lambda p: p["id"]
        )
        page, links = self._page(request, "/api/profiles", found, size)
        data = [
            {
                "type": "profile",
                "id": p["id"],
                "attributes": {
                    k: v for k, v in p["attributes"].items() if fields is None or k in fields
                },
                "links": {"self": f"{BASE}/api/profiles/{p['id']}/"},
            }
            for p in page
        ]
        return Response(200, {"data": data, "links": links})

    def _remove(self, request: Request, fault: Any, list_id: str) -> Response:
        if list_id not in self.lists:
            return Response(404, _error(404, "not_found", "List not found."))
        data = (request.body or {}).get("data")
        if not isinstance(data, list) or not 1 <= len(data) <= MAX_REMOVE:
            count = len(data) if isinstance(data, list) else "no"
            raise ContractError(f"{count} profiles (1..{MAX_REMOVE} allowed)")
        for item in data:
            if not isinstance(item, dict) or item.get("type") != "profile" or "id" not in item:
                raise ContractError("Remove Profiles from List takes {type: profile, id} items")
        rows = [
            {"key": self.by_id[item["id"]], "id": item["id"]}
            for item in data
            if item["id"] in self.by_id
        ]
        self.record("remove", list_id, rows, "key")
        return Response(204)
