"""The SHA-256 digests the package takes: of a file, and short forms of a text.

Kept in one place so that every caller derives ids the same way (and never hashes twice).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

_CHUNK = 1024 * 1024


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_prefix(text: str, hex_digits: int) -> str:
    """The first ``hex_digits`` hex digits of SHA-256(``text``), e.g. to tell ids apart."""
    return hashlib.sha256(text.encode()).hexdigest()[:hex_digits]


def sha256_int(text: str, hex_digits: int = 15) -> int:
    """The first ``hex_digits`` hex digits of SHA-256(``text``) as an integer (60 bits by
    default: fits a signed 64-bit integer, and DuckDB's UBIGINT for the SQL twin)."""
    return int(sha256_prefix(text, hex_digits), 16)
