"""Airflow on this project (``make ui``): every component from this venv, all stopped together.

    python scripts/airflow_ui.py [--components --log-dir DIR] [--no-demo-servers]

By default it runs ``airflow standalone`` (scheduler, api-server, dag-processor and triggerer;
LocalExecutor; SimpleAuthManager) under the sample campaign's demo S3 and SFTP servers
(``scripts/demo_servers.py``), waits until the REST API answers, then prints the URL, the user
name and the file that holds the generated password. With ``--components`` it runs
``airflow db migrate`` and then the four components itself, each logging to ``--log-dir`` (the
integration tests run Airflow this way).

Why a launcher rather than ``.venv/bin/airflow standalone``:

- standalone starts its components by the bare name ``airflow``, looked up on PATH. This venv's
  ``bin`` goes first on PATH, so they are this project's Airflow, from a plain shell too.
- SIGTERM to standalone leaves its components running; LocalExecutor workers ignore SIGTERM, and
  task processes run in process groups of their own. This launcher starts each command in a
  session of its own and is a child subreaper (Linux), so everything started below it stays its
  descendant even when orphaned. On Ctrl-C, SIGTERM, SIGHUP or the end of its parent (``make``)
  it sends SIGTERM to all of them, SIGKILL to what is left after a grace period, reaps them and
  checks that nothing listens on the port any more.

The port is Airflow's own setting ``[api] port`` (``AIRFLOW__API__PORT``, default 8080); when
``[api] base_url`` is not set it becomes ``http://localhost:<port>``, which is also where task
workers find the execution API.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import ExitStack, suppress
from pathlib import Path
from types import FrameType

import psutil

BIN = Path(sys.executable).parent
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
GRACE_SECONDS = 15.0
# A component that exits with an error (the scheduler's loop can die on a database error under
# SQLite's single writer) is started again, as a process supervisor would, this many times.
RESTARTS = 3
READY_TIMEOUT = float(os.environ.get("CAMPAIGN_SYNC_UI_READY_TIMEOUT", "300"))
_PR_SET_CHILD_SUBREAPER = 36


class Stop(Exception):
    """A signal, or the end of the parent process, asks the launcher to stop."""


def _on_signal(signum: int, frame: FrameType | None) -> None:
    raise Stop(signal.Signals(signum).name)


def listening(port: int) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:``port``."""
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def healthy(port: int) -> bool:
    """Whether Airflow's API server answers its health check on ``port``."""
    try:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=5
        ) as response:
            return response.status == 200
    except OSError:
        return False


