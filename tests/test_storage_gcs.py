"""GCS delivery against gcp-storage-emulator: read-back, reruns, resumable uploads, faults.

The emulator checks no credentials, so "wrong credentials" here are credentials the hook cannot
use at all (an unreadable key file, malformed key JSON); a refused token needs real Google.
"""

from __future__ import annotations

from urllib.parse import unquote

import pytest
from airflow.sdk.exceptions import AirflowFailException
from campaign_sync.operators.file_drop import StorageDeliveryError
from campaign_sync.operators.gcs import GCSExportOperator
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

BUCKET = "drop-bucket"
CONN = "gcs_drop"
TARGET = {"bucket": BUCKET}
URI = f"gs://{BUCKET}/"


class GCSStore(Store):
    def __init__(self, server) -> None:
        self.bucket = server.client().bucket(BUCKET)

    def read(self, name: str) -> bytes:
        return self.bucket.blob(name).download_as_bytes()

    def names(self, prefix: str) -> list[str]:
        return sorted(b.name for b in self.bucket.client.list_blobs(BUCKET, prefix=prefix))

    def put(self, name: str, data: bytes) -> None:
        self.bucket.blob(name).upload_from_string(data)


@pytest.fixture(scope="module")
def store(gcs_server) -> GCSStore:
    gcs_server.create_bucket(BUCKET)
    set_connection(CONN, gcs_server.connection())
    return GCSStore(gcs_server)


@pytest.mark.parametrize("case", list(FORMAT_CASES))
def test_round_trip(tmp_path, staging_root, store, case):
    round_trip(tmp_path, store, GCSExportOperator, TARGET, CONN, case, URI)


def test_rerun_replaces_own_objects_only(tmp_path, staging_root, store):
    rerun_replaces_own_only(tmp_path, store, GCSExportOperator, TARGET, CONN, URI)


def test_large_file_uses_resumable_upload(tmp_path, staging_root, store, gcs_server):
    options = {**TARGET, "prefix": "large"}
    source = make_projected(tmp_path / "large.parquet", 100_000, text_bytes=200)
    plan = campaign_for(tmp_path, "gcs", options, conn_id=CONN)

    result = exporter(plan, GCSExportOperator, options, conn_id=CONN).deliver(source, context())

    name = result["files"][0].removeprefix(URI)
    body = store.read(name)
    assert len(body) > 20 * 1024 * 1024
    same_rows(decode(body, fmt="csv", schema=delivered(source).schema), delivered(source))
    # The server saw a resumable session for this object: one POST, then 8 MiB chunk PUTs.
    log = gcs_server.requests_log()
    started = [line for line in log if "uploadType=resumable" in line and "POST" in line]
    assert started, log[-5:]
    chunks = [
        line
        for line in log
        if "PUT" in line and "upload_id=" in line and name in unquote(line.split("upload_id=")[1])
    ]
    assert len(chunks) >= 3, log[-10:]


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"key_path": "/nonexistent/key.json"}, "key.json"),
        ({"keyfile_dict": "{not json"}, "Invalid key JSON"),
    ],
    ids=["missing-key-file", "malformed-key-json"],
)
def test_unusable_credentials_are_permanent_and_clear(
    tmp_path, staging_root, store, extra, expected
):
    set_connection("gcs_bad_key", {"conn_type": "google_cloud_platform", "extra": extra})
    options = {**TARGET, "prefix": "bad-key"}
    plan = campaign_for(tmp_path, "gcs", options, conn_id="gcs_bad_key")

    with pytest.raises(AirflowFailException) as info:
        execute(
            exporter(plan, GCSExportOperator, options, conn_id="gcs_bad_key"),
            make_projected(tmp_path / "p.parquet", 10),
            context(),
        )

    message = str(info.value)
    assert "connection 'gcs_bad_key'" in message and f"gs://{BUCKET}" in message
    assert expected in message
    assert store.names("bad-key/") == []


def test_missing_bucket_is_permanent_and_clear(tmp_path, staging_root, store):
    options = {"bucket": "no-such-bucket"}
    plan = campaign_for(tmp_path, "gcs", options, conn_id=CONN)

    with pytest.raises(AirflowFailException) as info:
        execute(
            exporter(plan, GCSExportOperator, options, conn_id=CONN),
            make_projected(tmp_path / "p.parquet", 10),
            context(),
        )

    message = str(info.value)
    assert "NotFound" in message
    assert f"connection {CONN!r}" in message and "gs://no-such-bucket" in message


def test_server_down_is_transient_and_names_target(
    tmp_path, staging_root, store, gcs_server, monkeypatch
):
    import time

    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{free_port()}")
    conn = gcs_server.connection()
    conn["extra"]["retry_timeout"] = 2  # the client's own retries, before Airflow's
    set_connection("gcs_down", conn)
    options = {**TARGET}
    plan = campaign_for(tmp_path, "gcs", options, conn_id="gcs_down")

    started = time.monotonic()
    with pytest.raises(StorageDeliveryError) as info:
        execute(
            exporter(plan, GCSExportOperator, options, conn_id="gcs_down"),
            make_projected(tmp_path / "p.parquet", 10),
            context(),
        )

    assert time.monotonic() - started < 30  # retry_timeout bounds the client's retries
    assert not isinstance(info.value, AirflowFailException)
    assert "connection 'gcs_down'" in str(info.value) and f"gs://{BUCKET}" in str(info.value)
