"""The types of ``risam`` arguments that argparse checks: each refuses a bad value with one line naming it."""

from __future__ import annotations

import argparse
import math
from pathlib import Path


def probability(text: str) -> float:
    """``--threshold``: a probability strictly between 0 and 1."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a probability strictly between 0 and 1")
    return value


def seed_list(text: str) -> list[int]:
    """``--seeds``: comma-separated non-negative integers."""
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        seeds = []
    if not seeds or any(seed < 0 for seed in seeds):
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of seeds such as 0,1,2")
    return seeds


def png_path(text: str) -> Path:
    """``-o`` of a figure: a file name ending in .png."""
    path = Path(text)
    if path.suffix.lower() != ".png":
        raise argparse.ArgumentTypeError(f"{text!r}: the figure is a PNG; give a file name ending in .png")
    return path


def positive_int(text: str) -> int:
    """A count of at least 1 (``--batch-size``)."""
    return _integer_at_least(text, 1)


def non_negative_int(text: str) -> int:
    """A count of at least 0 (``--workers``)."""
    return _integer_at_least(text, 0)


def _integer_at_least(text: str, least: int) -> int:
    try:
        value = int(text)
    except ValueError:
        value = least - 1
    if value < least:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer of at least {least}")
    return value
