"""COCO segmentations (polygons or RLE) to boolean masks, through pycocotools."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from risam.errors import InputError, shown


class AnnotationError(InputError):
    """An annotation is malformed; the message names the file and the key or id."""


def decode_segmentation(segmentation: Any, height: int, width: int, where: str) -> np.ndarray:
    """Decode a COCO segmentation to an H x W bool mask.

    segmentation: a list of flat polygons ``[[x1, y1, x2, y2, ...], ...]``, a compressed RLE
    dict ``{"size": [h, w], "counts": str}`` or an uncompressed one (``counts`` a list).
    ``where`` names the file and object for error messages.
    """
    if isinstance(segmentation, list):
        for index, polygon in enumerate(segmentation):
            if (
                not isinstance(polygon, list)
                or len(polygon) < 6
                or len(polygon) % 2
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in polygon)
            ):
                raise AnnotationError(
                    f"{where}: polygon {index} of 'segmentation' is malformed; expected a flat list of at least "
                    "3 (x, y) number pairs"
                )
        if not segmentation:
            raise AnnotationError(f"{where}: 'segmentation' is an empty polygon list")
        # pycocotools crashes on non-finite or huge coordinates; real polygons lie on or near the image.
        limit = 2 * max(height, width)
        for index, polygon in enumerate(segmentation):
            if not all(-limit <= v <= limit for v in polygon):  # also False for NaN; no float() of a huge int
                raise AnnotationError(
                    f"{where}: polygon {index} of 'segmentation' has coordinates outside [-{limit}, {limit}] "
                    f"or not finite, for an image of {height}x{width}"
                )
        return _decoded(lambda: mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width)), where)
    if isinstance(segmentation, dict) and {"size", "counts"} <= set(segmentation):
        size, counts = segmentation["size"], segmentation["counts"]
        if not isinstance(size, list) or size != [height, width]:
            raise AnnotationError(
                f"{where}: RLE 'size' is {shown(size)}, but the image is {[height, width]} (height, width)"
            )
        runs = string_counts(counts) if isinstance(counts, str) else counts
        if not isinstance(runs, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in runs):
            raise AnnotationError(f"{where}: RLE 'counts' must be a list of run lengths or COCO's compressed string")
        # pycocotools fills a mask whose runs are short with whatever its buffer held: the runs must cover it
        in_range = all(0 <= v <= height * width for v in runs)  # a run of 10^5000 could not even be printed
        if not in_range or sum(runs) != height * width:
            found = f"these add up to {sum(runs)}" if in_range else "one is negative or longer than the image"
            raise AnnotationError(
                f"{where}: RLE 'counts' must be runs of 0 or more pixels adding up to the image's {height * width} "
                f"({height}x{width}); {found}"
            )
        if isinstance(counts, str):
            return _decoded(lambda: {"size": size, "counts": counts.encode("ascii")}, where)
        return _decoded(lambda: mask_utils.frPyObjects({"size": size, "counts": counts}, height, width), where)
    raise AnnotationError(
        f"{where}: 'segmentation' must be a list of polygons or an RLE dict with 'size' and 'counts', "
        f"got {type(segmentation).__name__}"
    )


def string_counts(counts: str) -> list[int] | None:
    """The run lengths of COCO's compressed RLE string (pycocotools' ``rleFrString``); None when malformed.

    Each run is a signed number in 5-bit groups, the characters ``0``-``o`` (48 + 0..63; 0x20 marks "more
    groups follow", 0x10 in the last group the sign); from the fourth run on, it is stored as the difference
    to the run two before. A number of more than 6 groups (30 bits) is malformed: pycocotools reads it into
    a 32-bit int, so it would read other runs than these, and no mask of under 2^29 pixels needs one.
    """
    runs: list[int] = []
    value = shift = 0
    for char in counts:
        code = ord(char) - 48
        if not 0 <= code < 64:
            return None
        value |= (code & 0x1F) << shift
        shift += 5
        if shift > 30:
            return None
        if code & 0x20:
            continue
        if code & 0x10:
            value |= -1 << shift
        runs.append(value + (runs[-2] if len(runs) > 2 else 0))
        value = shift = 0
    return runs if shift == 0 else None


def _decoded(make_rle: Callable[[], Any], where: str) -> np.ndarray:
    """``pycocotools.mask.decode(make_rle())`` as bool; what pycocotools raises on what it cannot read as
    AnnotationError naming ``where``."""
    try:
        return mask_utils.decode(make_rle()).astype(bool)
    except (TypeError, ValueError, OverflowError) as error:
        raise AnnotationError(f"{where}: 'segmentation' does not decode ({type(error).__name__}: {error})") from error


def encode_mask(mask: np.ndarray) -> dict[str, Any]:
    """A compressed COCO RLE of an H x W bool mask, JSON-ready (``counts`` as str)."""
    rle = mask_utils.encode(np.asfortranarray(mask.view(np.uint8) if mask.dtype == bool else mask.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}
