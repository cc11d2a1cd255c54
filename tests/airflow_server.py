"""A real Airflow for the tests, started by ``scripts/airflow_ui.py`` (the launcher ``make ui``
runs), driven only through the public REST API v2 with a JWT from ``/auth/token``.

Airflow runs with LocalExecutor on its own SQLite database, a temporary AIRFLOW_HOME, free ports
(API, worker and triggerer log servers) and a PATH without this venv (as from a plain shell: the
launcher puts the venv first). Stopping sends SIGTERM to the launcher, which stops every process
below it; ``stop`` then checks that none of them survived and that the port is closed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import requests
from helpers import write_campaign
from storage_helpers import free_port

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
LAUNCHER = REPO / "scripts" / "airflow_ui.py"
PLAIN_PATH = "/usr/local/bin:/usr/bin:/bin"
SIMPLE_AUTH_MANAGER = (
    "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
)
FINISHED = {"success", "failed"}


def airflow_env(home: Path, port: int, **extra: str) -> dict[str, str]:
    """Environment of a test Airflow: a minimal, plain shell's plus Airflow's settings."""
    env = {
        "HOME": os.environ.get("HOME", str(home)),
        "LANG": "C.UTF-8",
        "PATH": PLAIN_PATH,
        "AIRFLOW_HOME": str(home / "airflow"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__CORE__FERNET_KEY": os.environ["AIRFLOW__CORE__FERNET_KEY"],
        # Few workers and one API worker: two cores are shared with the rest of the suite.
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        # Both log servers default to fixed ports (8793, 8794): another Airflow may hold them.
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
        "CAMPAIGN_SYNC_CAMPAIGNS_DIR": str(home / "campaigns"),
        "CAMPAIGN_SYNC_STAGING_ROOT": str(home / "staging"),
        "CAMPAIGN_SYNC_OUTPUT_ROOT": str(home / "outputs"),
    }
    env.update(extra)
    return env


@dataclass
class AirflowServer:
    """A running test Airflow: its launcher process, port, home and logs."""

    process: subprocess.Popen[bytes]
    port: int
    home: Path
    output: Path
    username: str = ""
    password: str = ""
    _token: str = field(default="", repr=False)

    @property
    def url(self) -> str:
        """Base URL of the API server."""
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, chars: int = 4000) -> str:
        """The end of the launcher's and the components' output, for failure messages."""
        parts = []
        for path in [self.output, *sorted((self.home / "logs").glob("*.log"))]:
            if path.exists():
                parts.append(f"--- {path.name}\n{path.read_text(errors='replace')[-chars:]}")
        return "\n".join(parts)

    # --- REST API --------------------------------------------------------------------------
    def token(self) -> str:
        """A JWT from ``POST /auth/token``."""
        if not self._token:
            response = requests.post(
                f"{self.url}/auth/token",
                json={"username": self.username, "password": self.password},
                timeout=30,
            )
            assert response.status_code == 201, response.text
            self._token = response.json()["access_token"]
        return self._token

    def api(self, method: str, path: str, *, expect: int | None = 200, **kwargs: Any) -> Any:
        """Call ``/api/v2{path}``; check the status (unless ``expect`` is None), return JSON."""
        headers = {"Authorization": f"Bearer {self.token()}", "Accept": "application/json"}
        deadline = time.monotonic() + 60
        while True:
            response = requests.request(
                method, f"{self.url}/api/v2{path}", headers=headers, timeout=60, **kwargs
            )
            # SQLite lets one writer at a time: a request that waited past its busy timeout
            # behind the scheduler is rolled back and answered 500 "Database error". Ask again.
            locked = response.status_code == 500 and "Database error" in response.text
            if not locked or time.monotonic() > deadline:
                break
            time.sleep(1)
        if expect is not None:
            assert response.status_code == expect, (
                f"{method} {path}: {response.status_code} {response.text[:2000]}"
            )
        if not response.content:
            return None
        return response.json() if "json" in response.headers.get("content-type", "") else None

    def wait_for(self, what: str, check: Any, timeout: float, interval: float = 0.5) -> Any:
        """Poll ``check()`` until it returns something truthy."""
        deadline = time.monotonic() + timeout
        while True:
            result = check()
            if result:
                return result
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}\n{self.log_tail()}")
            assert self.process.poll() is None, f"Airflow stopped\n{self.log_tail()}"
            time.sleep(interval)

    def wait_dag(self, dag_id: str, timeout: float = 120) -> dict[str, Any]:
        """The DAG once the dag-processor has written it."""

        def parsed() -> dict[str, Any] | None:
            found = self.api("GET", f"/dags/{dag_id}", expect=None)
            return found if found and found.get("dag_id") == dag_id else None

        return self.wait_for(f"DAG {dag_id} to be parsed", parsed, timeout)

    def unpause(self, dag_id: str) -> None:
        """Unpause a DAG (waiting until it is parsed)."""
        self.wait_dag(dag_id)
        self.api("PATCH", f"/dags/{dag_id}", json={"is_paused": False})

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None) -> str:
        """Trigger a run now; returns its run id."""
        run = self.api(
            "POST", f"/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf or {}}
        )
        return run["dag_run_id"]

    def create_backfill(self, body: dict[str, Any], timeout: float = 60) -> dict[str, Any]:
        """``POST /backfills``, again while it answers 503: Airflow refuses to create a backfill
        while another component holds SQLite's write lock ("not supported on SQLite under
        concurrent access"), and cleans up the partial backfill itself."""
        deadline = time.monotonic() + timeout
        while True:
            headers = {"Authorization": f"Bearer {self.token()}"}
            response = requests.post(
                f"{self.url}/api/v2/backfills", json=body, headers=headers, timeout=60
            )
            if response.status_code != 503 or time.monotonic() > deadline:
                assert response.status_code == 200, f"{response.status_code} {response.text}"
                return response.json()
            time.sleep(1)

    def run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        """One DAG run."""
        return self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}")

    def task_instances(self, dag_id: str, run_id: str) -> dict[str, dict[str, Any]]:
        """The run's task instances by task id."""
        found = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")
        return {ti["task_id"]: ti for ti in found["task_instances"]}

    def wait_run(self, dag_id: str, run_id: str, timeout: float = 180) -> dict[str, Any]:
        """The run once it has finished (success or failed)."""

        def finished() -> dict[str, Any] | None:
            run = self.run(dag_id, run_id)
            return run if run["state"] in FINISHED else None

        try:
            return self.wait_for(f"run {dag_id} {run_id}", finished, timeout)
        except AssertionError:
            states = {t: ti["state"] for t, ti in self.task_instances(dag_id, run_id).items()}
            raise AssertionError(f"run {dag_id} {run_id} unfinished: {states}") from None

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int) -> list[str]:
        """One try's log, one string per event."""
        found = self.api(
            "GET",
            f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}",
            params={"full_content": "true"},
        )
        content = found["content"]
        return [json.dumps(item) if not isinstance(item, str) else item for item in content]

    # --- lifecycle -------------------------------------------------------------------------
    def tree(self) -> dict[psutil.Process, str]:
        """The launcher's living descendants, with their command lines (or titles)."""
        try:
            children = psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return {}
        found = {}
        for process in children:
            with suppress(psutil.Error):
                if _alive(process):
                    found[process] = " ".join(process.cmdline()).strip()
        return found

    def stop(self, timeout: float = 60) -> list[str]:
        """SIGTERM the launcher, wait for it; returns what survived it (should be nothing)."""
        watched = []
        for process in self.tree():
            with suppress(psutil.Error):
                watched.append((process, process.create_time()))
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        survivors = []
        for process, created in watched:
            with suppress(psutil.Error):
                if _alive(process) and process.create_time() == created:
                    survivors.append(f"{process.pid} {' '.join(process.cmdline()[:3])}")
                    process.kill()
        return survivors


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def start_airflow(
    home: Path,
    env: dict[str, str],
    *,
    components: bool,
    demo_servers: bool = False,
    timeout: float = 240,
    launcher: list[str] | None = None,
) -> AirflowServer:
    """Start the launcher (``scripts/airflow_ui.py``, or ``launcher``: a script and its
    arguments) and wait until the API answers its health check."""
    port = int(env["AIRFLOW__API__PORT"])
    output = home / "launcher.log"
    argv = [str(BIN / "python"), str(LAUNCHER)]
    if launcher:
        argv = [str(BIN / "python"), *launcher]
    elif components:
        argv += ["--components", "--log-dir", str(home / "logs")]
    if not demo_servers and not launcher:
        argv.append("--no-demo-servers")
    with output.open("wb") as out:
        process = subprocess.Popen(
            argv, env=env, cwd=str(home), stdout=out, stderr=subprocess.STDOUT
        )
    server = AirflowServer(process, port, home, output)
    try:
        server.wait_for(
            "the API server's health check",
            lambda: "Stop with Ctrl-C" in output.read_text(errors="replace") and _healthy(port),
            timeout,
            interval=1,
        )
    except BaseException:
        server.stop()
        raise
    return server


