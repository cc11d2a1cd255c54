"""Sending an export's batches, several in flight where the platform allows it, each
acknowledged in the checkpoint as the platform accepts it.

Batches are cut in the calling thread (lazily: at most ``in_flight`` are held in memory) and
sent from worker threads. Acknowledgements are written from the calling thread, in whatever
order the batches finish: the checkpoint names each acknowledged batch, so a retry resends
exactly the ones that were not acknowledged, whatever their order. When a batch fails, the
batches already in flight are waited for (and acknowledged if accepted), nothing more is
sent, and the first failure is raised.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from typing import Any

from campaign_sync.platforms.checkpoint import Checkpoint

Step = tuple[str, Callable[[], Any]]  # (checkpoint step, call returning a BatchResult)


@contextmanager
def _frozen_heap() -> Iterator[None]:
    """Keep the objects alive now (Airflow, the DAG, the hook: most of a task's heap) out of
    the garbage collector's full collections while batches are sent.

    Cutting batches makes many objects, so full collections come often, and each scans the
    whole heap holding the GIL: 0.1-0.3 s in a task process. A batch the rate limiter granted
    meanwhile reaches the platform that much late, in the same window as the batches granted
    after it, and is refused (429); and the scans were half the export's CPU (TikTok, 1,000-row
    batches). Unfrozen afterwards, unless something else had frozen the heap before.
    """
    ours = gc.get_freeze_count() == 0
    if ours:
        gc.freeze()
    try:
        yield
    finally:
        if ours:
            gc.unfreeze()


class BatchSender:
    """Send checkpointed steps, skipping acknowledged ones; count what was sent and resumed."""

    def __init__(self, checkpoint: Checkpoint, *, in_flight: int = 1) -> None:
        self.checkpoint = checkpoint
        self.in_flight = max(1, in_flight)
        self.stats = {"batches": 0, "batches_resumed": 0, "platform_invalid": 0}

    def _resumed(self, step: str) -> bool:
        if not self.checkpoint.done(step):
            return False
        self.stats["batches_resumed"] += 1
        self.stats["platform_invalid"] += self.checkpoint.result(step).get("invalid", 0)
        return True

    def _acknowledge(self, step: str, result: Any) -> None:
        self.checkpoint.ack(step, {"received": result.received, "invalid": result.invalid})
        self.stats["batches"] += 1
        self.stats["platform_invalid"] += result.invalid

    def send(self, step: str, call: Callable[[], Any]) -> None:
        """Send one step now, in this thread (ordered steps: clears, replace sessions)."""
        if not self._resumed(step):
            self._acknowledge(step, call())

    def send_all(self, steps: Iterable[Step]) -> None:
        """Send independent steps, up to ``in_flight`` at once; returns when all are
        acknowledged, or raises the first failure once the others in flight have finished."""
        with _frozen_heap():
            if self.in_flight == 1:
                for step, call in steps:
                    self.send(step, call)
            else:
                self._send_overlapping(steps)

    def _send_overlapping(self, steps: Iterable[Step]) -> None:
        pending: dict[Future[Any], str] = {}
        failure: BaseException | None = None

        def settle(done: Iterable[Future[Any]]) -> None:
            nonlocal failure
            for future in done:
                step = pending.pop(future)
                error = future.exception()
                if error is not None:
                    failure = failure or error
                else:
                    self._acknowledge(step, future.result())

        with ThreadPoolExecutor(self.in_flight, thread_name_prefix="campaign_sync_send") as pool:
            try:
                for step, call in steps:
                    settle([f for f in pending if f.done()])
                    if failure is not None:
                        break
                    if self._resumed(step):
                        continue
                    while len(pending) >= self.in_flight:
                        settle(wait(pending, return_when=FIRST_COMPLETED).done)
                    if failure is not None:
                        break
                    pending[pool.submit(call)] = step
            finally:
                # Also on an error cutting the batches: what is in flight is acknowledged.
                settle(wait(pending).done)
        if failure is not None:
            raise failure
