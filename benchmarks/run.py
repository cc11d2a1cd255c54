"""make bench: run every benchmark and write BENCHMARKS.md.

    python -m benchmarks.run [--quick] [--out BENCHMARKS.md]

Each comparison is made in the same run: our factory, hand-written DAGs and dag-factory on the
same campaigns; build and project against the one-SELECT ceilings on the same table; and, with
``--before REV``, the same measurements on the code at git revision REV.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmarks import end_to_end, export, parse, pipeline

ROOT = Path(__file__).resolve().parent.parent
IMPORT_TIMEOUT_S = 30.0  # Airflow's default [core] dagbag_import_timeout


def sh(cmd: str) -> str:
    return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip()


def machine() -> dict[str, str]:
    cpu = sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2").strip()
    mem = sh("grep MemTotal /proc/meminfo | awk '{printf \"%.1f GiB\", $2/1048576}'")
    import duckdb
    from airflow import __version__ as airflow_version

    return {
        "cpu": f"{cpu} ({os.cpu_count()} cores visible)",
        "memory": mem,
        "os": platform.platform(),
        "python": platform.python_version(),
        "airflow": airflow_version,
        "duckdb": duckdb.__version__,
        "commit": sh(f"git -C {ROOT} rev-parse --short HEAD") or "unknown",
    }


def uptime() -> str:
    return sh("uptime").split("load average:")[-1].strip()


def fmt(values: list[float], unit: str = "s", digits: int = 2) -> str:
    """median (min-max)"""
    if not values:
        return "n/a"
    med = statistics.median(values)
    if len(values) == 1:
        return f"{med:.{digits}f} {unit}"
    return f"{med:.{digits}f} {unit} ({min(values):.{digits}f}-{max(values):.{digits}f})"


@contextlib.contextmanager
def code_at(rev: str | None, work: Path) -> Iterator[str | None]:
    """Children import campaign_sync from git revision ``rev`` (None: this checkout)."""
    if rev is None:
        yield None
        return
    target = work / "before"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev, "plugins", "dags"],
        capture_output=True,
        check=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(target / "plugins"), str(ROOT)] + ([old] if old else [])
    )
    old_dag_file = parse.OURS_DAG_FILE
    parse.OURS_DAG_FILE = target / "dags" / "campaign_sync_dags.py"
    try:
        yield sh(f"git -C {ROOT} rev-parse --short {rev}")
    finally:
        parse.OURS_DAG_FILE = old_dag_file
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old


# --- report ----------------------------------------------------------------------------------


def parse_section(res: dict[str, Any], before: dict[str, Any] | None) -> list[str]:
    out = [
        "## Parse (DagBag)",
        "",
        "One dags folder per variant, N campaigns of 32 tasks each (build_audience, 3 "
        "sub-audiences x 2 treatment groups x (project + 4 exports), write_manifest). Each "
        "figure is `DagBag(dag_folder)` in a fresh process (`benchmarks/parse_child.py`), "
        f"median (min-max) of {res['repeat']}; the import of Airflow is not included (it is "
        "the same for all: see *import* below). Before the timed parses, one untimed parse "
        "per variant compiles the modules it imports, as a deployed image ships them "
        "compiled. Hand-written: an `airflow.sdk` loop with "
        "`EmptyOperator`s of the same ids, groups and dependencies. dag-factory 1.1.0: one "
        "YAML per DAG, one loader file, in its own venv.",
        "",
        "| N | campaign-sync | hand-written | dag-factory 1.1.0 | campaign-sync / hand-written |",
        "|---|---|---|---|---|",
    ]
    for n, row in res["sizes"].items():
        ours, hand = row["ours"].values("dagbag_s"), row["hand"].values("dagbag_s")
        df = row.get("dag_factory")
        ratio = statistics.median(ours) / statistics.median(hand)
        out.append(
            f"| {n} | {fmt(ours)} | {fmt(hand)} | {fmt(df.values('dagbag_s')) if df else 'n/a'}"
            f" | {ratio:.2f}x |"
        )
    imports = [r["import_s"] for row in res["sizes"].values() for m in row.values() for r in m.runs]
    rss = {k: m.median("maxrss_mb") for k, m in list(res["sizes"].values())[-1].items()}
    out += [
        "",
        f"Importing Airflow in each child: {fmt(imports)}. Peak RSS of the parse process at the "
        "largest N: " + ", ".join(f"{k} {v:.0f} MB" for k, v in rss.items()) + ".",
        "",
    ]
    if before:
        b = before["sizes"]
        out.append(f"Before (code at {before['rev']}), same run:")
        out.append("")
        out.append("| N | campaign-sync before | campaign-sync now | hand-written |")
        out.append("|---|---|---|---|")
        for n, row in b.items():
            now = res["sizes"].get(n)
            out.append(
                f"| {n} | {fmt(row['ours'].values('dagbag_s'))} | "
                f"{fmt(now['ours'].values('dagbag_s')) if now else 'n/a'} | "
                f"{fmt(now['hand'].values('dagbag_s')) if now else 'n/a'} |"
            )
        out.append("")
    w = res["worker"]
    out += [
        f"Worker parse for one task (`_AIRFLOW_PARSING_CONTEXT_DAG_ID`/`_TASK_ID` set, "
        f"{res['worker_n']} campaigns present): {fmt(w.values('dagbag_s'))}, "
        f"{int(w.median('dags'))} DAG built.",
        "",
    ]
    out += timeout_lines(res)
    return out


def timeout_lines(res: dict[str, Any]) -> list[str]:
    sizes = sorted(res["sizes"])
    if len(sizes) < 2:  # the per-campaign cost needs two folder sizes
        return []
    lo, hi = sizes[-2], sizes[-1]
    t_lo = res["sizes"][lo]["ours"].median("dagbag_s")
    t_hi = res["sizes"][hi]["ours"].median("dagbag_s")
    per = (t_hi - t_lo) / (hi - lo)
    fixed = t_hi - per * hi
    n_max = int((IMPORT_TIMEOUT_S - fixed) / per)
    lines = [
        "### Largest folder within the 30 s `dagbag_import_timeout`",
        "",
        f"Per-campaign cost from N={lo} to N={hi}: {per * 1000:.1f} ms (fixed part "
        f"{fixed:.2f} s), so about **{n_max:,} campaigns** parse within 30 s "
        "(extrapolated; the DAG processor's timeout covers the module import, i.e. this "
        "DagBag time).",
    ]
    direct = res.get("direct")
    if direct:
        warm, cold = direct["m"], direct["cold"]
        lines.append(
            f"Measured directly: {direct['n']:,} campaigns split over {direct['shards']} DAG "
            f"files (`campaign_sync_dags_shard_<i>_of_<n>.py`), each building its share after "
            f"reading the whole folder through the parse cache. Slowest file (what the "
            f"timeout applies to): **{fmt(warm.values('slowest_file_s'))}** with the cache "
            f"warm (every parse after the first), {fmt(cold.values('slowest_file_s'))} on the "
            f"first parse (cold cache); all files together "
            f"{fmt(warm.values('dagbag_s'))} warm, {fmt(cold.values('dagbag_s'))} cold; "
            f"{int(warm.median('dags')):,} DAGs, {int(warm.median('import_errors'))} import "
            "errors."
        )
    lines.append("")
    return lines


def pipeline_section(results: list[dict[str, Any]], before: list[dict[str, Any]]) -> list[str]:
    out = [
        "## Build and project, 5 platforms",
        "",
        "One campaign, one group of every customer, sent to Klaviyo, Attentive, Criteo, TikTok "
        "and Facebook (24 attributes; 14 hashed). Each task runs in its own process "
        "(`benchmarks/task_child.py`: the functions `build_audience` and `project_group` the "
        "operators call); *task* is the function's time, *RSS* the process's peak (`ru_maxrss`"
        ", Airflow imported). Ceilings (`benchmarks/ceiling.py`), same table, same run, whole "
        "process: *simple* is the issue's one-SELECT reference (trim/lowercase e-mail, digits "
        "of phone, 4 SHA-256, no validation); *normalizers* is one SELECT of campaign-sync's "
        "own normalizer SQL for the same 24 attributes (the same normalization and hashing as "
        "projection, without staging or per-destination files). DuckDB memory limit: the tasks' "
        "default `CAMPAIGN_SYNC_DUCKDB_MEMORY_LIMIT` (640MB; older code, with --before, its "
        "own default), 1GB for the ceilings.",
        "",
        "| customers | code | build_audience | project | build + project | throughput |"
        " vs simple ceiling | vs normalizers ceiling | RSS build / project |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    ceilings = {r["rows"]: r["runs"] for r in results}
    for label, group in (("now", results), ("before", before)):
        for r in group:
            runs = {**r["runs"], **{k: v for k, v in ceilings[r["rows"]].items() if "ceil" in k}}
            b = [x["task_s"] for x in runs["build"]]
            p = [x["task_s"] for x in runs["project"]]
            total = [x + y for x, y in zip(b, p, strict=True)]
            simple = statistics.median(x["wall_s"] for x in runs["ceiling_simple"])
            norm = statistics.median(x["wall_s"] for x in runs["ceiling_normalizers"])
            tot = statistics.median(total)
            rows = r["rows"]
            rss_b = max(x["maxrss_mb"] for x in runs["build"])
            rss_p = max(x["maxrss_mb"] for x in runs["project"])
            out.append(
                f"| {rows:,} | {label if label == 'now' else r.get('rev', 'before')} | {fmt(b)} "
                f"| {fmt(p)} | {fmt(total)} | {rows / tot / 1e6:.2f} M rows/s | "
                f"{simple / tot:.0%} | {norm / tot:.0%} | {rss_b:.0f} / {rss_p:.0f} MB |"
            )
    out += ["", "Ceilings (whole process, median (min-max)):", ""]
    out += ["| customers | simple | normalizers | RSS simple / normalizers |", "|---|---|---|---|"]
    for r in results:
        runs = r["runs"]
        out.append(
            f"| {r['rows']:,} | {fmt([x['wall_s'] for x in runs['ceiling_simple']])} | "
            f"{fmt([x['wall_s'] for x in runs['ceiling_normalizers']])} | "
            f"{max(x['maxrss_mb'] for x in runs['ceiling_simple']):.0f} / "
            f"{max(x['maxrss_mb'] for x in runs['ceiling_normalizers']):.0f} MB |"
        )
    if len(results) > 1:
        a, z = results[0], results[-1]
        pa = statistics.median(x["task_s"] for x in a["runs"]["project"])
        pz = statistics.median(x["task_s"] for x in z["runs"]["project"])
        out += [
            "",
            f"Project grows {pz / pa:.1f}x for {z['rows'] / a['rows']:.0f}x rows "
            f"({a['rows']:,} -> {z['rows']:,}).",
        ]
    out.append("")
    return out


def sustained_rows_per_s(r: dict[str, Any]) -> float:
    """Rows per second the platform's limits allow over time: full batches at the tightest
    window's rate."""
    return r["batch_rows"] * min(n / w for n, w in r["limits"])


