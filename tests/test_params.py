"""Trigger parameters (dry_run, sample_size, destinations): checked against the campaign,
applied at run time, recorded in the manifest. Runs go through Airflow's ``dag.test``."""

from __future__ import annotations

import copy
import csv
import json
from pathlib import Path
from typing import Any

import duckdb
import pytest
from airflow.sdk.exceptions import ParamValidationError
from campaign_sync.audience.build import sample_sql
from campaign_sync.factory import build_dag
from campaign_sync.manifest import build_manifest, summary_lines
from campaign_sync.params import ParamsError, RunParams, run_params
from campaign_sync.plan import build_plan
from campaign_sync.spec.loader import LoadedCampaign
from helpers import REPO, write_campaign

ROWS = 1_500


def _doc(**more: Any) -> dict[str, Any]:
    files = {"type": "local", "attributes": {"customer_id": "customer_id", "email": "email"}}
    return {
        "name": "params_demo",
        "source": {"conn_id": "params_source", "table": "merged_customers"},
        "retries": {"count": 0},
        "sub_audiences": [
            {
                "name": "everyone",
                "condition": "TRUE",
                "treatment_groups": [
                    {"name": "control", "percentage": 20, "control": True},
                    {"name": "a", "percentage": 40, "destinations": ["files", "more"]},
                    {"name": "b", "percentage": 40, "destinations": ["files"]},
                ],
            }
        ],
        "destinations": {
            "files": {**files, "options": {"path": "files"}},
            "more": {**files, "options": {"path": "more"}},
        },
        **more,
    }


def _plan(**more: Any):
    from campaign_sync.spec.model import Campaign

    return build_plan(Campaign.model_validate(_doc(**more)))


# --- checking the values --------------------------------------------------------------------


def test_params_defaults_and_selection():
    plan = _plan()
    assert run_params(plan, {}) == RunParams()
    chosen = run_params(plan, {"destinations": ["more"], "sample_size": 3, "dry_run": True})
    assert chosen.selected("more") and not chosen.selected("files")
    assert chosen.to_dict() == {"dry_run": True, "sample_size": 3, "destinations": ["more"]}
    assert RunParams().selected("files")


@pytest.mark.parametrize(
    ("params", "conf", "named"),
    [
        ({"dry_run": "yes"}, None, "dry_run"),
        ({"sample_size": -1}, None, "sample_size"),
        ({"sample_size": 2.5}, None, "sample_size"),
        ({"sample_size": True}, None, "sample_size"),
        ({"destinations": "files"}, None, "destinations"),
        ({"destinations": ["nowhere"]}, None, "destinations"),
        ({}, {"dry_rn": True}, "dry_rn"),
    ],
)
def test_params_bad_values_name_the_parameter(params, conf, named):
    with pytest.raises(ParamsError, match=f"'params_demo': trigger parameter '{named}'"):
        run_params(_plan(), params, conf)


def test_params_in_the_trigger_form():
    dag = build_dag(LoadedCampaign(Path("params_demo.yaml"), _plan().campaign))
    form = dag.params.dump()
    assert form == {"dry_run": False, "sample_size": 0, "destinations": []}
    schema = {name: dag.params.get_param(name).schema for name in form}
    assert schema["destinations"]["items"]["enum"] == ["files", "more"]
    assert schema["sample_size"]["minimum"] == 0
    assert all(dag.params.get_param(n).description for n in form)
    # Skipped exports still lead to the manifest.
    assert dag.get_task("write_manifest").trigger_rule == "none_failed"
    # Every task holds the DAG's params as Airflow merges them (one shared copy, source "dag").
    for task in dag.tasks:
        assert task.params.dump() == form and task.params is not dag.params
        assert {task.params.get_param(n).source for n in form} == {"dag"}
    assert len({id(task.params) for task in dag.tasks}) == 1
    # A bad value is still refused against the DAG's schemas.
    dag.params.validate()
    with pytest.raises(ParamValidationError):
        copy.deepcopy(dag.params)["sample_size"] = -1


