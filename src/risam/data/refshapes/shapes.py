"""The objects of RefShapes scenes: the attribute vocabulary, COCO categories, ids and :class:`Shape`.

An object has a kind (its COCO category: the *round* ``circle``, ``ring``, ``oval`` or the
*angular* ``square``, ``triangle``, ``diamond``, ``hexagon``, ``star``, ``cross``), a colour
(a key of :data:`COLOURS`, whose value is its RGB paint), a size (``small``/``large``) and a
texture (``solid``/``striped``/``dotted``). Image ``i`` (1-based) numbers its objects, refs and
sentences ``ID_STRIDE * i + k``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ROUND_KINDS = ("circle", "ring", "oval")
ANGULAR_KINDS = ("square", "triangle", "diamond", "hexagon", "star", "cross")
KINDS = ROUND_KINDS + ANGULAR_KINDS
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (215, 40, 40),
    "orange": (240, 135, 25),
    "yellow": (235, 215, 35),
    "green": (45, 165, 60),
    "blue": (40, 85, 215),
    "purple": (135, 55, 185),
    "white": (240, 240, 240),
}
SIZES = ("small", "large")
TEXTURES = ("solid", "striped", "dotted")
CATEGORIES = [
    {"id": index + 1, "name": kind, "supercategory": "round" if kind in ROUND_KINDS else "angular"}
    for index, kind in enumerate(KINDS)
]
CATEGORY_IDS = {category["name"]: category["id"] for category in CATEGORIES}
ID_STRIDE = 100


@dataclass(frozen=True)
class Shape:
    """One object of a scene: its attributes, centre (x, y in pixels) and visible H x W bool mask.

    ``polygon`` is the flat polygon ``[x1, y1, ...]`` whose pycocotools rasterization is the
    mask (an unoccluded polygonal object), or None when the mask is stored as its outline polygons.
    """

    ann_id: int
    kind: str
    colour: str
    size: str
    texture: str
    x: float
    y: float
    mask: np.ndarray
    polygon: tuple[float, ...] | None
