"""Real storage servers for the tests, each on 127.0.0.1 with a free port, stopped afterwards.

- S3: moto in server mode, with IAM authentication on (so wrong credentials are refused);
- GCS: gcp-storage-emulator (it checks no credentials);
- Azure Blob: Azurite from ``node_modules`` (``make test-servers`` installs it);
- SFTP: OpenSSH's sshd run in the foreground as root, with generated host and user keys, a
  system user ``csync_sftp`` forced to OpenSSH's ``sftp-server`` (which logs every request),
  a read-only folder, and a tiny tmpfs folder for a full disk.

Nothing here skips: a server that cannot start fails the tests that need it. Import the
fixtures with ``pytest_plugins = ["servers"]`` in a test module (and import nothing from
this module at the top of a test module, so pytest can rewrite its asserts). Airflow
connections are environment variables (``AIRFLOW_CONN_<ID>``), so tasks run by ``dag.test()``
see them too.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from storage_helpers import free_port, set_connection

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
AZURITE = REPO / "node_modules" / ".bin" / "azurite-blob"
SSHD = Path("/usr/sbin/sshd")
SFTP_SERVER = Path("/usr/lib/openssh/sftp-server")
SFTP_USER = "csync_sftp"
# Azurite's well-known development account (public, documented by Microsoft).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
START_TIMEOUT = 60.0


@dataclass
class Server:
    """A server process started by the tests, with its log file."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    def log_tail(self, chars: int = 3000) -> str:
        """The end of the server's log, for failure messages."""
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def stop(self) -> None:
        """Stop the process (SIGTERM, then SIGKILL) and wait for it."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def start_process(name: str, cmd: list[str], port: int, log_dir: Path, **popen: Any) -> Server:
    """Start ``cmd`` and wait until it accepts TCP connections on ``port``."""
    log = log_dir / f"{name}.log"
    out = log.open("wb")
    process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, **popen)
    out.close()
    server = Server(name, port, process, log)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"{name} exited with {process.returncode} while starting: {server.log_tail()}"
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return server
        except OSError:
            time.sleep(0.05)
    server.stop()
    raise RuntimeError(f"{name} did not listen on port {port} in time: {server.log_tail()}")


# --- S3: moto ---------------------------------------------------------------------------------


@dataclass
class S3Server:
    """A moto S3 server; ``access_key``/``secret_key`` are a real IAM key of that server."""

    server: Server
    access_key: str
    secret_key: str
    auth: bool

    @property
    def endpoint(self) -> str:
        """The endpoint URL."""
        return f"http://127.0.0.1:{self.server.port}"

    def connection(self, *, secret_key: str | None = None) -> dict[str, Any]:
        """An ``aws`` connection to this server."""
        return {
            "conn_type": "aws",
            "login": self.access_key,
            "password": secret_key or self.secret_key,
            "extra": {"endpoint_url": self.endpoint, "region_name": "us-east-1"},
        }

    def client(self) -> Any:
        """A boto3 S3 client, for tests to read back what was delivered."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
        )

    def create_bucket(self, name: str) -> None:
        """Create a bucket (idempotent)."""
        client = self.client()
        try:
            client.create_bucket(Bucket=name)
        except client.exceptions.BucketAlreadyOwnedByYou:
            pass


def start_moto(log_dir: Path, *, port: int | None = None, auth: bool = True) -> S3Server:
    """Start moto's server; with ``auth`` only the generated IAM key is accepted."""
    import boto3
    import requests

    port = port or free_port()
    server = start_process(
        "moto",
        [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        port,
        log_dir,
    )
    endpoint = f"http://127.0.0.1:{port}"
    if not auth:
        return S3Server(server, "testing", "testing", auth=False)
    iam = boto3.client(
        "iam",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="setup",
        aws_secret_access_key="setup",
    )
    iam.create_user(UserName="campaign-sync")
    iam.put_user_policy(
        UserName="campaign-sync",
        PolicyName="s3",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
            }
        ),
    )
    key = iam.create_access_key(UserName="campaign-sync")["AccessKey"]
    # From now on every request must be signed with a key this server issued.
    response = requests.post(f"{endpoint}/moto-api/reset-auth", data=b"0", timeout=10)
    response.raise_for_status()
    return S3Server(server, key["AccessKeyId"], key["SecretAccessKey"], auth=True)


