"""``make ui``: the launcher it runs (scripts/airflow_ui.py) starts ``airflow standalone`` from a
plain shell's PATH, says how to log in, and stops every process it started on SIGTERM."""

from __future__ import annotations

import json
import re
import socket
import sys
from pathlib import Path

import airflow
import requests
from airflow_server import airflow_env, start_airflow
from storage_helpers import free_port

BIN = Path(sys.executable).parent


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_make_ui_serves_from_a_plain_shell_and_sigterm_stops_every_process(tmp_path):
    port = free_port()
    (tmp_path / "campaigns").mkdir()
    env = airflow_env(tmp_path, port)
    # make ui does not set it: the launcher derives the URL from Airflow's port setting.
    del env["AIRFLOW__API__BASE_URL"]
    server = start_airflow(tmp_path, env, components=False, demo_servers=True)
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

        processes = server.tree()
        commands = [" ".join(p.cmdline()) for p in processes]
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
        log_ports = [
            int(env["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"]),
            int(env["AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT"]),
        ]
    finally:
        survivors = server.stop()
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
