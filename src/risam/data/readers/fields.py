"""Checked access to annotation records, shared by the readers.

Each helper names the file and the record it looks at (``where``) in the AnnotationError it raises,
so that a problem can be found in the file from its message alone.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from risam.data.masks import AnnotationError
from risam.errors import conversion_problem, shown
from risam.io.images import MAX_PIXELS
from risam.io.reading import read_json


def report(error: AnnotationError, problems: list[str] | None) -> None:
    """Raise ``error``, or append it to ``problems`` when a list is given."""
    if problems is None:
        raise error
    problems.append(str(error))


def load_json(path: Path) -> Any:
    """The JSON value in ``path``; AnnotationError naming it when it is not valid UTF-8 JSON."""
    try:
        return read_json(path)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise AnnotationError(f"{path}: not valid JSON ({error})") from error
    except ValueError as error:  # json's int() of a number over Python's digits limit
        raise AnnotationError(f"{path}: not JSON this reader reads ({conversion_problem(error)})") from error
    except RecursionError as error:
        raise AnnotationError(f"{path}: not JSON this reader reads (nested too deeply)") from error


def get_key(record: Any, key: str, where: str) -> Any:
    """``record[key]``; AnnotationError naming ``where`` and ``key`` when the record is no dict or lacks the key."""
    if not isinstance(record, dict):
        raise AnnotationError(f"{where}: expected a dict with key {key!r}, got {type(record).__name__}")
    if key not in record:
        raise AnnotationError(f"{where}: missing key {key!r}")
    return record[key]


def get_list(record: Any, key: str, where: str) -> list[Any]:
    """``record[key]``, which must be a list."""
    value = get_key(record, key, where)
    if not isinstance(value, list):
        raise AnnotationError(f"{where}: {key!r} must be a list, got {type(value).__name__}")
    return value


def load_list(path: Path, load: Callable[[Path], Any], what: str) -> list[Any]:
    """The list stored in ``path`` (read by ``load``); AnnotationError when it holds something else."""
    value = load(path)
    if not isinstance(value, list):
        raise AnnotationError(f"{path}: expected a list of {what}, got {type(value).__name__}")
    return value


def index_by(
    records: list[Any], where: str, id_key: str, keys: tuple[str, ...], problems: list[str] | None
) -> dict[Any, dict[str, Any]]:
    """Records by ``record[id_key]``; records lacking ``id_key`` or any of ``keys`` are reported and left out."""
    index: dict[Any, dict[str, Any]] = {}
    for position, record in enumerate(records):
        try:
            record_id = get_id(record, id_key, f"{where}[{position}]")
            for key in keys:
                get_key(record, key, f"{where}[{position}] ({id_key} {record_id})")
        except AnnotationError as error:
            report(error, problems)
            continue
        index[record_id] = record
    return index


def get_id(record: Any, key: str, where: str) -> int | str:
    """``record[key]``, which must be an id: an int or a string (a dict or a list cannot index anything)."""
    value = get_key(record, key, where)
    if not is_id(value):
        raise AnnotationError(f"{where}: {key!r} must be an id (an int or a printable string), got {shown(value)}")
    return value


def image_size(entry: dict[str, Any], where: str) -> tuple[int, int]:
    """(height, width) of an image entry; AnnotationError unless both are positive ints and the image has at
    most :data:`~risam.io.images.MAX_PIXELS` pixels (its masks are decoded at that size)."""
    return checked_size(entry["height"], entry["width"], where)


def checked_size(height: Any, width: Any, where: str) -> tuple[int, int]:
    """(height, width) as an annotation states them; AnnotationError unless both are positive ints whose
    product is at most :data:`~risam.io.images.MAX_PIXELS`."""
    if not all(is_int(value) and value > 0 for value in (height, width)):
        raise AnnotationError(
            f"{where}: 'height' and 'width' must be positive ints, got {shown(height)} and {shown(width)}"
        )
    if height * width > MAX_PIXELS:
        raise AnnotationError(
            f"{where}: 'height' x 'width' = {shown(height)}x{shown(width)} is over the limit of {MAX_PIXELS:,} pixels"
        )
    return height, width


def is_id(value: Any) -> bool:
    """Whether ``value`` is an id: an int (not a bool) or a string of printable characters (messages show it)."""
    return is_int(value) or (isinstance(value, str) and value.isprintable())


def is_int(value: Any) -> bool:
    """Whether ``value`` is an int id (a bool is not)."""
    return isinstance(value, int) and not isinstance(value, bool)
