"""RefShapes: files in REFER's and gRefCOCO's formats that read back to the drawn masks, sentences
that mean exactly their targets, determinism, and a benchmark that needs the words."""

from __future__ import annotations

import io
import json
import pickle
import re
from collections import Counter
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from risam.data.readers import load_split
from risam.data.refshapes import (
    ANGULAR_KINDS,
    COLOURS,
    KINDS,
    ROUND_KINDS,
    SPLITS,
    Phrase,
    Query,
    Scene,
    Shape,
    generate_refshapes,
    normalize_sentence,
    refshapes_scenes,
    resolve,
    sentence_free_baseline,
)

NUM_IMAGES = 12
SEED = 3


@pytest.fixture(scope="module")
def refshapes(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, list[Scene]]:
    """A generated data root, the summary it returned, and the same scenes built in memory."""
    root = tmp_path_factory.mktemp("refshapes")
    summary = generate_refshapes(root, NUM_IMAGES, SEED)
    return root, summary, list(refshapes_scenes(NUM_IMAGES, SEED))


def _sentences_by_id(scene: Scene) -> dict[int, tuple[tuple[int, ...], str]]:
    """(targets, raw text) of each sentence id of the scene."""
    return {sent_id: (referral.targets, raw) for referral in scene.referrals for sent_id, raw in referral.sentences}


def _union(scene: Scene, targets: tuple[int, ...]) -> np.ndarray:
    mask = np.zeros(scene.image.shape[:2], dtype=bool)
    for index in targets:
        mask |= scene.shapes[index].mask
    return mask


def test_files_read_back_to_the_drawn_masks_and_images(refshapes: tuple[Path, dict, list[Scene]]) -> None:
    root, _, scenes = refshapes
    scenes_by_id = {scene.image_id: scene for scene in scenes}
    target_counts: dict[str, Counter] = {"refshapes": Counter(), "grefshapes": Counter()}
    for dataset in ("refshapes", "grefshapes"):
        for split in SPLITS:
            data = load_split(root, dataset, split)
            assert data.expressions, f"{dataset} {split} is empty"
            for expression in data.expressions:
                scene = scenes_by_id[expression.image_id]
                assert scene.split == split
                targets, raw = _sentences_by_id(scene)[expression.sent_id]
                assert expression.sentence == normalize_sentence(raw)
                assert expression.target_ids == tuple(scene.shapes[index].ann_id for index in targets)
                assert np.array_equal(data.target_mask(expression), _union(scene, targets)), expression
                target_counts[dataset][min(len(targets), 2)] += 1
            for image_id, record in data.images.items():
                with Image.open(record.path) as image:
                    assert image.mode == "RGB"
                    assert image.size == (record.width, record.height)
                    assert np.array_equal(np.asarray(image), scenes_by_id[image_id].image)
                assert record.height != record.width
                assert 112 <= min(record.height, record.width) <= max(record.height, record.width) <= 176
    assert set(target_counts["refshapes"]) == {1}
    assert set(target_counts["grefshapes"]) == {0, 1, 2}
    assert target_counts["grefshapes"][1] == target_counts["refshapes"][1]


def test_summary_counts_what_the_readers_find(refshapes: tuple[Path, dict, list[Scene]]) -> None:
    root, summary, _ = refshapes
    assert set(summary) == set(SPLITS)
    for split in SPLITS:
        refer = load_split(root, "refshapes", split)
        grefer = load_split(root, "grefshapes", split)
        assert summary[split] == {
            "images": len(refer.images),
            "objects": sum(len(objects) for objects in refer.objects_by_image.values()),
            "sentences": len(refer.expressions),
            "gref_sentences": len(grefer.expressions),
        }
    assert sum(counts["images"] for counts in summary.values()) == NUM_IMAGES


def _files(root: Path) -> dict[str, bytes]:
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def test_same_seed_writes_the_same_bytes_and_another_seed_other_data(tmp_path: Path) -> None:
    for name, seed in (("first", 5), ("again", 5), ("other", 6)):
        generate_refshapes(tmp_path / name, 6, seed)
    first, again, other = (_files(tmp_path / name) for name in ("first", "again", "other"))
    assert len(first) == 6 + 4
    assert first == again
    assert other.keys() == first.keys()
    assert all(other[name] != first[name] for name in first)