def _healthy(port: int) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=5).ok
    except requests.RequestException:
        return False


# --- the scheduler tests' world: fakes, sources, connections, a campaigns folder -----------------

SAMPLE_ROWS = 4_000
MUTABLE_ROWS = 2_000
USER, PASSWORD = "campaign_tester", "campaign-tester-password"


def ensure_pools(server: AirflowServer, doc: dict[str, Any] | str) -> dict[str, int]:
    """Create a campaign document's missing pools through the REST API; returns every pool it
    uses with its slots (nothing for a document that is not a valid campaign)."""
    import yaml
    from campaign_sync.pools import needed_pools
    from campaign_sync.spec.model import Campaign
    from pydantic import ValidationError

    try:
        data = yaml.safe_load(doc) if isinstance(doc, str) else doc
        campaign = Campaign.model_validate(data)
    except (ValidationError, yaml.YAMLError):
        return {}  # a broken file: the dag-processor shows its error
    slots = {}
    for name, spec in needed_pools([campaign]).items():
        found = server.api("GET", f"/pools/{name}", expect=None)
        if not found or found.get("name") != name:
            body = {"name": name, "slots": spec.slots, "description": spec.description}
            found = server.api("POST", "/pools", json=body, expect=201)
        slots[name] = found["slots"]
    return slots


