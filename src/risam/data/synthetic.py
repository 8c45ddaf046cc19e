"""RefShapes: a synthetic referring-segmentation benchmark in REFER's and gRefCOCO's file formats.

``generate_refshapes(out, num_images, seed)`` writes, under a data root ``OUT``::

    OUT/images/refshapes/refshapes_000001.png ...     RGB, sizes vary in 112..176 (never square)
    OUT/refshapes/instances.json   OUT/refshapes/refs(unc).p          REFER: one target per sentence
    OUT/grefshapes/instances.json  OUT/grefshapes/grefs(unc).json     gRefCOCO: also multi- and no-target

so that the ``refshapes`` and ``grefshapes`` datasets of :mod:`risam.data.catalog` read them.

**Scenes.** Each image holds 3 to 7 objects over a cluttered background (a tinted gradient,
thin lines, small blobs that are not objects, pixel noise). An object has a kind (the COCO
category: ``circle``, ``ring``, ``oval``, ``square``, ``triangle``, ``diamond``, ``hexagon``,
``star``, ``cross``), a colour, a size (``small``/``large``) and a texture
(``solid``/``striped``/``dotted``). Objects drawn later occlude earlier ones; an annotation is
the visible part (as in COCO), and every object keeps at least 60% of its area visible. The
masks are the source of truth: the image is painted from them. A polygonal object that nothing
occludes is stored as its polygon, and its mask is that polygon as pycocotools rasterizes it;
every other object (round kinds, occluded objects) is stored as a compressed RLE of its mask.

**Expressions** are generated from a small grammar and kept only when their meaning (see
:func:`resolve`) is exactly the intended target set in the scene:

- attributes: "the small striped green ring", "the yellow shape";
- absolute position among the objects a phrase names: "the square on the left", "the highest star";
- ordinals: "the second triangle from the right", "the third shape from the top";
- relations to an object named uniquely: "the circle above the red star", "the oval to the left of the cross";
- gRefCOCO only, multi-target: "all blue shapes", "the two squares", "both rings";
- gRefCOCO only, no-target: near misses such as "the purple hexagon" in a scene without one.

Positions are compared between object centres, with a margin of 8% of the shorter image side:
an ordering or a relation that is too close to call makes the expression invalid. Each image
gets ``expressions_per_image`` single-target sentences (both files), spread round-robin over up
to 4 objects, so that no object answers more than about a third of them; grefs also holds up to
2 multi-target and 1 no-target sentences per image.

Every sentence record (REFER's ``{sent_id, sent, raw, tokens}``) also carries ``type``, the form
of the query that produced it (:func:`sentence_type`): ``attribute``, ``position``, ``ordinal``,
``relation``, ``group`` (multi-target) or ``no_target``. REFER's readers ignore the key;
:func:`~risam.data.readers.load_split` reads it into ``Expression.sentence_type``.

**Splits** are by image: 70% train, 10% val, 10% testA, 10% testB (at least one image each),
from a permutation seeded by ``seed``. As RefCOCO's testA refers to people and testB to other
objects, every target of a testA image is a *round* shape (circle, ring, oval) and every target
of a testB image an *angular* one (square, triangle, diamond, hexagon, star, cross); train and
val images are round or angular with equal chance. Objects of the other family still appear in
every image as distractors and as anchors of relations.

**Ids**: image ``i`` (1-based) is ``refshapes_{i:06d}.png``; its objects, refs and sentences have
ids ``100 * i + k``. A ref's ``file_name`` is, as in REFER, the image's with the annotation id
appended in ``refs(unc).p``, and the image's own in ``grefs(unc).json``. Everything is
deterministic in ``seed``: the same seed writes the same bytes (JSON with sorted keys, PNG
without timestamps, pickle protocol 2 of plain dicts, lists, strings and ints).
"""

from __future__ import annotations

import json
import pickle
import re
from collections import defaultdict
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw
from tqdm import tqdm

from risam.configs.parse import ConfigError
from risam.data.catalog import dataset_spec
from risam.data.masks import decode_segmentation, encode_mask
from risam.data.readers import load_split

