"""RefShapes pixels: the mask of each object and the painted image.

The masks are the source of truth: the image is painted from them. Round kinds are rasterized
at pixel centres; a polygonal kind's mask is its polygon as pycocotools rasterizes it, so that a
reader decoding the stored polygon gets the same mask. The image is a tinted gradient with thin
lines and small blobs that are not objects, each object filled with its colour and texture in
drawing order (so that later objects occlude earlier ones), then pixel noise.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

from risam.data.masks import decode_segmentation
from risam.data.refshapes.shapes import COLOURS, Shape


def draw_shape(
    rng: np.random.Generator, kind: str, x: float, y: float, radius: float, grid_x: np.ndarray, grid_y: np.ndarray
) -> tuple[np.ndarray, tuple[float, ...] | None]:
    """The full H x W bool mask of one shape centred at (x, y), and its flat polygon for polygonal kinds.

    Round kinds are rasterized here (pixel centres); polygons through pycocotools, as a reader decodes them.
    """
    if kind == "circle":
        return (grid_x - x) ** 2 + (grid_y - y) ** 2 <= (0.95 * radius) ** 2, None
    if kind == "ring":
        distance = (grid_x - x) ** 2 + (grid_y - y) ** 2
        return (distance <= radius**2) & (distance >= (0.55 * radius) ** 2), None
    if kind == "oval":
        angle = rng.uniform(0, np.pi)
        u = (grid_x - x) * np.cos(angle) + (grid_y - y) * np.sin(angle)
        v = (grid_y - y) * np.cos(angle) - (grid_x - x) * np.sin(angle)
        return (u / radius) ** 2 + (v / (0.55 * radius)) ** 2 <= 1, None
    if kind == "square":
        points = [(0.95 * radius, angle) for angle in np.pi / 4 + np.pi / 2 * np.arange(4)]
        turn = rng.uniform(-0.2, 0.2)
    elif kind == "diamond":
        points = [(0.7 * radius, 0.0), (radius, np.pi / 2), (0.7 * radius, np.pi), (radius, 3 * np.pi / 2)]
        turn = 0.0
    elif kind == "triangle":
        points = [(1.05 * radius, angle) for angle in -np.pi / 2 + 2 * np.pi / 3 * np.arange(3)]
        turn = rng.uniform(-0.25, 0.25)
    elif kind == "hexagon":
        points = [(0.95 * radius, angle) for angle in np.pi / 3 * np.arange(6)]
        turn = rng.uniform(0, np.pi / 3)
    elif kind == "star":
        points = [(radius * (1.1 if k % 2 == 0 else 0.45), -np.pi / 2 + np.pi / 5 * k) for k in range(10)]
        turn = rng.uniform(-0.3, 0.3)
    else:
        arm = 0.33 * radius
        corners = [(arm, radius), (arm, arm), (radius, arm), (radius, -arm), (arm, -arm), (arm, -radius)]
        corners += [(-a, -b) for a, b in corners]
        points = [(float(np.hypot(a, b)), float(np.arctan2(b, a))) for a, b in corners]
        turn = rng.uniform(-0.2, 0.2)
    polygon = tuple(
        round(float(value), 2)
        for distance, angle in points
        for value in (x + distance * np.cos(angle + turn), y + distance * np.sin(angle + turn))
    )
    height, width = grid_x.shape
    return decode_segmentation([list(polygon)], height, width, where=f"RefShapes {kind} polygon"), polygon


def paint_image(
    rng: np.random.Generator, height: int, width: int, shapes: Sequence[Shape], full_masks: Sequence[np.ndarray]
) -> np.ndarray:
    """The H x W x 3 uint8 image: background clutter, then each shape's full mask in drawing order
    (so that each shape's painted pixels are exactly its visible mask), then pixel noise."""
    grid_y, grid_x = np.mgrid[0:height, 0:width]
    base = rng.uniform(75, 165) + rng.uniform(-15, 15, size=3)
    slope = rng.uniform(-0.25, 0.25, size=2)
    background = base + (slope[0] * (grid_x - width / 2) + slope[1] * (grid_y - height / 2))[..., None]
    canvas = Image.fromarray(np.clip(background, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    clutter_colours = [*COLOURS.values(), (40, 40, 40), (200, 200, 200)]
    for _ in range(int(rng.integers(2, 7))):
        ends = rng.uniform(0, 1, size=4) * (width, height, width, height)
        draw.line([tuple(ends[:2]), tuple(ends[2:])], fill=clutter_colours[rng.integers(len(clutter_colours))])
    for _ in range(int(rng.integers(3, 11))):
        cx, cy, r = rng.uniform(0, width), rng.uniform(0, height), rng.uniform(1, 2.5)
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=clutter_colours[rng.integers(len(clutter_colours))])
    image = np.asarray(canvas, dtype=np.float32).copy()

    for shape, full in zip(shapes, full_masks, strict=True):
        colour = np.array(COLOURS[shape.colour], dtype=np.float32) + rng.uniform(-12, 12, size=3)
        pattern = np.zeros((height, width), dtype=bool)
        if shape.texture == "striped":
            angle = rng.choice([0, 1, 2, 3]) * np.pi / 4
            period = rng.uniform(4, 6)
            pattern = (grid_x * np.cos(angle) + grid_y * np.sin(angle)) % period < period / 2
        elif shape.texture == "dotted":
            spacing = rng.uniform(5, 6.5)
            offset = rng.uniform(0, spacing, size=2)
            pattern = ((grid_x - offset[0]) % spacing - spacing / 2) ** 2 + (
                (grid_y - offset[1]) % spacing - spacing / 2
            ) ** 2 < 2.2
        image[full] = colour
        image[full & pattern] = 0.5 * colour
    image += rng.normal(0, 5, size=image.shape)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)
