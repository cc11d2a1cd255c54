"""The ``campaign-sync`` command: validate, plan, schema, sample-data, summary, connections,
retention, pools."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from campaign_sync import config
from campaign_sync.spec.loader import CampaignError, LoadedCampaign, load_file, load_folder

SCHEMA_PATH = config.PROJECT_ROOT / "include" / "campaign.schema.json"


def _validate(args: argparse.Namespace) -> int:
    # Builds each valid campaign's DAG too: whatever would fail in Airflow fails here.
    from campaign_sync.factory import try_build_dag

    target = Path(args.path) if args.path else config.campaigns_dir()
    if target.is_file():
        try:
            loaded = LoadedCampaign(target, load_file(target))
        except CampaignError as exc:
            print(exc.describe(), file=sys.stderr)
            return 1
        built = try_build_dag(loaded)
        if isinstance(built, CampaignError):
            print(built.describe(), file=sys.stderr)
            return 1
        print(f"ok: {target}")
        return 0
    if not target.is_dir():
        print(f"{target}: no such file or folder", file=sys.stderr)
        return 1
    result = load_folder(target)
    errors = list(result.errors)
    valid = 0
    for loaded in result.campaigns:
        built = try_build_dag(loaded)
        if isinstance(built, CampaignError):
            errors.append(built)
            continue
        valid += 1
        print(f"ok: {loaded.path} (campaign {loaded.campaign.name!r}, DAG {loaded.dag_id})")
    for error in errors:
        print(error.describe(), file=sys.stderr)
    print(f"{valid} valid, {len(errors)} invalid")
    return 1 if errors else 0


def _find(name: str) -> LoadedCampaign:
    path = Path(name)
    if path.is_file():
        loaded = LoadedCampaign(path, load_file(path))
        return loaded
    result = load_folder(config.campaigns_dir())
    for loaded in result.campaigns:
        if name in (loaded.campaign.name, loaded.dag_id, loaded.path.stem):
            return loaded
    for error in result.errors:
        if name in (error.campaign, error.path.stem):
            raise error
    known = ", ".join(c.campaign.name for c in result.campaigns) or "none"
    raise SystemExit(f"no campaign named {name!r} in {config.campaigns_dir()} (valid: {known})")


def _plan(args: argparse.Namespace) -> int:
    from campaign_sync.audience.query import audience_query
    from campaign_sync.layout import RunLayout
    from campaign_sync.plan import build_plan

    try:
        loaded = _find(args.campaign)
    except CampaignError as exc:
        print(exc.describe(), file=sys.stderr)
        return 1
    plan = build_plan(loaded.campaign)
    counts: dict[str, int] = {}
    if args.counts:
        counts = _counts(plan)
    print(f"DAG {plan.dag_id}  (from {loaded.path})")
    print(f"  {RunLayout.BUILD_AUDIENCE}")
    for group in plan.groups:
        size = f"  [{counts[group.group_id]} customers]" if args.counts else ""
        pct = (group.bucket_end - group.bucket_start) / 100
        tag = "  control: recorded, not sent" if group.is_control else ""
        print(
            f"  [{group.group_id}] {group.sub_audience} / {group.treatment_group}"
            f" {pct:g}%{tag}{size}"
        )
        print(f"    {RunLayout.PROJECT}")
        for dest in group.destinations:
            d = loaded.campaign.destinations[dest]
            mode = "dry run" if d.dry_run else d.conn_id or "local"
            print(f"    {RunLayout.export_task(dest)}  ({d.type}, {mode})")
    print(f"  {RunLayout.WRITE_MANIFEST}")
    if args.sql:
        print("\nAudience query pushed down to the source:\n" + audience_query(plan))
    return 0


def _counts(plan: object) -> dict[str, int]:
    from airflow.sdk import BaseHook

    from campaign_sync.audience.build import build_audience
    from campaign_sync.layout import RunLayout
    from campaign_sync.plan import CampaignPlan
    from campaign_sync.staging import Staging

    assert isinstance(plan, CampaignPlan)
    hook = BaseHook.get_hook(plan.campaign.source.conn_id)
    with tempfile.TemporaryDirectory(prefix="campaign_sync_plan_") as tmp:
        summary = build_audience(
            plan,
            hook,
            Staging(tmp),
            RunLayout(plan.dag_id, "plan"),
            batch_rows=config.batch_rows(),
            memory_limit=config.duckdb_memory_limit(),
        )
    print(
        f"audience: {summary.audience_size} customers, {summary.unassigned} unassigned, "
        f"{summary.rows_without_customer_id} rows without a customer id"
    )
    return summary.group_members


def _schema(args: argparse.Namespace) -> int:
    from campaign_sync.spec.model import Campaign

    text = json.dumps(Campaign.model_json_schema(), indent=2) + "\n"
    if args.check:
        current = SCHEMA_PATH.read_text() if SCHEMA_PATH.exists() else ""
        if current != text:
            print(f"{SCHEMA_PATH} is out of date: run campaign-sync schema", file=sys.stderr)
            return 1
        return 0
    out = Path(args.output) if args.output else SCHEMA_PATH
    out.write_text(text)
    print(f"wrote {out}")
    return 0


def _sample_data(args: argparse.Namespace) -> int:
    from campaign_sync.sample_data import generate_merged_customers

    rows = generate_merged_customers(args.db, args.rows, seed=args.seed)
    print(f"wrote {rows} customers to {args.db} (table merged_customers)")
    return 0


def _summary(args: argparse.Namespace) -> int:
    from campaign_sync.layout import RunLayout
    from campaign_sync.manifest import run_time, summary_lines
    from campaign_sync.spec.ids import dag_id_for

    if args.latest:
        root = Path(config.staging_root()) / RunLayout.dag_folder(dag_id_for(args.latest))
        runs = [(json.loads(p.read_text()), p) for p in root.glob(RunLayout.manifest_glob())]
        if not runs:
            print(f"no run manifest under {root}", file=sys.stderr)
            return 1
        # The newest run by its own times (logical date, run_after), not by file times.
        _, path = max(runs, key=lambda item: run_time(item[0]))
    elif args.manifest:
        path = Path(args.manifest)
    else:
        print("give a manifest file or --latest CAMPAIGN", file=sys.stderr)
        return 2
    manifest = json.loads(path.read_text())
    print("\n".join(summary_lines(manifest)))
    print(f"  manifest: {path}")
    return 0


def _connections(args: argparse.Namespace) -> int:
    from campaign_sync.connections import check, connection_uses, describe

    campaigns: list[LoadedCampaign] = []
    problems = 0
    if args.campaigns:
        for name in args.campaigns:
            try:
                campaigns.append(_find(name))
            except CampaignError as exc:
                print(exc.describe(), file=sys.stderr)
                problems += 1
    else:
        result = load_folder(config.campaigns_dir())
        campaigns = result.campaigns
        for error in result.errors:
            print(f"{error.describe()}\n  (connections unknown: fix the file)", file=sys.stderr)
            problems += 1
    missing = failed = 0
    for loaded in campaigns:
        uses, dry_runs = connection_uses(loaded.campaign)
        print(f"{loaded.campaign.name} (DAG {loaded.dag_id}, {loaded.path})")
        for use in uses:
            result = check(use, test=args.test)
            missing += not result.found
            failed += result.tested is False
            print(describe(result))
        if dry_runs:
            print(f"  dry run, no connection needed: {', '.join(dry_runs)}")
    print(
        f"campaigns: {len(campaigns)}, connections missing: {missing}"
        + (f", failed their test: {failed}" if args.test else "")
    )
    return 1 if missing or failed or problems else 0


def _retention(args: argparse.Namespace) -> int:
    from campaign_sync.retention import purge

    try:
        days = args.days if args.days is not None else config.retention_days()
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    report = purge(days=days, dry_run=args.dry_run)
    print("\n".join(report.lines()))
    return 0


def _pools(args: argparse.Namespace) -> int:
    from campaign_sync.pools import ensure_pools, needed_pools

    result = load_folder(config.campaigns_dir())
    needed = needed_pools([c.campaign for c in result.campaigns])
    if not needed:
        print("no campaign exports to a platform: no pools needed")
        return 0
    if args.check:
        from airflow.models.pool import Pool

        existing = {p.pool: p.slots for p in Pool.get_pools()}
        report = {
            name: ("exists", existing[name]) if name in existing else ("MISSING", spec.slots)
            for name, spec in sorted(needed.items())
        }
    else:
        report = ensure_pools(needed)
    for name, (state, slots) in report.items():
        print(f"{name}: {state}, {slots} slots  ({needed[name].description})")
    missing = [n for n, (state, _) in report.items() if state == "MISSING"]
    if missing:
        print(f"missing pools: {', '.join(missing)}; run campaign-sync pools", file=sys.stderr)
    # An export takes in_flight slots: a pool with fewer would never schedule it.
    small = [n for n, (state, slots) in report.items() if slots < needed[n].in_flight]
    for name in small:
        print(
            f"pool {name} has {report[name][1]} slots; its exports take "
            f"{needed[name].in_flight} each: raise its slots (airflow pools set)",
            file=sys.stderr,
        )
    return 1 if missing or small else 0


def _days(value: str) -> int:
    try:
        return config.check_retention_days(value, "--days")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    """The command's argument parser."""
    parser = argparse.ArgumentParser(prog="campaign-sync", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("validate", help="check campaign files; exit 1 on any error")
    p.add_argument("path", nargs="?", help="file or folder (default: the campaigns folder)")
    p.set_defaults(func=_validate)
    p = sub.add_parser("plan", help="print the DAG a campaign becomes")
    p.add_argument("campaign", help="campaign name, DAG id, file stem or file path")
    p.add_argument("--counts", action="store_true", help="query the source for group sizes")
    p.add_argument("--sql", action="store_true", help="also print the audience query")
    p.set_defaults(func=_plan)
    p = sub.add_parser("schema", help="write the campaign JSON Schema for editors")
    p.add_argument("--output", help=f"file to write (default {SCHEMA_PATH})")
    p.add_argument("--check", action="store_true", help="exit 1 if the committed schema is stale")
    p.set_defaults(func=_schema)
    p = sub.add_parser("sample-data", help="generate the sample Merged Customers DuckDB file")
    p.add_argument("db", help="DuckDB file to write")
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--seed", type=int, default=7)
    p.set_defaults(func=_sample_data)
    p = sub.add_parser("summary", help="print a run manifest as a summary")
    p.add_argument("manifest", nargs="?", help="manifest.json of a run")
    p.add_argument(
        "--latest",
        metavar="CAMPAIGN",
        help="the newest local run of a campaign, by its logical date (else when it was due)",
    )
    p.set_defaults(func=_summary)
    p = sub.add_parser(
        "connections",
        help="list the Airflow connections campaigns need; exit 1 if any is missing",
    )
    p.add_argument("campaigns", nargs="*", metavar="CAMPAIGN", help="default: every campaign")
    p.add_argument("--test", action="store_true", help="also call each hook's test_connection()")
    p.set_defaults(func=_connections)
    p = sub.add_parser(
        "retention",
        help="delete run files older than the retention window (what mirror needs is kept)",
    )
    p.add_argument("--dry-run", action="store_true", help="count what would go; delete nothing")
    p.add_argument(
        "--days",
        type=_days,
        help=f"retention window (default ${config.RETENTION_DAYS_ENV}, else"
        f" {config.DEFAULT_RETENTION_DAYS})",
    )
    p.set_defaults(func=_retention)
    p = sub.add_parser(
        "pools",
        help="create the Airflow pools the campaigns' platform exports run in (one per "
        "connection) if missing, and report them",
    )
    p.add_argument("--check", action="store_true", help="only report; exit 1 if one is missing")
    p.set_defaults(func=_pools)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script."""
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
