"""A distributed Airflow on this machine (``make cluster``): CeleryExecutor, two workers.

    python scripts/cluster.py --log-dir DIR [--info FILE] [--workers 2]

Starts, each on a free loopback port:

- Postgres (Debian ``postgresql``) from ``initdb`` in a temporary folder, as the system user
  ``campaign_sync_pg`` (created with ``useradd`` when missing; Postgres refuses to run as root).
  It holds Airflow's metadata database ``airflow`` and a warehouse database ``warehouse``.
- Redis (Debian ``redis-server``), the Celery broker, without persistence.
- moto's S3 server with the bucket ``campaign-sync-cluster`` (staging:
  ``CAMPAIGN_SYNC_STAGING_ROOT=s3://campaign_sync_cluster_s3@campaign-sync-cluster/staging``)
  and the sample campaign's demo S3 and SFTP servers (``scripts/demo_servers.py``).
- With ``--sample-rows N``: N sample customers in ``warehouse.merged_customers``, and the
  connection ``campaign_sync_sample`` (the sample campaign's source) on that Postgres.
- Airflow: ``db migrate``, then api-server, scheduler, dag-processor, triggerer, and
  ``--workers`` Celery workers (``airflow celery worker --celery-hostname worker-<n>@%h``),
  each a process of its own with its own log-server port and task hostname ``worker-<n>``.

When the REST API answers it prints how to reach the UI and writes ``--info`` (JSON: ports, the
S3 connection, the Postgres URL) for the tests. On Ctrl-C, SIGTERM or the end of its parent it
stops every Airflow process (``airflow_ui.ProcessTree``), then Postgres, Redis and the servers,
and deletes Postgres' folder.
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, closing, contextmanager, suppress
from dataclasses import dataclass
from glob import glob
from pathlib import Path
from typing import Any

PG_USER = "campaign_sync_pg"
STAGING_CONN = "campaign_sync_cluster_s3"
STAGING_BUCKET = "campaign-sync-cluster"
SERVICE_TIMEOUT = 60.0


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_port(name: str, port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + SERVICE_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"{name} exited with {process.returncode}: {log.read_text()[-2000:]}"
            )
        with suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.1)
    raise RuntimeError(f"{name} did not listen on port {port}: {log.read_text()[-2000:]}")


def _stop(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _pg_binary(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(glob(f"/usr/lib/postgresql/*/bin/{name}"))), "")
    if not found:
        raise RuntimeError(f"{name} not found: install Debian's postgresql (make test-servers)")
    return found


def _pg_account() -> dict[str, Any]:
    """Popen arguments to run Postgres as ``PG_USER`` when we are root (it refuses root)."""
    if os.geteuid() != 0:
        return {}
    try:
        pwd.getpwnam(PG_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", PG_USER],
            check=True,
        )
    return {"user": PG_USER, "group": pwd.getpwnam(PG_USER).pw_gid}


@dataclass(frozen=True)
class Postgres:
    """A running Postgres: its port; every role connects as the superuser ``postgres``."""

    port: int

    def url(self, database: str, driver: str = "postgresql+psycopg2") -> str:
        """SQLAlchemy URL of ``database``."""
        return f"{driver}://postgres@127.0.0.1:{self.port}/{database}"

    def connect(self, database: str, user: str = "postgres") -> Any:
        """A psycopg2 connection (autocommit)."""
        import psycopg2

        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user=user, dbname=database)
        conn.autocommit = True
        return conn

    def airflow_connection(self, database: str, user: str = "postgres") -> dict[str, Any]:
        """The Airflow connection (JSON form) of ``database``."""
        return {
            "conn_type": "postgres",
            "host": "127.0.0.1",
            "port": self.port,
            "login": user,
            "schema": database,
        }


@contextmanager
def postgres_server(log_dir: Path, databases: tuple[str, ...] = ()) -> Iterator[Postgres]:
    """A throwaway Postgres (trust auth on loopback, no fsync) with ``databases`` created."""
    account = _pg_account()
    base = Path(tempfile.mkdtemp(prefix="campaign_sync_pg_"))
    if account:
        os.chown(base, pwd.getpwnam(PG_USER).pw_uid, account["group"])
    data, log = base / "data", log_dir / "postgres.log"
    try:
        subprocess.run(
            [_pg_binary("initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
             "--no-sync"],
            check=True, capture_output=True, cwd=base, **account,
        )  # fmt: skip
        port = free_port()
        with log.open("ab") as out:
            process = subprocess.Popen(
                [_pg_binary("postgres"), "-D", str(data), "-p", str(port), "-k", str(base),
                 "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off",
                 "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
                 "-c", "max_connections=200"],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=base,
                start_new_session=True, **account,
            )  # fmt: skip
        try:
            _wait_port("postgres", port, process, log)
            server = Postgres(port)
            deadline = time.monotonic() + SERVICE_TIMEOUT
            while True:  # the port opens a moment before connections are accepted
                try:
                    admin = server.connect("postgres")
                    break
                except Exception:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
            with closing(admin):
                for name in databases:
                    admin.cursor().execute(f'CREATE DATABASE "{name}"')
            yield server
        finally:
            _stop(process, signal.SIGINT)  # SIGINT: Postgres' fast shutdown
    finally:
        shutil.rmtree(base, ignore_errors=True)


@contextmanager
def redis_server(log_dir: Path) -> Iterator[int]:
    """Redis on a free port, without persistence; yields the port."""
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not Path(binary).exists():
        raise RuntimeError("redis-server not found: install Debian's redis-server")
    port, log = free_port(), log_dir / "redis.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--daemonize", "no"],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
    try:
        _wait_port("redis", port, process, log)
        yield port
    finally:
        _stop(process, signal.SIGTERM)


_PG_TYPES = {"VARCHAR": "text", "DATE": "date", "DOUBLE": "double precision",
             "BOOLEAN": "boolean", "TIMESTAMP": "timestamp", "BIGINT": "bigint",
             "INTEGER": "integer"}  # fmt: skip


def copy_duckdb_table(pg: Postgres, database: str, duckdb_path: Path, table: str) -> int:
    """Copy ``table`` from a DuckDB file into ``database`` (same name, same column types) with
    Postgres' COPY; returns the row count."""
    import duckdb

    with tempfile.TemporaryDirectory(prefix="campaign_sync_copy_") as tmp:
        csv = Path(tmp) / f"{table}.csv"
        with closing(duckdb.connect(str(duckdb_path), read_only=True)) as con:
            columns = [(r[0], r[1]) for r in con.execute(f'DESCRIBE "{table}"').fetchall()]
            # NULL unquoted and empty strings quoted: Postgres' CSV COPY tells them apart so.
            con.execute(f"COPY \"{table}\" TO '{csv}' (FORMAT csv, HEADER false, FORCE_QUOTE *)")
        ddl = ", ".join(f'"{name}" {_PG_TYPES[kind]}' for name, kind in columns)
        with closing(pg.connect(database)) as conn, conn.cursor() as cur, csv.open() as data:
            cur.execute(f'DROP TABLE IF EXISTS "{table}"')
            cur.execute(f'CREATE TABLE "{table}" ({ddl})')
            cur.copy_expert(f'COPY "{table}" FROM STDIN WITH (FORMAT csv)', data)
            cur.execute(f'SELECT count(*) FROM "{table}"')
            return int(cur.fetchone()[0])