def export_section(results: list[dict[str, Any]], latency: float) -> list[str]:
    out = [
        "## API export to the contract servers",
        "",
        f"Each platform's contract fake (`tests/fakes/`) runs in a process of its own "
        f"(`benchmarks/fake_server.py`), answers its data calls after {latency * 1000:.0f} ms "
        "and refuses, with its own limit signal, any call past the platform's published limits; "
        "the export (`benchmarks/export_child.py`) is the kit's "
        "`PlatformExportOperator.deliver` (add mode, a fresh audience), timed whole "
        "(connection, audience creation, sync plan, batches, checkpoints). Two ceilings: "
        "*sustained*, full batches at the tightest window's rate; *this run*, the least time "
        "the limits allow for this many calls with any number in flight, bursts included "
        "(`benchmarks/export.py:ceiling_seconds`).",
        "",
        "| platform | rows | batches (rows each) | published limits | time | rows/s | "
        "sustained ceiling | % | this-run ceiling | % | 429s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        limits = ", ".join(f"{n}/{w:g}s" for n, w in r["limits"])
        sustained = sustained_rows_per_s(r)
        out.append(
            f"| {r['platform']} | {r['delivered']:,} | {r['batches']} ({r['batch_rows']:,}) | "
            f"{limits} | {r['seconds']:.2f} s | {r['rows_per_s']:,.0f} | {sustained:,.0f} | "
            f"{r['rows_per_s'] / sustained:.0%} | {r['ceiling_rows_per_s']:,.0f} | "
            f"{r['rows_per_s'] / r['ceiling_rows_per_s']:.0%} | {r['http_429']} |"
        )
    out += [
        "",
        "Where the time goes: *first call*, from the start of `deliver` to the first data "
        "call's arrival at the fake; *calls/s*, data calls a second from the first arrival to "
        "the last (the steady state), against the tightest window's rate; CPU per batch of the "
        "export's process and of the fake's (user + system); full garbage collections in the "
        "export while it ran (each holds the GIL).",
        "",
        "| platform | in flight | export's limits | first call | calls/s | % | export CPU/batch | "
        "fake CPU/batch | full GCs (longest) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        tightest = min(n / w for n, w in r["limits"])
        hook = ", ".join(f"{n}/{w + r['held_up_s']:g}s" for n, w in r["hook_limits"])
        rate = r.get("calls_per_s")
        calls = "" if rate is None else f"{rate:.2f} | {rate / tightest:.0%}"
        batches = max(1, r["batches"])
        out.append(
            f"| {r['platform']} | {r['in_flight']} | {hook} | {r['first_call_s']:.2f} s | "
            f"{calls or ' | '} | {r['export_cpu_s'] / batches * 1000:.0f} ms | "
            f"{r['fake_cpu_s'] / batches * 1000:.0f} ms | "
            f"{r['gc_full']} ({r['gc_full_max_s'] * 1000:.0f} ms) |"
        )
    out.append("")
    return out


def e2e_section(r: dict[str, Any]) -> list[str]:
    """The end-to-end run: per task, totals, and what reached each destination."""
    tasks = r["tasks"]
    load = ", ".join(f"{x:.2f}" for x in r["load"][0])
    out = [
        "## End to end, all nine destinations",
        "",
        f"One campaign DAG (`benchmarks/campaigns.py:e2e_campaign`) over all {r['rows']:,} "
        "customers: at-risk high-value customers (10% control; e-mail to Klaviyo and SFTP; paid "
        "social to TikTok and Facebook), active customers (10% control; SMS to Attentive and "
        "S3; display to Criteo, GCS and Azure Blob), everyone else a holdout control group. "
        "Every task of the factory-built DAG runs in a fresh process, one at a time in "
        "dependency order: as Airflow 3's task supervisor does on Linux, a server process "
        "imports Airflow once and forks each task process (`benchmarks/e2e_child.py`), which "
        "parses the DAG for its task and runs the operator's own `execute`; XComs are the "
        "earlier tasks' return values (JSON files; no metadata database). *Wall* is the "
        "forked process from fork to exit (DAG parse included), *execute* the operator "
        "alone, *RSS* the process's peak (`os.wait4`), *rows* the audience, the group's "
        f"members or the rows sent. The tasks' DuckDB memory limit: {r['memory_limit']}. "
        "Servers as in the test suite: moto, gcp-storage-emulator, "
        "Azurite, OpenSSH sshd; the five contract fakes in one process of their own with their "
        "contract checks on, **no rate limits and no added latency**, and the hooks' own "
        "pacing off: this measures our side, not the platforms' limits (the API export "
        "section measures those).",
        "",
        "| task | rows | wall | execute | peak RSS |",
        "|---|---|---|---|---|",
    ]
    for t in tasks:
        out.append(
            f"| {t['task']} | {t['rows']:,} | {t['wall_s']:.1f} s | {t['task_s']:.1f} s | "
            f"{t['maxrss_mb']:.0f} MB |"
        )
    largest = max(tasks, key=lambda t: t["maxrss_mb"])
    setup = statistics.median(t["setup_s"] for t in tasks)
    out += [
        f"| **all {len(tasks)} tasks** | | **{r['total_s']:.1f} s** | "
        f"{sum(t['task_s'] for t in tasks):.1f} s | **{largest['maxrss_mb']:.0f} MB** "
        f"({largest['task']}) |",
        "",
        f"Each task process spends {setup:.2f} s (median) before `execute` (parsing the DAG; "
        f"more for platform exports, which import their hook there); the task server's import "
        f"of Airflow took {r['import_s']:.1f} s, once. The whole stage (servers, tasks, "
        f"read-back) took {r['stage_s'] / 60:.1f} min. Load average at the start of the "
        f"tasks: {load}.",
        "",
        "Delivered (rows sent: the run's manifest; received: read back from the servers, "
        "the rows each fake accepted into the run's audiences, and for the file stores the "
        "success markers' rows, their files listed and sized on the server):",
        "",
        "| destination | type | rows sent | received | files | bytes |",
        "|---|---|---|---|---|---|",
    ]
    for name, d in r["destinations"].items():
        files = f"{d['files']}" if d["files"] else "-"
        size = f"{d['bytes'] / 1e6:,.1f} MB" if d["bytes"] else "-"
        out.append(
            f"| {name} | {d['type']} | {d['rows_sent']:,} | {d['received']:,} | {files} | {size} |"
        )
    out.append("")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "BENCHMARKS.md"))
    parser.add_argument("--work", default=str(ROOT / ".bench" / "work"))
    parser.add_argument("--parse-sizes", default="10,100,500")
    parser.add_argument("--parse-repeat", type=int, default=3)
    parser.add_argument("--parse-direct", type=int, default=0, help="also parse N directly")
    parser.add_argument("--parse-shards", type=int, default=4)
    parser.add_argument("--rows", default="1000000,10000000")
    parser.add_argument("--pipeline-repeat", type=int, default=3)
    parser.add_argument("--pipeline-repeat-large", type=int, default=1)
    parser.add_argument("--export-latency", type=float, default=0.05)
    parser.add_argument("--export-scale", type=float, default=1.0)
    parser.add_argument("--before", default=None, help="git revision to measure as 'before'")
    parser.add_argument("--dag-factory-python", default=str(ROOT / ".bench" / "df" / "bin/python"))
    parser.add_argument("--e2e-rows", type=int, default=10_000_000)
    # The tasks' DuckDB memory limit; '' keeps the deployment default (640MB).
    parser.add_argument("--e2e-memory-limit", default="")
    parser.add_argument("--skip", default="", help="comma list of parse,pipeline,export,e2e")
    parser.add_argument("--json", default=str(ROOT / ".bench" / "results.json"))
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    skip = set(filter(None, args.skip.split(",")))
    started = time.time()
    load_start = uptime()
    info = machine()
    sizes = [int(x) for x in args.parse_sizes.split(",")]
    df_python = args.dag_factory_python if Path(args.dag_factory_python).exists() else None
    raw: dict[str, Any] = {}
    sections: list[str] = []

    if "parse" not in skip:
        print("parse ...", flush=True)
        res = parse.parse_suite(work, sizes, args.parse_repeat, df_python)
        res["repeat"] = args.parse_repeat
        res["worker_n"] = sizes[-1]
        res["worker"] = parse.worker_parse(work, sizes[-1], args.parse_repeat)
        if args.parse_direct:
            res["direct"] = parse.direct(work, args.parse_direct, args.parse_shards)
        before_parse = None
        if args.before:
            with code_at(args.before, work) as rev:
                before_parse = parse.parse_suite(
                    work / "before_parse", [sizes[-1]], args.parse_repeat, None
                )
                before_parse["rev"] = rev
        sections += parse_section(res, before_parse)
        raw["parse"] = {n: {k: m.runs for k, m in row.items()} for n, row in res["sizes"].items()}

    if "pipeline" not in skip:
        results, before = [], []
        for i, rows in enumerate(int(x) for x in args.rows.split(",")):
            print(f"pipeline {rows} ...", flush=True)
            repeat = args.pipeline_repeat if i == 0 else args.pipeline_repeat_large
            results.append(pipeline.pipeline_suite(work, rows, repeat, "1GB"))
            if args.before and i == 0:
                with code_at(args.before, work) as rev:
                    b = pipeline.pipeline_suite(work, rows, repeat, "1GB", ceilings=False)
                    b["rev"] = rev
                    before.append(b)
            sections_now = sections + pipeline_section(results, before)
            raw["pipeline"] = results + before
            write(args, info, load_start, started, sections_now, raw, final=False)
        sections += pipeline_section(results, before)

    if "export" not in skip:
        print("export ...", flush=True)
        ex = export.export_suite(work, args.export_latency, args.export_scale)
        sections += export_section(ex, args.export_latency)
        raw["export"] = ex

    if "e2e" not in skip:
        print(f"e2e {args.e2e_rows} ...", flush=True)
        try:
            e2e = end_to_end.run_e2e(
                work, args.e2e_rows, memory_limit=args.e2e_memory_limit or None
            )
        except Exception as exc:  # the sections measured before it are kept
            first = str(exc).strip().splitlines()[0][:300]
            sections += ["## End to end, all nine destinations", "", f"**Failed**: {first}", ""]
            raw["e2e"] = {"error": str(exc)}
        else:
            sections += e2e_section(e2e)
            raw["e2e"] = e2e

    write(args, info, load_start, started, sections, raw, final=True)


