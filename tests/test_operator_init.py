"""Campaign operators run Airflow's default-merging wrapper once per task, as an EmptyOperator
does, and still take their arguments, the DAG's default_args and BaseOperator's checks."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from pathlib import Path
from typing import Any

import campaign_sync.operators
import pytest
from airflow.sdk import DAG, TaskGroup
from airflow.sdk.bases import operator as sdk_operator
from campaign_sync.factory import build_dag
from campaign_sync.operators.base import CampaignTaskOperator
from campaign_sync.operators.export import DryRunExportOperator, ExportOperator
from campaign_sync.operators.projection import ProjectAttributesOperator
from campaign_sync.plan import build_plan
from campaign_sync.spec.loader import LoadedCampaign
from campaign_sync.spec.model import Campaign

from benchmarks.campaigns import parse_campaign

CAMPAIGN = Campaign.model_validate(parse_campaign(0))
PLAN = build_plan(CAMPAIGN)
GROUP = PLAN.groups[0].group_id
DESTINATION = "review_files"


def _concrete_operators() -> list[type[CampaignTaskOperator]]:
    for module in pkgutil.iter_modules(campaign_sync.operators.__path__):
        importlib.import_module(f"campaign_sync.operators.{module.name}")
    found, todo = set(), [CampaignTaskOperator]
    while todo:
        cls = todo.pop()
        found.add(cls)
        todo += cls.__subclasses__()
    return sorted((c for c in found if not inspect.isabstract(c)), key=lambda c: c.__name__)


def _args(cls: type[CampaignTaskOperator]) -> dict[str, Any]:
    args: dict[str, Any] = {"task_id": "t", "plan": PLAN}
    if issubclass(cls, ProjectAttributesOperator | ExportOperator):
        args["group_id"] = GROUP
    if issubclass(cls, ExportOperator):
        args.update(destination=DESTINATION, conn_id="c", options={"path": "p"})
    return args


@pytest.fixture
def merges(monkeypatch) -> list[int]:
    """Counts Airflow's default_args merges (one per apply_defaults wrapper run)."""
    calls: list[int] = []
    original = sdk_operator.get_merged_defaults

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(sdk_operator, "get_merged_defaults", counting)
    return calls


OPERATORS = _concrete_operators()


def test_every_campaign_operator_is_found():
    names = {c.__name__ for c in OPERATORS}
    assert {"BuildAudienceOperator", "DryRunExportOperator", "PlatformExportOperator"} <= names
    assert len(OPERATORS) >= 11


@pytest.mark.parametrize("cls", OPERATORS, ids=lambda c: c.__name__)
def test_one_default_merge_per_task_and_arguments_kept(cls, merges):
    with (
        DAG("d", schedule=None, default_args={"owner": "ops", "retries": 4}),
        TaskGroup("g"),
    ):
        task = cls(**_args(cls), pool_slots=2)
    assert len(merges) == 1
    assert (task.task_id, task.owner, task.retries, task.pool_slots) == ("g.t", "ops", 4, 2)
    assert task.plan is PLAN
    if isinstance(task, ProjectAttributesOperator | ExportOperator):
        assert task.group_id == GROUP
    if isinstance(task, ExportOperator):
        assert (task.destination, task.conn_id, task.options) == (DESTINATION, "c", {"path": "p"})
        assert task.dry_run is (cls is DryRunExportOperator)


@pytest.mark.parametrize("cls", OPERATORS, ids=lambda c: c.__name__)
def test_missing_and_unknown_arguments_refused(cls):
    args = _args(cls)
    with pytest.raises(TypeError, match="missing keyword argument 'plan'"):
        cls(**{k: v for k, v in args.items() if k != "plan"})
    with pytest.raises(TypeError, match="Invalid arguments"):
        cls(**args, not_an_argument=1)


def test_dry_run_export_is_named_as_such():
    task = DryRunExportOperator(**_args(DryRunExportOperator), dry_run=False)
    assert task.dry_run and task.task_display_name == "t (dry run)"
    named = DryRunExportOperator(**_args(DryRunExportOperator), task_display_name="mine")
    assert named.task_display_name == "mine"


def test_factory_merges_defaults_once_per_task(merges):
    dag = build_dag(LoadedCampaign(Path("bench_campaign_00000.yaml"), CAMPAIGN))
    assert len(dag.tasks) == 32 and len(merges) == 32
