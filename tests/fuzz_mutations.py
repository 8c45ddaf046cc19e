"""Mutations of valid files into hostile ones, driven by a ``random.Random`` (Hypothesis's, or a seeded one).

:func:`mutate_bytes` makes the byte-level damage of a fuzzer (flips, truncation, insertion, deletion,
duplication, splicing with another seed, header integers set to extreme values, deep nesting); :func:`mutate_value`
changes a parsed document (JSON, YAML, a pickled object) node by node, so that the file still parses
and the reader's checks of keys, types and sizes are what is tried. The same ``random.Random`` state
gives the same mutation, so a case is reproducible from its seed.
"""

from __future__ import annotations

import copy
import math
import random
from collections.abc import Sequence
from typing import Any

# Integers a header field may be set to: zero, sign and width limits, and sizes far beyond any real file.
INTERESTING_INTS = (0, 1, -1, 7, 255, 256, 65535, 65536, 100_000, 2**31 - 1, 2**31, 2**32 - 1, 2**63 - 1)
# Values a document node may be replaced with: wrong types, extreme numbers, hostile strings, deep nesting.
HOSTILE_VALUES: tuple[Any, ...] = (
    None,
    True,
    0,
    -1,
    1,
    3,
    100_000,
    2**31,
    2**64,
    -(2**63),
    10**30,
    0.5,
    -2.5,
    1e308,
    math.inf,
    -math.inf,
    math.nan,
    "",
    " ",
    "x",
    "train",
    "val",
    "image.png",
    "../../outside.png",
    "/dev/zero",
    "\n\x00\ufeff",
    "é" * 40,
    [],
    {},
    [1, 2],
    [0, 0, 4, 0, 4, 4],
    [[1.5, 1.5], [5.5, 1.5], [5.5, 4.5]],
    {"size": [6, 8], "counts": "0"},
    {"size": [6, 8], "counts": [48]},
    {"size": [100_000, 100_000], "counts": [10**10]},
    {"size": [2**31, 2], "counts": "PP"},
    [100_000, 100_000],
)


def mutate_bytes(data: bytes, rng: random.Random, seeds: Sequence[bytes] = ()) -> bytes:
    """``data`` with 1 to 4 byte-level mutations; ``seeds`` are other valid files to splice from."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        kind = rng.randrange(9)
        position = rng.randrange(len(out) + 1)
        if kind == 0 and out:  # flip one bit
            index = min(position, len(out) - 1)
            out[index] ^= 1 << rng.randrange(8)
        elif kind == 1 and out:  # set a byte to an extreme
            out[min(position, len(out) - 1)] = rng.choice((0, 1, 0x7F, 0x80, 0xFF))
        elif kind == 2:  # truncate
            del out[position:]
        elif kind == 3:  # insert random bytes
            out[position:position] = rng.randbytes(rng.randint(1, 16))
        elif kind == 4:  # delete a range
            del out[position : position + rng.randint(1, 64)]
        elif kind == 5 and out:  # duplicate a range
            out[position:position] = out[position : position + rng.randint(1, 64)]
        elif kind == 6 and seeds:  # splice the tail of another seed
            other = rng.choice(seeds)
            out[position:] = other[rng.randrange(len(other) + 1) :]
        elif kind == 7 and len(out) >= 4:  # a 16- or 32-bit field set to an extreme, either byte order
            width = rng.choice((2, 4))
            value = rng.choice(INTERESTING_INTS) % (1 << (8 * width))
            index = rng.randrange(len(out) - width + 1)
            out[index : index + width] = value.to_bytes(width, rng.choice(("big", "little")))
        elif kind == 8:  # nesting deeper than any recursive parser goes
            out[position:position] = rng.choice((b"[", b'{"a":', b"- ")) * rng.choice((1_000, 100_000))
    return bytes(out)


def mutate_value(value: Any, rng: random.Random, extra: Sequence[Any] = ()) -> Any:
    """A deep copy of the document ``value`` with 1 to 3 of its nodes replaced, removed or added.

    ``extra`` adds values of the format's own (a known key's name, a valid entry) to :data:`HOSTILE_VALUES`.
    """
    document = copy.deepcopy(value)
    choices = (*HOSTILE_VALUES, *extra)
    for _ in range(rng.randint(1, 3)):
        containers = list(_containers(document))
        if not containers:
            return copy.deepcopy(rng.choice(choices))
        node = rng.choice(containers)
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        action = rng.randrange(4)
        replacement = copy.deepcopy(rng.choice(choices))
        if action == 3:  # a deeply nested value
            replacement = _nested(rng.choice((10, 200)), rng.random() < 0.5)
        if keys and action in (0, 3):
            node[rng.choice(keys)] = replacement
        elif keys and action == 1:
            del node[rng.choice(keys)]
        elif isinstance(node, dict):
            key = rng.choice((*map(str, keys), "unknown_key", "", 7)) if keys else "unknown_key"
            node[key] = replacement
        else:
            node.insert(rng.randrange(len(node) + 1), replacement)
    return document


def _containers(value: Any) -> list[dict[Any, Any] | list[Any]]:
    """Every dict and list in ``value`` (depth first, the outermost first), at most 2,000."""
    found: list[dict[Any, Any] | list[Any]] = []
    stack = [value]
    while stack and len(found) < 2000:
        node = stack.pop()
        if isinstance(node, dict):
            found.append(node)
            stack.extend(node.values())
        elif isinstance(node, list):
            found.append(node)
            stack.extend(node)
    return found


def _nested(depth: int, as_dict: bool) -> Any:
    """A list (or dict) nested ``depth`` levels deep."""
    value: Any = 1
    for _ in range(depth):
        value = {"a": value} if as_dict else [value]
    return value
