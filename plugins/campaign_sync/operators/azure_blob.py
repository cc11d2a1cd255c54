"""Export a treatment group's files to Azure Blob Storage; the delivery is in ``file_drop``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from campaign_sync.destinations.azure_blob import AzureBlobOptions
from campaign_sync.operators.file_drop import (
    FileDropExportOperator,
)


class AzureBlobExportOperator(FileDropExportOperator):
    """Block blobs in an Azure container through ``WasbHook``: Put Blob for small files,
    staged blocks committed at the end for large ones (the SDK's thresholds, tunable with the
    connection's ``max_single_put_size`` / ``max_block_size`` extras); a blob appears only
    when complete."""

    options_model = AzureBlobOptions
    label = "Azure Blob Storage"

    def target_id(self, opts: Any) -> str:
        """``wasb://container``."""
        return f"wasb://{opts.container}"

    def _hook(self) -> Any:
        if not hasattr(self, "_wasb"):
            from airflow.providers.microsoft.azure.hooks.wasb import WasbHook

            self._wasb = WasbHook(wasb_conn_id=self.conn_id)
        return self._wasb

    def upload(self, opts: Any, local: Path, name: str, content_type: str) -> None:
        """``WasbHook.load_file``, replacing an existing blob."""
        from azure.storage.blob import ContentSettings

        self._hook().load_file(
            str(local),
            container_name=opts.container,
            blob_name=name,
            overwrite=True,
            content_settings=ContentSettings(content_type=content_type),
        )

    def delete(self, opts: Any, names: list[str]) -> None:
        """``WasbHook.delete_file`` per blob, a missing one ignored."""
        hook = self._hook()
        for name in names:
            hook.delete_file(opts.container, name, ignore_if_missing=True)
