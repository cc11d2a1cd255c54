"""Audience plumbing every platform shares: cursor pagination, and finding or creating the
audience a group is delivered to, with one policy for audiences sharing a name."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from campaign_sync.platforms.client import PlatformClient, PlatformError

log = logging.getLogger(__name__)

T = TypeVar("T")
Page = tuple[Iterable[T], Any]


def paginate(page: Callable[[Any], Page[T]], *, what: str, max_pages: int = 100_000) -> Iterator[T]:
    """Every item of a paginated listing. ``page(cursor)`` returns (items, next cursor or None)
    for the first page when ``cursor`` is None; cursors are offsets, page numbers or tokens."""
    cursor: Any = None
    seen: set[Any] = set()
    for _ in range(max_pages):
        items, cursor = page(cursor)
        yield from items
        if cursor is None:
            return
        if cursor in seen:  # a platform bug would otherwise loop for ever
            raise PlatformError(f"{what}: the platform returned cursor {cursor!r} twice")
        seen.add(cursor)
    raise PlatformError(f"{what}: more than {max_pages} pages")


@dataclass(frozen=True)
class Audience:
    """One audience (list, segment) on a platform; ``created`` sorts by creation when the
    platform reports it (ISO timestamps, epoch digits)."""

    id: str
    name: str
    created: str = ""


def age_key(audience: Audience) -> tuple[bool, str, int, str]:
    """Sort key, oldest first: by creation stamp when known, else by id (platforms that give
    none number their ids in creation order)."""
    return (audience.created == "", audience.created, len(audience.id), audience.id)


class AudienceLister(Protocol):
    """What ``find_or_create_audience`` needs from a hook."""

    client: PlatformClient
    hook_name: str
    conn_id: str

    def audience_page(self, name: str, cursor: Any) -> Page[Audience]: ...

    def audience_matches(self, audience: Audience, name: str) -> bool: ...

    def create_audience(self, name: str) -> str: ...


def find_audiences(hook: AudienceLister, name: str) -> list[Audience]:
    """The hook's audiences called ``name``, oldest first."""
    what = f"{hook.hook_name} ({hook.conn_id}): listing audiences"
    found = paginate(lambda cursor: hook.audience_page(name, cursor), what=what)
    return sorted((a for a in found if hook.audience_matches(a, name)), key=age_key)


def oldest(hook: AudienceLister, matches: list[Audience]) -> str:
    """The policy for audiences sharing a name: the oldest wins; the others are logged by id
    (never by name) so someone can archive them."""
    if len(matches) > 1:
        log.warning(
            "%s (%s): %d audiences share this audience's name; using the oldest, %s; "
            "not used: %s",
            hook.hook_name, hook.conn_id, len(matches), matches[0].id,
            ", ".join(a.id for a in matches[1:]),
        )  # fmt: skip
    return matches[0].id


def find_or_create_audience(hook: AudienceLister, name: str) -> str:
    """Id of the audience called ``name``, created if there is none.

    Creating is not idempotent, so ``create_audience`` sends once; a create that fails in a
    way a retry could fix is followed by a new look-up (its answer may have been lost after
    the platform made it), then another create. After a create, the name is looked up again:
    if an earlier lost create left a twin, the oldest wins, as on every later run.
    """
    attempts = hook.client.max_attempts
    for attempt in range(attempts):
        matches = find_audiences(hook, name)
        if matches:
            return oldest(hook, matches)
        try:
            created = hook.create_audience(name)
        except PlatformError as exc:
            if not exc.retryable or attempt + 1 >= attempts:
                raise
            wait = hook.client.backoff.delay(attempt)
            log.warning("%s (%s): creating the audience failed (%s); looking it up again in "
                        "%.1fs", hook.hook_name, hook.conn_id, exc, wait)  # fmt: skip
            hook.client.clock.sleep(wait)
            continue
        matches = find_audiences(hook, name)
        return oldest(hook, matches) if matches else created
    raise AssertionError("unreachable: the last attempt returns or raises")