class ProcessTree:
    """The commands this launcher started, and every process they spawn."""

    def __init__(self) -> None:
        self.started: dict[str, subprocess.Popen[bytes]] = {}
        # How each restartable command was started, and how often it was restarted.
        self.commands: dict[str, tuple[list[str], dict[str, str], Path | None]] = {}
        self.restarts: dict[str, int] = {}
        # Commands whose end does not stop the others (a Celery worker among several).
        self.expendable: set[str] = set()
        if sys.platform.startswith("linux"):
            # Orphans (task processes, workers of a dead parent) are re-parented to us, not to
            # init, so stop() still finds them.
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)

    def start(
        self, name: str, argv: list[str], env: dict[str, str], log: Path | None
    ) -> subprocess.Popen[bytes]:
        """Start ``argv`` in a session of its own (output to ``log``, else to ours)."""
        out = log.open("ab") if log else None
        try:
            process = subprocess.Popen(
                argv,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT if out else None,
                start_new_session=True,
            )
        finally:
            if out:
                out.close()
        self.started[name] = process
        return process

    def start_restartable(
        self, name: str, argv: list[str], env: dict[str, str], log: Path | None
    ) -> subprocess.Popen[bytes]:
        """``start``, and remember how, so ``restart_failed`` can start it again."""
        self.commands[name] = (argv, env, log)
        return self.start(name, argv, env, log)

    def restart_failed(self, limit: int = RESTARTS) -> list[str]:
        """Start again each restartable command that exited with an error, up to ``limit``
        times each; return the names restarted."""
        again = []
        for name, (argv, env, log) in self.commands.items():
            code = self.started[name].poll()
            if code not in (None, 0) and self.restarts.get(name, 0) < limit:
                self.restarts[name] = self.restarts.get(name, 0) + 1
                print(
                    f"airflow_ui: {name} exited with code {code}; starting it again"
                    f" ({self.restarts[name]} of {limit})",
                    flush=True,
                )
                self.start(name, argv, env, log)
                again.append(name)
        return again

    def descendants(self) -> list[psutil.Process]:
        """Every living process below this one."""
        alive = []
        for process in psutil.Process().children(recursive=True):
            with suppress(psutil.Error):
                if process.status() != psutil.STATUS_ZOMBIE:
                    alive.append(process)
        return alive

    def reap(self) -> None:
        """Collect exited children, adopted orphans included."""
        own = {p.pid for p in self.started.values()}
        for process in self.started.values():
            process.poll()
        for child in psutil.Process().children():
            if child.pid not in own:
                with suppress(ChildProcessError, psutil.Error):
                    if child.status() == psutil.STATUS_ZOMBIE:
                        os.waitpid(child.pid, os.WNOHANG)

    def exited(self) -> tuple[str, int] | None:
        """The first started command that has ended, with its exit code."""
        for name, process in self.started.items():
            if process.poll() is not None and name not in self.expendable:
                return name, process.returncode
        return None

    def _signal(self, sig: signal.Signals, processes: list[psutil.Process]) -> None:
        for process in self.started.values():
            with suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, sig)  # each command leads a session: pgid == pid
        for process in processes:
            with suppress(psutil.Error):
                process.send_signal(sig)

    def stop(self, grace: float = GRACE_SECONDS) -> list[str]:
        """SIGTERM everything, SIGKILL what is left after ``grace`` seconds; returns the
        processes that had to be killed."""
        self._signal(signal.SIGTERM, self.descendants())
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            self.reap()
            if not self.descendants():
                return []
            time.sleep(0.2)
        left = self.descendants()
        names = []
        for process in left:
            with suppress(psutil.Error):
                names.append(f"{process.pid} {' '.join(process.cmdline()[:3])}")
        self._signal(signal.SIGKILL, left)
        deadline = time.monotonic() + 10
        while self.descendants() and time.monotonic() < deadline:
            time.sleep(0.1)
        self.reap()
        return names