def test_sentences_per_image_spread_over_several_objects(refshapes: tuple[Path, dict, list[Scene]]) -> None:
    _, _, scenes = refshapes
    for expressions_per_image, some_scenes in ((7, scenes), (10, list(refshapes_scenes(4, 0, 10)))):
        for scene in some_scenes:
            counts = [len(referral.sentences) for referral in scene.referrals if len(referral.targets) == 1]
            assert sum(counts) == expressions_per_image
            assert len(counts) >= 3
            assert max(counts) <= -(-expressions_per_image // 3)
            sentences = [normalize_sentence(raw) for referral in scene.referrals for _, raw in referral.sentences]
            assert len(set(sentences)) == len(sentences)


def test_test_splits_refer_to_round_and_to_angular_shapes(refshapes: tuple[Path, dict, list[Scene]]) -> None:
    _, _, scenes = refshapes
    families = {"testA": ROUND_KINDS, "testB": ANGULAR_KINDS}
    for scene in scenes:
        if scene.split in families:
            targets = {index for referral in scene.referrals for index in referral.targets}
            assert {scene.shapes[index].kind for index in targets} <= set(families[scene.split])


SIZE_WORDS = {"small": "small", "little": "small", "large": "large", "big": "large"}
TEXTURE_WORDS = {"plain": "solid", "solid": "solid", "striped": "striped", "dotted": "dotted", "spotted": "dotted"}
NOUNS: dict[str, str | None] = {"shape": None, "shapes": None}
NOUNS.update({kind: kind for kind in KINDS})
NOUNS.update({kind + ("es" if kind.endswith("s") else "s"): kind for kind in KINDS})
DIRECTIONS = {"leftmost": "left", "rightmost": "right", "highest": "top", "lowest": "bottom"}
ORDINALS = {"second": 2, "third": 3}
RELATIONS = {
    "above": "above",
    "below": "below",
    "under": "below",
    "left of": "left",
    "to the left of": "left",
    "right of": "right",
    "to the right of": "right",
}
COUNTS = {"the two": 2, "both": 2, "the three": 3, "all three": 3, "all the": 0, "all": 0}
GRAMMAR = [
    ("ordinal", re.compile(r"the (second|third) (.+) from the (left|right|top|bottom)")),
    ("extreme", re.compile(r"the (.+) (?:on|at) the (left|right|top|bottom)")),
    ("extreme first", re.compile(r"the (leftmost|rightmost|highest|lowest) (.+)")),
    ("relation", re.compile(r"the (.+?) (above|below|under|(?:to the )?(?:left|right) of) the (.+)")),
    ("counted", re.compile(r"(the two|both|the three|all three|all the|all) (.+)")),
    ("single", re.compile(r"the (.+)")),
]


def _describes(words: str) -> Callable[[Shape], bool]:
    """The predicate of a noun phrase such as "small striped green ring"; unknown words fail."""
    *adjectives, noun = words.split()
    wanted: dict[str, str | None] = {"kind": NOUNS[noun]}
    for word in adjectives:
        if word in SIZE_WORDS:
            key, value = "size", SIZE_WORDS[word]
        elif word in TEXTURE_WORDS:
            key, value = "texture", TEXTURE_WORDS[word]
        else:
            assert word in COLOURS, f"unknown word {word!r} in {words!r}"
            key, value = "colour", word
        assert key not in wanted, f"{key} stated twice in {words!r}"
        wanted[key] = value
    return lambda shape: all(value is None or getattr(shape, key) == value for key, value in wanted.items())


def _nth(
    shapes: tuple[Shape, ...], members: list[int], rank: int, direction: str, clear: float
) -> frozenset[int] | None:
    """The rank-th of ``members`` from ``direction``; None when there are too few, or when the first
    rank + 1 are not ``clear`` pixels apart along that axis."""
    sign = 1 if direction in ("left", "top") else -1
    axis = "x" if direction in ("left", "right") else "y"
    ordered = sorted(members, key=lambda index: sign * getattr(shapes[index], axis))
    head = [sign * getattr(shapes[index], axis) for index in ordered[: rank + 1]]
    if len(ordered) < rank or any(after - before < clear for before, after in pairwise(head)):
        return None
    return frozenset({ordered[rank - 1]})


def _in_relation(shape: Shape, anchor: Shape, relation: str, clear: float) -> bool | None:
    """Whether ``shape`` lies in the 90 degree cone from ``anchor`` towards ``relation``; None when
    it does, but less than ``clear`` pixels away."""
    dx, dy = shape.x - anchor.x, shape.y - anchor.y
    along, across = {"above": (-dy, dx), "below": (dy, dx), "left": (-dx, dy), "right": (dx, dy)}[relation]
    if along <= 0 or along < abs(across):
        return False
    return True if along >= clear else None


def _meaning(sentence: str, scene: Scene) -> frozenset[int] | None:
    """The objects a normalized sentence refers to, read from the scene description; None when it is
    ambiguous (a singular phrase naming several objects, a wrong count, positions closer than 5% of
    the shorter image side where an order or a relation depends on them)."""
    shapes = scene.shapes
    clear = 0.05 * min(scene.image.shape[:2])
    kind, match = next((kind, match) for kind, pattern in GRAMMAR if (match := pattern.fullmatch(sentence)))

    def matching(words: str) -> list[int]:
        describes = _describes(words)
        return [index for index, shape in enumerate(shapes) if describes(shape)]

    def the(members: list[int]) -> frozenset[int] | None:
        return frozenset(members) if len(members) <= 1 else None

    if kind == "ordinal":
        return _nth(shapes, matching(match[2]), ORDINALS[match[1]], match[3], clear)
    if kind == "extreme":
        return _nth(shapes, matching(match[1]), 1, match[2], clear)
    if kind == "extreme first":
        return _nth(shapes, matching(match[2]), 1, DIRECTIONS[match[1]], clear)
    if kind == "relation":
        anchors = matching(match[3])
        if len(anchors) != 1:
            return None
        anchor = shapes[anchors[0]]
        states = {
            index: _in_relation(shapes[index], anchor, RELATIONS[match[2]], clear) for index in matching(match[1])
        }
        return None if None in states.values() else the([index for index, state in states.items() if state])
    if kind == "counted":
        members, count = matching(match[2]), COUNTS[match[1]]
        return frozenset(members) if (len(members) == count or (count == 0 and len(members) >= 2)) else None
    return the(matching(match[1]))


def test_every_sentence_means_exactly_its_targets() -> None:
    kinds: Counter = Counter()
    for scene in refshapes_scenes(60, 11):
        for referral in scene.referrals:
            for _, raw in referral.sentences:
                sentence = normalize_sentence(raw)
                assert _meaning(sentence, scene) == frozenset(referral.targets), (scene.image_id, raw)
                kinds[next(kind for kind, pattern in GRAMMAR if pattern.fullmatch(sentence))] += 1
    assert set(kinds) == {kind for kind, _ in GRAMMAR}
    assert min(kinds.values()) >= 20, kinds


def _shape(kind: str, colour: str, x: float, y: float) -> Shape:
    return Shape(0, kind, colour, "small", "solid", x, y, np.zeros((1, 1), dtype=bool), None)


def test_resolve_needs_unique_clear_answers() -> None:
    shapes = [_shape("square", "red", 20, 50), _shape("square", "blue", 80, 50), _shape("circle", "red", 82, 15)]
    assert resolve(Query(Phrase("square")), shapes, margin=8) is None
    assert resolve(Query(Phrase("square", colour="blue")), shapes, margin=8) == {1}
    assert resolve(Query(Phrase("hexagon")), shapes, margin=8) == frozenset()
    assert resolve(Query(Phrase("square"), rank=1, direction="left"), shapes, margin=8) == {0}
    assert resolve(Query(Phrase("square"), rank=1, direction="top"), shapes, margin=8) is None
    assert resolve(Query(Phrase(colour="red"), rank=1, direction="bottom"), shapes, margin=8) == {0}
    assert resolve(Query(Phrase("square"), rank=1, direction="left"), shapes, margin=70) is None
    assert resolve(Query(Phrase(colour="red"), relation="above", anchor=Phrase(colour="blue")), shapes, 8) == {2}
    assert resolve(Query(Phrase(colour="red"), relation="below", anchor=Phrase(colour="blue")), shapes, 8) == set()
    assert resolve(Query(Phrase("circle"), relation="left", anchor=Phrase("square")), shapes, 8) is None
    assert resolve(Query(Phrase("square"), count=2), shapes, margin=8) == {0, 1}
    assert resolve(Query(Phrase("square"), count=3), shapes, margin=8) is None
    assert resolve(Query(Phrase(colour="red"), count=0), shapes, margin=8) == {0, 2}
    assert resolve(Query(Phrase("circle"), count=0), shapes, margin=8) is None


class _NoGlobals(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"global {module}.{name}")


def _plain(value: Any) -> bool:
    if isinstance(value, dict):
        return all(isinstance(key, str) and _plain(item) for key, item in value.items())
    if isinstance(value, list):
        return all(_plain(item) for item in value)
    return type(value) in (str, int)


def test_file_formats(refshapes: tuple[Path, dict, list[Scene]]) -> None:
    root, _, _ = refshapes
    refs = _NoGlobals(io.BytesIO((root / "refshapes" / "refs(unc).p").read_bytes())).load()
    assert _plain(refs)
    grefs = json.loads((root / "grefshapes" / "grefs(unc).json").read_text())
    for ref in refs + grefs:
        assert ref["sent_ids"] == [sentence["sent_id"] for sentence in ref["sentences"]]
        for sentence in ref["sentences"]:
            assert sentence["sent"] == normalize_sentence(sentence["raw"])
            assert sentence["tokens"] == sentence["sent"].split()
    for ref in grefs:
        assert ref["no_target"] == (ref["ann_id"] == [-1])
        assert len(ref["category_id"]) == (0 if ref["no_target"] else len(ref["ann_id"]))

    instances = (root / "refshapes" / "instances.json").read_text()
    assert instances == (root / "grefshapes" / "instances.json").read_text()
    coco = json.loads(instances)
    kinds = {category["id"]: category["name"] for category in coco["categories"]}
    formats = Counter()
    for annotation in coco["annotations"]:
        segmentation = annotation["segmentation"]
        assert isinstance(segmentation, list) and all(isinstance(polygon, list) for polygon in segmentation)
        on_pixel_edges = all(value % 1 == 0.5 for polygon in segmentation for value in polygon)
        formats["outline" if on_pixel_edges else "drawn polygon"] += 1
        assert on_pixel_edges or kinds[annotation["category_id"]] in ANGULAR_KINDS
        assert annotation["iscrowd"] == 0 and annotation["area"] > 0 and len(annotation["bbox"]) == 4
    assert formats["outline"] > 0 and formats["drawn polygon"] > 0


def test_sentence_free_baseline_is_far_below_what_words_allow(tmp_path: Path) -> None:
    generate_refshapes(tmp_path, 200, 0)
    value = sentence_free_baseline(tmp_path, "val")
    data = load_split(tmp_path, "refshapes", "val")
    per_image = []
    for image_id, objects in data.objects_by_image.items():
        targets = [data.target_mask(expression) for expression in data.expressions if expression.image_id == image_id]
        options = []
        for object_id in objects:
            mask = data.object_mask(object_id, image_id)
            options.append((sum((mask & t).sum() for t in targets), sum((mask | t).sum() for t in targets)))
        per_image.append(max(options, key=lambda option: option[0] / option[1]))
    greedy = sum(option[0] for option in per_image) / sum(option[1] for option in per_image)
    assert greedy - 1e-9 <= value <= 0.40