# --- GCS: gcp-storage-emulator ----------------------------------------------------------------


@dataclass
class GCSServer:
    """A gcp-storage-emulator server; its log records every request line."""

    server: Server

    @property
    def endpoint(self) -> str:
        """The value for ``STORAGE_EMULATOR_HOST``."""
        return f"http://127.0.0.1:{self.server.port}"

    @staticmethod
    def connection() -> dict[str, Any]:
        """A ``google_cloud_platform`` connection (anonymous: the emulator checks nothing)."""
        return {
            "conn_type": "google_cloud_platform",
            "extra": {"is_anonymous": True, "project": "test-project"},
        }

    def client(self) -> Any:
        """A google-cloud-storage client for reading back."""
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        return storage.Client(
            credentials=AnonymousCredentials(),
            project="test-project",
            client_options={"api_endpoint": self.endpoint},
        )

    def create_bucket(self, name: str) -> None:
        """Create a bucket (idempotent)."""
        from google.api_core.exceptions import Conflict

        try:
            self.client().create_bucket(name)
        except Conflict:
            pass

    def requests_log(self) -> list[str]:
        """The request lines the server logged so far."""
        return [line for line in self.server.log_tail(10**9).splitlines() if '"' in line]


def start_gcs(log_dir: Path, *, port: int | None = None) -> GCSServer:
    """Start gcp-storage-emulator in memory."""
    port = port or free_port()
    server = start_process(
        "gcs",
        [
            str(BIN / "gcp-storage-emulator"),
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--in-memory",
        ],
        port,
        log_dir,
        cwd=str(log_dir),
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    return GCSServer(server)


# --- Azure Blob: Azurite ----------------------------------------------------------------------


@dataclass
class AzuriteServer:
    """An Azurite blob server with the development account."""

    server: Server

    @property
    def account_url(self) -> str:
        """Blob endpoint of the development account."""
        return f"http://127.0.0.1:{self.server.port}/{AZURITE_ACCOUNT}"

    def connection(self, *, key: str = AZURITE_KEY, **extra: Any) -> dict[str, Any]:
        """A ``wasb`` connection (account name, key and endpoint)."""
        conn: dict[str, Any] = {
            "conn_type": "wasb",
            "login": AZURITE_ACCOUNT,
            "password": key,
            "host": self.account_url,
        }
        if extra:
            conn["extra"] = extra
        return conn

    def client(self) -> Any:
        """A BlobServiceClient for reading back."""
        from azure.storage.blob import BlobServiceClient

        return BlobServiceClient(
            account_url=self.account_url,
            credential={"account_name": AZURITE_ACCOUNT, "account_key": AZURITE_KEY},
        )

    def create_container(self, name: str) -> None:
        """Create a container (idempotent)."""
        from azure.core.exceptions import ResourceExistsError

        try:
            self.client().create_container(name)
        except ResourceExistsError:
            pass


def start_azurite(log_dir: Path, *, port: int | None = None) -> AzuriteServer:
    """Start Azurite's blob service in memory."""
    if not AZURITE.exists():
        raise RuntimeError(f"{AZURITE} is missing: run `make test-servers` (npm ci)")
    port = port or free_port()
    server = start_process(
        "azurite",
        [
            str(AZURITE),
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            str(port),
            "--inMemoryPersistence",
            "--skipApiVersionCheck",
            "--disableTelemetry",
            "--loose",
        ],
        port,
        log_dir,
        cwd=str(log_dir),
    )
    return AzuriteServer(server)


# --- SFTP: OpenSSH sshd -----------------------------------------------------------------------


@dataclass
class SFTPServer:
    """An OpenSSH sshd serving SFTP only, to ``csync_sftp`` with a key.

    ``home`` is where a session starts (relative remote paths resolve there). ``upload`` is a
    writable folder, ``readonly`` one the user cannot write, ``full`` a tiny tmpfs.
    """

    port: int
    root: Path
    home: Path
    client_key: Path
    host_key: str
    config: Path
    server: Server | None = None
    mounts: list[Path] = field(default_factory=list)

    def launch(self) -> None:
        """Start sshd (``prepare_sshd`` made its keys, folders and configuration)."""
        self.server = start_process(
            "sshd", [str(SSHD), "-D", "-e", "-f", str(self.config)], self.port, self.root
        )

    def connection(self, *, key_file: Path | None = None, **extra: Any) -> dict[str, Any]:
        """An ``sftp`` connection with the test user's key and the pinned host key."""
        return {
            "conn_type": "sftp",
            "host": "127.0.0.1",
            "port": self.port,
            "login": SFTP_USER,
            "extra": {
                "key_file": str(key_file or self.client_key),
                "host_key": self.host_key,
                "look_for_keys": "false",
                **extra,
            },
        }

    def local(self, remote: str) -> Path:
        """The server-side file for a path relative to the user's start folder."""
        return self.home / remote

    def user_dir(self, name: str) -> Path:
        """A fresh folder under the start folder, owned by the test user."""
        path = self.home / name
        path.mkdir(parents=True, exist_ok=True)
        shutil.chown(path, SFTP_USER, SFTP_USER)
        return path

    def mount_tmpfs(self, name: str, size: str) -> Path:
        """A folder of the test user on a tmpfs of ``size`` (e.g. ``256k``): a disk that fills."""
        path = self.home / name
        path.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)],
            check=True,
            capture_output=True,
        )
        self.mounts.append(path)
        shutil.chown(path, SFTP_USER, SFTP_USER)
        return path


