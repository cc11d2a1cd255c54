"""Azure Blob delivery against Azurite: read-back, reruns, block uploads, faults."""

from __future__ import annotations

import time

import pytest
from airflow.sdk.exceptions import AirflowFailException
from campaign_sync.operators.azure_blob import AzureBlobExportOperator
from campaign_sync.operators.file_drop import StorageDeliveryError
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

CONTAINER = "drop-container"
CONN = "azure_drop"
TARGET = {"container": CONTAINER}
URI = f"wasb://{CONTAINER}/"
MIB = 1024 * 1024


class AzureStore(Store):
    def __init__(self, server):
        self.container = server.client().get_container_client(CONTAINER)

    def read(self, name):
        return self.container.download_blob(name).readall()

    def names(self, prefix):
        return sorted(b.name for b in self.container.list_blobs(name_starts_with=prefix))

    def put(self, name, data):
        self.container.upload_blob(name, data, overwrite=True)


@pytest.fixture(scope="module")
def store(azurite_server):
    azurite_server.create_container(CONTAINER)
    set_connection(CONN, azurite_server.connection())
    return AzureStore(azurite_server)


@pytest.mark.parametrize("case", list(FORMAT_CASES))
def test_round_trip(tmp_path, staging_root, store, case):
    round_trip(tmp_path, store, AzureBlobExportOperator, TARGET, CONN, case, URI)


def test_rerun_replaces_own_objects_only(tmp_path, staging_root, store):
    rerun_replaces_own_only(tmp_path, store, AzureBlobExportOperator, TARGET, CONN, URI)


def test_large_file_is_staged_in_blocks(tmp_path, staging_root, store, azurite_server):
    # The SDK switches from one Put Blob to staged blocks above max_single_put_size (64 MiB by
    # default); the connection's extras lower it so a ~24 MB file takes the block path.
    set_connection(
        "azure_blocks",
        azurite_server.connection(max_single_put_size=4 * MIB, max_block_size=4 * MIB),
    )
    options = {**TARGET, "prefix": "large"}
    source = make_projected(tmp_path / "large.parquet", 100_000, text_bytes=200)
    plan = campaign_for(tmp_path, "azure_blob", options, conn_id="azure_blocks")

    result = exporter(plan, AzureBlobExportOperator, options, conn_id="azure_blocks").deliver(
        source, context()
    )

    name = result["files"][0].removeprefix(URI)
    blob = store.container.get_blob_client(name)
    committed, uncommitted = blob.get_block_list("all")
    size = blob.get_blob_properties().size
    assert size > 20 * MIB
    assert len(committed) >= 5 and uncommitted == []
    assert sum(b.size for b in committed) == size
    assert blob.get_blob_properties().content_settings.content_type == "text/csv"
    same_rows(
        decode(store.read(name), fmt="csv", schema=delivered(source).schema), delivered(source)
    )


def test_wrong_account_key_is_permanent_naming_connection(
    tmp_path, staging_root, store, azurite_server
):
    wrong = "d3Jvbmcga2V5" * 7 + "d3Jvbmc="
    set_connection("azure_wrong_key", azurite_server.connection(key=wrong))
    options = {**TARGET, "prefix": "wrong-key"}
    plan = campaign_for(tmp_path, "azure_blob", options, conn_id="azure_wrong_key")

    with pytest.raises(AirflowFailException) as info:
        execute(
            exporter(plan, AzureBlobExportOperator, options, conn_id="azure_wrong_key"),
            make_projected(tmp_path / "p.parquet", 10),
            context(),
        )

    message = str(info.value)
    assert "connection 'azure_wrong_key'" in message and f"wasb://{CONTAINER}" in message
    assert "Server failed to authenticate the request" in message
    assert store.names("wrong-key/") == []


def test_missing_container_is_permanent_and_clear(tmp_path, staging_root, store):
    options = {"container": "no-such-container"}
    plan = campaign_for(tmp_path, "azure_blob", options, conn_id=CONN)

    with pytest.raises(AirflowFailException) as info:
        execute(
            exporter(plan, AzureBlobExportOperator, options, conn_id=CONN),
            make_projected(tmp_path / "p.parquet", 10),
            context(),
        )

    message = str(info.value)
    assert "ContainerNotFound" in message or "container does not exist" in message
    assert f"connection {CONN!r}" in message and "wasb://no-such-container" in message


def test_server_down_is_transient_and_names_target(tmp_path, staging_root, store):
    # retry_total bounds the SDK's own retries (15 s back-off by default) before Airflow's.
    conn = {
        "conn_type": "wasb",
        "login": "devstoreaccount1",
        "password": "d3Jvbmcga2V5" * 7 + "d3Jvbmc=",
        "host": f"http://127.0.0.1:{free_port()}/devstoreaccount1",
        "extra": {"retry_total": 0},
    }
    set_connection("azure_down", conn)
    options = {**TARGET}
    plan = campaign_for(tmp_path, "azure_blob", options, conn_id="azure_down")

    started = time.monotonic()
    with pytest.raises(StorageDeliveryError) as info:
        execute(
            exporter(plan, AzureBlobExportOperator, options, conn_id="azure_down"),
            make_projected(tmp_path / "p.parquet", 10),
            context(),
        )

    assert time.monotonic() - started < 30
    assert not isinstance(info.value, AirflowFailException)
    assert "connection 'azure_down'" in str(info.value) and f"wasb://{CONTAINER}" in str(info.value)
