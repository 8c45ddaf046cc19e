"""Files that grow while a run goes: CSV tables appended row by row, and plain text logs.

CSV files are UTF-8 with the csv module's quoting and ``\\r\\n`` row endings; a row cut short by a kill
mid-write is the readers' to skip.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def append_text(path: str | os.PathLike, text: str) -> None:
    """Append ``text`` to the file ``path`` (UTF-8), creating it if missing."""
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(text)


def read_csv_rows(path: str | os.PathLike) -> list[list[str]]:
    """The rows of the CSV file ``path`` in file order, the header first, each a list of cells as strings;
    [] when the file is missing or empty."""
    path = Path(path)
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


def read_csv_header(path: str | os.PathLike) -> list[str] | None:
    """The column names on the first line of the CSV file ``path``; None when it is missing or empty."""
    path = Path(path)
    if not path.is_file():
        return None
    with open(path, newline="", encoding="utf-8") as handle:
        return next(csv.reader(handle), None)


def append_csv_row(path: str | os.PathLike, row: Mapping[str, Any]) -> None:
    """Append ``row`` (column -> value) to the CSV file ``path``.

    A new (or empty) file gets ``row``'s keys as its header; an existing one keeps its own, so that all
    rows have the same columns: keys it lacks are dropped and its columns that ``row`` lacks are left empty.
    """
    header = read_csv_header(path)
    with open(path, "a", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=header or list(row), restval="", extrasaction="ignore")
        if header is None:
            writer.writeheader()
        writer.writerow(row)
