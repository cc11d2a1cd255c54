"""What every campaign task shares: its plan, its staging area and its run's layout."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from campaign_sync import config
from campaign_sync.layout import RunLayout
from campaign_sync.plan import CampaignPlan
from campaign_sync.staging import Staging


class CampaignTaskOperator(BaseOperator):
    """Base for campaign tasks; ``plan`` is built once per parse by the DAG factory.

    No class of ours defines ``__init__``: Airflow wraps every ``__init__`` in an operator's
    hierarchy in its default-merging ``apply_defaults``, which merges the DAG's and task
    group's default arguments again for each one (four times for an export). Instead, each
    class takes its own arguments off the keyword arguments in ``take_args``, which Airflow's
    one wrapper (``BaseOperator``'s) calls before ``BaseOperator.__init__``; the rest go to
    ``BaseOperator`` as usual, unknown ones still refused there. Subclasses extend
    ``take_args``, calling ``super().take_args(kwargs)`` first.
    """

    ui_color = "#e8f0fe"

    plan: CampaignPlan

    if TYPE_CHECKING:  # the constructor as callers see it; see the class docstring

        def __init__(self, *, plan: CampaignPlan, **kwargs: Any) -> None: ...

    def take_args(self, kwargs: dict[str, Any]) -> None:
        """Set this operator's own arguments from ``kwargs``, removing them."""
        self._own(plan=required(kwargs, "plan"))

    def _own(self, **values: Any) -> None:
        # Plain attributes, past BaseOperator.__setattr__: these are not Airflow's fields (not
        # templated, not serialized), and BaseOperator has not set up its bookkeeping yet.
        self.__dict__.update(values)

    def _hook_apply_defaults(self, *args: Any, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        # Airflow's apply_defaults calls this on the merged arguments, before __init__ runs.
        # Once per task: a subclass that did define __init__ would get a second call, for its
        # super().__init__(), where the arguments are already taken.
        if "plan" not in self.__dict__:
            self.take_args(kwargs)
        return args, kwargs

    @staticmethod
    def staging() -> Staging:
        """The deployment's staging area."""
        return Staging(config.staging_root())

    def layout(self, context: Any) -> RunLayout:
        """Where this run's files are in staging."""
        return RunLayout(self.plan.dag_id, context["run_id"])


def required(kwargs: dict[str, Any], name: str) -> Any:
    """``kwargs[name]``, removed; TypeError as for any missing keyword argument."""
    try:
        return kwargs.pop(name)
    except KeyError:
        raise TypeError(f"missing keyword argument {name!r}") from None
