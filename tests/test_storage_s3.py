"""S3 delivery against moto's S3 server (authentication on): read-back, reruns, large files,
faults."""

from __future__ import annotations

import pytest
from airflow.sdk.exceptions import AirflowFailException
from campaign_sync.operators.file_drop import StorageConfigError, StorageDeliveryError
from campaign_sync.operators.s3 import S3ExportOperator
from storage_helpers import (
    FORMAT_CASES,
    Store,
    campaign_for,
    context,
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
CONN = "s3_drop"
TARGET = {"bucket": BUCKET}
URI = f"s3://{BUCKET}/"


class S3Store(Store):
    def __init__(self, server) -> None:
        self.client = server.client()

    def read(self, name: str) -> bytes:
        return self.client.get_object(Bucket=BUCKET, Key=name)["Body"].read()

    def names(self, prefix: str) -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
        return sorted(o["Key"] for p in pages for o in p.get("Contents", []))

    def put(self, name: str, data: bytes) -> None:
        self.client.put_object(Bucket=BUCKET, Key=name, Body=data)


@pytest.fixture(scope="module")
def store(s3_server) -> S3Store:
    s3_server.create_bucket(BUCKET)
    set_connection(CONN, s3_server.connection())
    return S3Store(s3_server)


@pytest.mark.parametrize("case", list(FORMAT_CASES))
def test_round_trip(tmp_path, staging_root, store, case):
    round_trip(tmp_path, store, S3ExportOperator, TARGET, CONN, case, URI)


def test_rerun_replaces_own_objects_only(tmp_path, staging_root, store):
    rerun_replaces_own_only(tmp_path, store, S3ExportOperator, TARGET, CONN, URI)


def test_large_file_goes_multipart(tmp_path, staging_root, store):
    options = {**TARGET, "prefix": "large"}
    source = make_projected(tmp_path / "large.parquet", 100_000, text_bytes=200)
    plan = campaign_for(tmp_path, "s3", options, conn_id=CONN)

    result = exporter(plan, S3ExportOperator, options, conn_id=CONN).deliver(source, context())

    key = result["files"][0].removeprefix(URI)
    head = store.client.head_object(Bucket=BUCKET, Key=key)
    assert head["ContentLength"] > 20 * 1024 * 1024
    assert head["ContentType"] == "text/csv"
    # A multipart upload's ETag is "<md5 of part md5s>-<parts>"; a single PUT has no suffix.
    parts = int(head["ETag"].strip('"').rsplit("-", 1)[1])
    assert parts >= 3
    body = store.read(key)
    from storage_helpers import decode

    same_rows(decode(body, fmt="csv", schema=delivered(source).schema), delivered(source))


def test_wrong_secret_is_permanent_naming_connection(tmp_path, staging_root, store, s3_server):
    set_connection("s3_wrong_secret", s3_server.connection(secret_key="not-the-secret"))
    options = {**TARGET, "prefix": "wrong-secret"}
    plan = campaign_for(tmp_path, "s3", options, conn_id="s3_wrong_secret")
    op = exporter(plan, S3ExportOperator, options, conn_id="s3_wrong_secret")

    with pytest.raises(AirflowFailException) as info:
        execute(op, make_projected(tmp_path / "p.parquet", 10), context())
    assert isinstance(info.value, StorageConfigError)

    message = str(info.value)
    assert "connection 's3_wrong_secret'" in message
    assert f"s3://{BUCKET}" in message
    assert "SignatureDoesNotMatch" in message
    assert "destination 'drop'" in message and "campaign 'storage_test'" in message
    assert store.names("wrong-secret/") == []


def test_unknown_access_key_is_permanent(tmp_path, staging_root, store, s3_server):
    conn = s3_server.connection()
    conn["login"] = "AKIAUNKNOWNKEY000000"
    set_connection("s3_unknown_key", conn)
    options = {**TARGET, "prefix": "unknown-key"}
    plan = campaign_for(tmp_path, "s3", options, conn_id="s3_unknown_key")

    with pytest.raises(AirflowFailException, match="InvalidAccessKeyId") as info:
        execute(
            exporter(plan, S3ExportOperator, options, conn_id="s3_unknown_key"),
            make_projected(tmp_path / "p.parquet", 10),
            context(),
        )
    assert "connection 's3_unknown_key'" in str(info.value)


def test_missing_bucket_is_permanent_and_clear(tmp_path, staging_root, store):
    options = {"bucket": "no-such-bucket"}
    plan = campaign_for(tmp_path, "s3", options, conn_id=CONN)

    with pytest.raises(AirflowFailException) as info:
        execute(
            exporter(plan, S3ExportOperator, options, conn_id=CONN),
            make_projected(tmp_path / "p.parquet", 10),
            context(),
        )

    message = str(info.value)
    assert "NoSuchBucket" in message
    assert f"connection {CONN!r}" in message and "s3://no-such-bucket" in message


def test_undefined_connection_is_permanent_never_ambient_credentials(tmp_path, staging_root):
    options = {**TARGET}
    plan = campaign_for(tmp_path, "s3", options, conn_id="s3_not_defined")

    with pytest.raises(AirflowFailException, match="connection 's3_not_defined' is not defined"):
        execute(
            exporter(plan, S3ExportOperator, options, conn_id="s3_not_defined"),
            make_projected(tmp_path / "p.parquet", 10),
            context(),
        )


def test_server_down_is_transient_and_names_target(tmp_path, staging_root, s3_server):
    conn = s3_server.connection()
    conn["extra"] = {
        **conn["extra"],
        "endpoint_url": f"http://127.0.0.1:{free_port()}",
        "config_kwargs": {"retries": {"max_attempts": 1}},
    }
    set_connection("s3_down", conn)
    options = {**TARGET}
    plan = campaign_for(tmp_path, "s3", options, conn_id="s3_down")

    with pytest.raises(StorageDeliveryError) as info:
        execute(
            exporter(plan, S3ExportOperator, options, conn_id="s3_down"),
            make_projected(tmp_path / "p.parquet", 10),
            context(),
        )

    assert not isinstance(info.value, AirflowFailException)  # Airflow retries it
    assert "connection 's3_down'" in str(info.value) and f"s3://{BUCKET}" in str(info.value)
