"""Run a child process and measure its wall time and peak RSS (``ru_maxrss`` of that child)."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from typing import Any


def run_measured(cmd: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``cmd``; return its last stdout line as JSON plus ``wall_s`` and ``maxrss_mb``."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{stderr[-3000:]}")
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    result: dict[str, Any] = json.loads(lines[-1]) if lines else {}
    result["wall_s"] = wall
    # Linux reports ru_maxrss in KiB.
    result["maxrss_mb"] = usage.ru_maxrss / 1024
    return result