def _ensure_sftp_user() -> None:
    if subprocess.run(["id", "-u", SFTP_USER], capture_output=True).returncode != 0:
        result = subprocess.run(
            [
                "useradd",
                "--system",
                "--no-create-home",
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/bin/sh",  # runs the forced sftp-server command only (ForceCommand)
                SFTP_USER,
            ],
            capture_output=True,
            text=True,
        )
        # Another test session may have created it meanwhile.
        if result.returncode != 0 and "already exists" not in result.stderr:
            raise RuntimeError(f"useradd {SFTP_USER} failed: {result.stderr}")
    # A new account is locked ('!'), and sshd without PAM refuses locked accounts even for keys.
    subprocess.run(
        ["usermod", "-p", "*", "-s", "/bin/sh", SFTP_USER], check=True, capture_output=True
    )


def prepare_sshd(base: Path, *, port: int | None = None) -> SFTPServer:
    """Keys, user, folders and configuration for an sshd on ``port``, SFTP and keys only."""
    if os.geteuid() != 0:
        raise RuntimeError("the SFTP tests run OpenSSH's sshd, which needs root")
    if not SSHD.exists():
        raise RuntimeError(f"{SSHD} is missing: run `make test-servers` (openssh-server)")
    port = port or free_port()
    _ensure_sftp_user()
    base.chmod(0o755)  # the user must be able to traverse to its folders
    home = base / "home"
    home.mkdir(mode=0o755)
    shutil.chown(home, SFTP_USER, SFTP_USER)
    for name in ("host_key", "client_key"):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(base / name)],
            check=True,
            capture_output=True,
        )
    authorized = base / "authorized_keys"
    shutil.copy(base / "client_key.pub", authorized)
    authorized.chmod(0o644)
    readonly = home / "readonly"
    readonly.mkdir(mode=0o755)  # owned by root: the user may read, not write
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation directory
    sftp_log = base / "sftp-server.log"
    sftp_log.touch(mode=0o666)
    shutil.chown(sftp_log, SFTP_USER, SFTP_USER)
    config = base / "sshd_config"
    config.write_text(
        "\n".join(
            [
                "ListenAddress 127.0.0.1",
                f"Port {port}",
                f"HostKey {base / 'host_key'}",
                f"PidFile {base / 'sshd.pid'}",
                f"AuthorizedKeysFile {authorized}",
                "StrictModes no",  # the key file lives in a temporary folder
                "PubkeyAuthentication yes",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "UsePAM no",
                f"AllowUsers {SFTP_USER}",
                "Subsystem sftp internal-sftp",
                # OpenSSH's sftp-server (internal-sftp's code) logging every open, stat and
                # rename, so tests can check what the client asked for.
                f"ForceCommand {SFTP_SERVER} -e -l VERBOSE -d {home} 2>>{sftp_log}",
                "AllowTcpForwarding no",
                "X11Forwarding no",
                "",
            ]
        )
    )
    host_key = " ".join((base / "host_key.pub").read_text().split()[:2])
    return SFTPServer(port, base, home, base / "client_key", host_key, config)


