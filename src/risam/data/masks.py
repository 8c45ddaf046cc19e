"""COCO segmentations (polygons or RLE) to boolean masks, through pycocotools."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from risam.errors import InputError


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
            if not all(math.isfinite(v) and -limit <= v <= limit for v in polygon):
                raise AnnotationError(
                    f"{where}: polygon {index} of 'segmentation' has coordinates outside [-{limit}, {limit}] "
                    f"or not finite, for an image of {height}x{width}"
                )
        rles = mask_utils.frPyObjects(segmentation, height, width)
        rle = mask_utils.merge(rles)
    elif isinstance(segmentation, dict) and {"size", "counts"} <= set(segmentation):
        if list(segmentation["size"]) != [height, width]:
            raise AnnotationError(
                f"{where}: RLE 'size' is {segmentation['size']}, but the image is {[height, width]} (height, width)"
            )
        counts = segmentation["counts"]
        rle = mask_utils.frPyObjects(segmentation, height, width) if isinstance(counts, list) else segmentation
        if isinstance(rle.get("counts"), str):
            rle = {"size": rle["size"], "counts": rle["counts"].encode("ascii")}
    else:
        raise AnnotationError(
            f"{where}: 'segmentation' must be a list of polygons or an RLE dict with 'size' and 'counts', "
            f"got {type(segmentation).__name__}"
        )
    return mask_utils.decode(rle).astype(bool)


def encode_mask(mask: np.ndarray) -> dict[str, Any]:
    """A compressed COCO RLE of an H x W bool mask, JSON-ready (``counts`` as str)."""
    rle = mask_utils.encode(np.asfortranarray(mask.view(np.uint8) if mask.dtype == bool else mask.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}
