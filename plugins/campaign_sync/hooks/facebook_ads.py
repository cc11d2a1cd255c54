"""Facebook (Meta) Custom Audiences: customer-file audiences of one ad account, multi-key rows."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Sequence
from typing import Any, ClassVar

from campaign_sync.hooks.audience import AudienceHook, BatchResult, ReplaceStep, Row
from campaign_sync.platforms.audiences import Audience, Page
from campaign_sync.platforms.batches import SHA256_HEX
from campaign_sync.platforms.client import (
    Auth,
    Outcome,
    PermanentPlatformError,
    PlatformError,
    retry_after_seconds,
)

# Meta's multi-key schema names; every other key is SHA-256 of its normalized value.
SCHEMA_KEYS = frozenset(
    {
        "EXTERN_ID", "EMAIL", "PHONE", "FN", "LN", "FI", "CT", "ST", "ZIP", "COUNTRY", "GEN",
        "DOBY", "DOBM", "DOBD", "MADID",
    }
)  # fmt: skip
UNHASHED_KEYS = frozenset({"EXTERN_ID", "MADID"})
API_VERSION = re.compile(r"v\d+\.\d+")
# Graph error codes that mean "slow down", whatever the HTTP status (Meta sends 400): app (4),
# user (17), pages (32), ad account (613) and the Business Use Case limits 80000-80014
# (80003 is custom_audience, 80004 ads_management).
THROTTLE_CODES = frozenset({4, 17, 32, 613, *range(80000, 80015)})
# "An unknown error occurred" / "Service temporarily unavailable": Meta says retry.
TRANSIENT_CODES = frozenset({1, 2})
HINTS = {
    190: "the access token is invalid or expired; check the connection's password",
    102: "the session is invalid; check the connection's access token",
    10: "the token lacks permission; it needs ads_management on the ad account",
    200: "permission denied; the token needs ads_management on the ad account and the "
    "ad account's users must accept the Custom Audience terms",
    294: "the app lacks Marketing API access (ads_management)",
    2635: "this Graph API version is deprecated; set a current api_version in the extra",
}
# Which permanent failure each code is (see FIXES in the platform client).
KINDS = {190: "credentials", 102: "credentials", 10: "permission", 200: "permission",
         294: "permission", 33: "missing"}  # fmt: skip
SUBCODE_HINTS = {
    1713230: "the audience is flagged (operation_status 471); resolve it in Audience Manager",
    33: "the object does not exist or the token cannot see it; check ad_account_id",
}
FORM_HEADERS = {"Content-Type": "application/x-www-form-urlencoded"}
USAGE_HEADER = "X-Business-Use-Case-Usage"


def _graph_error(response: Any) -> dict[str, Any]:
    """The ``error`` object of a Graph API response, or {} when the body has none."""
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        return {}
    return error if isinstance(error, dict) else {}


def _as_int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def regain_seconds(headers: Any) -> float | None:
    """Seconds until Meta lets calls through again, from ``X-Business-Use-Case-Usage``.

    The header maps each business object id to its use-case entries, whose
    ``estimated_time_to_regain_access`` is in minutes; 0 (or no header) means Meta gave no
    estimate. A proxy's ``Retry-After`` is honoured as well.
    """
    minutes = 0.0
    raw = headers.get(USAGE_HEADER)
    if raw:
        try:
            usage = json.loads(raw)
        except ValueError:
            usage = {}
        for entries in usage.values() if isinstance(usage, dict) else []:
            for entry in entries if isinstance(entries, list) else []:
                if isinstance(entry, dict):
                    value = entry.get("estimated_time_to_regain_access") or 0
                    minutes = max(minutes, float(value))
    if minutes > 0:
        return minutes * 60.0
    return retry_after_seconds(headers)


class FacebookAdsHook(AudienceHook):
    """Meta Marketing API (Graph API) with a system-user or user access token.

    Connection: password = access token; extra ``ad_account_id`` (required, without ``act_``),
    ``api_version`` (default v24.0), ``app_secret`` (optional: every call then carries
    ``appsecret_proof`` = HMAC-SHA256(app secret, token)).

    Limits: at most 10,000 rows per users/usersreplace call. Calls are paced at 80 a minute,
    under the custom_audience Business Use Case floor of 5,000 calls an hour per ad account
    (development tier; standard tier is 190,000). Rows travel form-encoded in the request body,
    so the ~65 KB ceiling other integrations met (payload in the query string) does not apply
    and no byte limit is set.
    """

    conn_type = "facebook_ads"
    default_base_url = "https://graph.facebook.com"
    rate_limits: ClassVar[list[tuple[int, float]]] = [(80, 60.0)]
    page_size = 100

    @property
    def api_version(self) -> str:
        """Graph API version in every path (``vNN.N``)."""
        version = str(self.field("api_version"))
        if not API_VERSION.fullmatch(version):
            raise PermanentPlatformError(
                f"connection {self.conn_id!r}: api_version {version!r} is not like 'v24.0'",
                kind="config",
            )
        return version

    @property
    def account_path(self) -> str:
        """``/<version>/act_<ad account id>``."""
        account = str(self.field("ad_account_id")).strip().removeprefix("act_")
        return f"/{self.api_version}/act_{account}"

    def auth(self) -> Auth:
        """No auth header: the token travels as the ``access_token`` parameter."""
        return Auth()

    def auth_params(self) -> dict[str, str]:
        """``access_token`` and, with an app secret, ``appsecret_proof``."""
        token = self.secret()
        params = {"access_token": token}
        app_secret = self.extra.get("app_secret")
        if app_secret:
            params["appsecret_proof"] = hmac.new(
                str(app_secret).encode(), token.encode(), hashlib.sha256
            ).hexdigest()
        return params

    def classify(self, response: Any) -> Outcome:
        """Meta signals limits with error codes (HTTP 400), not 429; classify by code."""
        status = response.status_code
        if 200 <= status < 300:
            return Outcome.ok()
        error = _graph_error(response)
        code = _as_int(error.get("code"))
        subcode = _as_int(error.get("error_subcode"))
        label = f"HTTP {status}, Meta error {code}" if code is not None else f"HTTP {status}"
        if subcode is not None:
            label += f" subcode {subcode}"
        if error.get("fbtrace_id"):
            label += f", fbtrace_id {error['fbtrace_id']}"
        if code in THROTTLE_CODES:
            return Outcome.retry(f"rate limited ({label})", regain_seconds(response.headers))
        if status == 429 or status >= 500 or code in TRANSIENT_CODES or error.get("is_transient"):
            return Outcome.retry(f"transient ({label})", retry_after_seconds(response.headers))
        # Meta's message text is left out: it can quote request values.
        hint = SUBCODE_HINTS.get(subcode or 0) or HINTS.get(code or 0)
        kind = KINDS.get(subcode or 0) or KINDS.get(code or 0) or "contract"
        return Outcome.fail(f"{label}: {hint}" if hint else label, kind)

    def _call(
        self, method: str, path: str, params: dict[str, Any], attempts: int | None = None
    ) -> dict[str, Any]:
        if method == "GET":
            response = self.client.request(method, path, params={**params, **self.auth_params()})
        else:
            # Form-encoded body, object parameters as JSON text, as Meta documents and its SDK
            # sends; the token stays out of URLs.
            form = {
                key: value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
                for key, value in params.items()
            }
            response = self.client.request(
                method,
                path,
                attempts=attempts,
                data={**form, **self.auth_params()},
                headers=FORM_HEADERS,
            )
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise PlatformError(
                f"{self.hook_name} ({self.conn_id}): {method} {path}: response is not a JSON object"
            )
        return body

    def audience_page(self, name: str, cursor: Any) -> Page[Audience]:
        """Custom audiences of the connection's ad account (Graph cannot filter by name); the
        cursor is Graph's ``after``, followed on our own base URL: ``next`` names
        graph.facebook.com even behind a proxy, and carries the token in its query string."""
        params: dict[str, Any] = {"fields": "id,name,time_created", "limit": self.page_size}
        if cursor:
            params["after"] = cursor
        body = self._call("GET", f"{self.account_path}/customaudiences", params)
        audiences = [
            Audience(str(a["id"]), str(a.get("name")), f"{_as_int(a.get('time_created')) or 0:012d}"
                     if a.get("time_created") else "")
            for a in body.get("data", [])
        ]  # fmt: skip
        paging = body.get("paging") or {}
        after = (paging.get("cursors") or {}).get("after")
        return audiences, after if paging.get("next") and after else None

    def create_audience(self, name: str) -> str:
        """Create a customer-file custom audience in the ad account, sent once."""
        created = self._call(
            "POST",
            f"{self.account_path}/customaudiences",
            {
                "name": name,
                "subtype": "CUSTOM",
                "customer_file_source": "USER_PROVIDED_ONLY",
                "description": "Managed by campaign-sync",
            },
            attempts=1,
        )
        if not created.get("id"):
            raise PlatformError(f"{self.label}: the custom audience was not created")
        return str(created["id"])

    def _payload(self, rows: Sequence[Row]) -> dict[str, Any]:
        schema = list(rows[0])
        unknown = [k for k in schema if k not in SCHEMA_KEYS]
        if unknown:
            raise PermanentPlatformError(
                f"connection {self.conn_id!r}: {', '.join(unknown)} not Meta schema keys",
                kind="contract",
            )
        data = [["" if row.get(k) is None else str(row[k]) for k in schema] for row in rows]
        for i, key in enumerate(schema):
            if key in UNHASHED_KEYS:
                continue
            bad = sum(1 for values in data if values[i] and not SHA256_HEX.fullmatch(values[i]))
            if bad:
                # Projection hashes these; anything else here would be plain PII leaving.
                raise PermanentPlatformError(
                    f"connection {self.conn_id!r}: {bad} {key} value(s) in this batch are not"
                    " SHA-256 hex digests; refusing to send them",
                    kind="contract",
                )
        # is_raw: single keys, not combined ones like LN_FN_ZIP (Meta's SDK requires it).
        return {"schema": schema, "is_raw": True, "data": data}

    def _send(
        self,
        method: str,
        audience_id: str,
        edge: str,
        rows: Sequence[Row],
        session: dict[str, Any] | None = None,
    ) -> BatchResult:
        params: dict[str, Any] = {"payload": self._payload(rows)}
        if session is not None:
            params["session"] = session
        body = self._call(method, f"/{self.api_version}/{audience_id}/{edge}", params)
        received = _as_int(body.get("num_received"))
        invalid = _as_int(body.get("num_invalid_entries")) or 0
        return BatchResult(
            received=len(rows) if received is None else received,
            invalid=min(invalid, len(rows)),
        )

    def add(self, audience_id: str, rows: Sequence[Row]) -> BatchResult:
        """POST the rows to the audience's users."""
        return self._send("POST", audience_id, "users", rows)

    def remove(self, audience_id: str, rows: Sequence[Row]) -> BatchResult:
        """DELETE the rows from the audience's users."""
        return self._send("DELETE", audience_id, "users", rows)

    def replace_batch(
        self, audience_id: str, rows: Sequence[Row], step: ReplaceStep
    ) -> BatchResult:
        """One batch of a usersreplace session; Meta swaps the membership on the last one."""
        session = {
            "session_id": step.session_id,
            "batch_seq": step.seq,
            "last_batch_flag": step.last,
            "estimated_num_total": step.total,
        }
        return self._send("POST", audience_id, "usersreplace", rows, session)