def load_sample(pg: Postgres, database: str, rows: int, work: Path) -> int:
    """The sample Merged Customers table (``rows`` customers) in ``database``."""
    from campaign_sync.sample_data import generate_merged_customers

    path = work / "merged_customers.duckdb"
    if not path.exists():
        generate_merged_customers(path, rows)
    return copy_duckdb_table(pg, database, path, "merged_customers")


def worker_hostname() -> str:
    """``[core] hostname_callable`` of the cluster's workers: each reports its own name, so task
    instances show which worker ran them although both run on this machine."""
    return os.environ.get("CAMPAIGN_SYNC_WORKER_HOSTNAME") or socket.getfqdn()


def cluster_env(pg: Postgres, redis_port: int, s3: dict[str, Any]) -> dict[str, str]:
    """Airflow settings shared by every component of the cluster."""
    return {
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": pg.url("airflow"),
        "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:{redis_port}/0",
        "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql://postgres@127.0.0.1:{pg.port}/airflow",
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": os.environ.get(
            "AIRFLOW__CELERY__WORKER_CONCURRENCY", "2"
        ),
        "AIRFLOW__CORE__HOSTNAME_CALLABLE": "cluster.worker_hostname",
        "AIRFLOW__API_AUTH__JWT_SECRET": os.environ.get(
            "AIRFLOW__API_AUTH__JWT_SECRET", os.urandom(16).hex()
        ),
        "PYTHONPATH": os.pathsep.join(
            p for p in (str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")) if p
        ),
        f"AIRFLOW_CONN_{STAGING_CONN.upper()}": json.dumps(s3),
        "CAMPAIGN_SYNC_STAGING_ROOT": f"s3://{STAGING_CONN}@{STAGING_BUCKET}/staging",
    }


