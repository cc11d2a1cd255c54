"""A threaded local HTTP server that plays one platform, keeps what it received, and injects
faults on request: limit signals (with and without Retry-After), 5xx, slow responses, connection
resets and partial acceptance."""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    """One request as the fake saw it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any
    raw: bytes


@dataclass
class Response:
    """What the fake answers."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


class ContractError(Exception):
    """A request that breaks the platform's documented contract (answered with 400)."""


class LostAnswer(Exception):
    """Raised by a route after applying a request: the connection drops before the answer."""


FAULTS = ("throttle", "throttle_no_retry_after", "server_error", "slow", "reset", "partial")


class FakePlatform:
    """Base of the fakes. Subclasses implement ``route`` and the platform's fault rendering."""

    name = "platform"

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: list[Request] = []
        self.faults: deque[tuple[str, dict[str, Any]]] = deque()
        self.members: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
        self.received: list[dict[str, Any]] = []  # accepted data batches
        self.contract_errors: list[str] = []
        self.throttled = 0
        self.slow_seconds = 0.0  # added to every data request (for kill tests)
        self.in_flight = 0
        self._server: ThreadingHTTPServer | None = None

    # --- lifecycle -------------------------------------------------------------------------
    def start(self) -> str:
        """Serve on a free loopback port; return the base URL."""
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                fake._dispatch(self)

            do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    # --- faults ----------------------------------------------------------------------------
    def inject(self, kind: str, times: int = 1, **params: Any) -> None:
        """Apply fault ``kind`` to the next ``times`` data requests."""
        assert kind in FAULTS, kind
        for _ in range(times):
            self.faults.append((kind, params))

    def is_data_request(self, request: Request) -> bool:
        """Requests that faults apply to (member uploads); subclasses say which."""
        return True

    def throttle_response(self, with_retry_after: bool, params: dict[str, Any]) -> Response:
        """The platform's own limit signal."""
        headers = {"Retry-After": str(params.get("retry_after", 1))} if with_retry_after else {}
        return Response(429, {"error": "rate limited"}, headers)

    # --- data helpers for subclasses -------------------------------------------------------
    def record(self, op: str, audience: str, rows: list[dict[str, Any]], key: str) -> None:
        """Keep an accepted batch and apply it to the audience's membership."""
        with self.lock:
            self.received.append({"op": op, "audience": audience, "rows": rows})
            members = self.members[audience]
            for row in rows:
                if op == "add":
                    members[row[key]] = row
                elif op == "remove":
                    members.pop(row[key], None)

    def received_rows(self, op: str = "add", audience: str | None = None) -> list[dict[str, Any]]:
        """Every row received for ``op`` (duplicates kept, in order)."""
        return [
            row
            for batch in self.received
            if batch["op"] == op and (audience is None or batch["audience"] == audience)
            for row in batch["rows"]
        ]

    def route(self, request: Request, fault: tuple[str, dict[str, Any]] | None) -> Response:
        """Answer one request; ``fault`` is ``("partial", params)`` when partial acceptance
        is asked for (other faults are handled before)."""
        raise ContractError(f"no route for {request.method} {request.path}")

    # --- plumbing --------------------------------------------------------------------------
    def wait_idle(self, timeout: float = 10.0) -> None:
        """Wait until no request is being handled (a slow one may outlive its client)."""
        deadline = time.monotonic() + timeout
        while self.in_flight and time.monotonic() < deadline:
            time.sleep(0.05)

    def _dispatch(self, handler: BaseHTTPRequestHandler) -> None:
        with self.lock:
            self.in_flight += 1
        try:
            self._handle_one(handler)
        finally:
            with self.lock:
                self.in_flight -= 1

    def _handle_one(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        split = urlsplit(handler.path)
        content_type = handler.headers.get("Content-Type", "")
        if "json" in content_type and raw:
            body: Any = json.loads(raw)
        elif "x-www-form-urlencoded" in content_type:
            body = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
        else:
            body = raw.decode() if raw else None
        request = Request(
            handler.command,
            split.path,
            parse_qs(split.query),
            {k.lower(): v for k, v in handler.headers.items()},
            body,
            raw,
        )
        with self.lock:
            self.requests.append(request)
        fault = None
        if self.is_data_request(request):
            if self.slow_seconds:
                time.sleep(self.slow_seconds)
            with self.lock:
                fault = self.faults.popleft() if self.faults else None
        if fault is not None:
            kind, params = fault
            if kind == "reset":
                handler.close_connection = True
                handler.connection.shutdown(2)
                return
            if kind == "slow":
                time.sleep(params.get("seconds", 3))
                fault = None  # answered normally, but too late for a short client timeout
            elif kind in ("throttle", "throttle_no_retry_after"):
                with self.lock:
                    self.throttled += 1
                self._send(handler, self.throttle_response(kind == "throttle", params))
                return
            elif kind == "server_error":
                self._send(handler, Response(500, {"error": "internal error"}))
                return
        try:
            response = self.route(request, fault)
        except LostAnswer:
            handler.close_connection = True
            handler.connection.shutdown(2)
            return
        except ContractError as exc:
            with self.lock:
                self.contract_errors.append(str(exc))
            response = Response(400, {"error": str(exc)})
        self._send(handler, response)

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, response: Response) -> None:
        payload = b"" if response.body is None else json.dumps(response.body).encode()
        handler.send_response(response.status)
        for key, value in response.headers.items():
            handler.send_header(key, value)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        try:
            handler.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up waiting (a slow-response test)