ROUND_KINDS = ("circle", "ring", "oval")
ANGULAR_KINDS = ("square", "triangle", "diamond", "hexagon", "star", "cross")
KINDS = ROUND_KINDS + ANGULAR_KINDS
PLURALS = {kind: kind + ("es" if kind.endswith("s") else "s") for kind in (*KINDS, "shape")}
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
SPLITS = ("train", "val", "testA", "testB")
CATEGORIES = [
    {"id": index + 1, "name": kind, "supercategory": "round" if kind in ROUND_KINDS else "angular"}
    for index, kind in enumerate(KINDS)
]
CATEGORY_IDS = {category["name"]: category["id"] for category in CATEGORIES}

SIZE_WORDS = {"small": ("small", "little"), "large": ("large", "big")}
TEXTURE_WORDS = {"solid": ("plain", "solid"), "striped": ("striped",), "dotted": ("dotted", "spotted")}
EXTREME_TEMPLATES = {
    "left": ("the {} on the left", "the leftmost {}"),
    "right": ("the {} on the right", "the rightmost {}"),
    "top": ("the {} at the top", "the highest {}"),
    "bottom": ("the {} at the bottom", "the lowest {}"),
}
ORDINAL_WORDS = {2: "second", 3: "third"}
RELATION_WORDS = {
    "above": ("above",),
    "below": ("below", "under"),
    "left": ("left of", "to the left of"),
    "right": ("right of", "to the right of"),
}
COUNT_TEMPLATES = {0: ("all {}", "all the {}"), 2: ("the two {}", "both {}"), 3: ("the three {}", "all three {}")}
SENTENCE_TYPES = ("attribute", "position", "ordinal", "relation", "group", "no_target")

MIN_SIDE, MAX_SIDE = 112, 176
MIN_VISIBLE = 0.6
MAX_REFS = 4
ID_STRIDE = 100
MAX_ATTEMPTS = 200


@dataclass(frozen=True)
class Shape:
    """One object of a scene: its attributes, centre (x, y in pixels) and visible H x W bool mask.

    ``polygon`` is the flat polygon ``[x1, y1, ...]`` whose pycocotools rasterization is the
    mask (an unoccluded polygonal object), or None when the mask is stored as an RLE.
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


@dataclass(frozen=True)
class Phrase:
    """A noun phrase: a shape kind (None: "shape") and the attributes it states (None: not stated)."""

    kind: str | None = None
    colour: str | None = None
    size: str | None = None
    texture: str | None = None

    def matches(self, shape: Shape) -> bool:
        """Whether ``shape`` has every stated attribute."""
        return (
            self.kind in (None, shape.kind)
            and self.colour in (None, shape.colour)
            and self.size in (None, shape.size)
            and self.texture in (None, shape.texture)
        )


@dataclass(frozen=True)
class Query:
    """The meaning of one sentence, evaluated by :func:`resolve`.

    ``count``: 1 for "the <phrase>" (one object, or none), 0 for "all <phrases>" (two or more),
    2 or 3 for "the two/three <phrases>" (exactly that many). ``rank`` > 0 with ``direction``
    (left/right/top/bottom): the rank-th of the phrase's objects from that side, 1 being "on the
    left", "the highest", ... ``relation`` (above/below/left/right) with ``anchor``: the phrase's
    objects in that relation to the one object the anchor names.
    """

    phrase: Phrase
    count: int = 1
    rank: int = 0
    direction: str = ""
    relation: str = ""
    anchor: Phrase | None = None


@dataclass(frozen=True)
class Referral:
    """One ref: its target objects (indices into ``Scene.shapes``; empty: no target) and sentences.

    ``sentences`` holds ``(sent_id, raw)`` pairs; ``sentence_types`` the :func:`sentence_type` of
    each, in the same order.
    """

    ref_id: int
    targets: tuple[int, ...]
    sentences: tuple[tuple[int, str], ...]
    sentence_types: tuple[str, ...]


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


def normalize_sentence(raw: str) -> str:
    """REFER's ``sent``: lowercase words without punctuation, single spaces."""
    return " ".join(re.sub(r"[^a-z0-9 ]", " ", raw.lower()).split())


