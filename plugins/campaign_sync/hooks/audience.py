"""Base hook for audience platforms: the Airflow connection, the kit's HTTP client, the
connection form, and the audience operations each platform implements over its own protocol.

A platform hook declares its protocol and nothing else: base URL, auth, limit signals, one page
of audiences, create, add, remove (and clear or replace batches when it offers ``replace``).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, ClassVar

from airflow.sdk import BaseHook

from campaign_sync.platforms.audiences import Audience, Page, find_or_create_audience
from campaign_sync.platforms.capabilities import Capabilities
from campaign_sync.platforms.client import (
    Auth,
    Backoff,
    BearerAuth,
    Outcome,
    PermanentPlatformError,
    PlatformClient,
    PlatformError,
    default_classify,
)
from campaign_sync.platforms.clock import SYSTEM, Clock
from campaign_sync.platforms.connection_form import ConnectionForm
from campaign_sync.platforms.ratelimit import RateLimiter

Row = dict[str, Any]

PROBE_NAME = "campaign-sync connection test"


@dataclass(frozen=True)
class ReplaceStep:
    """Where one batch stands in a replace session: the session, its number from 1, whether it
    is the last, and the rows the whole session holds."""

    session_id: int
    seq: int
    last: bool
    total: int


@dataclass(frozen=True)
class BatchResult:
    """What a platform said about one batch: rows it received and rows it found invalid."""

    received: int
    invalid: int = 0


class AudienceHook(BaseHook):
    """One audience platform account, from an Airflow connection.

    Connection fields: ``host`` overrides the platform's base URL (for testing or a proxy);
    ``password`` holds the API key or token; ``extra`` holds platform fields (ids, API version),
    ``timeout`` (seconds per call) and ``max_attempts``. ``default_conn_name`` is
    ``<conn_type>_default``; ``hook_name``, ``capabilities`` and
    the connection ``form`` come from the destination type named ``conn_type`` (their single
    declaration); a hook declares its protocol.
    """

    conn_name_attr = "conn_id"
    default_conn_name: ClassVar[str] = ""
    conn_type: ClassVar[str] = ""
    hook_name: ClassVar[str] = ""
    default_base_url: ClassVar[str] = ""
    capabilities: ClassVar[Capabilities]
    rate_limits: ClassVar[list[tuple[int, float]]] = []
    # Seconds a granted call may take to reach the platform (set with an export's share of
    # the limits when it keeps batches in flight; see ``RateLimiter``).
    held_up: ClassVar[float] = 0.0
    backoff: ClassVar[Backoff] = Backoff()
    throttle_backoff: ClassVar[Backoff | None] = None  # limit signals without a wait
    clock: ClassVar[Clock] = SYSTEM
    form: ClassVar[ConnectionForm]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.conn_type:
            return
        from campaign_sync.destinations import REGISTRY

        declared = REGISTRY[cls.conn_type]
        if declared.capabilities is None or declared.form is None:
            raise TypeError(f"destination type {cls.conn_type!r} declares no platform")
        cls.hook_name = declared.form.hook_name
        cls.default_conn_name = f"{cls.conn_type}_default"
        cls.form = declared.form
        cls.capabilities = declared.capabilities
        # A declared mode the hook cannot carry out fails at import, not in the middle of a task.
        caps = cls.capabilities
        needs = {"mirror": "remove", "clear": "clear", "session": "replace_batch"}
        for wanted in (m for m in (*caps.sync_modes, caps.replace) if m in needs):
            if getattr(cls, needs[wanted]) is getattr(AudienceHook, needs[wanted]):
                raise TypeError(f"{cls.__name__} declares {wanted!r} without {needs[wanted]}()")

    def __init__(self, conn_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.conn_id = conn_id or self.default_conn_name

    # --- connection ------------------------------------------------------------------------
    @cached_property
    def connection(self) -> Any:
        """The Airflow connection (read once)."""
        return self.get_connection(self.conn_id)

    @cached_property
    def extra(self) -> dict[str, Any]:
        """The connection's extra fields."""
        return self.connection.extra_dejson

    def field(self, name: str, *, required: bool = True) -> Any:
        """An extra field (else the form's default); a missing required one is a permanent
        error naming the connection."""
        default = self.form.conn_fields().get(name, {}).get("schema", {}).get("default")
        value = self.extra.get(name) or default
        if required and value in (None, ""):
            raise PermanentPlatformError(
                f"{self.label}: connection {self.conn_id!r} has no {name!r} in its extra fields",
                kind="config",
            )
        return value

    def secret(self) -> str:
        """The API key or token (the connection's password)."""
        if not self.connection.password:
            raise PermanentPlatformError(
                f"{self.label}: connection {self.conn_id!r} has no API key/token in its password",
                kind="config",
            )
        return self.connection.password

    def login(self) -> str:
        """The connection's login (a client id)."""
        if not self.connection.login:
            raise PermanentPlatformError(
                f"{self.label}: connection {self.conn_id!r} has no "
                f"{self.form.login_label} in its login",
                kind="config",
            )
        return self.connection.login

    @property
    def base_url(self) -> str:
        """The platform's base URL, or the connection's host when set."""
        return (self.connection.host or self.default_base_url).rstrip("/")

    @property
    def label(self) -> str:
        """How errors and logs name this hook: platform and connection id."""
        return f"{self.hook_name} ({self.conn_id})"

    # --- protocol: auth and limit signals ----------------------------------------------------
    def auth(self) -> Auth:
        """How calls authenticate (default: the password as a bearer token)."""
        return BearerAuth(self.secret())

    def headers(self) -> dict[str, str]:
        """Headers every call carries besides auth (``json=`` bodies set their own type)."""
        return {"Accept": "application/json"}

    def classify(self, response: Any) -> Outcome:
        """How to treat a response (platforms with their own limit signals override)."""
        return default_classify(response)

    @cached_property
    def client(self) -> PlatformClient:
        """The rate-limited, retrying HTTP client of this hook."""
        return PlatformClient(
            name=self.label,
            base_url=self.base_url,
            headers=self.headers(),
            auth=self.auth(),
            limiter=RateLimiter(
                self.rate_limits,
                held_up=self.held_up,
                clock=self.clock.monotonic,
                sleep=self.clock.sleep,
            ),
            classify=self.classify,
            # The UI's form stores an empty field as null: the default then applies.
            timeout=float(self.extra.get("timeout") or 60),
            max_attempts=int(self.extra.get("max_attempts") or 6),
            backoff=self.backoff,
            throttle_backoff=self.throttle_backoff,
            clock=self.clock,
        )

    def get_json(self, path: str, params: dict[str, Any], **cursor: Any) -> Any:
        """GET ``path`` with ``params``, plus the cursor parameter when it is not None."""
        given = {k: v for k, v in cursor.items() if v is not None}
        return self.client.request("GET", path, params={**params, **given}).json()

    def get_conn(self) -> PlatformClient:
        """The hook's HTTP client (Airflow's hook convention)."""
        return self.client

    def test_connection(self) -> tuple[bool, str]:
        """Read one page of audiences with the connection's credentials (the UI's Test
        button); one attempt, so a wrong host answers at once."""
        try:
            self.client.max_attempts = 1
            message = self.probe()
        except (PlatformError, ValueError) as exc:
            return False, str(exc)
        finally:
            self.__dict__.pop("client", None)  # the next use gets the connection's attempts
        return True, f"{self.label}: {message}"

    def probe(self) -> str:
        """One cheap authenticated call (default: the first page of audiences)."""
        audiences, _ = self.audience_page(PROBE_NAME, None)
        return f"credentials accepted ({len(list(audiences))} audiences on the first page)"

    # --- connection form (provider metadata is generated from these) ------------------------
    @classmethod
    def get_connection_form_fields(cls) -> dict[str, Any]:
        """Extra fields of the connection form, in Airflow's ``conn-fields`` format."""
        return cls.form.conn_fields()

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Hidden and relabelled standard fields of the connection form."""
        return cls.form.ui_field_behaviour()

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """The same fields as WTForms widgets, for UIs that still build forms from hooks
        (needs ``wtforms``, which Airflow's FAB provider brings)."""
        from wtforms import IntegerField, PasswordField, StringField

        widgets: dict[str, Any] = {}
        for name, spec in cls.get_connection_form_fields().items():
            schema = spec["schema"]
            if schema.get("format") == "password":
                kind: Any = PasswordField
            elif "integer" in schema["type"]:
                kind = IntegerField
            else:
                kind = StringField
            widgets[name] = kind(spec["label"], description=spec.get("description", ""))
        return widgets

    # --- protocol: audiences -----------------------------------------------------------------
    def ensure_audience(self, name: str) -> str:
        """Id of the audience called ``name``, created once (the kit's duplicate-name policy:
        the oldest wins)."""
        return find_or_create_audience(self, name)

    def audience_page(self, name: str, cursor: Any) -> Page[Audience]:
        """One page of audiences that may be called ``name`` (platforms filter by name where
        they can), and the cursor of the next page or None."""
        raise TypeError(f"{self.hook_name} has no audiences to list")

    def audience_matches(self, audience: Audience, name: str) -> bool:
        """Whether ``audience`` is the one called ``name`` (exact match by default)."""
        return audience.name == name

    def create_audience(self, name: str) -> str:
        """Create the audience and return its id; sent once (``attempts=1``)."""
        raise TypeError(f"{self.hook_name} has no audiences to create")

    @abstractmethod
    def add(self, audience_id: str, rows: Sequence[Row]) -> BatchResult:
        """Add (upsert) members."""

    def remove(self, audience_id: str, rows: Sequence[Row]) -> BatchResult:
        """Remove members (platforms offering ``mirror``)."""
        raise TypeError(f"{self.hook_name} cannot remove members")

    def clear(self, audience_id: str) -> None:
        """Empty the audience (platforms whose ``replace`` is ``clear``)."""
        raise TypeError(f"{self.hook_name} cannot clear an audience")

    def replace_batch(
        self, audience_id: str, rows: Sequence[Row], step: ReplaceStep
    ) -> BatchResult:
        """Send one batch of a replace session (platforms whose ``replace`` is ``session``)."""
        raise TypeError(f"{self.hook_name} has no replace sessions")
