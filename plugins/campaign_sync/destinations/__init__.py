"""Registry of destination types: every module of this package declares one ``DestinationType``
at module level, and is found here by itself, so a new destination is one module."""

from __future__ import annotations

import importlib
import pkgutil

from campaign_sync.destinations.base import AttributeRule, DestinationType


def _discover() -> dict[str, DestinationType]:
    found: dict[str, DestinationType] = {}
    for module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
        values = vars(importlib.import_module(f"{__name__}.{module}")).values()
        for value in values:
            if isinstance(value, DestinationType):
                if value.name in found and found[value.name] is not value:
                    raise RuntimeError(f"two destination types are named {value.name!r}")
                found[value.name] = value
    return found


REGISTRY: dict[str, DestinationType] = _discover()

__all__ = ["REGISTRY", "AttributeRule", "DestinationType"]