@dataclass
class RealAirflow:
    """A running Airflow plus what its campaigns deliver to, for the scheduler tests.

    Connections (environment variables of the Airflow processes): ``sched_sample`` (a DuckDB
    sample of ``SAMPLE_ROWS`` customers, read only), ``sched_mutable`` (``MUTABLE_ROWS``
    customers a test may change between runs), ``sched_<platform>`` for each contract fake and
    ``sched_s3`` for a moto S3 server with the bucket ``sched-drop``.
    """

    server: AirflowServer
    campaigns: Path
    staging: Path
    fakes: dict[str, Any]
    s3: Any
    mutable_db: Path

    def add_campaign(self, name: str, doc: dict[str, Any] | str) -> Path:
        """Write a campaign file into the folder the dag-processor reads, after creating the
        pools its platform exports run in (through the REST API, as ``campaign-sync pools``
        does in the metadata database): a missing pool would hold them unscheduled."""
        ensure_pools(self.server, doc)
        return write_campaign(self.campaigns, name, doc)

    def ensure_pools(self, doc: dict[str, Any] | str) -> dict[str, int]:
        """Create the campaign's missing pools; returns every pool it uses with its slots."""
        return ensure_pools(self.server, doc)

    def manifest(self, dag_id: str, run_id: str) -> dict[str, Any]:
        """A run's manifest, from the staging folder."""
        from campaign_sync.layout import RunLayout

        path = self.staging / RunLayout(dag_id, run_id).manifest
        return json.loads(path.read_text())


def _fake_connections() -> tuple[dict[str, Any], dict[str, Any]]:
    """Started contract fakes, and ``sched_<platform>`` connections to them."""
    from platform_support import start_fakes

    fakes, platforms = start_fakes()
    # Two attempts per TikTok call: a failing batch fails the try quickly.
    platforms["tiktok_ads"]["extra"]["max_attempts"] = 2
    connections = {f"sched_{n}": {"conn_type": n, **fields} for n, fields in platforms.items()}
    return fakes, connections


def scheduler_env(base: Path, connections: dict[str, Any], **extra: str) -> dict[str, str]:
    """``airflow_env`` with a password login, connections, and a scheduler that picks up new
    campaign files within seconds and tasks at once."""
    passwords = base / "passwords.json"
    passwords.write_text(json.dumps({USER: PASSWORD}))
    return airflow_env(
        base,
        free_port(),
        AIRFLOW__CORE__AUTH_MANAGER=SIMPLE_AUTH_MANAGER,
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=f"{USER}:admin",
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=str(passwords),
        # New campaign files show up within seconds, tasks are picked up at once.
        AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL="5",
        AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL="3",
        AIRFLOW__CORE__MIN_SERIALIZED_DAG_UPDATE_INTERVAL="1",
        AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC="1",
        AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME="0.5",
        **{f"AIRFLOW_CONN_{cid.upper()}": json.dumps(conn) for cid, conn in connections.items()},
        **extra,
    )


def start_real_airflow(base: Path) -> RealAirflow:
    """Fakes, sources and Airflow (api-server, scheduler, dag-processor, triggerer)."""
    from campaign_sync.sample_data import generate_merged_customers
    from servers import start_moto

    (base / "logs").mkdir(parents=True)
    campaigns_dir = base / "campaigns"
    campaigns_dir.mkdir()
    sample, mutable = base / "data" / "sample.duckdb", base / "data" / "mutable.duckdb"
    generate_merged_customers(sample, SAMPLE_ROWS)
    generate_merged_customers(mutable, MUTABLE_ROWS, seed=11)
    fakes, connections = _fake_connections()
    s3 = start_moto(base / "logs")
    s3.create_bucket("sched-drop")
    connections |= {
        "sched_sample": {"conn_type": "duckdb", "host": str(sample)},
        "sched_mutable": {"conn_type": "duckdb", "host": str(mutable)},
        "sched_s3": s3.connection(),
    }
    env = scheduler_env(base, connections, AIRFLOW__CORE__EXECUTOR="LocalExecutor")
    try:
        server = start_airflow(base, env, components=True)
    except BaseException:
        for fake in fakes.values():
            fake.stop()
        s3.server.stop()
        raise
    server.username, server.password = USER, PASSWORD
    return RealAirflow(server, campaigns_dir, base / "staging", fakes, s3, mutable)


