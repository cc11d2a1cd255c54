"""Run a command with local S3 and SFTP servers for the sample campaign (``make demo``).

Starts moto's S3 server and an asyncssh SFTP server on free loopback ports, defines the sample
campaign's two Airflow connections (``campaign_sync_demo_s3``, ``campaign_sync_demo_sftp``) as
environment variables for the command, runs it, copies what reached S3 to
``$AIRFLOW_HOME/demo_servers/s3/`` so it can be looked at, and stops both servers. Keys are
generated per run; no cloud account, root or system package is needed. ``make ui`` runs the
same servers through ``demo_connections``.

    python scripts/demo_servers.py [--log FILE] -- COMMAND [ARG ...]

The SFTP server is in-process asyncssh rather than OpenSSH's sshd (which the test suite uses)
because sshd needs root and a system user; the demo has to run on any developer machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

BUCKET = "campaign-sync-demo"
SFTP_FOLDER = "upload"
SFTP_USER = "demo"
S3_CONN = "campaign_sync_demo_s3"
SFTP_CONN = "campaign_sync_demo_sftp"


def _airflow_home() -> Path:
    return Path(os.environ.get("AIRFLOW_HOME") or Path.home() / "airflow")


@contextmanager
def s3_server() -> Iterator[dict[str, Any]]:
    """moto's S3 server with the demo bucket; yields the Airflow connection."""
    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        conn = {
            "conn_type": "aws",
            "login": "demo-key",
            "password": "demo-secret",
            "extra": {"endpoint_url": f"http://{host}:{port}", "region_name": "us-east-1"},
        }
        client = boto3.client(
            "s3",
            endpoint_url=conn["extra"]["endpoint_url"],
            region_name="us-east-1",
            aws_access_key_id=conn["login"],
            aws_secret_access_key=conn["password"],
        )
        client.create_bucket(Bucket=BUCKET)
        yield conn
    finally:
        server.stop()


@contextmanager
def sftp_server(root: Path) -> Iterator[dict[str, Any]]:
    """An SFTP server whose files live under ``root``; yields the Airflow connection."""
    import asyncssh

    (root / SFTP_FOLDER).mkdir(parents=True, exist_ok=True)
    host_key = asyncssh.generate_private_key("ssh-ed25519")
    client_key = asyncssh.generate_private_key("ssh-ed25519")
    authorized = asyncssh.import_authorized_keys(client_key.export_public_key().decode("ascii"))

    class Server(asyncssh.SSHServer):
        def begin_auth(self, username: str) -> bool:
            return True

        def public_key_auth_supported(self) -> bool:
            return True

    def sftp_factory(chan: Any) -> Any:
        return asyncssh.SFTPServer(chan, chroot=str(root).encode())

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def start() -> Any:
        return await asyncssh.listen(
            "127.0.0.1",
            0,
            server_factory=Server,
            server_host_keys=[host_key],
            authorized_client_keys=authorized,
            sftp_factory=sftp_factory,
            allow_scp=False,
        )

    listener = asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=30)
    try:
        yield {
            "conn_type": "sftp",
            "host": "127.0.0.1",
            "port": listener.sockets[0].getsockname()[1],
            "login": SFTP_USER,
            "extra": {
                "private_key": client_key.export_private_key().decode("ascii"),
                "host_key": host_key.export_public_key().decode("ascii").strip(),
                "look_for_keys": "false",
            },
        }
    finally:

        async def close() -> None:
            listener.close()
            await listener.wait_closed()

        asyncio.run_coroutine_threadsafe(close(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)


def copy_s3(conn: dict[str, Any], target: Path) -> tuple[int, int]:
    """Copy every object of the demo bucket under ``target``; returns (objects, bytes)."""
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=conn["extra"]["endpoint_url"],
        region_name="us-east-1",
        aws_access_key_id=conn["login"],
        aws_secret_access_key=conn["password"],
    )
    count = size = 0
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        for item in page.get("Contents", []):
            local = target / BUCKET / item["Key"]
            local.parent.mkdir(parents=True, exist_ok=True)
            client.download_file(BUCKET, item["Key"], str(local))
            count += 1
            size += item["Size"]
    return count, size


def run_command(command: list[str], env: dict[str, str], log: str | None) -> int:
    """Run the command to its end; Ctrl-C reaches it too, so let it shut down cleanly."""
    with open(log or os.devnull, "wb") as out:
        process = subprocess.Popen(
            command,
            env=env,
            stdout=out if log else None,
            stderr=subprocess.STDOUT if log else None,
        )
        try:
            return process.wait()
        except KeyboardInterrupt:
            return process.wait()


@contextmanager
def demo_connections() -> Iterator[dict[str, str]]:
    """Both servers, for as long as the block runs; yields the environment variables of their
    Airflow connections. Afterwards the S3 objects are copied under the Airflow home."""
    base = _airflow_home() / "demo_servers"
    with s3_server() as s3, sftp_server(base / "sftp") as sftp:
        print(
            f"demo servers: S3 at {s3['extra']['endpoint_url']} (bucket {BUCKET}),"
            f" SFTP at 127.0.0.1:{sftp['port']} (folder {SFTP_FOLDER})",
            flush=True,
        )
        try:
            yield {
                f"AIRFLOW_CONN_{S3_CONN.upper()}": json.dumps(s3),
                f"AIRFLOW_CONN_{SFTP_CONN.upper()}": json.dumps(sftp),
            }
        finally:
            objects, size = copy_s3(s3, base / "s3")
            sftp_files = [p for p in (base / "sftp" / SFTP_FOLDER).rglob("*") if p.is_file()]
            print(
                f"demo servers: {objects} object(s), {size} bytes in s3://{BUCKET} (copied to"
                f" {base / 's3'}); {len(sftp_files)} file(s) in {base / 'sftp' / SFTP_FOLDER}",
                flush=True,
            )


def main(argv: list[str] | None = None) -> int:
    """Start the servers, run the command with their connections, stop the servers."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log", help="write the command's output to this file")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to run after --")
    with demo_connections() as connections:
        return run_command(command, {**os.environ, **connections}, args.log)


if __name__ == "__main__":
    sys.exit(main())
