"""Export to an audience platform: batches, sync modes, resumable checkpoints, invalid counts."""

from __future__ import annotations

import posixpath
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from campaign_sync import config
from campaign_sync.destinations import REGISTRY
from campaign_sync.destinations.templating import render_name
from campaign_sync.digests import file_sha256, sha256_int
from campaign_sync.layout import RunLayout
from campaign_sync.operators.export import ExportOperator
from campaign_sync.pools import held_up, shared_limits
from campaign_sync.staging import Staging


@contextmanager
def _open_baseline(staging: Staging, rel: str | None) -> Iterator[Path | None]:
    """The earlier delivery's projected file at ``rel``, if there is one."""
    if rel is None:
        yield None
        return
    with staging.read_dir(posixpath.dirname(rel)) as local:
        path = local / posixpath.basename(rel)
        yield path if path.exists() else None


def _with_last(items: Iterator[Any]) -> Iterator[tuple[Any, bool]]:
    """Yield (item, is_last) with one item of lookahead."""
    previous = next(items, None)
    while previous is not None:
        current = next(items, None)
        yield previous, current is None
        previous = current


class PlatformExportOperator(ExportOperator):
    """Deliver a group's projected rows to an audience platform: the one export operator of
    every platform, driven by the platform's hook (``hook_class``, by default the hook its
    destination type names) and its declared capabilities.

    Every acknowledged batch is checkpointed in the run's staging folder; a retry, a cleared task
    or a killed worker resumes after the last acknowledged batch. Permanent failures (refused
    credentials, a missing audience, a refused request) end the task without retries.
    """

    hook_class: type | None
    limit_share: int
    in_flight: int

    if TYPE_CHECKING:  # the constructor as callers see it (CampaignTaskOperator.take_args)

        def __init__(
            self,
            *,
            hook_class: type | None = None,
            limit_share: int = 1,
            in_flight: int = 1,
            **kwargs: Any,
        ) -> None: ...

    def take_args(self, kwargs: dict[str, Any]) -> None:
        """The export's arguments, the hook class and the share of the account it holds."""
        super().take_args(kwargs)
        # Requests that may be in flight at once on this account (its pool's slots): this task
        # holds ``in_flight`` of them and keeps to that share of the account's rate, so
        # together the exports stay under it.
        self._own(
            hook_class=kwargs.pop("hook_class", None),
            limit_share=kwargs.pop("limit_share", 1),
            in_flight=kwargs.pop("in_flight", 1),
        )

    def _hook(self, dest_type: str) -> Any:
        hook_class = self.hook_class
        if hook_class is None:
            from airflow.sdk.module_loading import import_string

            path = REGISTRY[dest_type].hook
            assert path is not None, "platform destination types name their hook"
            hook_class = import_string(path)
        hook = hook_class(self.conn_id)
        if self.limit_share > 1 or self.in_flight > 1:
            hook.rate_limits = shared_limits(hook.rate_limits, self.limit_share, self.in_flight)
            hook.held_up = held_up(self.in_flight)
        return hook

    def deliver(self, source: Path, context: Any) -> dict[str, Any]:
        """Sync the audience; return rows now in it and what was sent."""
        from campaign_sync.hooks.audience import ReplaceStep
        from campaign_sync.platforms.batches import iter_batches
        from campaign_sync.platforms.checkpoint import Checkpoint
        from campaign_sync.platforms.sender import BatchSender
        from campaign_sync.platforms.sync import DeliveryLog, plan_sync

        dest = self.plan.campaign.destinations[self.destination]
        dtype = REGISTRY[dest.type]
        options = dtype.options_model.model_validate(self.options)
        mode = options.sync_mode
        hook = self._hook(dest.type)
        caps = hook.capabilities
        staging = self.staging()
        layout = self.layout(context)
        deliveries = DeliveryLog(staging, layout.delivery_log(self.group_id, self.destination))
        checkpoint = Checkpoint(
            staging,
            layout.checkpoint(self.group_id, self.destination),
            inputs=f"{mode}:{file_sha256(source)}",
        )
        name = render_name(options.audience_name, self.template_values(context, ""))
        audience_id = checkpoint.get("audience_id")
        if audience_id is None:
            audience_id = hook.ensure_audience(name)
            checkpoint.put("audience_id", audience_id)

        sender = BatchSender(checkpoint, in_flight=self.in_flight)
        send, send_all, stats = sender.send, sender.send_all, sender.stats

        with tempfile.TemporaryDirectory(prefix="campaign_sync_sync_") as tmp:
            baseline = None
            if mode == "mirror":
                previous_run = deliveries.baseline_for(layout.run_id)
                if previous_run is not None:
                    baseline = RunLayout(self.plan.dag_id, previous_run).projected(
                        self.group_id, self.destination
                    )
            # Mirror removes by the attributes that identify a member on the platform.
            mapped = set(dest.attributes.values())
            identity = [a for a in caps.identifiers if a in mapped]
            with _open_baseline(staging, baseline) as previous:
                plan = plan_sync(
                    mode, source, previous, Path(tmp), config.duckdb_memory_limit(), identity
                )
            batches = dict(max_rows=caps.max_batch_rows, max_bytes=caps.max_batch_bytes)
            if plan.removes is not None:
                send_all(
                    (f"remove:{number}", lambda r=rows: hook.remove(audience_id, r))
                    for number, rows in iter_batches(plan.removes, **batches)
                )
            if mode == "replace" and caps.replace == "session":
                if plan.added == 0:
                    # A replace session cannot be empty: the audience keeps its old members.
                    self.log.warning(
                        "%s -> %s: nothing to replace with (0 rows); the audience is unchanged",
                        self.group_id, self.destination,
                    )  # fmt: skip
                session_id = self._session_id(layout.folder, checkpoint.inputs)
                for (number, rows), last in _with_last(iter_batches(plan.adds, **batches)):
                    step = ReplaceStep(session_id, number, last, plan.added)
                    send(
                        f"replace:{number}",
                        lambda r=rows, st=step: hook.replace_batch(audience_id, r, st),
                    )
            else:
                if mode == "replace":
                    send("clear", lambda: self._cleared(hook, audience_id))
                send_all(
                    (f"add:{number}", lambda r=rows: hook.add(audience_id, r))
                    for number, rows in iter_batches(plan.adds, **batches)
                )
        deliveries.record(layout.run_id)
        self.log.info(
            "%s -> %s (%s, %s mode): %d added, %d removed, %d batches sent, %d resumed, "
            "%d reported invalid by the platform",
            self.group_id, self.destination, dest.type, mode, plan.added, plan.removed,
            stats["batches"], stats["batches_resumed"], stats["platform_invalid"],
        )  # fmt: skip
        return {
            # What the audience now holds of this group (mirror sends only the difference).
            "rows_sent": self._count(source),
            "location": f"{dest.type}:{audience_id}",
            "audience": name,
            "mode": mode,
            "added": plan.added,
            "removed": plan.removed,
            **stats,
            "dry_run": False,
        }

    @staticmethod
    def _count(path: Path) -> int:
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows

    @staticmethod
    def _cleared(hook: Any, audience_id: str) -> Any:
        from campaign_sync.hooks.audience import BatchResult

        hook.clear(audience_id)
        return BatchResult(received=0)

    def _session_id(self, run_rel: str, inputs: str) -> int:
        # Stable per run, group, destination and rows: a resumed replace continues the same
        # session, a re-projected run (other rows) starts a new one.
        return sha256_int(f"{run_rel}/{self.group_id}/{self.destination}/{inputs}")