# --- the sample ---------------------------------------------------------------------------


def test_params_sample_is_deterministic_and_nested():
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE t AS SELECT CAST(i AS VARCHAR) AS __customer_id, i % 2 AS __g"
        " FROM range(1000) r(i)"
    )

    def sample(size: int, salt: str = "s") -> set[str]:
        rows = con.execute(
            f"SELECT __customer_id, __g FROM ({sample_sql('SELECT * FROM t', salt, size)})"
        )
        found = rows.fetchall()
        assert all(sum(1 for _, g in found if g == k) == size for k in (0, 1))
        return {cid for cid, _ in found}

    assert sample(10) == sample(10)
    assert sample(5) < sample(10)  # the N smallest keys: a smaller sample is inside a larger
    assert sample(10) != sample(10, salt="other")


# --- the manifest ---------------------------------------------------------------------------


def _projected(rows: int) -> dict[str, Any]:
    return {"rows": rows, "rejected": 0, "rejected_by_reason": {}, "values_cleared": {}}


def test_params_manifest_records_skips_samples_and_params():
    plan = _plan()
    a, b = (g.group_id for g in plan.groups if not g.is_control)
    control = next(g.group_id for g in plan.groups if g.is_control)
    params = {"dry_run": False, "sample_size": 5, "destinations": ["more"]}
    audience = {
        "audience_size": 100, "source_rows": 100, "rows_without_customer_id": 0,
        "unassigned": 0, "sampled_out": 85, "params": params,
        "group_members": {control: 5, a: 5, b: 5},
    }  # fmt: skip
    groups = {
        control: {"members": 5, "destinations": {}},
        a: {"members": 5, "destinations": {"files": _projected(5), "more": _projected(5)}},
        b: {"members": 5, "destinations": {"files": _projected(5)}},
    }
    exports = {
        (a, "files"): None,
        (a, "more"): {"rows_sent": 5, "location": "/x.csv", "dry_run": False},
        (b, "files"): None,
    }
    manifest = build_manifest(
        plan, run_id="r", logical_date=None, audience=audience, groups=groups,
        exports=exports, recipients_path="h",
    )  # fmt: skip
    assert manifest["params"] == params and manifest["sampled_out"] == 85
    dests = manifest["sub_audiences"]["everyone"]["treatment_groups"]["a"]["destinations"]
    assert dests["files"]["skipped"] and dests["files"]["rows_sent"] == 0
    assert dests["more"]["rows_sent"] == 5
    text = "\n".join(summary_lines(manifest))
    assert "files: skipped" in text and "85 members left out" in text
    # A missing result for a selected destination does not reconcile.
    with pytest.raises(Exception, match="no export result"):
        build_manifest(
            plan, run_id="r", logical_date=None, audience={**audience, "params": {}},
            groups=groups, exports=exports, recipients_path="h",
        )  # fmt: skip


# --- runs through Airflow -------------------------------------------------------------------


@pytest.fixture(scope="module")
def params_dag(airflow_db, tmp_path_factory):
    """The campaign's DAG on a small source, with its own staging and output roots."""
    import os

    from airflow.dag_processing.dagbag import DagBag
    from campaign_sync.sample_data import generate_merged_customers

    root = tmp_path_factory.mktemp("params")
    source = root / "source.duckdb"
    generate_merged_customers(source, ROWS)
    keys = (
        "CAMPAIGN_SYNC_STAGING_ROOT",
        "CAMPAIGN_SYNC_OUTPUT_ROOT",
        "CAMPAIGN_SYNC_CAMPAIGNS_DIR",
    )
    saved = {k: os.environ.get(k) for k in keys}
    os.environ["AIRFLOW_CONN_PARAMS_SOURCE"] = json.dumps(
        {"conn_type": "duckdb", "host": str(source)}
    )
    os.environ["CAMPAIGN_SYNC_STAGING_ROOT"] = str(root / "staging")
    os.environ["CAMPAIGN_SYNC_OUTPUT_ROOT"] = str(root / "outputs")
    os.environ["CAMPAIGN_SYNC_CAMPAIGNS_DIR"] = str(root / "campaigns")
    (root / "campaigns").mkdir()
    write_campaign(root / "campaigns", "params_demo", _doc())
    # dag.test() runs the DAG as Airflow parses it from the dags folder.
    yield DagBag(dag_folder=str(REPO / "dags")).dags["params_demo"], root
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def _manifest(root: Path, run_id: str) -> dict[str, Any]:
    from campaign_sync.layout import RunLayout

    path = root / "staging" / RunLayout("params_demo", run_id).manifest
    return json.loads(path.read_text())