def stop_real_airflow(world: RealAirflow) -> list[str]:
    """Stop Airflow, then the fakes and S3; returns the processes that survived Airflow."""
    survivors = world.server.stop()
    for fake in world.fakes.values():
        fake.stop()
    world.s3.server.stop()
    return survivors


# --- the Celery tests' world: scripts/cluster.py -------------------------------------------------

CLUSTER_ROWS = 5_000
CLUSTER = REPO / "scripts" / "cluster.py"


@dataclass
class CeleryCluster:
    """``scripts/cluster.py`` running (CeleryExecutor, two workers, Postgres, Redis, S3
    staging) with the contract fakes; ``info`` is what the launcher wrote (ports, S3, worker
    pids). The sample customers (``CLUSTER_ROWS``) are in Postgres behind ``campaign_sync_sample``.
    """

    server: AirflowServer
    campaigns: Path
    fakes: dict[str, Any]
    info: dict[str, Any]

    def add_campaign(self, name: str, doc: dict[str, Any] | str) -> Path:
        """Write a campaign file into the folder the dag-processor reads, after creating the
        pools its platform exports run in."""
        ensure_pools(self.server, doc)
        return write_campaign(self.campaigns, name, doc)

    def s3(self) -> Any:
        """A boto3 client of the cluster's S3 server."""
        import boto3

        conn = self.info["s3"]
        return boto3.client(
            "s3",
            endpoint_url=conn["extra"]["endpoint_url"],
            region_name="us-east-1",
            aws_access_key_id=conn["login"],
            aws_secret_access_key=conn["password"],
        )

    def staged(self, name: str) -> bytes:
        """A file of the run's staging folder (``RunLayout(...).manifest``, say), from S3."""
        bucket_and_prefix = self.info["staging_root"].split("@", 1)[1]
        bucket, prefix = bucket_and_prefix.split("/", 1)
        key = f"{prefix}/{name}"
        return self.s3().get_object(Bucket=bucket, Key=key)["Body"].read()


def start_celery_cluster(base: Path) -> CeleryCluster:
    """Fakes and the cluster; returns once the REST API answers."""
    (base / "logs").mkdir(parents=True)
    campaigns_dir = base / "campaigns"
    campaigns_dir.mkdir()
    fakes, connections = _fake_connections()
    env = scheduler_env(
        base,
        connections,
        # A killed worker's task is found without heartbeat within seconds, not minutes.
        AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT="20",
        AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL="2",
        AIRFLOW__CELERY__WORKER_CONCURRENCY="2",
        AIRFLOW__CORE__PARALLELISM="8",
    )
    info_file = base / "cluster.json"
    launcher = [str(CLUSTER), "--log-dir", str(base / "logs"), "--info", str(info_file),
                "--sample-rows", str(CLUSTER_ROWS)]  # fmt: skip
    try:
        server = start_airflow(base, env, components=True, launcher=launcher, timeout=360)
    except BaseException:
        for fake in fakes.values():
            fake.stop()
        raise
    server.username, server.password = USER, PASSWORD
    return CeleryCluster(server, campaigns_dir, fakes, json.loads(info_file.read_text()))


def stop_celery_cluster(cluster: CeleryCluster) -> list[str]:
    """Stop the cluster, then the fakes; returns the processes that survived it."""
    survivors = cluster.server.stop()
    for fake in cluster.fakes.values():
        fake.stop()
    return survivors


def scheduler_campaign(
    name: str, groups: list[dict[str, Any]], destinations: dict[str, Any], **more: Any
) -> dict[str, Any]:
    """A campaign document on the real Airflow's sample source: one sub-audience, everyone."""
    return {
        "name": name,
        "source": {"conn_id": "sched_sample", "table": "merged_customers"},
        "retries": {"count": 0},
        "sub_audiences": [{"name": "everyone", "condition": "TRUE", "treatment_groups": groups}],
        "destinations": destinations,
        **more,
    }


def destination_of(manifest: dict[str, Any], group: str, destination: str) -> dict[str, Any]:
    """One destination's entry in a scheduler campaign's manifest (sub-audience everyone)."""
    groups = manifest["sub_audiences"]["everyone"]["treatment_groups"]
    return groups[group]["destinations"][destination]
