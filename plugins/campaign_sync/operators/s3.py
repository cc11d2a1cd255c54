"""Export a treatment group's files to Amazon S3; the delivery is in ``file_drop``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from campaign_sync.destinations.s3 import S3Options
from campaign_sync.operators.file_drop import (
    FileDropExportOperator,
)


class S3ExportOperator(FileDropExportOperator):
    """Files in an S3 bucket through ``S3Hook``: whole-object PUTs, multipart above 8 MiB
    (boto3's transfer threshold, tunable with the connection's ``transfer_config_args``); an
    S3 object appears only when its upload completes."""

    options_model = S3Options
    label = "Amazon S3"

    def target_id(self, opts: Any) -> str:
        """``s3://bucket``."""
        return f"s3://{opts.bucket}"

    def _hook(self, content_type: str | None = None) -> Any:
        # S3Hook takes upload arguments such as ContentType per hook, not per call.
        hooks: dict[str | None, Any] = self.__dict__.setdefault("_s3_hooks", {})
        if content_type not in hooks:
            from airflow.providers.amazon.aws.hooks.s3 import S3Hook

            extra_args = {"ContentType": content_type} if content_type else None
            hooks[content_type] = S3Hook(aws_conn_id=self.conn_id, extra_args=extra_args)
        return hooks[content_type]

    def upload(self, opts: Any, local: Path, name: str, content_type: str) -> None:
        """``S3Hook.load_file`` (boto3 managed transfer)."""
        self._hook(content_type).load_file(
            str(local), key=name, bucket_name=opts.bucket, replace=True
        )

    def delete(self, opts: Any, names: list[str]) -> None:
        """``S3Hook.delete_objects`` (deleting a missing key succeeds in S3)."""
        self._hook().delete_objects(opts.bucket, names)
