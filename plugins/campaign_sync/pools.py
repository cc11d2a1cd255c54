"""Airflow pools that share a platform account's limits among parallel exports.

Every platform export runs in its connection's pool (``campaign_sync__<conn_id>`` unless the
destination names one). The pool's slots are the requests in flight at once on the account,
whatever the campaigns: an export sending ``k`` batches at once takes ``k`` slots
(``pool_slots``), and its rate limiter gets ``k / slots`` of the account's rate, so together the
exports stay under the account's limits. The slots are the destination's ``concurrency`` or the
platform's declared ``Capabilities.concurrency``; ``k`` is the platform's ``in_flight``, at most
the slots.
"""

from __future__ import annotations

from dataclasses import dataclass

from campaign_sync.destinations import REGISTRY
from campaign_sync.spec.model import Campaign, Destination

PREFIX = "campaign_sync__"


@dataclass(frozen=True)
class PoolSpec:
    """A pool the campaigns need: its name, slots and what uses it; ``in_flight`` is how many
    of its slots (batches at once) one export of the destination takes."""

    name: str
    slots: int
    description: str
    in_flight: int = 1


def pool_name(conn_id: str) -> str:
    """The default pool of a platform connection."""
    return f"{PREFIX}{conn_id}"


def uses_pool(dest: Destination) -> bool:
    """Whether a destination's exports run in a shared pool (platforms that really send)."""
    return REGISTRY[dest.type].capabilities is not None and not dest.dry_run


def pool_of(dest: Destination) -> PoolSpec | None:
    """The pool a destination's exports run in, or None (files, dry runs)."""
    if not uses_pool(dest):
        return None
    caps = REGISTRY[dest.type].capabilities
    assert caps is not None
    conn_id = dest.conn_id or f"{dest.type}_default"
    slots = dest.concurrency or caps.concurrency
    return PoolSpec(
        dest.pool or pool_name(conn_id),
        slots,
        f"campaign-sync: requests on connection {conn_id} ({dest.type}); {slots} in flight at "
        f"once ({'destination concurrency' if dest.concurrency else caps.concurrency_source})"[
            :500
        ],
        in_flight=min(caps.in_flight, slots),
    )


# How late a granted call may reach the platform when an export keeps several batches in
# flight (another batch being cut or encoded holds the GIL; a connection is slow to write):
# the export's rate limiter keeps each window this much longer (``RateLimiter.held_up``).
HELD_UP_S = 0.05


def shared_limits(
    limits: list[tuple[int, float]], slots: int, taken: int = 1
) -> list[tuple[int, float]]:
    """One export's share of an account's limits when it holds ``taken`` of the pool's
    ``slots``: each limit times taken / slots, rounded down, never below one call per window.

    Batches in flight are allowed for in time, not in calls (``held_up``): the limiter paces
    calls as they leave, the platform counts them as they arrive.
    """
    share = min(max(1, taken), max(1, slots))
    return [(max(1, calls * share // max(1, slots)), window) for calls, window in limits]


def held_up(taken: int) -> float:
    """Seconds a granted call may take to reach the platform, for an export with ``taken``
    batches in flight (one at a time leaves no call behind another)."""
    return HELD_UP_S if taken > 1 else 0.0


def needed_pools(campaigns: list[Campaign]) -> dict[str, PoolSpec]:
    """Every pool the campaigns' exports use, by name (the largest slots asked for wins)."""
    found: dict[str, PoolSpec] = {}
    for campaign in campaigns:
        for dest in campaign.destinations.values():
            spec = pool_of(dest)
            if spec is not None and (spec.name not in found or spec.slots > found[spec.name].slots):
                found[spec.name] = spec
    return found


def ensure_pools(specs: dict[str, PoolSpec]) -> dict[str, tuple[str, int]]:
    """Create the missing pools in Airflow's metadata database; existing ones keep their slots
    (an operator may have changed them on purpose). Returns name -> (created|exists, slots)."""
    from airflow.models.pool import Pool

    report: dict[str, tuple[str, int]] = {}
    existing = {p.pool: p.slots for p in Pool.get_pools()}
    for name, spec in sorted(specs.items()):
        if name in existing:
            report[name] = ("exists", existing[name])
            continue
        Pool.create_or_update_pool(
            name, slots=spec.slots, description=spec.description, include_deferred=False
        )
        report[name] = ("created", spec.slots)
    return report