def airflow_env(port: int, configured_base_url: str | None) -> dict[str, str]:
    """The environment of every Airflow command: this venv first on PATH, the URL set."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(BIN), env.get("PATH", "")])
    if not configured_base_url:
        env["AIRFLOW__API__BASE_URL"] = f"http://localhost:{port}"
    return env


def banner(port: int, url: str) -> list[str]:
    """How to log in: the URL, the users and where the generated passwords are."""
    from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager
    from airflow.configuration import conf

    lines = [f"Airflow UI: {url}  (REST API: {url}/api/v2, port {port})"]
    if conf.getboolean("core", "simple_auth_manager_all_admins", fallback=False):
        lines.append("  no login needed (simple_auth_manager_all_admins)")
    else:
        users = conf.get("core", "simple_auth_manager_users", fallback="admin:admin")
        names = ", ".join(u.split(":")[0].strip() for u in users.split(",") if u.strip())
        lines.append(f"  user: {names}")
        lines.append(f"  password file: {SimpleAuthManager.get_generated_password_file()}")
    lines.append("Stop with Ctrl-C: every component and the demo servers stop with it.")
    return lines


def serve(tree: ProcessTree, port: int, url: str, parent: int) -> int:
    """Wait until the API answers, print how to log in, then run until told to stop."""
    deadline = time.monotonic() + READY_TIMEOUT
    ready = False
    while True:
        if os.getppid() != parent:
            raise Stop("parent process ended")
        tree.restart_failed()
        ended = tree.exited()
        if ended is not None:
            print(f"airflow_ui: {ended[0]} exited with code {ended[1]}", flush=True)
            return ended[1] or 1
        tree.reap()
        if not ready:
            if healthy(port):
                ready = True
                print("\n".join(banner(port, url)), flush=True)
            elif time.monotonic() > deadline:
                print(
                    f"airflow_ui: nothing answers on port {port} after {READY_TIMEOUT:.0f}s;"
                    " see the components' output above",
                    flush=True,
                )
                return 1
        time.sleep(0.5)


def main(argv: list[str] | None = None) -> int:
    """Start Airflow, serve until a signal, stop everything."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--components", action="store_true", help="run the four components, not standalone"
    )
    parser.add_argument("--log-dir", type=Path, help="components' logs (with --components)")
    parser.add_argument("--no-demo-servers", dest="demo_servers", action="store_false")
    args = parser.parse_args(argv)
    if args.components and args.log_dir is None:
        parser.error("--components needs --log-dir")

    from airflow.configuration import conf

    port = conf.getint("api", "port")
    base_url = conf.get("api", "base_url", fallback=None)
    url = (base_url or f"http://localhost:{port}").rstrip("/")
    if listening(port):
        print(
            f"airflow_ui: port {port} is already in use; stop what runs there or choose"
            " another port with AIRFLOW__API__PORT",
            file=sys.stderr,
        )
        return 1
    parent = os.getppid()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _on_signal)
    env = airflow_env(port, base_url)
    airflow = str(BIN / "airflow")
    code = 0
    with ExitStack() as stack:
        try:
            if args.demo_servers:
                from demo_servers import demo_connections

                env.update(stack.enter_context(demo_connections()))
            tree = ProcessTree()
            stack.callback(_shutdown, tree, port)  # runs before the demo servers stop
            if args.components:
                args.log_dir.mkdir(parents=True, exist_ok=True)
                if not migrate_db(tree, airflow, env, args.log_dir, "airflow_ui"):
                    return 1
                _create_pools(tree, env, args.log_dir)
                for name in COMPONENTS:
                    tree.start_restartable(name, [airflow, name], env, args.log_dir / f"{name}.log")
            else:
                tree.start("standalone", [airflow, "standalone"], env, None)
            code = serve(tree, port, url, parent)
        except Stop as why:
            print(f"airflow_ui: {why}: stopping every component", flush=True)
    if listening(port):
        print(f"airflow_ui: something still listens on port {port}", flush=True)
        code = code or 1
    return code


def _create_pools(tree: ProcessTree, env: dict[str, str], log_dir: Path) -> None:
    """Create the pools the campaigns' platform exports run in (a missing pool holds its
    exports unscheduled); a failure is reported, the components still start."""
    pools = tree.start("pools", [str(BIN / "campaign-sync"), "pools"], env, log_dir / "pools.log")
    if pools.wait() != 0:
        print(f"airflow_ui: campaign-sync pools failed, see {log_dir / 'pools.log'}", flush=True)
    del tree.started["pools"]


def migrate_db(
    tree: ProcessTree, airflow: str, env: dict[str, str], log_dir: Path, who: str
) -> bool:
    """Run ``airflow db migrate`` to the end (its log in ``log_dir``); False, said, if it fails."""
    migrate = tree.start("db-migrate", [airflow, "db", "migrate"], env, log_dir / "db-migrate.log")
    if migrate.wait() != 0:
        print(f"{who}: airflow db migrate failed, see {log_dir}", flush=True)
        return False
    del tree.started["db-migrate"]
    return True


def _shutdown(tree: ProcessTree, port: int) -> None:
    # Further signals must not interrupt the cleanup; it ends with SIGKILL anyway.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    killed = tree.stop()
    if killed:
        print(f"airflow_ui: killed after {GRACE_SECONDS:.0f}s: {'; '.join(killed)}", flush=True)
    print("airflow_ui: stopped", flush=True)


if __name__ == "__main__":
    sys.exit(main())
