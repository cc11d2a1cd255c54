"""The DAG factory: one DAG per campaign file, and a visible failing DAG per invalid file.

Parse-time work is reading YAML and validating it: no database, no network, no data libraries.
When Airflow parses for one task (``get_parsing_context().dag_id``) only that DAG is built, and
only its file is validated when the others' names show they cannot claim its id.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, BaseOperator, CronTriggerTimetable, TaskGroup, get_parsing_context
from airflow.sdk.exceptions import AirflowFailException

from campaign_sync import config
from campaign_sync.alerts import notification_callbacks
from campaign_sync.destinations import REGISTRY
from campaign_sync.docs import plan_markdown
from campaign_sync.layout import RunLayout
from campaign_sync.operators.audience import BuildAudienceOperator
from campaign_sync.operators.export import DryRunExportOperator, ExportOperator
from campaign_sync.operators.manifest import WriteManifestOperator
from campaign_sync.operators.projection import ProjectAttributesOperator
from campaign_sync.operators.thresholds import CheckThresholdsOperator
from campaign_sync.params import dag_params
from campaign_sync.plan import CampaignPlan, build_plan
from campaign_sync.pools import pool_of
from campaign_sync.spec.checks import Problem
from campaign_sync.spec.echo import clip
from campaign_sync.spec.ids import dag_id_for, slug
from campaign_sync.spec.loader import (
    CampaignError,
    LoadedCampaign,
    ParseCache,
    load_folder,
    load_for_dag,
)
from campaign_sync.spec.model import Campaign, Schedule

log = logging.getLogger(__name__)
TAG = "campaign-sync"
INVALID_TAG = "invalid-campaign"
_EPOCH = datetime(2024, 1, 1, tzinfo=UTC)


class InvalidCampaignOperator(BaseOperator):
    """Stands in for an invalid campaign's DAG and fails with the validation errors."""

    ui_color = "#f28b82"

    def __init__(self, *, message: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.message = message

    def execute(self, context: Any) -> None:
        """Always fails, without retries, showing what to fix."""
        raise AirflowFailException(f"invalid campaign file:\n{self.message}")


def schedule_args(schedule: Schedule | None) -> dict[str, Any]:
    """DAG keyword arguments for a campaign schedule (None: manual runs only)."""
    if schedule is None:
        return {"schedule": None, "start_date": _EPOCH, "catchup": False}
    cron = schedule.cron_expression
    timetable: Any = (
        schedule.cron if cron is None else CronTriggerTimetable(cron, timezone=schedule.timezone)
    )
    if schedule.assets:
        timetable = asset_schedule(schedule, timetable if cron is not None else None)
    return {
        "schedule": timetable,
        "start_date": schedule.aware(schedule.start_date),
        "end_date": schedule.last_run(),
        "catchup": schedule.catchup,
    }


# --- data-aware schedules and delivery assets ------------------------------------------------


def asset_schedule(schedule: Schedule, timetable: Any | None) -> Any:
    """The schedule on the campaign's source assets (any or all of them), or beside cron."""
    from airflow.sdk import Asset, AssetAll, AssetAny, AssetOrTimeSchedule

    assets = [Asset(uri=uri) for uri in schedule.assets]
    condition = AssetAll(*assets) if schedule.assets_mode == "all" else AssetAny(*assets)
    if timetable is None:
        return condition
    return AssetOrTimeSchedule(timetable=timetable, assets=condition)


def delivery_asset_uri(dag_id: str, destination: str) -> str:
    """URI of the asset a campaign's exports to ``destination`` update (one per destination)."""
    return f"x-campaign-sync://{dag_id}/{slug(destination)}"


def _export_args(plan: CampaignPlan, name: str) -> dict[str, Any]:
    """Operator arguments of the exports to destination ``name`` beyond their group: its
    connection and options, the delivery asset they update and the connection's pool they run
    in (``campaign_sync.pools``)."""
    from airflow.sdk import Asset

    dest = plan.campaign.destinations[name]
    args: dict[str, Any] = {
        "conn_id": dest.conn_id,
        "options": dest.options,
        "dry_run": dest.dry_run,
    }
    if not dest.dry_run:
        uri = delivery_asset_uri(plan.dag_id, name)
        # One Asset for the exports to this destination in every group: Airflow only reads
        # outlets (the run's event extras go on outlet_events, not on the Asset).
        args["outlets"] = [Asset(uri=uri, name=uri)]
    pool = pool_of(dest)
    if pool is not None:
        args["pool"] = pool.name
        args["pool_slots"] = pool.in_flight
        args["limit_share"] = pool.slots
        args["in_flight"] = pool.in_flight
    return args


def _default_args(campaign: Campaign) -> dict[str, Any]:
    r = campaign.retries
    return {
        "owner": campaign.owner,
        "retries": r.count,
        "retry_delay": timedelta(seconds=r.delay_seconds),
        "retry_exponential_backoff": r.exponential_backoff,
        "max_retry_delay": timedelta(seconds=r.max_delay_seconds),
    }


def _exporter(campaign: Campaign, destination: str) -> type[ExportOperator]:
    dest = campaign.destinations[destination]
    if dest.dry_run:
        return DryRunExportOperator
    from airflow.sdk.module_loading import import_string

    return import_string(REGISTRY[dest.type].exporter)


def build_dag(loaded: LoadedCampaign) -> DAG:
    """The DAG of one valid campaign."""
    campaign = loaded.campaign
    plan = build_plan(campaign)
    with (
        DAG(  # noqa: AIR002 - schedule comes from schedule_args
            dag_id=plan.dag_id,
            description=(campaign.description or f"Campaign {campaign.name}")[:200],
            doc_md=plan_markdown(plan, loaded.path),
            tags=[TAG, *campaign.tags],
            default_args=_default_args(campaign),
            # A campaign's runs must not overlap: each one reads the recipients of the last.
            max_active_runs=1,
            # Set once the tasks exist (_share_params): every task would deep-copy them.
            params=None,
            **schedule_args(campaign.schedule),
            **notification_callbacks(campaign.alerts),
        ) as dag
    ):
        audience = BuildAudienceOperator(task_id=RunLayout.BUILD_AUDIENCE, plan=plan)
        # Exports left out by the run's ``destinations`` parameter are skipped: the manifest
        # still runs and records them.
        manifest = WriteManifestOperator(
            task_id=RunLayout.WRITE_MANIFEST, plan=plan, trigger_rule="none_failed"
        )
        projects: list[BaseOperator] = []
        exports: list[BaseOperator] = []
        groups: list[TaskGroup] = []
        # What an export takes from its destination is the same in every group: worked out once.
        per_destination = {
            name: (_exporter(campaign, name), RunLayout.export_task(name), _export_args(plan, name))
            for name in dict.fromkeys(d for g in plan.groups for d in g.destinations)
        }
        for group in plan.groups:
            kind = "control: recorded, not sent" if group.is_control else "treatment"
            with TaskGroup(
                group_id=group.group_id,
                tooltip=f"{group.sub_audience} / {group.treatment_group} ({kind})",
            ) as task_group:
                project = ProjectAttributesOperator(
                    task_id=RunLayout.PROJECT, plan=plan, group_id=group.group_id
                )
                projects.append(project)
                group_exports: list[BaseOperator] = []
                for name in group.destinations:
                    exporter, task_id, args = per_destination[name]
                    group_exports.append(
                        exporter(
                            task_id=task_id,
                            plan=plan,
                            group_id=group.group_id,
                            destination=name,
                            **args,
                        )
                    )
                # One call per side, not per edge: Airflow hashes the DAG for every task of
                # every call.
                if group_exports:
                    project >> group_exports
                exports += group_exports
            groups.append(task_group)
        audience >> groups
        groups >> manifest
        _add_threshold_gate(plan, projects, exports)
    _share_params(dag, dag_params(plan))
    return dag


# Param sets already validated in this process, by their values and schemas.
_VALID_PARAMS: set[str] = set()


def _share_params(dag: DAG, params: dict[str, Any]) -> None:
    """Give the DAG its params, and every task the same merged copy Airflow would have made.

    Airflow deep-copies the DAG's params into each task as it is created, and validates them
    against their JSON schemas when they are set on the DAG: with three described params, that
    was half of a campaign's parse time. The tasks set no params of their own, so one copy
    serves them all; and a set of params (values and schemas) is validated once per process,
    since campaigns share them. The serialized DAG is unchanged.
    """
    from airflow.sdk.definitions.param import ParamsDict

    checked = ParamsDict(params)
    key = json.dumps(
        {name: [checked.get_param(name).value, checked.get_param(name).schema] for name in params},
        sort_keys=True,
        default=str,
    )
    if key not in _VALID_PARAMS:
        checked.validate()
        _VALID_PARAMS.add(key)
    # As Airflow's own converter sets them, past the validator that would validate them again.
    object.__setattr__(dag, "params", checked)
    merged = copy.deepcopy(checked)
    merged._fill_missing_param_source("dag")
    for task in dag.tasks:
        task.params = merged


def _add_threshold_gate(
    plan: CampaignPlan, projects: list[BaseOperator], exports: list[BaseOperator]
) -> None:
    """With thresholds configured, one check between every projection and every export, so a
    threshold set to "fail" stops the run before anything is sent."""
    if not plan.campaign.alerts.thresholds.configured:
        return
    gate = CheckThresholdsOperator(task_id=RunLayout.CHECK_THRESHOLDS, plan=plan)
    projects >> gate
    gate >> exports


def build_error_dag(error: CampaignError, dag_id: str) -> DAG:
    """A paused, unscheduled DAG that shows an invalid campaign's errors and fails if run."""
    first = error.problems[0] if error.problems else "invalid"
    with DAG(
        dag_id=dag_id,
        description=f"INVALID campaign file {error.path.name}: {first}"[:200],
        doc_md=f"# Invalid campaign file\n\n```\n{error.describe()}\n```\n",
        tags=[TAG, INVALID_TAG],
        schedule=None,
        start_date=_EPOCH,
        is_paused_upon_creation=True,
    ) as dag:
        InvalidCampaignOperator(task_id="campaign_is_invalid", message=error.describe(), retries=0)
    return dag


def _error_dag_id(error: CampaignError, taken: set[str]) -> str:
    # Keep the campaign's own DAG id when we can, so its history stays in one place.
    if error.campaign and dag_id_for(error.campaign) and dag_id_for(error.campaign) not in taken:
        return dag_id_for(error.campaign)
    base = f"invalid_campaign__{slug(error.path.stem)}"
    candidate, n = base, 1
    while candidate in taken:
        n += 1
        candidate = f"{base}_{n}"
    return candidate


def build_failure(loaded: LoadedCampaign, exc: Exception) -> CampaignError:
    """A campaign that validated but that Airflow refused to build, as a campaign error."""
    reason = clip(" ".join(str(exc).split()), 300)
    return CampaignError(
        loaded.path,
        loaded.campaign.name,
        [Problem("", f"Airflow cannot build its DAG: {type(exc).__name__}: {reason}")],
    )


def try_build_dag(loaded: LoadedCampaign) -> DAG | CampaignError:
    """The campaign's DAG, or the error that building it raised (never an exception)."""
    try:
        return build_dag(loaded)
    except Exception as exc:  # whatever Airflow raises: one campaign never takes the others down
        return build_failure(loaded, exc)


def _safe_error_dag(error: CampaignError, dag_id: str) -> DAG:
    try:
        return build_error_dag(error, dag_id)
    except Exception as exc:  # e.g. an id Airflow refuses: fall back to one it always takes
        fallback = CampaignError(error.path, None, [*error.problems, Problem("", str(exc))])
        return build_error_dag(fallback, f"invalid_campaign__{slug(error.path.stem)}"[:250])


def _log_invalid(error: CampaignError, wanted: str | None) -> None:
    # Logged while the processor parses the folder, never in a task's log: a worker parsing
    # for one campaign's task must not report other files.
    if wanted is None:
        log.warning("Invalid campaign file (shown as a failing DAG):\n%s", error.describe())


def default_cache() -> ParseCache | None:
    """The deployment's cache of validated campaigns (``CAMPAIGN_SYNC_PARSE_CACHE``)."""
    folder = config.parse_cache_dir()
    return ParseCache(folder) if folder is not None else None


_SHARD_FILE = re.compile(r"_shard_(\d+)_of_(\d+)\.py$")


def shard_from_file(dag_file: str) -> tuple[int, int] | None:
    """(index, count) from a DAG file named ``..._shard_<index>_of_<count>.py``, else None.

    Airflow's ``dagbag_import_timeout`` applies per DAG file, and the DAG processor parses
    files in parallel: copies of the DAG file named this way split a large campaigns folder.
    """
    match = _SHARD_FILE.search(dag_file)
    if match is None:
        return None
    index, count = int(match.group(1)), int(match.group(2))
    if not 0 <= index < count:
        raise ValueError(f"{dag_file}: shard index must be 0..{count - 1}")
    return index, count


def in_shard(dag_id: str, shard: tuple[int, int] | None) -> bool:
    """Whether ``dag_id`` is built by the DAG file of ``shard`` (a stable hash of the id)."""
    if shard is None:
        return True
    index, count = shard
    return int(hashlib.sha256(dag_id.encode()).hexdigest()[:8], 16) % count == index


def build_dags(
    folder: Path | None = None,
    *,
    cache: ParseCache | None = None,
    shard: tuple[int, int] | None = None,
) -> dict[str, DAG]:
    """Every campaign DAG (and invalid-campaign DAG) for the campaigns folder, by dag_id.

    Never raises for a campaign's sake: a campaign that cannot be loaded or built becomes its
    own failing DAG, and the other campaigns load as usual. ``cache`` keeps validated
    campaigns between parses (the DAG file passes ``default_cache()``). With ``shard``, only
    the DAGs whose id falls in that shard are built; ids are still given out over the whole
    folder, so every shard agrees with a full parse.
    """
    folder = folder or config.campaigns_dir()
    wanted = get_parsing_context().dag_id
    # A worker parsing for one task validates only that campaign's file when it safely can.
    result = (wanted and load_for_dag(folder, wanted)) or load_folder(folder, cache)
    dags: dict[str, DAG] = {}
    for loaded in result.campaigns:
        if (wanted is not None and loaded.dag_id != wanted) or not in_shard(loaded.dag_id, shard):
            continue
        built = try_build_dag(loaded)
        if isinstance(built, CampaignError):
            # The id stays with its file: the campaign shows as failing where it always was.
            _log_invalid(built, wanted)
            built = _safe_error_dag(built, loaded.dag_id)
        dags[loaded.dag_id] = built
    # Ids are given out the same way whichever DAG a worker parses for.
    taken = {c.dag_id for c in result.campaigns}
    for error in result.errors:
        dag_id = _error_dag_id(error, taken)
        taken.add(dag_id)
        if in_shard(dag_id, shard):
            _log_invalid(error, wanted)
        if (wanted is None or dag_id == wanted) and in_shard(dag_id, shard):
            dags[dag_id] = _safe_error_dag(error, dag_id)
    return dags
