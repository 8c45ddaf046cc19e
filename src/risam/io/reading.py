"""Whole files read as they are: bytes, UTF-8 text, JSON, and the lines of a file one at a time.

The functions raise what the reading raises (``FileNotFoundError``, ``IsADirectoryError``,
``UnicodeDecodeError``, ``json.JSONDecodeError``), so that each caller words its own one-line error.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any


def read_bytes(path: str | os.PathLike) -> bytes:
    """The bytes of the file ``path``."""
    with open(path, "rb") as handle:
        return handle.read()


def read_text(path: str | os.PathLike) -> str:
    """The text of the UTF-8 file ``path``, newlines translated to ``\\n``."""
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def read_json(path: str | os.PathLike) -> Any:
    """The JSON value in the UTF-8 file ``path`` (dicts, lists, strings, numbers, booleans, None)."""
    return json.loads(read_text(path))


def read_lines(path: str | os.PathLike) -> Iterator[bytes]:
    """The lines of the file ``path`` as bytes, each with its ``\\n`` (the last one may lack it), read one at a
    time; the file is opened at the first line and closed after the last (or when the iterator is dropped)."""
    with open(path, "rb") as handle:
        yield from handle