def main(argv: list[str] | None = None) -> int:
    """Start the services and Airflow, serve until a signal, stop everything."""
    import airflow_ui
    from demo_servers import demo_connections

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log-dir", type=Path, required=True, help="every process' log")
    parser.add_argument("--info", type=Path, help="write ports and connections here (JSON)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--sample-rows",
        type=int,
        default=0,
        help="load this many sample customers into the warehouse database and point the"
        " sample campaign's connection (campaign_sync_sample) at it",
    )
    args = parser.parse_args(argv)
    args.log_dir.mkdir(parents=True, exist_ok=True)

    from airflow.configuration import conf

    port = conf.getint("api", "port")
    base_url = conf.get("api", "base_url", fallback=None)
    url = (base_url or f"http://localhost:{port}").rstrip("/")
    if airflow_ui.listening(port):
        print(f"cluster: port {port} is in use; choose another with AIRFLOW__API__PORT")
        return 1
    parent = os.getppid()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, airflow_ui._on_signal)
    env = airflow_ui.airflow_env(port, base_url)
    airflow = str(airflow_ui.BIN / "airflow")
    code = 0
    with ExitStack() as stack:
        try:
            pg = stack.enter_context(postgres_server(args.log_dir, ("airflow", "warehouse")))
            redis_port = stack.enter_context(redis_server(args.log_dir))
            env.update(stack.enter_context(demo_connections()))
            s3 = json.loads(env["AIRFLOW_CONN_CAMPAIGN_SYNC_DEMO_S3"])
            _create_bucket(s3, STAGING_BUCKET)
            env.update(cluster_env(pg, redis_port, s3))
            if args.sample_rows:
                load_sample(pg, "warehouse", args.sample_rows, args.log_dir)
                env["AIRFLOW_CONN_CAMPAIGN_SYNC_SAMPLE"] = json.dumps(
                    pg.airflow_connection("warehouse")
                )
            print(
                f"cluster: Postgres on 127.0.0.1:{pg.port} (databases airflow, warehouse), "
                f"Redis on 127.0.0.1:{redis_port}, staging {env['CAMPAIGN_SYNC_STAGING_ROOT']}",
                flush=True,
            )
            tree = airflow_ui.ProcessTree()
            stack.callback(airflow_ui._shutdown, tree, port)  # before the services stop
            if not airflow_ui.migrate_db(tree, airflow, env, args.log_dir, "cluster"):
                return 1
            for name in airflow_ui.COMPONENTS:
                tree.start(name, [airflow, name], env, args.log_dir / f"{name}.log")
            workers = {}
            for n in range(1, args.workers + 1):
                name = f"worker-{n}"
                worker_env = {
                    **env,
                    "CAMPAIGN_SYNC_WORKER_HOSTNAME": name,
                    "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
                }
                process = tree.start(
                    name,
                    [airflow, "celery", "worker", "--celery-hostname", f"{name}@%h",
                     "--skip-serve-logs"],
                    worker_env, args.log_dir / f"{name}.log",
                )  # fmt: skip
                workers[name] = process.pid
                if args.workers > 1:
                    tree.expendable.add(name)  # the others carry on without it
            if args.info:
                info = {
                    "port": port,
                    "postgres_port": pg.port,
                    "redis_port": redis_port,
                    "s3": s3,
                    "staging_root": env["CAMPAIGN_SYNC_STAGING_ROOT"],
                    "workers": workers,
                }
                args.info.write_text(json.dumps(info))
            code = airflow_ui.serve(tree, port, url, parent)
        except airflow_ui.Stop as why:
            print(f"cluster: {why}: stopping every process", flush=True)
    return code


def _create_bucket(conn: dict[str, Any], bucket: str) -> None:
    import boto3

    boto3.client(
        "s3",
        endpoint_url=conn["extra"]["endpoint_url"],
        region_name="us-east-1",
        aws_access_key_id=conn["login"],
        aws_secret_access_key=conn["password"],
    ).create_bucket(Bucket=bucket)


if __name__ == "__main__":
    sys.exit(main())
