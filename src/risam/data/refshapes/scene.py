"""RefShapes scenes: splits, the layout of objects in an image, and whole scenes with their refs.

Each image holds 3 to 7 objects (see :mod:`risam.data.refshapes.shapes`) over a cluttered
background; its sides vary in 112..176 pixels and are never equal. Objects drawn later occlude
earlier ones; an object's mask is its visible part (as in COCO), and every object keeps at least
60% of its area visible. A polygonal object that nothing occludes keeps its polygon, which then
defines its mask; every other object is stored as the outline polygons of its mask
(:func:`~risam.data.polygons.mask_to_polygons`), which decode to it exactly.

**Splits** are by image: 70% train, 10% val, 10% testA, 10% testB (at least one image each),
from a permutation seeded by ``seed``. As RefCOCO's testA refers to people and testB to other
objects, every target of a testA image is a *round* shape and every target of a testB image an
*angular* one; train and val images are round or angular with equal chance. Objects of the other
family still appear in every image as distractors and as anchors of relations.

Everything is deterministic in ``seed``: image ``i`` draws from ``np.random.default_rng([seed, i])``,
resampling its layout until the grammar finds enough sentences.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from risam.config import ConfigError
from risam.data.refshapes.grammar import Referral, scene_referrals
from risam.data.refshapes.paint import draw_shape, paint_image
from risam.data.refshapes.shapes import ANGULAR_KINDS, COLOURS, ID_STRIDE, ROUND_KINDS, SIZES, TEXTURES, Shape

SPLITS = ("train", "val", "testA", "testB")
MIN_SIDE, MAX_SIDE = 112, 176
MIN_VISIBLE = 0.6
MAX_ATTEMPTS = 200


@dataclass(frozen=True)
class Scene:
    """One image (H x W x 3 uint8), its objects and its refs, in the split ``split``."""

    image_id: int
    split: str
    image: np.ndarray
    shapes: tuple[Shape, ...]
    referrals: tuple[Referral, ...]

    @property
    def file_name(self) -> str:
        """The PNG file name under ``images/refshapes``."""
        return f"refshapes_{self.image_id:06d}.png"


def refshapes_scenes(num_images: int, seed: int, expressions_per_image: int = 7) -> Iterator[Scene]:
    """The scenes :func:`~risam.data.refshapes.write.generate_refshapes` writes, in image id order, built in memory."""
    if num_images < len(SPLITS):
        raise ConfigError(f"num_images must be at least {len(SPLITS)} (one image per split), got {num_images}")
    if not 1 <= expressions_per_image <= ID_STRIDE // 4:
        raise ConfigError(f"expressions_per_image must be in 1..{ID_STRIDE // 4}, got {expressions_per_image}")
    splits = _assign_splits(num_images, seed)
    for index, split in enumerate(splits):
        yield _make_scene(seed, index + 1, split, expressions_per_image)


def _assign_splits(num_images: int, seed: int) -> list[str]:
    """The split of each image: a seeded permutation cut 70/10/10/10 (at least one image per split)."""
    held_out = max(1, round(0.1 * num_images))
    sizes = {"train": num_images - 3 * held_out, "val": held_out, "testA": held_out, "testB": held_out}
    ordered = [split for split in SPLITS for _ in range(sizes[split])]
    order = np.random.default_rng(seed).permutation(num_images)
    return [ordered[position] for position in order]


def _make_scene(seed: int, image_id: int, split: str, expressions_per_image: int) -> Scene:
    """One scene, resampled until it supports ``expressions_per_image`` valid sentences."""
    rng = np.random.default_rng([seed, image_id])
    height = int(rng.integers(MIN_SIDE, MAX_SIDE + 1))
    width = int(rng.integers(MIN_SIDE, MAX_SIDE))
    if width >= height:
        width += 1
    family = {"testA": ROUND_KINDS, "testB": ANGULAR_KINDS}.get(split) or (ROUND_KINDS, ANGULAR_KINDS)[rng.integers(2)]
    margin = 0.08 * min(height, width)
    for _ in range(MAX_ATTEMPTS):
        layout = _layout(rng, height, width, family, image_id)
        if layout is None:
            continue
        shapes, full_masks = layout
        referrals = scene_referrals(rng, shapes, family, expressions_per_image, margin, image_id)
        if referrals is None:
            continue
        image = paint_image(rng, height, width, shapes, full_masks)
        return Scene(image_id, split, image, tuple(shapes), tuple(referrals))
    raise RuntimeError(
        f"RefShapes image {image_id}: no scene with {expressions_per_image} valid expressions in {MAX_ATTEMPTS} "
        "attempts; ask for fewer expressions_per_image"
    )


def _layout(
    rng: np.random.Generator, height: int, width: int, family: tuple[str, ...], image_id: int
) -> tuple[list[Shape], list[np.ndarray]] | None:
    """3 to 7 shapes with their visible masks, and their full (unoccluded) H x W masks, in drawing
    order; None when the objects could not be placed with enough of each visible."""
    others = ANGULAR_KINDS if family == ROUND_KINDS else ROUND_KINDS
    count = int(rng.integers(3, 8))
    in_family = int(rng.integers(3, count + 1))
    family_palette = rng.choice(family, size=2, replace=False)
    kinds = [str(rng.choice(family_palette)) for _ in range(in_family)]
    kinds += [str(rng.choice(others)) for _ in range(count - in_family)]
    kinds = [kinds[index] for index in rng.permutation(count)]
    palette = rng.choice(list(COLOURS), size=int(rng.integers(3, 5)), replace=False)
    side = min(height, width)
    grid_y, grid_x = np.mgrid[0:height, 0:width] + 0.5

    placed: list[tuple[str, str, float, float, tuple[float, ...] | None]] = []
    full_masks: list[np.ndarray] = []
    visible: list[np.ndarray] = []
    areas: list[int] = []
    for kind in kinds:
        size = str(rng.choice(SIZES))
        radius = side * (rng.uniform(0.075, 0.095) if size == "small" else rng.uniform(0.135, 0.165))
        extent = 1.15 * radius + 1
        for _ in range(40):
            x, y = rng.uniform(extent, width - extent), rng.uniform(extent, height - extent)
            full, polygon = draw_shape(rng, kind, x, y, radius, grid_x, grid_y)
            if all((mask & ~full).sum() >= MIN_VISIBLE * area for mask, area in zip(visible, areas, strict=True)):
                break
        else:
            return None
        visible = [mask & ~full for mask in visible] + [full]
        full_masks.append(full)
        areas.append(int(full.sum()))
        placed.append((kind, size, x, y, polygon))
    shapes = [
        Shape(
            ann_id=ID_STRIDE * image_id + number,
            kind=kind,
            colour=str(rng.choice(palette)),
            size=size,
            texture=str(rng.choice(TEXTURES, p=(0.5, 0.25, 0.25))),
            x=x,
            y=y,
            mask=mask,
            polygon=polygon if np.array_equal(mask, full) else None,
        )
        for number, ((kind, size, x, y, polygon), mask, full) in enumerate(
            zip(placed, visible, full_masks, strict=True)
        )
    ]
    return shapes, full_masks
