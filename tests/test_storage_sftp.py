"""SFTP delivery against OpenSSH's sshd: read-back, reruns, atomic uploads, faults.

The server runs OpenSSH's sftp-server with VERBOSE logging, so tests check the requests the
client made (every final name arrives by rename, never by a write, and is never stat-ed).
"""

from __future__ import annotations

import re
import subprocess
import threading
import time

import pytest
from airflow.sdk.exceptions import AirflowFailException
from campaign_sync.operators.file_drop import StorageDeliveryError
from campaign_sync.operators.sftp import SFTPExportOperator
from storage_helpers import (
    FORMAT_CASES,
    Store,
    campaign_for,
    context,
    decode,
    delivered,
    execute,
    exporter,
    free_port,
    make_projected,
    rerun_replaces_own_only,
    round_trip,
    same_rows,
    set_connection,
)

pytest_plugins = ["servers"]

CONN = "sftp_drop"
TARGET = {"remote_dir": "upload"}


class SFTPStore(Store):
    """Reads the server's files from its disk (the server runs on this machine)."""

    def __init__(self, server):
        self.root = server.user_dir("upload")

    def read(self, name):
        return (self.root / name).read_bytes()

    def names(self, prefix):
        base = self.root / prefix
        return (
            sorted(str(p.relative_to(self.root)) for p in base.rglob("*") if p.is_file())
            if base.exists()
            else []
        )

    def put(self, name, data):
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


@pytest.fixture(scope="module")
def store(sftp_server):
    set_connection(CONN, sftp_server.connection())
    return SFTPStore(sftp_server)


@pytest.fixture(scope="module")
def uri(sftp_server):
    return f"sftp://127.0.0.1:{sftp_server.port}/~/upload/"


def server_requests(sftp_server) -> list[str]:
    """The sftp-server's request log so far."""
    time.sleep(0.2)  # the server writes its log as it goes; let the last lines land
    return (sftp_server.root / "sftp-server.log").read_text().splitlines()


def check_arrived_by_rename(sftp_server, names: list[str]) -> None:
    """Each final name was created by renaming a temporary file, and never opened or stat-ed."""
    log = server_requests(sftp_server)
    for name in names:
        path = f"upload/{name}"
        renames = [line for line in log if line.endswith(f' new "{path}"')]
        assert len(renames) >= 1, name
        assert all(re.search(r'old "upload/.*/\.[^/]+\.part-[0-9a-f]{12}"', r) for r in renames)
        assert not [line for line in log if line.startswith(f'open "{path}"')]
        assert not [line for line in log if re.match(rf'l?stat name "{re.escape(path)}"', line)]


@pytest.mark.parametrize("case", list(FORMAT_CASES))
def test_round_trip(tmp_path, staging_root, store, uri, sftp_server, case):
    round_trip(tmp_path, store, SFTPExportOperator, TARGET, CONN, case, uri)

    delivered_names = store.names(f"rt-{case}/")
    check_arrived_by_rename(sftp_server, delivered_names)


def test_rerun_replaces_own_objects_only(tmp_path, staging_root, store, uri):
    rerun_replaces_own_only(tmp_path, store, SFTPExportOperator, TARGET, CONN, uri)


def test_large_file_never_appears_half_written(tmp_path, staging_root, store, uri, sftp_server):
    options = {**TARGET, "prefix": "large"}
    source = make_projected(tmp_path / "large.parquet", 100_000, text_bytes=200)
    plan = campaign_for(tmp_path, "sftp", options, conn_id=CONN)
    seen: dict[str, set[int]] = {}
    stop = threading.Event()

    def watch() -> None:
        # What a reader polling the folder would see while the upload runs.
        folder = store.root / "large"
        while not stop.is_set():
            for path in folder.rglob("*") if folder.exists() else []:
                try:
                    seen.setdefault(path.name, set()).add(path.stat().st_size)
                except FileNotFoundError:
                    pass

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        result = exporter(plan, SFTPExportOperator, options, conn_id=CONN).deliver(
            source, context()
        )
    finally:
        stop.set()
        watcher.join()

    name = result["files"][0].removeprefix(uri)
    body = store.read(name)
    assert len(body) > 20 * 1024 * 1024
    same_rows(decode(body, fmt="csv", schema=delivered(source).schema), delivered(source))
    final = name.rsplit("/", 1)[1]
    temporary = [n for n in seen if n.startswith(f".{final}.part-")]
    assert temporary, seen.keys()  # the upload went to a temporary name ...
    assert seen.get(final, {len(body)}) == {len(body)}  # ... and the final name was whole
    assert store.names("large/") == [name]  # no temporary file left
    check_arrived_by_rename(sftp_server, [name])


def deliver_fails(tmp_path, options, conn_id, rows=10):
    """Run the export task's first try (``execute``), which must fail."""
    plan = campaign_for(tmp_path, "sftp", options, conn_id=conn_id)
    op = exporter(plan, SFTPExportOperator, options, conn_id=conn_id)
    execute(op, make_projected(tmp_path / "p.parquet", rows), context())


