"""End-to-end benchmark: one campaign DAG, every task in its own process, to all nine live
destinations (the five platforms' contract fakes, S3, GCS, Azure Blob and SFTP servers).

Servers are the test suite's (``tests/servers.py``): moto, gcp-storage-emulator, Azurite and
OpenSSH's sshd (as root; else the demo's asyncssh server). The contract fakes run in a process
of their own (``benchmarks/fakes_server.py``), without rate limits or latency. Each task runs in
a fresh process forked from ``benchmarks/e2e_child.py --serve`` (Airflow imported once, as
Airflow 3's supervisor forks task processes), one at a time in dependency order, its peak RSS
taken from ``os.wait4``. Afterwards what reached each destination is read back from the servers.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from benchmarks.campaigns import e2e_campaign
from benchmarks.pipeline import generate

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
STORE_NAME = "bench-e2e"  # bucket, container and SFTP folder (benchmarks/campaigns.py)
RUN_ID = "bench_e2e"


@dataclass
class Stores:
    """The four file stores' servers (``tests/servers.py`` objects) and the local folder the
    SFTP server's relative paths resolve to."""

    s3: Any
    gcs: Any
    azure: Any
    sftp_conn: dict[str, Any]
    sftp_home: Path

    def prepare(self) -> dict[str, str]:
        """Create the bucket, container and folder; return the connections' env variables."""
        self.s3.create_bucket(STORE_NAME)
        self.gcs.create_bucket(STORE_NAME)
        self.azure.create_container(STORE_NAME)
        folder = self.sftp_home / STORE_NAME
        folder.mkdir(parents=True, exist_ok=True)
        shutil.chown(folder, self.sftp_home.owner(), self.sftp_home.group())
        conns = {
            "s3": self.s3.connection(),
            "gcs": self.gcs.connection(),
            "azure_blob": self.azure.connection(),
            "sftp": self.sftp_conn,
        }
        env = {f"AIRFLOW_CONN_BENCH_{n.upper()}": json.dumps(c) for n, c in conns.items()}
        env["STORAGE_EMULATOR_HOST"] = self.gcs.endpoint
        return env

    def read(self, uri: str) -> bytes:
        """One delivered object, by the URI the export reported."""
        scheme, rest = uri.split("://", 1)
        container, key = rest.split("/", 1)
        if scheme == "s3":
            return self.s3.client().get_object(Bucket=container, Key=key)["Body"].read()
        if scheme == "gs":
            return self.gcs.client().bucket(container).blob(key).download_as_bytes()
        if scheme == "wasb":
            return self.azure.client().get_container_client(container).download_blob(key).readall()
        return (self.sftp_home / rest.split("/~/", 1)[1]).read_bytes()

    def listing(self, folder: str) -> dict[str, int]:
        """Object name -> size under a delivery folder (a URI ending in '/')."""
        scheme, rest = folder.split("://", 1)
        container, prefix = rest.split("/", 1)
        if scheme == "s3":
            pages = self.s3.client().get_paginator("list_objects_v2")
            return {
                o["Key"].removeprefix(prefix): o["Size"]
                for p in pages.paginate(Bucket=container, Prefix=prefix)
                for o in p.get("Contents", [])
            }
        if scheme == "gs":
            blobs = self.gcs.client().list_blobs(container, prefix=prefix)
            return {b.name.removeprefix(prefix): b.size for b in blobs}
        if scheme == "wasb":
            client = self.azure.client().get_container_client(container)
            blobs = client.list_blobs(name_starts_with=prefix)
            return {b.name.removeprefix(prefix): b.size for b in blobs}
        local = self.sftp_home / rest.split("/~/", 1)[1]
        return {
            str(p.relative_to(local)): p.stat().st_size for p in local.rglob("*") if p.is_file()
        }


@contextlib.contextmanager
def start_stores(log_dir: Path) -> Iterator[Stores]:
    """moto (authentication on), gcp-storage-emulator, Azurite and an SFTP server."""
    from servers import SSHD, start_azurite, start_gcs, start_moto, start_sshd, stop_sshd

    with contextlib.ExitStack() as stack:
        s3 = start_moto(log_dir)
        stack.callback(s3.server.stop)
        gcs = start_gcs(log_dir)
        stack.callback(gcs.server.stop)
        azure = start_azurite(log_dir)
        stack.callback(azure.server.stop)
        if os.geteuid() == 0 and SSHD.exists():
            base = Path(tempfile.mkdtemp(prefix="campaign_sync_bench_sshd_", dir="/tmp"))
            sftp = start_sshd(base)
            stack.callback(stop_sshd, sftp)
            yield Stores(s3, gcs, azure, sftp.connection(), sftp.home)
        else:  # sshd needs root and a system user: the demo's in-process server instead
            sys.path.insert(0, str(HERE.parent / "scripts"))
            from demo_servers import sftp_server

            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench_sftp_")))
            conn = stack.enter_context(sftp_server(root))
            yield Stores(s3, gcs, azure, conn, root)


