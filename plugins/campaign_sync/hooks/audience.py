"""Base hook for audience platforms: connection, HTTP client, and the audience operations each
platform implements over its own wire protocol."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, ClassVar

from airflow.sdk import BaseHook

from campaign_sync.platforms.client import Outcome, PlatformClient, default_classify
from campaign_sync.platforms.ratelimit import RateLimiter

Row = dict[str, Any]


@dataclass(frozen=True)
class BatchResult:
    """What a platform said about one batch: rows it received and rows it found invalid."""

    received: int
    invalid: int = 0


class AudienceHook(BaseHook):
    """One audience platform account, from an Airflow connection.

    Connection fields: ``host`` overrides the platform's base URL (for testing or a proxy);
    ``password`` holds the API key or token; ``extra`` holds platform fields (ids, API version)
    and ``timeout`` (seconds per call). Subclasses set the class attributes and implement the
    operations; batch limits and rate limits are the platform's published ones.
    """

    conn_name_attr = "conn_id"
    default_base_url: ClassVar[str] = ""
    max_batch_rows: ClassVar[int] = 1000
    max_batch_bytes: ClassVar[int | None] = None
    rate_limits: ClassVar[list[tuple[int, float]]] = []
    # How "replace" is done: "clear" (empty, then add) or "session" (a replace session), or None.
    replace_style: ClassVar[str | None] = None

    def __init__(self, conn_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.conn_id = conn_id

    @cached_property
    def connection(self) -> Any:
        """The Airflow connection (read once)."""
        return self.get_connection(self.conn_id)

    @cached_property
    def extra(self) -> dict[str, Any]:
        """The connection's extra fields."""
        return self.connection.extra_dejson

    def field(self, name: str, *, required: bool = True) -> Any:
        """An extra field; a missing required one is an error naming the connection."""
        value = self.extra.get(name)
        if required and value in (None, ""):
            raise ValueError(f"connection {self.conn_id!r} has no {name!r} in its extra fields")
        return value

    def secret(self) -> str:
        """The API key or token (the connection's password)."""
        if not self.connection.password:
            raise ValueError(f"connection {self.conn_id!r} has no API key/token in its password")
        return self.connection.password

    @property
    def base_url(self) -> str:
        """The platform's base URL, or the connection's host when set."""
        return (self.connection.host or self.default_base_url).rstrip("/")

    def auth_headers(self) -> dict[str, str]:
        """Headers that authenticate every call."""
        return {}

    def classify(self, response: Any) -> Outcome:
        """How to treat a response (platforms with their own limit signals override)."""
        return default_classify(response)

    @cached_property
    def client(self) -> PlatformClient:
        """The rate-limited, retrying HTTP client of this hook."""
        return PlatformClient(
            name=f"{self.hook_name} ({self.conn_id})",
            base_url=self.base_url,
            headers={"Content-Type": "application/json", **self.auth_headers()},
            limiter=RateLimiter(self.rate_limits),
            classify=self.classify,
            timeout=float(self.extra.get("timeout", 60)),
            max_attempts=int(self.extra.get("max_attempts", 6)),
        )

    @abstractmethod
    def ensure_audience(self, name: str) -> str:
        """Id of the audience/list/segment called ``name``, created if it does not exist."""

    @abstractmethod
    def add(self, audience_id: str, rows: Sequence[Row]) -> BatchResult:
        """Add (upsert) members."""

    @abstractmethod
    def remove(self, audience_id: str, rows: Sequence[Row]) -> BatchResult:
        """Remove members."""

    def clear(self, audience_id: str) -> None:
        """Empty the audience (platforms with replace_style "clear")."""
        raise TypeError(f"{self.hook_name} cannot clear an audience")

    def replace_batch(
        self,
        audience_id: str,
        rows: Sequence[Row],
        *,
        session_id: int,
        seq: int,
        last: bool,
        total: int,
    ) -> BatchResult:
        """Send one batch of a replace session (platforms with replace_style "session")."""
        raise TypeError(f"{self.hook_name} has no replace sessions")