def resolve(query: Query, shapes: Sequence[Shape], margin: float) -> frozenset[int] | None:
    """The indices of the shapes ``query`` refers to, or None when it is ambiguous or ill-formed.

    Orderings and relations need centres at least ``margin`` pixels apart along the axis in
    question; anything closer to call makes the whole query ambiguous.
    """
    members = [index for index, shape in enumerate(shapes) if query.phrase.matches(shape)]
    if query.rank:
        chosen = _ranked(members, shapes, query.rank, query.direction, margin)
        return None if chosen is None else frozenset({chosen})
    if query.anchor is not None:
        anchors = [index for index, shape in enumerate(shapes) if query.anchor.matches(shape)]
        if len(anchors) != 1:
            return None
        anchor = shapes[anchors[0]]
        states = {
            index: _related(shapes[index], anchor, query.relation, margin) for index in members if index != anchors[0]
        }
        if None in states.values():
            return None
        members = [index for index, state in states.items() if state]
    if query.count == 0:
        return frozenset(members) if len(members) >= 2 else None
    if query.count == 1:
        return frozenset(members) if len(members) <= 1 else None
    return frozenset(members) if len(members) == query.count else None


def sentence_type(query: Query, targets: Collection[int]) -> str:
    """The form of a sentence, one of :data:`SENTENCE_TYPES`, from its query and its targets.

    ``no_target`` when ``targets`` is empty (whatever the query's form), else ``position`` (rank 1),
    ``ordinal`` (rank 2 or 3), ``relation`` (an anchor), ``attribute`` (count 1) or ``group``.
    """
    if not targets:
        return "no_target"
    if query.rank:
        return "position" if query.rank == 1 else "ordinal"
    if query.anchor is not None:
        return "relation"
    return "attribute" if query.count == 1 else "group"


def _ranked(members: list[int], shapes: Sequence[Shape], rank: int, direction: str, margin: float) -> int | None:
    """The rank-th member from ``direction``, if the phrase names more than ``rank`` objects and
    the first rank + 1 of them are at least ``margin`` apart along that axis."""
    if len(members) <= rank:
        return None
    sign = 1.0 if direction in ("left", "top") else -1.0
    axis = "x" if direction in ("left", "right") else "y"
    ordered = sorted((sign * getattr(shapes[index], axis), index) for index in members)
    head = [position for position, _ in ordered[: rank + 1]]
    if min(np.diff(head)) < margin:
        return None
    return ordered[rank - 1][1]


def _related(shape: Shape, anchor: Shape, relation: str, margin: float) -> bool | None:
    """Whether ``shape`` is clearly in ``relation`` to ``anchor`` (True), clearly not (False), or neither (None).

    True: at least ``margin`` away in that direction and no farther sideways (a 90 degree cone).
    False: not in that direction at all, or more than twice as far sideways.
    """
    dx, dy = shape.x - anchor.x, shape.y - anchor.y
    along, across = {"above": (-dy, dx), "below": (dy, dx), "left": (-dx, dy), "right": (dx, dy)}[relation]
    if along >= margin and along >= abs(across):
        return True
    if along <= 0 or along <= abs(across) / 2:
        return False
    return None


def refshapes_scenes(num_images: int, seed: int, expressions_per_image: int = 7) -> Iterator[Scene]:
    """The scenes :func:`generate_refshapes` writes, in image id order, built in memory."""
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
        referrals = _referrals(rng, shapes, family, expressions_per_image, margin, image_id)
        if referrals is None:
            continue
        image = _paint(rng, height, width, shapes, full_masks)
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
            full, polygon = _draw(rng, kind, x, y, radius, grid_x, grid_y)
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


