"""What a destination type declares: its attribute contract, its options and its exporter.

Each destination module builds one ``DestinationType``; the registry in ``__init__`` maps type
names to them. Nothing here imports Airflow or data libraries, so campaign validation stays cheap
enough for DAG parsing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict

from campaign_sync.platforms.capabilities import Capabilities
from campaign_sync.platforms.connection_form import ConnectionForm

# Every platform is delivered by the one generic operator, driven by its hook.
PLATFORM_EXPORTER = "campaign_sync.operators.audience_export.PlatformExportOperator"


class NoOptions(BaseModel):
    """Options model for destination types that take none."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class AttributeRule:
    """How one destination attribute is prepared and checked.

    ``kind`` names a normalizer in ``campaign_sync.projection.normalize``; ``hashed`` asks for
    SHA-256 of the normalized value (already-hashed 64-hex values pass through unchanged);
    a ``required`` attribute must be mapped by the campaign and valid on every row sent.
    """

    kind: str = "passthrough"
    hashed: bool = False
    required: bool = False


@dataclass(frozen=True)
class DestinationType:
    """A kind of destination: its contract, options model and exporter.

    ``attributes`` lists the attribute names the destination accepts. With ``open_attributes``
    any other name is accepted too and prepared with ``extra_rule``. ``exactly_one_of`` and
    ``at_least_one_of`` constrain which attributes a campaign maps. ``exporter`` is the import path
    of the export operator. Platforms also name their ``hook`` (import path) and declare their
    ``capabilities`` and connection ``form``.
    """

    name: str
    label: str
    attributes: Mapping[str, AttributeRule] = field(default_factory=dict)
    open_attributes: bool = False
    extra_rule: AttributeRule = AttributeRule()
    exactly_one_of: frozenset[str] = frozenset()
    at_least_one_of: frozenset[str] = frozenset()
    options_model: type[BaseModel] = NoOptions
    exporter: str = field(kw_only=True)
    hook: str | None = None
    capabilities: Capabilities | None = None
    form: ConnectionForm | None = None

    def rule_for(self, attribute: str) -> AttributeRule:
        """The rule applied to ``attribute`` (assumes ``check_attributes`` accepted it)."""
        return self.attributes.get(attribute, self.extra_rule)

    def check_attributes(self, mapped: list[str]) -> list[str]:
        """Return contract violations for a destination mapping these attribute names."""
        problems: list[str] = []
        names = set(mapped)
        if not mapped:
            problems.append(f"{self.label} needs at least one attribute")
        if not self.open_attributes:
            unknown = sorted(names - set(self.attributes))
            if unknown:
                allowed = ", ".join(self.attributes)
                problems.append(
                    f"{self.label} does not accept {', '.join(unknown)}; allowed: {allowed}"
                )
        missing = [a for a, r in self.attributes.items() if r.required and a not in names]
        if missing:
            problems.append(f"{self.label} requires {' and '.join(missing)}")
        if self.exactly_one_of:
            chosen = names & self.exactly_one_of
            if len(chosen) != 1:
                options = " or ".join(sorted(self.exactly_one_of))
                problems.append(
                    f"{self.label} takes exactly one of {options}, not both and not neither"
                    f" (mapped: {', '.join(sorted(chosen)) or 'none'})"
                )
        if self.at_least_one_of and not names & self.at_least_one_of:
            options = ", ".join(sorted(self.at_least_one_of))
            problems.append(f"{self.label} needs at least one identifier among {options}")
        return problems

    def row_required(self, mapped: list[str]) -> list[str]:
        """Attributes every row sent must carry a valid value for."""
        return [a for a in mapped if self.rule_for(a).required or a in self.exactly_one_of]

    def row_any_of(self, mapped: list[str]) -> list[str]:
        """Attributes of which every row sent must carry at least one valid value."""
        return [a for a in mapped if a in self.at_least_one_of]


def open_storage_type(
    name: str, label: str, options_model: type[BaseModel], exporter: str
) -> DestinationType:
    """A file-drop destination: any attribute, values sent as they are in the source."""
    return DestinationType(
        name=name,
        label=label,
        open_attributes=True,
        options_model=options_model,
        exporter=exporter,
    )


def platform_type(
    name: str,
    label: str,
    attributes: Mapping[str, AttributeRule],
    capabilities: Capabilities,
    hook: str,
    form: ConnectionForm,
    *,
    others: AttributeRule | None = None,
) -> DestinationType:
    """An audience platform: its contract, with the identifier rule, options model and exporter
    derived from its capabilities (declared once). ``others``: the rule for attributes not
    listed, which the platform then accepts (custom properties)."""
    from dataclasses import replace

    from campaign_sync.destinations.audience_options import audience_options

    ids = frozenset(capabilities.identifiers)
    unknown = ids - set(attributes)
    if unknown:
        raise ValueError(f"{label}: identifiers {sorted(unknown)} are not attributes")
    if capabilities.identifier_rule == "all":
        attributes = {
            a: replace(r, required=True) if a in ids else r for a, r in attributes.items()
        }
    return DestinationType(
        name=name,
        label=label,
        attributes=attributes,
        open_attributes=others is not None,
        extra_rule=others or AttributeRule(),
        exactly_one_of=ids if capabilities.identifier_rule == "one" else frozenset(),
        at_least_one_of=ids if capabilities.identifier_rule == "any" else frozenset(),
        options_model=audience_options(label, capabilities),
        exporter=PLATFORM_EXPORTER,
        hook=hook,
        capabilities=capabilities,
        form=form,
    )
