"""The JSON records of a ``risam segment`` run: each image's ``predictions.json`` read back, and the run's
``predictions.jsonl`` and COCO results written (atomically, streamed so that memory does not grow)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from typing import Any

from risam.io.files import atomic_write
from risam.io.reading import read_json


def read_record(path: str | os.PathLike) -> dict[str, Any] | None:
    """The JSON object in ``path``; None when it is missing, unreadable, not JSON or not an object
    (a record that cannot be read is one to write again)."""
    try:
        record = read_json(path)
    except (OSError, ValueError, RecursionError):
        return None
    return record if isinstance(record, dict) else None


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict[str, Any]]) -> int:
    """Write ``rows`` to ``path`` as JSON Lines (UTF-8), atomically; returns how many were written."""
    count = 0
    with atomic_write(path, "w") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            count += 1
    return count


def write_json_list(path: str | os.PathLike, rows: Iterable[dict[str, Any]]) -> int:
    """Write ``rows`` to ``path`` as one JSON list (UTF-8, one row per line), atomically; returns how many."""
    count = 0
    with atomic_write(path, "w") as handle:
        handle.write("[")
        for row in rows:
            handle.write(("\n" if count == 0 else ",\n") + json.dumps(row, ensure_ascii=False))
            count += 1
        handle.write("\n]\n")
    return count
