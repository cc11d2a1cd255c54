"""Meta Marketing API (Graph API) custom audiences, as documented: ``access_token`` parameter
(and ``appsecret_proof`` when the app requires it), customer-file audiences listed with cursor
paging and created under ``act_<id>/customaudiences``, ``/users`` POST (add) and DELETE
(remove), ``/usersreplace`` sessions, multi-key payloads of <= 10,000 rows (SHA-256 hex except
EXTERN_ID; MADID hashed or plain; empty string for unknown keys), partial acceptance in
num_received / num_invalid_entries, and limits signalled as HTTP 400 with Graph error code 80003.

It accepts what Meta accepts, Meta's own SDK's requests included: parameters (the token too) in
the query string of any call, POST parameters also in a form-encoded body. A DELETE body is
ignored, as Graph API users report ("Missing required parameter: payload")."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from typing import Any

from fakes.base import ContractError, FakePlatform, Request, Response

HEX64 = re.compile(r"^[0-9a-f]{64}$")
MADID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
SCHEMA_KEYS = (
    "EXTERN_ID", "EMAIL", "PHONE", "GEN", "DOBY", "DOBM", "DOBD", "LN", "FN", "FI", "CT", "ST",
    "ZIP", "MADID", "COUNTRY",
)  # fmt: skip
MAX_ROWS = 10_000
FILE_SOURCES = ("USER_PROVIDED_ONLY", "PARTNER_PROVIDED_ONLY", "BOTH_USER_AND_PARTNER_PROVIDED")


def member_key(row: dict[str, Any]) -> str:
    """Who a row designates: its non-empty schema values (the fake's matching rule)."""
    return json.dumps(sorted((k, v) for k, v in row.items() if k in SCHEMA_KEYS and v))


def graph_error(code: int, message: str, subcode: int | None = None, **extra: Any) -> Any:
    """A Graph API error body."""
    error: dict[str, Any] = {
        "message": message,
        "type": extra.pop("type", "OAuthException"),
        "code": code,
        "fbtrace_id": "AbCdEfGhIj",
        **extra,
    }
    if subcode is not None:
        error["error_subcode"] = subcode
    return {"error": error}


class FakeFacebookAds(FakePlatform):
    """One ad account reached with one access token (and optionally an app secret)."""

    name = "facebook_ads"

    def __init__(
        self,
        token: str = "EAAtoken123",
        ad_account: str = "1029384756",
        app_secret: str | None = None,
        version: str = "v24.0",
    ) -> None:
        super().__init__()
        self.token, self.ad_account, self.app_secret = token, ad_account, app_secret
        self.version = version
        self.audiences: dict[str, dict[str, str]] = {}  # id -> fields
        self.audiences_created = 0
        self.list_pages = 0
        # Open or finished usersreplace session per audience.
        self.sessions: dict[str, dict[str, Any]] = {}
        self.replace_batches: list[dict[str, Any]] = []
        self.replaces_completed = 0

    # --- faults ----------------------------------------------------------------------------
    def is_data_request(self, request: Request) -> bool:
        return request.path.endswith(("/users", "/usersreplace"))

    def throttle_response(self, with_retry_after: bool, params: dict[str, Any]) -> Response:
        # No Retry-After on Meta: the usage header carries the estimate, in minutes (0 = none).
        minutes = params.get("regain_minutes", 1) if with_retry_after else 0
        usage = {
            self.ad_account: [
                {
                    "type": "custom_audience",
                    "call_count": 100,
                    "total_cputime": 12,
                    "total_time": 15,
                    "estimated_time_to_regain_access": minutes,
                }
            ]
        }
        return Response(
            400,
            graph_error(
                80003,
                "(#80003) There have been too many calls to this ad-account. Wait a bit and try"
                " again.",
                is_transient=True,
            ),
            {"X-Business-Use-Case-Usage": json.dumps(usage)},
        )

    # --- routing ---------------------------------------------------------------------------
    def route(self, request: Request, fault: tuple[str, dict[str, Any]] | None) -> Response:
        params = {k: v[0] for k, v in request.query.items()}
        if request.method == "POST" and request.raw:
            if "x-www-form-urlencoded" not in request.headers.get("content-type", ""):
                raise ContractError("a POST body must be form-encoded")
            params.update(request.body or {})
        denied = self._check_auth(params)
        if denied is not None:
            return denied
        prefix = f"/{self.version}/"
        if not request.path.startswith(prefix):
            raise ContractError(f"unknown API version in {request.path}")
        rest = request.path[len(prefix) :]
        if rest.startswith("act_"):
            return self._customaudiences(request, rest, params)
        match = re.fullmatch(r"(\d+)/(users|usersreplace)", rest)
        if match is None:
            raise ContractError(f"unknown path {request.path}")
        audience, edge = match.groups()
        if audience not in self.audiences:
            return self._missing(audience)
        if edge == "users" and request.method not in ("POST", "DELETE"):
            raise ContractError(f"{request.method} not allowed on /users")
        if edge == "usersreplace" and request.method != "POST":
            raise ContractError(f"{request.method} not allowed on /usersreplace")
        return self._upload(request.method, audience, edge, params, fault)

    def _check_auth(self, params: dict[str, str]) -> Response | None:
        token = params.get("access_token")
        if token != self.token:
            return Response(
                400, graph_error(190, "Invalid OAuth access token - Cannot parse access token")
            )
        if self.app_secret is not None:
            proof = params.get("appsecret_proof")
            expected = hmac.new(
                self.app_secret.encode(), token.encode(), hashlib.sha256
            ).hexdigest()
            if proof is None:
                return Response(
                    400,
                    graph_error(
                        100,
                        "API calls from the server require an appsecret_proof argument",
                        type="GraphMethodException",
                    ),
                )
            if proof != expected:
                return Response(
                    400,
                    graph_error(
                        100,
                        "Invalid appsecret_proof provided in the API argument",
                        type="GraphMethodException",
                    ),
                )
        return None

    @staticmethod
    def _missing(object_id: str) -> Response:
        return Response(
            400,
            graph_error(
                100,
                f"Unsupported request. Object with ID '{object_id}' does not exist, cannot be"
                " loaded due to missing permissions, or does not support this operation.",
                33,
                type="GraphMethodException",
            ),
        )

    def _customaudiences(self, request: Request, rest: str, params: dict[str, str]) -> Response:
        account, _, edge = rest.partition("/")
        if edge != "customaudiences":
            raise ContractError(f"unknown edge {rest}")
        if account != f"act_{self.ad_account}":
            return self._missing(account)
        if request.method == "GET":
            fields = set(params.get("fields", "id").split(","))
            if not {"id", "name"} <= fields:
                raise ContractError("finding an audience by name needs fields=id,name")
            limit = int(params.get("limit", 25))
            offset = int(params["after"]) if "after" in params else 0
            ids = sorted(self.audiences, key=int)
            page = [{k: self.audiences[i][k] for k in ("id", "name")} for i in ids][
                offset : offset + limit
            ]
            self.list_pages += 1
            body: dict[str, Any] = {"data": page}
            if page:
                end = offset + len(page)
                body["paging"] = {"cursors": {"before": str(offset), "after": str(end)}}
                if end < len(ids):
                    # Meta's absolute URL (a client must not leave its own base URL for it).
                    body["paging"]["next"] = (
                        f"https://graph.facebook.com/{self.version}/{account}/customaudiences"
                        f"?access_token={self.token}&fields=id,name&limit={limit}&after={end}"
                    )
            return Response(200, body)
        if request.method != "POST":
            raise ContractError(f"{request.method} not allowed on customaudiences")
        if not params.get("name"):
            raise ContractError("name is required")
        if params.get("subtype") != "CUSTOM":
            raise ContractError("a customer-file audience has subtype CUSTOM")
        if params.get("customer_file_source") not in FILE_SOURCES:
            raise ContractError("customer_file_source is required for customer-file audiences")
        audience = str(23850000000000000 + len(self.audiences) + 1)
        self.audiences[audience] = {
            "id": audience,
            "name": params["name"],
            "subtype": "CUSTOM",
            "customer_file_source": params["customer_file_source"],
        }
        self.audiences_created += 1
        return Response(200, {"id": audience})

    def add_existing(self, name: str) -> str:
        """An audience someone made before (e.g. by hand): its id."""
        audience = str(23850000000000000 + len(self.audiences) + 1)
        self.audiences[audience] = {"id": audience, "name": name, "subtype": "CUSTOM"}
        return audience

    @staticmethod
    def _json_param(params: dict[str, str], name: str) -> Any:
        raw = params.get(name)
        if raw is None:
            raise ContractError(f"{name} is required")
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise ContractError(f"{name} must be JSON") from exc

    def _rows(self, payload: Any) -> tuple[list[str], list[list[str]]]:
        if not isinstance(payload, dict):
            raise ContractError("payload must be an object")
        schema = payload.get("schema")
        if not isinstance(schema, list) or not schema:
            raise ContractError("a multi-key schema is a non-empty array")
        if len(set(schema)) != len(schema) or any(k not in SCHEMA_KEYS for k in schema):
            raise ContractError(f"schema {schema} has unknown or repeated keys")
        if payload.get("is_raw") is not True:
            raise ContractError("single (not combined) multi-key fields need is_raw true")
        data = payload.get("data")
        if not isinstance(data, list) or not 1 <= len(data) <= MAX_ROWS:
            size = len(data) if isinstance(data, list) else "no"
            raise ContractError(f"{size} rows (1..{MAX_ROWS} per request)")
        for values in data:
            if not isinstance(values, list) or len(values) != len(schema):
                raise ContractError("every data row has one value per schema key")
            for key, value in zip(schema, values, strict=True):
                if not isinstance(value, str):
                    raise ContractError(f"{key} values are strings (empty when unknown)")
                if not value or key == "EXTERN_ID":
                    continue
                if key == "MADID":
                    if not (MADID.match(value) or HEX64.match(value)):
                        raise ContractError(
                            "MADID is a SHA-256 hex digest or the id, lowercase with hyphens"
                        )
                elif not HEX64.match(value):
                    raise ContractError(f"{key} must be a lowercase SHA-256 hex digest")
        return schema, data

    def _upload(
        self,
        method: str,
        audience: str,
        edge: str,
        params: dict[str, str],
        fault: tuple[str, dict[str, Any]] | None,
    ) -> Response:
        schema, data = self._rows(self._json_param(params, "payload"))
        session = self._json_param(params, "session") if edge == "usersreplace" else None
        if session is not None:
            self._check_session(session)
        rows = [dict(zip(schema, values, strict=True)) for values in data]
        ok = [i for i, r in enumerate(rows) if any(r.values())]  # no key at all: matches nobody
        if fault is not None and fault[0] == "partial":
            ok = ok[fault[1].get("reject", 1) :]
        accepted = set(ok)
        valid = [rows[i] for i in ok]
        invalid = [r for i, r in enumerate(rows) if i not in accepted]
        members = [{**r, "member": member_key(r)} for r in valid]
        if edge == "users":
            self.record("add" if method == "POST" else "remove", audience, members, "member")
            session_id = "6000000000000"
        else:
            self._replace(audience, session, members)
            session_id = str(session["session_id"])
        samples = {next((v for v in r.values() if v), ""): "invalid entry" for r in invalid[:5]}
        return Response(
            200,
            {
                "audience_id": audience,
                "session_id": session_id,
                "num_received": len(rows),
                "num_invalid_entries": len(invalid),
                "invalid_entry_samples": samples,
            },
        )

    @staticmethod
    def _check_session(session: Any) -> None:
        if not isinstance(session, dict):
            raise ContractError("session must be an object")
        if not isinstance(session.get("session_id"), int) or session["session_id"] <= 0:
            raise ContractError("session_id is a positive 64-bit integer")
        if session["session_id"] >= 2**63:
            raise ContractError("session_id must fit in 64 bits")
        if not isinstance(session.get("batch_seq"), int) or session["batch_seq"] < 1:
            raise ContractError("batch_seq starts at 1")
        if not isinstance(session.get("last_batch_flag"), bool):
            raise ContractError("last_batch_flag is a boolean")
        total = session.get("estimated_num_total")
        if total is not None and not isinstance(total, int):
            raise ContractError("estimated_num_total is an integer")

    def _replace(self, audience: str, session: Any, members: list[dict[str, Any]]) -> None:
        sid, seq, last = session["session_id"], session["batch_seq"], session["last_batch_flag"]
        with self.lock:
            state = self.sessions.get(audience)
            if state is None or state["session_id"] != sid:
                if seq != 1:
                    raise ContractError(f"batch_seq {seq} of a session that never had batch 1")
                state = {"session_id": sid, "seq": 0, "pending": {}, "done": False}
                self.sessions[audience] = state
            if state["done"]:
                # A resend of the final batch (its answer was lost) changes nothing.
                if seq != state["seq"]:
                    raise ContractError(f"batch_seq {seq} after the session's last batch")
            elif seq not in (state["seq"], state["seq"] + 1):
                raise ContractError(f"batch_seq {seq} after {state['seq']}: out of order")
            else:
                state["seq"] = seq
                for row in members:
                    state["pending"][row["member"]] = row
            self.received.append({"op": "replace", "audience": audience, "rows": members})
            self.replace_batches.append(
                {"session_id": sid, "batch_seq": seq, "last": last, "rows": len(members)}
            )
            if last and not state["done"]:
                # Meta swaps the membership once the last batch has arrived.
                self.members[audience] = dict(state["pending"])
                state["done"] = True
                self.replaces_completed += 1