class Fakes:
    """The contract fakes' process (``benchmarks/fakes_server.py``)."""

    def __init__(self, log_dir: Path) -> None:
        self.log = log_dir / "fakes.log"
        with self.log.open("wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, str(HERE / "fakes_server.py")],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
            )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            self.close()
            raise RuntimeError(f"fakes did not start: {self.log.read_text()[-2000:]}")
        self.env = {
            f"AIRFLOW_CONN_BENCH_{name.upper()}": json.dumps({"conn_type": name, **fields})
            for name, fields in json.loads(line).items()
        }

    def report(self) -> dict[str, Any]:
        """Rows accepted per audience and contract errors, per platform; the fakes stop."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("report\n")
        self.proc.stdin.flush()
        report: dict[str, Any] = json.loads(self.proc.stdout.readline())
        self.proc.wait(timeout=60)
        return report

    def close(self) -> None:
        """Kill the process if it still runs."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class TaskProcesses:
    """``e2e_child.py --serve``: Airflow imported once, a forked process per task (as Airflow
    3's supervisor starts task processes on Linux)."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.log_dir = log_dir
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "e2e_child.py"), "--serve", str(log_dir)],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the task server did not start ({self.proc.wait()})")
        self.import_s = float(json.loads(line)["import_s"])

    def run(self, argv: list[str]) -> dict[str, Any]:
        """One task in a fresh forked process; its report with ``wall_s`` and ``maxrss_mb``."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(argv) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the task server exited ({self.proc.wait()})")
        report: dict[str, Any] = json.loads(line)
        if report["exit"] != 0:
            raise RuntimeError(f"task {argv[1]} failed ({report['exit']}):\n{report['log_tail']}")
        return report

    def close(self) -> None:
        """End the server (stdin closed) and wait for it."""
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def task_order(plan: Any) -> list[str]:
    """Every task of the campaign's DAG in an order its dependencies allow, as one worker slot
    would run them: the audience, then each group's projection and exports, then the manifest."""
    from campaign_sync.layout import RunLayout

    order = [RunLayout.BUILD_AUDIENCE]
    for group in plan.groups:
        order.append(RunLayout.project_task_id(group.group_id))
        order += [RunLayout.export_task_id(group.group_id, d) for d in group.destinations]
    return [*order, RunLayout.WRITE_MANIFEST]


def task_rows(kind: str, result: dict[str, Any]) -> int:
    """The rows a task handled, from its return value."""
    if kind == "export":
        return int(result["rows_sent"])
    if kind == "project":
        return int(result["members"])
    return int(result["audience_size"])


def delivered(
    manifest: dict[str, Any], fakes: dict[str, Any], stores: Stores
) -> dict[str, dict[str, Any]]:
    """Per destination: rows the manifest records as sent, and what the server holds (rows
    the fake accepted into the audience; files, bytes and the marker's rows read back)."""
    out: dict[str, dict[str, Any]] = {}
    for sub in manifest["sub_audiences"].values():
        for group in sub["treatment_groups"].values():
            for name, dest in group["destinations"].items():
                row = out.setdefault(
                    name, {"type": dest["type"], "rows_sent": 0, "received": 0, "files": 0,
                           "bytes": 0, "audiences": 0}
                )  # fmt: skip
                row["rows_sent"] += dest["rows_sent"]
                if dest["type"] in fakes:
                    audience = dest["location"].split(":", 1)[1]
                    row["received"] += fakes[dest["type"]]["added"].get(audience, 0)
                    row["audiences"] += 1
                    continue
                marker = json.loads(stores.read(dest["marker"]))
                listing = stores.listing(dest["location"])
                names = {f["name"].rsplit("/", 1)[1] for f in marker["files"]}
                marker_name = dest["marker"].rsplit("/", 1)[1]
                if set(listing) != names | {marker_name}:
                    raise AssertionError(f"{name}: the folder holds {sorted(listing)}")
                row["received"] += marker["rows"]
                row["files"] += len(names)
                row["bytes"] += sum(listing[n] for n in names)
    return out