def write(
    args: argparse.Namespace,
    info: dict[str, str],
    load_start: str,
    started: float,
    sections: list[str],
    raw: dict[str, Any],
    *,
    final: bool,
) -> None:
    """Write BENCHMARKS.md (after every section, so a long run keeps what it measured)."""
    elapsed = time.time() - started
    head = [
        "# BENCHMARKS",
        "",
        "Written by `make bench` (`python -m benchmarks.run`); every comparison below was "
        "measured side by side in the same run. Figures are medians with (min-max).",
        "",
        "| machine | |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in info.items()],
        f"| load average (1, 5, 15 min) at start | {load_start} |",
        f"| load average at end | {uptime()} |",
        f"| run time | {elapsed / 60:.1f} min |",
        "",
        "Command line: `" + " ".join(["python -m benchmarks.run", *sys.argv[1:]]) + "`",
        "",
    ]
    extra = ROOT / "benchmarks" / "NOTES.md"
    notes = [extra.read_text()] if extra.exists() and final else []
    Path(args.out).write_text("\n".join(head + sections + notes) + "\n")
    Path(args.json).write_text(json.dumps(raw, default=str, indent=1))
    print(f"wrote {args.out} in {elapsed / 60:.1f} min", flush=True)


if __name__ == "__main__":
    main()