def start_sshd(base: Path, *, port: int | None = None) -> SFTPServer:
    """Start sshd in the foreground on a high port (see ``prepare_sshd``)."""
    sftp = prepare_sshd(base, port=port)
    sftp.launch()
    return sftp


def stop_sshd(sftp: SFTPServer) -> None:
    """Stop sshd, unmount its tmpfs folders and remove its files."""
    if sftp.server is not None:
        sftp.server.stop()
    for mount in sftp.mounts:
        subprocess.run(["umount", "-l", str(mount)], check=False, capture_output=True)
    shutil.rmtree(sftp.root, ignore_errors=True)


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def server_logs() -> Iterator[Path]:
    """A folder for the servers' logs (and sshd's files), removed at the end."""
    folder = Path(tempfile.mkdtemp(prefix="campaign_sync_servers_"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def s3_server(server_logs: Path) -> Iterator[S3Server]:
    """moto's S3 server with authentication on."""
    server = start_moto(server_logs)
    yield server
    server.server.stop()


@pytest.fixture(scope="session")
def gcs_server(server_logs: Path) -> Iterator[GCSServer]:
    """gcp-storage-emulator; ``STORAGE_EMULATOR_HOST`` points the Google client at it."""
    server = start_gcs(server_logs)
    previous = os.environ.get("STORAGE_EMULATOR_HOST")
    os.environ["STORAGE_EMULATOR_HOST"] = server.endpoint
    yield server
    if previous is None:
        os.environ.pop("STORAGE_EMULATOR_HOST", None)
    else:
        os.environ["STORAGE_EMULATOR_HOST"] = previous
    server.server.stop()


@pytest.fixture(scope="session")
def azurite_server(server_logs: Path) -> Iterator[AzuriteServer]:
    """Azurite's blob service."""
    server = start_azurite(server_logs)
    yield server
    server.server.stop()


@pytest.fixture(scope="session")
def sftp_server(server_logs: Path) -> Iterator[SFTPServer]:
    """OpenSSH sshd serving SFTP to the test user."""
    base = Path(tempfile.mkdtemp(prefix="campaign_sync_sshd_", dir="/tmp"))
    server = start_sshd(base)
    yield server
    stop_sshd(server)


@pytest.fixture(scope="session")
def sample_storage(s3_server: S3Server, sftp_server: SFTPServer) -> dict[str, Any]:
    """The sample campaign's S3 bucket and SFTP folder, and its two connections."""
    s3_server.create_bucket("campaign-sync-demo")
    sftp_server.user_dir("upload")
    set_connection("campaign_sync_demo_s3", s3_server.connection())
    set_connection("campaign_sync_demo_sftp", sftp_server.connection())
    return {"s3": s3_server, "sftp": sftp_server, "bucket": "campaign-sync-demo"}
