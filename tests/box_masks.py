"""Masks made of boxes, and COCO polygons that pycocotools fills as exactly those boxes, for reader tests."""

from __future__ import annotations

import numpy as np


def box(size: tuple[int, int], *boxes: tuple[int, int, int, int]) -> np.ndarray:
    """An H x W bool mask, True inside each (y0, y1, x0, x1) box."""
    mask = np.zeros(size, dtype=bool)
    for y0, y1, x0, x1 in boxes:
        mask[y0:y1, x0:x1] = True
    return mask


def box_polygon(y0: int, y1: int, x0: int, x1: int) -> list[int]:
    """A COCO flat polygon that pycocotools fills exactly as rows y0:y1, columns x0:x1."""
    return [x0, y0, x1, y0, x1, y1, x0, y1]
