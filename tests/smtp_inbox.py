"""A real SMTP server for the alert tests: aiosmtpd on a free loopback port, started by the
test, keeping every message it receives."""

from __future__ import annotations

import threading
from email import message_from_bytes
from email.message import Message
from typing import Any

from storage_helpers import free_port


class Inbox:
    """aiosmtpd's Controller with a handler that keeps the messages; ``start``/``stop``."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.messages: list[Message] = []
        self.received = threading.Event()
        self.port = free_port()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        """aiosmtpd's hook for a message's content."""
        self.messages.append(message_from_bytes(envelope.content))
        self.received.set()
        return "250 OK"

    def connection(self) -> dict[str, Any]:
        """An Airflow SMTP connection (plain SMTP, no login) to this server."""
        return {
            "conn_type": "smtp",
            "host": "127.0.0.1",
            "port": self.port,
            "extra": {"disable_ssl": True, "disable_tls": True, "timeout": 10},
        }

    def start(self) -> Inbox:
        """Start listening."""
        self.controller.start()
        return self

    def stop(self) -> None:
        """Stop listening."""
        self.controller.stop()
