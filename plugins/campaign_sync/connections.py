"""Which Airflow connections a campaign needs, whether they exist, and whether they work.

Connections are looked up through Airflow (``BaseHook.get_connection``) as its server processes
do: environment variables ``AIRFLOW_CONN_*``, the configured secrets backends, then the metadata
database. Only ids, types and outcomes are reported, never a connection's fields.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from campaign_sync.destinations import REGISTRY
from campaign_sync.spec.model import Campaign

_MESSAGE_CHARS = 200
# How the Task SDK tells server processes (metadata database reachable) from workers.
_PROCESS_CONTEXT = "_AIRFLOW_PROCESS_CONTEXT"


@dataclass(frozen=True)
class ConnectionUse:
    """One connection id one campaign uses: for its source or for one destination."""

    campaign: str
    role: str  # "source" or the destination's name
    kind: str  # "source" or the destination's type
    conn_id: str


@dataclass(frozen=True)
class ConnectionCheck:
    """The outcome for one use: found (with its connection type) and, if asked, tested."""

    use: ConnectionUse
    found: bool
    conn_type: str | None = None
    lookup_error: str | None = None
    tested: bool | None = None  # None: not tested, or no test available
    test_message: str | None = None

    @property
    def ok(self) -> bool:
        """Found, and not failing a test."""
        return self.found and self.tested is not False


def connection_uses(campaign: Campaign) -> tuple[list[ConnectionUse], list[str]]:
    """The campaign's connection uses, and the names of its dry-run destinations (which need
    none)."""
    uses = [ConnectionUse(campaign.name, "source", "source", campaign.source.conn_id)]
    dry_runs = []
    for name, dest in campaign.destinations.items():
        if dest.dry_run:
            dry_runs.append(name)
        elif dest.conn_id:
            uses.append(ConnectionUse(campaign.name, name, dest.type, dest.conn_id))
    return uses, dry_runs


def check(use: ConnectionUse, *, test: bool = False) -> ConnectionCheck:
    """Look the connection up and, with ``test``, call its hook's ``test_connection()``."""
    with _server_lookups():
        return _check(use, test=test)


@contextmanager
def _server_lookups() -> Iterator[None]:
    """Outside a task the Task SDK reads connections from environment variables and secrets
    backends only; in a server context (as the API server and scheduler run) it also reads the
    metadata database, which is where most deployments keep them."""
    previous = os.environ.get(_PROCESS_CONTEXT)
    if previous is None:
        os.environ[_PROCESS_CONTEXT] = "server"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(_PROCESS_CONTEXT, None)


def _check(use: ConnectionUse, *, test: bool) -> ConnectionCheck:
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        conn = BaseHook.get_connection(use.conn_id)
    except AirflowNotFoundException:
        return ConnectionCheck(use, found=False)
    except Exception as exc:
        # A broken secrets backend or database: say so without guessing "missing".
        return ConnectionCheck(use, found=False, lookup_error=_short(exc))
    if not test:
        return ConnectionCheck(use, found=True, conn_type=conn.conn_type)
    try:
        hook = _hook(use, conn)
        if not callable(getattr(hook, "test_connection", None)):
            return ConnectionCheck(
                use, True, conn.conn_type, test_message="no test available for this hook"
            )
        passed, message = hook.test_connection()
    except Exception as exc:
        return ConnectionCheck(use, True, conn.conn_type, tested=False, test_message=_short(exc))
    return ConnectionCheck(
        use, True, conn.conn_type, tested=bool(passed), test_message=_trim(str(message))
    )


def _hook(use: ConnectionUse, conn: Any) -> Any:
    """The hook a task would use for this connection: the platform exporter's hook, else the
    hook registered for the connection's type (provider hooks, the source's SQL hook)."""
    if use.kind != "source":
        exporter = REGISTRY[use.kind].exporter
        if exporter:
            from airflow.sdk.module_loading import import_string

            hook_class = getattr(import_string(exporter), "hook_class", None)
            if hook_class is not None:
                return hook_class(use.conn_id)
    return conn.get_hook()


def _short(exc: BaseException) -> str:
    return _trim(f"{type(exc).__name__}: {exc}")


def _trim(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MESSAGE_CHARS else text[: _MESSAGE_CHARS - 3] + "..."


def describe(result: ConnectionCheck) -> str:
    """One report line: destination (type), conn id, found or MISSING, test outcome."""
    use = result.use
    what = "source" if use.kind == "source" else f"{use.role} ({use.kind})"
    if result.lookup_error:
        state = f"LOOKUP FAILED: {result.lookup_error}"
    elif not result.found:
        state = "MISSING"
    else:
        state = f"found (type {result.conn_type})"
    line = f"  {what:<34} {use.conn_id:<32} {state}"
    if result.found:
        if result.tested is True:
            line += f"; test ok: {result.test_message}"
        elif result.tested is False:
            line += f"; TEST FAILED: {result.test_message}"
        elif result.test_message:
            line += f"; {result.test_message}"
    return line