def run_e2e(
    work: Path, rows: int, stores: Stores | None = None, *, memory_limit: str | None = None
) -> dict[str, Any]:
    """The campaign at ``rows`` customers end to end (reusing ``customers_<rows>.duckdb``);
    ``stores`` are started servers to use (the tests'), else they are started here;
    ``memory_limit`` is the tasks' DuckDB limit (None: the deployment's default)."""
    started = time.perf_counter()
    # The Azure SDK logs every request's headers at INFO (setup and read-back here).
    logging.getLogger("azure").setLevel(logging.WARNING)
    db = work / "data" / f"customers_{rows}.duckdb"
    generated = generate(db, rows)
    base = work / "e2e"
    shutil.rmtree(base, ignore_errors=True)
    folders = {n: base / n for n in ("campaigns", "staging", "outputs", "xcom", "logs")}
    for folder in folders.values():
        folder.mkdir(parents=True)
    # Several files a destination at the larger sizes, one file at a smoke test's.
    campaign = e2e_campaign(max_rows_per_file=max(10_000, rows // 10))
    (folders["campaigns"] / "bench_e2e.yaml").write_text(yaml.safe_dump(campaign))
    env = dict(os.environ)
    env.update(
        {
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "CAMPAIGN_SYNC_CAMPAIGNS_DIR": str(folders["campaigns"]),
            "CAMPAIGN_SYNC_STAGING_ROOT": str(folders["staging"]),
            "CAMPAIGN_SYNC_OUTPUT_ROOT": str(folders["outputs"]),
            "CAMPAIGN_SYNC_PARSE_CACHE": "off",
            "CAMPAIGN_SYNC_BENCH_UNPACED": "1",
            "AIRFLOW_CONN_BENCH_DB": json.dumps({"conn_type": "duckdb", "host": str(db)}),
        }
    )
    if memory_limit:
        env["CAMPAIGN_SYNC_DUCKDB_MEMORY_LIMIT"] = memory_limit
    from campaign_sync import config
    from campaign_sync.plan import build_plan
    from campaign_sync.spec.model import Campaign

    plan = build_plan(Campaign.model_validate(campaign))
    order = task_order(plan)
    with contextlib.ExitStack() as stack:
        if stores is None:
            stores = stack.enter_context(start_stores(folders["logs"]))
        env.update(stores.prepare())
        fakes = Fakes(folders["logs"])
        stack.callback(fakes.close)
        env.update(fakes.env)
        launcher = TaskProcesses(env, folders["logs"])
        stack.callback(launcher.close)
        load_start = os.getloadavg()
        logical = datetime.now(UTC).replace(microsecond=0).isoformat()
        tasks: list[dict[str, Any]] = []
        t0 = time.perf_counter()
        for task_id in order:
            r = launcher.run([plan.dag_id, task_id, RUN_ID, logical, str(folders["xcom"])])
            kind = task_id.split(".")[-1].split("_")[0]
            kind = {"build": "build", "write": "manifest"}.get(kind, kind)
            tasks.append(
                {
                    "task": task_id,
                    "kind": kind,
                    "rows": task_rows(kind, r["result"]),
                    "wall_s": r["wall_s"],
                    "task_s": r["task_s"],
                    "setup_s": r["setup_s"],
                    "maxrss_mb": r["maxrss_mb"],
                }
            )
            print("e2e", rows, json.dumps(tasks[-1]), flush=True)
        total = time.perf_counter() - t0
        load_end = os.getloadavg()
        launcher.close()
        fake_report = fakes.report()
        manifest = json.loads(Path(r["result"]["manifest"]).read_text())
        destinations = delivered(manifest, fake_report, stores)
    errors = {n: f["contract_errors"] for n, f in fake_report.items() if f["contract_errors"]}
    if errors:
        raise AssertionError(f"the contract fakes refused requests: {errors}")
    result = {
        "rows": rows,
        "generated": generated,
        "memory_limit": memory_limit or config.duckdb_memory_limit(),
        "dag_id": plan.dag_id,
        "tasks": tasks,
        "total_s": total,
        "import_s": launcher.import_s,
        "load": [load_start, load_end],
        "audience_size": manifest["audience_size"],
        "destinations": destinations,
        "fakes": {
            n: {k: f[k] for k in ("data_requests", "throttled")} for n, f in fake_report.items()
        },
    }
    shutil.rmtree(folders["staging"], ignore_errors=True)
    result["stage_s"] = time.perf_counter() - started
    return result
