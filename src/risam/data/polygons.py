"""Any boolean mask as COCO polygons that pycocotools decodes back to exactly that mask.

COCO stores a non-crowd object as a list of polygons, and REFER's ``getMask`` decodes it the
way COCO does: each polygon is rasterized by ``frPyObjects`` and the parts are summed, so a pixel
is in the mask when it lies in any part. pycocotools rasterizes one polygon column by column
with the even-odd rule, a pixel ``(row, col)`` counting as inside when its centre ``(col, row)``
is. :func:`mask_to_polygons` relies on exactly that:

- the outline runs along pixel edges (corners at half-integer coordinates), so no pixel centre
  lies on it and every pixel is decided the same way by any even-odd rasterizer;
- each 4-connected part of the mask is one polygon; its holes are joined to its outer outline by
  bridges that go out and come back along the same segment, so they add nothing under the
  even-odd rule, and the hole stays empty (a hole as a separate polygon would be filled by the sum);
- vertices where the outline goes straight on are dropped.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

Corner = tuple[int, int]


def mask_to_polygons(mask: np.ndarray) -> list[list[float]]:
    """The COCO polygons (flat ``[x1, y1, x2, y2, ...]``) of an H x W bool ``mask``: one per 4-connected part.

    Decoding them with pycocotools (``frPyObjects``, ``decode``, union over parts) gives ``mask`` exactly.
    An empty mask has no polygons.
    """
    mask = np.asarray(mask, dtype=bool)
    labels, count = _label_parts(mask)
    if count == 0:
        return []
    rows, cols = np.nonzero(labels)
    part_of_pixel = labels[rows, cols]
    top = np.full(count + 1, mask.shape[0])
    left = np.full(count + 1, mask.shape[1])
    bottom = np.zeros(count + 1, dtype=np.int64)
    right = np.zeros(count + 1, dtype=np.int64)
    np.minimum.at(top, part_of_pixel, rows)  # each part's bounding box, so each is traced within its own
    np.minimum.at(left, part_of_pixel, cols)
    np.maximum.at(bottom, part_of_pixel, rows + 1)
    np.maximum.at(right, part_of_pixel, cols + 1)
    return [
        _part_polygon(labels[top[label] : bottom[label], left[label] : right[label]] == label, left[label], top[label])
        for label in range(1, count + 1)
    ]


def _label_parts(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """4-connected parts of an H x W bool mask: an H x W int array (0 outside, parts numbered from 1), the count.

    Row runs are joined with the overlapping runs of the row above (union-find).
    """
    runs: list[tuple[int, int, int]] = []  # (row, first column, last column + 1)
    runs_of_row: list[range] = []
    for row in range(mask.shape[0]):
        padded = np.concatenate(([False], mask[row], [False]))
        changes = np.flatnonzero(padded[1:] != padded[:-1])
        first = len(runs)
        runs.extend((row, int(start), int(stop)) for start, stop in zip(changes[::2], changes[1::2], strict=True))
        runs_of_row.append(range(first, len(runs)))
    parent = list(range(len(runs)))

    def root(index: int) -> int:
        while parent[index] != index:
            parent[index] = parent[parent[index]]
            index = parent[index]
        return index

    for row in range(1, mask.shape[0]):
        above, here = list(runs_of_row[row - 1]), list(runs_of_row[row])
        i = j = 0
        while i < len(here) and j < len(above):  # both sorted by column: walk them together
            (_, start, stop), (_, other_start, other_stop) = runs[here[i]], runs[above[j]]
            if other_start < stop and start < other_stop:
                parent[root(above[j])] = root(here[i])
            if stop < other_stop:
                i += 1
            else:
                j += 1
    labels = np.zeros(mask.shape, dtype=np.int32)
    numbers: dict[int, int] = {}
    for index, (row, start, stop) in enumerate(runs):
        labels[row, start:stop] = numbers.setdefault(root(index), len(numbers) + 1)
    return labels, len(numbers)


def _part_polygon(part: np.ndarray, left: int, top: int) -> list[float]:
    """One polygon for one 4-connected part (``part`` cut out of the mask at column ``left``, row ``top``): its
    outline and its holes' outlines joined by out-and-back bridges."""
    rings = _outline_rings(part)
    rings.sort(key=min)  # the outer outline holds the part's leftmost-topmost corner (a convex corner, kept)
    outer, holes = rings[0], rings[1:]
    corners = [*outer, outer[0]]
    for hole in holes:
        corners += [*hole, hole[0], outer[0]]
    corners = corners[:-1]  # the polygon closes itself back to outer[0]
    return [float(value) - 0.5 for col, row in corners for value in (col + left, row + top)]


def _outline_rings(part: np.ndarray) -> list[list[Corner]]:
    """The closed outlines along the pixel edges between ``part`` (H x W bool) and the rest, as corner lists.

    Corner ``(i, j)`` is the point ``(i - 0.5, j - 0.5)``: the top-left corner of pixel ``(row j, col i)``.
    Edges run clockwise around the part on screen (y down), so every corner has as many edges in as out.
    """
    padded = np.pad(part, 1)
    inside = padded[1:-1, 1:-1]
    edges: dict[Corner, list[Corner]] = defaultdict(list)
    steps = (
        (padded[:-2, 1:-1], (0, 0), (1, 0)),  # top edge, pixel above outside: left to right
        (padded[1:-1, 2:], (1, 0), (1, 1)),  # right edge: top to bottom
        (padded[2:, 1:-1], (1, 1), (0, 1)),  # bottom edge: right to left
        (padded[1:-1, :-2], (0, 1), (0, 0)),  # left edge: bottom to top
    )
    for neighbour, start, end in steps:
        rows, cols = np.nonzero(inside & ~neighbour)
        for row, col in zip(rows.tolist(), cols.tolist(), strict=True):
            edges[(col + start[0], row + start[1])].append((col + end[0], row + end[1]))
    rings = []
    while edges:
        first = next(iter(edges))
        ring = [first]
        corner = _take_edge(edges, first)
        while corner != first:
            ring.append(corner)
            corner = _take_edge(edges, corner)
        rings.append(_without_straight_corners(ring))
    return rings


def _take_edge(edges: dict[Corner, list[Corner]], corner: Corner) -> Corner:
    """Remove one edge leaving ``corner`` and return where it ends."""
    ends = edges[corner]
    end = ends.pop()
    if not ends:
        del edges[corner]
    return end


def _without_straight_corners(ring: list[Corner]) -> list[Corner]:
    """``ring`` without the corners where the outline goes straight on."""
    kept = []
    for index, corner in enumerate(ring):
        before, after = ring[index - 1], ring[(index + 1) % len(ring)]
        straight = (before[0] == corner[0] == after[0]) or (before[1] == corner[1] == after[1])
        if not straight:
            kept.append(corner)
    return kept
