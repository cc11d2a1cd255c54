"""What a platform can do, declared once per destination type: sync modes, batch limits and
which attributes identify a member. The destination's options model, its load-time checks, the
hook's consistency check and the export's batching all derive from this one declaration."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

SYNC_MODES = ("add", "mirror", "replace")
IdentifierRule = Literal["all", "any", "one"]


@dataclass(frozen=True)
class Capabilities:
    """A platform's declared abilities.

    ``sync_modes``: the modes offered (``add`` always). ``replace``: how ``replace`` is done,
    ``"clear"`` (empty the audience, then add) or ``"session"`` (a replace session), set exactly
    when ``replace`` is offered. ``identifiers``: the attributes that identify a member (mirror
    removes by them); ``identifier_rule``: a campaign maps ``all`` of them, ``any`` (at least
    one) or exactly ``one``. ``note`` says why a mode is missing, for the load-time error.
    ``concurrency``: how many requests may be in flight at once on one account (the default
    slots of the connection's Airflow pool), with ``concurrency_source`` saying where the number
    comes from. ``in_flight``: how many add or remove batches one export may send at once (each
    takes a pool slot); replace sessions and clears always go one at a time.
    """

    sync_modes: tuple[str, ...]
    max_batch_rows: int
    identifiers: tuple[str, ...]
    identifier_rule: IdentifierRule = "all"
    replace: Literal["clear", "session"] | None = None
    max_batch_bytes: int | None = None
    note: str = ""
    concurrency: int = 2
    concurrency_source: str = "no concurrency limit published; 2 requests in flight per account"
    in_flight: int = 4

    def __post_init__(self) -> None:
        unknown = set(self.sync_modes) - set(SYNC_MODES)
        if unknown or "add" not in self.sync_modes:
            raise ValueError(f"sync modes {self.sync_modes} must include add, among {SYNC_MODES}")
        if ("replace" in self.sync_modes) != (self.replace is not None):
            raise ValueError("'replace' is offered exactly when its style (clear/session) is set")
        if self.concurrency < 1 or self.in_flight < 1:
            raise ValueError("a platform allows at least one request at a time")
        if self.max_batch_rows < 1 or not self.identifiers:
            raise ValueError("a platform needs a batch size and at least one identifier")