def _draw(
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


def _paint(
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


def _phrases(shape: Shape, max_attributes: int = 3) -> list[Phrase]:
    """The phrases that describe ``shape`` with up to ``max_attributes`` attributes, with its
    kind or as "shape" (then with at least one attribute)."""
    attributes = {"colour": shape.colour, "size": shape.size, "texture": shape.texture}
    phrases = []
    for number in range(max_attributes + 1):
        for names in combinations(attributes, number):
            stated = {name: attributes[name] for name in names}
            phrases.append(Phrase(kind=shape.kind, **stated))
            if stated:
                phrases.append(Phrase(**stated))
    return phrases


def _referrals(
    rng: np.random.Generator,
    shapes: Sequence[Shape],
    family: tuple[str, ...],
    expressions_per_image: int,
    margin: float,
    image_id: int,
) -> list[Referral] | None:
    """The refs of one scene: ``expressions_per_image`` single-target sentences over up to
    ``MAX_REFS`` objects of ``family``, then up to 2 multi-target and 1 no-target sentences.
    None when the scene cannot support that many single-target sentences over enough objects."""
    singles: dict[int, dict[str, list[Query]]] = defaultdict(lambda: defaultdict(list))
    multis: list[tuple[Query, frozenset[int]]] = []
    empties: list[Query] = []

    def consider(query: Query, form: str) -> None:
        result = resolve(query, shapes, margin)
        if result is None or any(shapes[index].kind not in family for index in result):
            return
        if len(result) == 1:
            singles[next(iter(result))][form].append(query)
        elif len(result) > 1:
            multis.append((query, result))
        elif query.phrase.kind in family:
            empties.append(query)

    phrases = list(dict.fromkeys(phrase for shape in shapes for phrase in _phrases(shape)))
    simple = list(dict.fromkeys(phrase for shape in shapes for phrase in _phrases(shape, max_attributes=1)))
    for phrase in phrases:
        consider(Query(phrase), "attribute")
        for count in (0, 2, 3):
            consider(Query(phrase, count=count), "group")
    for phrase in simple:
        for direction in EXTREME_TEMPLATES:
            for rank in (1, 2, 3):
                consider(Query(phrase, rank=rank, direction=direction), "position" if rank == 1 else "ordinal")
    anchors = [anchor for shape in shapes if (anchor := _anchor(rng, shape, shapes)) is not None]
    for phrase in simple:
        if sum(phrase.matches(shape) for shape in shapes) < 2:
            continue
        for anchor in anchors:
            for relation in RELATION_WORDS:
                consider(Query(phrase, relation=relation, anchor=anchor), "relation")
    for kind in family:
        for colour in COLOURS:
            near = any(shape.kind == kind or shape.colour == colour for shape in shapes)
            if near and not any(shape.kind == kind and shape.colour == colour for shape in shapes):
                empties.append(Query(Phrase(kind=kind, colour=colour)))

    needed_refs = min(3, expressions_per_image)
    eligible = sorted(singles)
    if len(eligible) < needed_refs:
        return None
    targets = [eligible[index] for index in rng.permutation(len(eligible))[:MAX_REFS]]
    chosen: dict[int, list[Query]] = {target: [] for target in targets}

    def remaining(target: int) -> list[str]:
        return [form for form, queries in singles[target].items() if queries]

    total = 0
    while total < expressions_per_image and any(remaining(target) for target in targets):
        for target in targets:
            forms = remaining(target)
            if forms and total < expressions_per_image:
                queries = singles[target][forms[rng.integers(len(forms))]]
                chosen[target].append(queries.pop(int(rng.integers(len(queries)))))
                total += 1
    if total < expressions_per_image or sum(bool(queries) for queries in chosen.values()) < needed_refs:
        return None

    groups: dict[tuple[int, ...], list[Query]] = {(target,): queries for target, queries in chosen.items() if queries}
    for position in rng.permutation(len(multis))[:2]:
        query, result = multis[position]
        groups.setdefault(tuple(sorted(result)), []).append(query)
    if empties:
        groups[()] = [empties[rng.integers(len(empties))]]

    referrals = []
    sent_number = 0
    for ref_number, (group_targets, queries) in enumerate(groups.items()):
        sentences = []
        for query in queries:
            sentences.append((ID_STRIDE * image_id + sent_number, render(query, rng)))
            sent_number += 1
        types = tuple(sentence_type(query, group_targets) for query in queries)
        referrals.append(Referral(ID_STRIDE * image_id + ref_number, group_targets, tuple(sentences), types))
    return referrals


def _anchor(rng: np.random.Generator, shape: Shape, shapes: Sequence[Shape]) -> Phrase | None:
    """A shortest phrase that names ``shape`` alone in ``shapes`` (a random one of them), or None."""
    unique = [phrase for phrase in _phrases(shape) if sum(phrase.matches(other) for other in shapes) == 1]
    if not unique:
        return None
    shortest = min(_length(phrase) for phrase in unique)
    choices = [phrase for phrase in unique if _length(phrase) == shortest]
    return choices[rng.integers(len(choices))]


def _length(phrase: Phrase) -> int:
    """How many words the phrase states (its noun included)."""
    return 1 + sum(value is not None for value in (phrase.colour, phrase.size, phrase.texture))


def _noun_phrase(rng: np.random.Generator, phrase: Phrase, plural: bool = False) -> str:
    """The words of ``phrase``: [size] [texture] [colour] noun, e.g. "small striped green ring", "blue shapes"."""
    words = []
    if phrase.size is not None:
        words.append(str(rng.choice(SIZE_WORDS[phrase.size])))
    if phrase.texture is not None:
        words.append(str(rng.choice(TEXTURE_WORDS[phrase.texture])))
    if phrase.colour is not None:
        words.append(phrase.colour)
    noun = phrase.kind or "shape"
    words.append(PLURALS[noun] if plural else noun)
    return " ".join(words)


def render(query: Query, rng: np.random.Generator) -> str:
    """One raw sentence for ``query``, with a random choice of synonyms, capital and full stop."""
    if query.rank == 1:
        text = str(rng.choice(EXTREME_TEMPLATES[query.direction])).format(_noun_phrase(rng, query.phrase))
    elif query.rank:
        text = f"the {ORDINAL_WORDS[query.rank]} {_noun_phrase(rng, query.phrase)} from the {query.direction}"
    elif query.anchor is not None:
        relation = str(rng.choice(RELATION_WORDS[query.relation]))
        text = f"the {_noun_phrase(rng, query.phrase)} {relation} the {_noun_phrase(rng, query.anchor)}"
    elif query.count == 1:
        text = f"the {_noun_phrase(rng, query.phrase)}"
    else:
        text = str(rng.choice(COUNT_TEMPLATES[query.count])).format(_noun_phrase(rng, query.phrase, plural=True))
    if rng.random() < 0.5:
        text = text[0].upper() + text[1:]
    return text + "." if rng.random() < 0.3 else text


def generate_refshapes(
    out: str | Path, num_images: int, seed: int, expressions_per_image: int = 7, progress: bool = False
) -> dict[str, dict[str, int]]:
    """Write RefShapes under the data root ``out`` (see the module docstring for the layout).

    ``progress`` shows a progress bar with throughput and ETA.

    Returns per-split counts, a plain dict ``{split: {"images", "objects", "sentences",
    "gref_sentences"}}``: ``sentences`` counts the single-target sentences of ``refs(unc).p``,
    ``gref_sentences`` all sentences of ``grefs(unc).json``.
    """
    out = Path(out)
    image_dir = out / dataset_spec("refshapes").image_dir
    image_dir.mkdir(parents=True, exist_ok=True)
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    refs: list[dict[str, Any]] = []
    grefs: list[dict[str, Any]] = []
    summary = {split: {"images": 0, "objects": 0, "sentences": 0, "gref_sentences": 0} for split in SPLITS}
    scenes = refshapes_scenes(num_images, seed, expressions_per_image)
    for scene in tqdm(scenes, total=num_images, desc="RefShapes", unit="image", disable=not progress):
        Image.fromarray(scene.image).save(image_dir / scene.file_name, format="PNG")
        height, width = scene.image.shape[:2]
        images.append({"id": scene.image_id, "file_name": scene.file_name, "height": height, "width": width})
        annotations.extend(_annotation(scene.image_id, shape) for shape in scene.shapes)
        counts = summary[scene.split]
        counts["images"] += 1
        counts["objects"] += len(scene.shapes)
        for referral in scene.referrals:
            grefs.append(_gref(scene, referral))
            counts["gref_sentences"] += len(referral.sentences)
            if len(referral.targets) == 1:
                refs.append(_ref(scene, referral))
                counts["sentences"] += len(referral.sentences)

    instances = json.dumps({"images": images, "annotations": annotations, "categories": CATEGORIES}, sort_keys=True)
    for name in ("refshapes", "grefshapes"):
        folder = out / dataset_spec(name).folder
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "instances.json").write_text(instances)
    (out / dataset_spec("refshapes").folder / dataset_spec("refshapes").refs_file).write_bytes(
        pickle.dumps(refs, protocol=2)
    )
    (out / dataset_spec("grefshapes").folder / dataset_spec("grefshapes").refs_file).write_text(
        json.dumps(grefs, sort_keys=True)
    )
    return summary


def _annotation(image_id: int, shape: Shape) -> dict[str, Any]:
    """The COCO annotation of one shape: its polygon when it defines the mask, an RLE otherwise."""
    ys, xs = np.nonzero(shape.mask)
    x0, y0 = int(xs.min()), int(ys.min())
    return {
        "id": shape.ann_id,
        "image_id": image_id,
        "category_id": CATEGORY_IDS[shape.kind],
        "segmentation": [list(shape.polygon)] if shape.polygon is not None else encode_mask(shape.mask),
        "area": float(shape.mask.sum()),
        "bbox": [float(x0), float(y0), float(xs.max() - x0 + 1), float(ys.max() - y0 + 1)],
        "iscrowd": 0,
    }


def _sentences(referral: Referral) -> list[dict[str, Any]]:
    """REFER's sentence records: ``raw`` as written, ``sent`` normalized, ``tokens`` its words, and
    ``type`` the sentence's :func:`sentence_type`."""
    records = []
    for (sent_id, raw), kind in zip(referral.sentences, referral.sentence_types, strict=True):
        sent = normalize_sentence(raw)
        records.append({"tokens": sent.split(), "raw": raw, "sent_id": sent_id, "sent": sent, "type": kind})
    return records


def _ref(scene: Scene, referral: Referral) -> dict[str, Any]:
    """A REFER ref (``refs(unc).p``) of a single-target referral; as in REFER, its ``file_name`` is the
    image's with the annotation id appended."""
    shape = scene.shapes[referral.targets[0]]
    return {
        "ref_id": referral.ref_id,
        "ann_id": shape.ann_id,
        "image_id": scene.image_id,
        "split": scene.split,
        "sentences": _sentences(referral),
        "sent_ids": [sent_id for sent_id, _ in referral.sentences],
        "category_id": CATEGORY_IDS[shape.kind],
        "file_name": f"{Path(scene.file_name).stem}_{shape.ann_id}.png",
    }


def _gref(scene: Scene, referral: Referral) -> dict[str, Any]:
    """A gRefCOCO ref (``grefs(unc).json``): ``ann_id`` a list, ``[-1]`` and ``no_target`` for no target;
    ``file_name`` is the image's."""
    shapes = [scene.shapes[index] for index in referral.targets]
    return {
        "ref_id": referral.ref_id,
        "ann_id": [shape.ann_id for shape in shapes] or [-1],
        "no_target": not shapes,
        "image_id": scene.image_id,
        "split": scene.split,
        "sentences": _sentences(referral),
        "sent_ids": [sent_id for sent_id, _ in referral.sentences],
        "category_id": [CATEGORY_IDS[shape.kind] for shape in shapes],
        "file_name": scene.file_name,
    }


def sentence_free_baseline(root: str | Path, split: str, dataset: str = "refshapes") -> float:
    """The overall IoU of the best answer that ignores the sentence, chosen with the ground truth.

    For each image, one of its annotated objects is predicted for every sentence of that image.
    The choice maximizes the split's overall IoU (sum of intersections / sum of unions over all
    sentences), which is not a per-image sum; Dinkelbach's iteration finds the exact optimum:
    for a ratio ``r``, each image independently takes the object maximizing ``I - r * U``, and
    ``r`` is updated to the ratio of that choice until it no longer grows.
    """
    data = load_split(root, dataset, split)
    by_image: dict[int, list[np.ndarray]] = defaultdict(list)
    for expression in data.expressions:
        by_image[expression.image_id].append(data.target_mask(expression))
    scores = []
    for image_id, targets in by_image.items():
        options = []
        for object_id in data.objects_by_image[image_id]:
            mask = data.object_mask(object_id, image_id)
            intersection = sum(int((mask & target).sum()) for target in targets)
            union = sum(int((mask | target).sum()) for target in targets)
            options.append((intersection, union))
        scores.append(np.array(options, dtype=np.float64))
    ratio = 0.0
    while True:
        picks = [options[np.argmax(options[:, 0] - ratio * options[:, 1])] for options in scores]
        intersection, union = np.sum(picks, axis=0)
        if intersection / union <= ratio:
            return ratio
        ratio = float(intersection / union)
