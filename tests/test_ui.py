"""``make ui``: the launcher it runs (scripts/airflow_ui.py) starts ``airflow standalone`` from a
plain shell's PATH, says how to log in, and on SIGTERM stops every process it started: the
components, the LocalExecutor workers and a task process caught in the middle of an export (it
runs in a process group of its own)."""

from __future__ import annotations

import json
import os
import re
import socket
import sys
from pathlib import Path
from typing import Any

import airflow
import requests
from airflow_server import LAUNCHER, airflow_env, ensure_pools, start_airflow
from helpers import write_campaign
from storage_helpers import free_port

BIN = Path(sys.executable).parent


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


SLOW = {
    "name": "ui_slow",
    "source": {"conn_id": "ui_sample", "table": "merged_customers"},
    "retries": {"count": 0},
    "sub_audiences": [
        {
            "name": "everyone",
            "condition": "TRUE",
            "treatment_groups": [{"name": "all", "percentage": 100, "destinations": ["criteo"]}],
        }
    ],
    "destinations": {
        "criteo": {"type": "criteo", "conn_id": "ui_criteo", "attributes": {"email": "email"}}
    },
}


def _slow_export_running(server: Any, criteo: Any) -> dict[str, Any]:
    """Trigger ui_slow and return its export task instance once it is inside an upload."""
    server.unpause("ui_slow")
    run_id = server.trigger("ui_slow")

    def exporting() -> dict[str, Any] | None:
        tis = server.task_instances("ui_slow", run_id)
        ti = tis.get("everyone__all.export_criteo")
        assert all(t["state"] != "failed" for t in tis.values()), tis
        uploading = any(r.path.endswith("/contact-list") for r in criteo.requests)
        return ti if ti and ti["state"] == "running" and uploading else None

    return server.wait_for("the export to be uploading", exporting, 240)


def test_make_ui_serves_from_a_plain_shell_and_sigterm_stops_every_process(tmp_path):
    from campaign_sync.sample_data import generate_merged_customers
    from fakes.criteo import FakeCriteo

    port = free_port()
    (tmp_path / "campaigns").mkdir()
    write_campaign(tmp_path / "campaigns", "ui_slow", SLOW)
    sample = tmp_path / "sample.duckdb"
    generate_merged_customers(sample, 300)
    criteo = FakeCriteo()
    criteo.slow_seconds = 300  # the export hangs in its first upload until Airflow is stopped
    url = criteo.start()
    env = airflow_env(
        tmp_path,
        port,
        AIRFLOW_CONN_UI_SAMPLE=json.dumps({"conn_type": "duckdb", "host": str(sample)}),
        AIRFLOW_CONN_UI_CRITEO=json.dumps(
            {"conn_type": "criteo", "host": url, "login": "client-1", "password": "s3cret",
             "extra": {"advertiser_id": "4242"}}
        ),
    )  # fmt: skip
    # make ui does not set it: the launcher derives the URL from Airflow's port setting.
    del env["AIRFLOW__API__BASE_URL"]
    try:
        server = start_airflow(tmp_path, env, components=False, demo_servers=True)
    except BaseException:
        criteo.stop()
        raise
    try:
        output = server.output.read_text(errors="replace")
        assert f"Airflow UI: http://localhost:{port} " in output
        assert "  user: admin" in output
        password_file = Path(re.search(r"  password file: (.+)", output).group(1))
        assert (
            password_file == tmp_path / "airflow" / "simple_auth_manager_passwords.json.generated"
        )
        server.username, server.password = "admin", json.loads(password_file.read_text())["admin"]
        assert server.api("GET", "/version")["version"] == airflow.__version__
        ensure_pools(server, SLOW)  # the export's pool, as `campaign-sync pools` makes it

        commands = list(server.tree().values())
        for component in ("standalone", "scheduler", "api_server", "dag-processor", "triggerer"):
            assert any(component in c.replace("api-server", "api_server") for c in commands), (
                component,
                commands,
            )
        # Every component is this venv's Airflow, although the venv was not on PATH (the
        # api-server and the executor's workers retitle themselves "airflow ...").
        scripts = {c.split()[1] for c in commands if c.split()[1:2] and "/" in c.split()[1]}
        assert scripts == {str(BIN / "airflow")}, commands
        assert any("LocalExecutor" in c for c in commands), commands

        task = _slow_export_running(server, criteo)
        titles = {p.pid: title for p, title in server.tree().items()}
        # The executor's worker supervising the task, and the task process it started.
        supervisor = [
            pid for pid, t in titles.items() if t.endswith(f"LocalExecutor: {task['id']}")
        ]
        runner = [pid for pid, t in titles.items() if t == f"airflow worker -- {task['id']}"]
        assert len(supervisor) == len(runner) == 1, (task, titles)
        assert os.getpgid(runner[0]) == runner[0]  # the task runs in a process group of its own
        log_ports = [
            int(env["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"]),
            int(env["AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT"]),
        ]
    finally:
        survivors = server.stop()
        criteo.stop()
    assert survivors == []
    assert server.process.returncode == 0, server.log_tail()
    assert "airflow_ui: stopped" in server.output.read_text(errors="replace")
    assert not _listening(port)
    assert not any(_listening(p) for p in log_ports)
    try:
        requests.get(f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=2)
        raise AssertionError("the API still answers")
    except requests.ConnectionError:
        pass


RESTART_CHILD = """
import os, sys, time
sys.path.insert(0, sys.argv[1])
import airflow_ui

runs = sys.argv[2]
flaky = [sys.executable, "-c",
         "import sys; open(sys.argv[1], 'a').write('x'); sys.exit(3)", runs]
tree = airflow_ui.ProcessTree()
tree.start_restartable("flaky", flaky, dict(os.environ), None)
restarted = []
for _ in range(200):
    time.sleep(0.05)
    restarted += tree.restart_failed(limit=2)
    if tree.restarts.get("flaky") == 2 and tree.exited():
        break
print(restarted, tree.exited())
"""


def test_launcher_starts_a_failed_component_again_then_gives_up(tmp_path):
    # The scheduler's loop can die on a database error (seen once under SQLite's single
    # writer): the launcher starts it again, as a supervisor would, a bounded number of times.
    import subprocess

    runs = tmp_path / "runs"
    out = subprocess.run(
        [sys.executable, "-c", RESTART_CHILD, str(LAUNCHER.parent), str(runs)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "flaky exited with code 3; starting it again (1 of 2)" in out.stdout
    assert out.stdout.strip().splitlines()[-1] == "['flaky', 'flaky'] ('flaky', 3)"
    assert runs.read_text() == "xxx"  # the first start and two restarts, no more