def _delivered(root: Path) -> set[Path]:
    """Files the local destinations wrote (dry-run payloads excluded)."""
    return {p for p in (root / "outputs").rglob("*") if "dry_run" not in p.parts and p.is_file()}


def _states(run: Any) -> dict[str, str]:
    return {ti.task_id: ti.state for ti in run.get_task_instances()}


def test_params_run_with_destinations_and_sample(params_dag):
    dag, root = params_dag
    run = dag.test(run_conf={"destinations": ["more"], "sample_size": 7})
    states = _states(run)
    assert run.state == "success", states
    assert states["everyone__a.export_files"] == "skipped"
    assert states["everyone__b.export_files"] == "skipped"
    manifest = _manifest(root, run.run_id)
    assert manifest["params"] == {"dry_run": False, "sample_size": 7, "destinations": ["more"]}
    groups = manifest["sub_audiences"]["everyone"]["treatment_groups"]
    assert {g["members"] for g in groups.values()} == {7}
    assert manifest["sampled_out"] == manifest["audience_size"] - 21
    assert groups["a"]["destinations"]["files"]["skipped"]
    more = groups["a"]["destinations"]["more"]
    with Path(more["location"]).open() as f:
        assert len(list(csv.DictReader(f))) == more["rows_sent"] == 7
    assert not (root / "outputs" / "files").exists()
    history = duckdb.sql(
        f"SELECT destination, count(*) FROM '{manifest['recipients_history']}'"
        " GROUP BY ALL ORDER BY 1 NULLS FIRST"
    ).fetchall()
    assert history == [(None, 7), ("more", 7)]  # controls; no rows for the skipped destination
    # The same sample size gives the same members.
    again = _manifest(root, dag.test(run_conf={"destinations": ["more"], "sample_size": 7}).run_id)
    ids = [
        {
            r[0]
            for r in duckdb.sql(f"SELECT customer_id FROM '{m['recipients_history']}'").fetchall()
        }
        for m in (manifest, again)
    ]
    assert ids[0] == ids[1]


def test_params_dry_run_writes_payloads_only(params_dag):
    dag, root = params_dag
    before = _delivered(root)
    run = dag.test(run_conf={"dry_run": True})
    assert run.state == "success", _states(run)
    manifest = _manifest(root, run.run_id)
    for group in manifest["sub_audiences"]["everyone"]["treatment_groups"].values():
        for dest in group["destinations"].values():
            assert dest["dry_run"] is True
            location = Path(dest["location"])
            assert location.is_relative_to(root / "outputs" / "dry_run") and location.exists()
    assert _delivered(root) == before
    assert "[dry run, written to" in "\n".join(summary_lines(manifest))


def test_params_bad_value_fails_at_build_audience(params_dag):
    dag, root = params_dag
    run = dag.test(run_conf={"dry_rn": True})
    states = _states(run)
    assert run.state == "failed"
    assert states["build_audience"] == "failed"
    assert {s for t, s in states.items() if t != "build_audience"} == {"upstream_failed"}
    assert not (root / "outputs" / "files").exists()  # the other runs never wrote there
