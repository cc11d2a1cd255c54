"""A campaign DAG's trigger parameters: dry run, sample size and the destinations to deliver.

Airflow shows them in the trigger form (``dag_params``) and checks their types when a run is
created. ``run_params`` checks them again, against the campaign, in the run's first task: a
value Airflow let through (a conf key with a typo, a run created without validation) fails the
run there, before anything is sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from campaign_sync.failures import PermanentError
from campaign_sync.plan import CampaignPlan

DRY_RUN, SAMPLE_SIZE, DESTINATIONS = "dry_run", "sample_size", "destinations"
PARAM_NAMES = (DRY_RUN, SAMPLE_SIZE, DESTINATIONS)


class ParamsError(PermanentError, ValueError):
    """A trigger parameter's value cannot be used (retrying cannot help)."""


@dataclass(frozen=True)
class RunParams:
    """The checked trigger parameters of one run."""

    dry_run: bool = False
    sample_size: int = 0
    destinations: tuple[str, ...] = ()

    def selected(self, destination: str) -> bool:
        """Whether this run delivers to ``destination`` (an empty selection means all)."""
        return not self.destinations or destination in self.destinations

    def to_dict(self) -> dict[str, Any]:
        """Plain form for XCom and the manifest."""
        return {
            DRY_RUN: self.dry_run,
            SAMPLE_SIZE: self.sample_size,
            DESTINATIONS: list(self.destinations),
        }


def destination_names(plan: CampaignPlan) -> list[str]:
    """The destinations some group of the campaign delivers to, in campaign order."""
    used = {d for g in plan.groups for d in g.destinations}
    return [name for name in plan.campaign.destinations if name in used]


def dag_params(plan: CampaignPlan) -> dict[str, Any]:
    """The DAG's ``params``: Airflow ``Param`` objects with descriptions, for the trigger form."""
    from airflow.sdk import Param

    names = destination_names(plan)
    return {
        DRY_RUN: Param(
            False,
            type="boolean",
            title="Dry run",
            description="Write every destination's exact payload to the output folder's "
            "dry_run/ folder instead of sending it. Nothing leaves the machine.",
        ),
        SAMPLE_SIZE: Param(
            0,
            type="integer",
            minimum=0,
            title="Sample size",
            description="Deliver only N members per treatment group (0 = everyone). The "
            "sample is deterministic: the same N always picks the same members.",
        ),
        DESTINATIONS: Param(
            [],
            type="array",
            items={"type": "string", "enum": names} if names else {"type": "string"},
            uniqueItems=True,
            examples=names,
            title="Destinations",
            description="Deliver only to these destinations (empty = all). The others are "
            f"skipped and recorded as skipped in the manifest. Known: {', '.join(names)}.",
        ),
    }


def _fail(plan: CampaignPlan, name: str, problem: str) -> ParamsError:
    return ParamsError(
        f"campaign {plan.campaign.name!r}: trigger parameter {name!r} {problem}; nothing was sent"
    )


def run_params(
    plan: CampaignPlan, params: Mapping[str, Any], conf: Mapping[str, Any] | None = None
) -> RunParams:
    """Check a run's parameters (``params``: Airflow's merged params; ``conf``: the run's own
    conf, whose keys must all be known parameters). Raises ParamsError naming the parameter."""
    unknown = sorted(set(conf or {}) - set(PARAM_NAMES))
    if unknown:
        raise _fail(plan, unknown[0], f"is not a parameter of this DAG (use {PARAM_NAMES})")
    dry_run = params.get(DRY_RUN, False)
    if not isinstance(dry_run, bool):
        raise _fail(plan, DRY_RUN, f"must be true or false, got {dry_run!r}"[:200])
    sample = params.get(SAMPLE_SIZE, 0)
    if sample is None:
        sample = 0
    if isinstance(sample, bool) or not isinstance(sample, int) or sample < 0:
        raise _fail(plan, SAMPLE_SIZE, f"must be an integer >= 0, got {sample!r}"[:200])
    chosen = params.get(DESTINATIONS) or []
    if isinstance(chosen, str) or not isinstance(chosen, list | tuple):
        raise _fail(plan, DESTINATIONS, f"must be a list of destination names, got {chosen!r}")
    known = destination_names(plan)
    for name in chosen:
        if name not in known:
            problem = f"names unknown destination {str(name)[:100]!r} (known: {known})"
            raise _fail(plan, DESTINATIONS, problem)
    return RunParams(dry_run, sample, tuple(dict.fromkeys(chosen)))


def from_context(plan: CampaignPlan, context: Mapping[str, Any]) -> RunParams:
    """The checked parameters of the running task's DAG run: the run's conf over the
    defaults. (Read from the conf, not ``context["params"]``: a task object reused in one
    process, as ``dag.test`` does, keeps an earlier run's merged params.)"""
    dag_run = context.get("dag_run")
    conf = getattr(dag_run, "conf", None) or {}
    return run_params(plan, {**RunParams().to_dict(), **conf}, conf)