def test_disk_full_is_transient_and_leaves_no_file(tmp_path, staging_root, store, sftp_server):
    full = sftp_server.mount_tmpfs("full", "256k")
    options = {
        "remote_dir": "full",
        "file_template": "{run_id}_{sub_audience}_{treatment_group}_{file_number}.{ext}",
    }

    with pytest.raises(StorageDeliveryError) as info:
        deliver_fails(tmp_path, options, CONN, rows=20_000)

    assert not isinstance(info.value, AirflowFailException)  # a full disk may be emptied
    message = str(info.value)
    assert "connection 'sftp_drop'" in message
    assert f"sftp://127.0.0.1:{sftp_server.port}/~/full" in message
    assert "disk full" in message
    assert list(full.iterdir()) == []  # neither the final name nor the temporary file
    log = server_requests(sftp_server)
    assert not [line for line in log if line.startswith("posix-rename") and '"full/' in line]


def test_permission_denied_is_permanent_leaves_no_file(tmp_path, staging_root, store, sftp_server):
    options = {
        "remote_dir": "readonly",
        "file_template": "{run_id}_{sub_audience}_{treatment_group}_{file_number}.{ext}",
    }

    with pytest.raises(AirflowFailException) as info:
        deliver_fails(tmp_path, options, CONN)

    message = str(info.value)
    assert "Permission denied" in message
    assert "connection 'sftp_drop'" in message and "/~/readonly" in message
    assert list((sftp_server.home / "readonly").iterdir()) == []


def test_permission_denied_on_a_subfolder_is_permanent(tmp_path, staging_root, store, sftp_server):
    with pytest.raises(AirflowFailException, match="Permission denied"):
        deliver_fails(tmp_path, {"remote_dir": "readonly"}, CONN)

    assert list((sftp_server.home / "readonly").iterdir()) == []


def test_missing_remote_folder_is_permanent_and_clear(tmp_path, staging_root, store, sftp_server):
    with pytest.raises(AirflowFailException) as info:
        deliver_fails(tmp_path, {"remote_dir": "no-such-folder"}, CONN)

    message = str(info.value)
    assert "remote folder 'no-such-folder' does not exist" in message
    assert "connection 'sftp_drop'" in message
    assert not (sftp_server.home / "no-such-folder").exists()


def test_wrong_user_key_is_permanent(tmp_path, staging_root, store, sftp_server):
    key = tmp_path / "other_key"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)],
        check=True,
        capture_output=True,
    )
    set_connection("sftp_wrong_key", sftp_server.connection(key_file=key))

    with pytest.raises(AirflowFailException) as info:
        deliver_fails(tmp_path, {**TARGET, "prefix": "wrong-key"}, "sftp_wrong_key")

    assert "AuthenticationException" in str(info.value)
    assert "connection 'sftp_wrong_key'" in str(info.value)
    assert store.names("wrong-key/") == []


def test_unexpected_host_key_is_permanent(tmp_path, staging_root, store, sftp_server):
    conn = sftp_server.connection()
    conn["extra"]["host_key"] = " ".join(
        (sftp_server.root / "client_key.pub").read_text().split()[:2]
    )
    set_connection("sftp_wrong_host", conn)

    with pytest.raises(AirflowFailException, match="BadHostKeyException") as info:
        deliver_fails(tmp_path, {**TARGET, "prefix": "wrong-host"}, "sftp_wrong_host")

    assert "connection 'sftp_wrong_host'" in str(info.value)
    assert store.names("wrong-host/") == []


def test_server_down_is_transient_and_names_target(tmp_path, staging_root, store, sftp_server):
    port = free_port()
    conn = sftp_server.connection()
    conn["port"] = port
    set_connection("sftp_down", conn)

    started = time.monotonic()
    with pytest.raises(StorageDeliveryError) as info:
        deliver_fails(tmp_path, TARGET, "sftp_down")

    assert time.monotonic() - started < 30
    assert not isinstance(info.value, AirflowFailException)
    assert "connection 'sftp_down'" in str(info.value)
    assert f"sftp://127.0.0.1:{port}/~/upload" in str(info.value)


def test_rerun_order_marker_first_out_and_last_in(tmp_path, staging_root, store, sftp_server):
    """On a rerun a reader never sees the old marker beside new files: the old marker goes
    first, then the files arrive, then leftovers go, and the new marker arrives last."""
    options = {**TARGET, "prefix": "order", "max_rows_per_file": 300, "success_marker": ".DONE"}
    plan = campaign_for(tmp_path, "sftp", options, conn_id=CONN)
    source = make_projected(tmp_path / "p.parquet", 1000)
    exporter(plan, SFTPExportOperator, options, conn_id=CONN).deliver(source, context())
    before = len(server_requests(sftp_server))

    smaller = {**options, "max_rows_per_file": 600}
    result = exporter(plan, SFTPExportOperator, smaller, conn_id=CONN).deliver(source, context())

    folder = "upload/" + result["files"][0].split("/~/upload/", 1)[1].rsplit("/", 1)[0]
    steps = []
    for line in server_requests(sftp_server)[before:]:
        if line.startswith("remove name") and f'"{folder}/' in line:
            steps.append(("remove", line.split('"')[1].rsplit("/", 1)[1]))
        elif line.startswith("posix-rename") and f'new "{folder}/' in line:
            steps.append(("arrive", line.rsplit('"', 2)[1].rsplit("/", 1)[1]))
    assert steps == [
        ("remove", ".DONE"),
        ("arrive", "drop_00001.csv"),
        ("arrive", "drop_00002.csv"),
        ("remove", "drop_00003.csv"),
        ("remove", "drop_00004.csv"),
        ("arrive", ".DONE"),
    ]
