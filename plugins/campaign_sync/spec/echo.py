"""User values repeated in error messages, kept short: a 1 MB value never makes a 1 MB line."""

from __future__ import annotations

ECHO_LIMIT = 80  # characters of a user's value repeated in an error message


def clip(text: str, limit: int = ECHO_LIMIT) -> str:
    """``text`` cut to about ``limit`` characters, saying how long it was."""
    return text if len(text) <= limit else f"{text[: limit - 1]}…({len(text):,} chars)"


def short(value: object, limit: int = ECHO_LIMIT) -> str:
    """``repr`` of a user's value for an error message, cut to about ``limit`` characters."""
    return clip(repr(value), limit)
