"""Proof of reading: sentence types written and read back, the grounding gap, per-type IoU, and the
evaluator reporting them with the sentence-free baseline; the generator's data unchanged otherwise."""

from __future__ import annotations

import hashlib
import json
import pickle
import re
import shutil
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
from PIL import Image

from risam import create_model
from risam.data.dataset import ReferDataset
from risam.data.masks import AnnotationError, decode_segmentation
from risam.data.readers import load_split
from risam.data.records import Expression, ReferSplit
from risam.data.refshapes import SENTENCE_TYPES, generate_refshapes, refshapes_scenes, sentence_free_baseline
from risam.engine.evaluator import evaluate_model
from risam.evaluation.grounding import ByType, GroundingGap, cached_sentence_free_baseline, decoy_objects
from risam.evaluation.metrics import MetricAccumulator, results_table

NUM_IMAGES = 20
SEED = 3
# SHA-256 of a 20-image seed-3 root as written before sentence types existed (the "type" key removed):
# the pixels of every image (by file name), instances.json with every segmentation decoded to its mask
# (round and occluded objects were RLE then and are outline polygons now: the same pixels), refs(unc).p
# re-pickled, grefs(unc).json re-dumped.
UNCHANGED = {
    "pixels": "b96c1a1621a96c582843196d720f0b90454c654c7b8ef307a12913295fef06e6",
    "instances": "641c8af514b71f9212636ea6d8a94a8958af8ebcb5f06bd4b4bbe586413a1ea0",
    "refs": "b46078846070bca376d0a3bf3c6e66a726726851265ce06e4ff6723489ef8c5b",
    "grefs": "462e1e281afa361ceafacc386208e81a74475a3a9c460997524d92011a375efe",
}

Predictor = Callable[[ReferSplit, Expression], np.ndarray]


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("refshapes")
    generate_refshapes(root, NUM_IMAGES, SEED)
    return root


def _read_refs(root: Path) -> tuple[list[dict], list[dict]]:
    refs = pickle.loads((root / "refshapes" / "refs(unc).p").read_bytes())
    grefs = json.loads((root / "grefshapes" / "grefs(unc).json").read_text())
    return refs, grefs


def _decoded_instances_digest(path: Path) -> str:
    """SHA-256 of a COCO file's content with each annotation's segmentation replaced by its decoded mask."""
    coco = json.loads(path.read_text())
    sizes = {image["id"]: (image["height"], image["width"]) for image in coco["images"]}
    digest = hashlib.sha256(json.dumps({k: v for k, v in coco.items() if k != "annotations"}, sort_keys=True).encode())
    for annotation in sorted(coco["annotations"], key=lambda annotation: annotation["id"]):
        digest.update(json.dumps({k: v for k, v in annotation.items() if k != "segmentation"}, sort_keys=True).encode())
        mask = decode_segmentation(annotation["segmentation"], *sizes[annotation["image_id"]], where=str(path))
        digest.update(mask.tobytes())
    return digest.hexdigest()


def test_generator_output_is_unchanged_but_for_the_sentence_type(root: Path) -> None:
    pixels = hashlib.sha256()
    for path in sorted((root / "images" / "refshapes").glob("*.png")):
        with Image.open(path) as image:
            pixels.update(path.name.encode())
            pixels.update(np.asarray(image).tobytes())
    refs, grefs = _read_refs(root)
    types = Counter()
    for ref in grefs:
        for sentence in ref["sentences"]:
            kind = sentence["type"]
            types[kind] += 1
            assert (kind == "no_target") == ref["no_target"]
            assert (kind == "group") == (len(ref["ann_id"]) > 1)
            assert (kind == "ordinal") == bool(re.search(r"\b(second|third)\b", sentence["sent"]))
    assert types == {"attribute": 48, "relation": 42, "position": 40, "group": 40, "ordinal": 10, "no_target": 20}
    types_of_refs = [sentence.pop("type") for ref in refs + grefs for sentence in ref["sentences"]]
    assert set(types_of_refs) <= set(SENTENCE_TYPES)
    digests = {
        "pixels": pixels.hexdigest(),
        "instances": _decoded_instances_digest(root / "refshapes" / "instances.json"),
        "refs": hashlib.sha256(pickle.dumps(refs, protocol=2)).hexdigest(),
        "grefs": hashlib.sha256(json.dumps(grefs, sort_keys=True).encode()).hexdigest(),
    }
    assert digests == UNCHANGED


def test_sentence_types_are_read_back(root: Path) -> None:
    written = {
        sent_id: kind
        for scene in refshapes_scenes(NUM_IMAGES, SEED)
        for referral in scene.referrals
        for (sent_id, _), kind in zip(referral.sentences, referral.sentence_types, strict=True)
    }
    refer = load_split(root, "refshapes", "val")
    assert {e.sentence_type for e in refer.expressions} == {"attribute", "position", "ordinal", "relation"}
    grefer = load_split(root, "grefshapes", "val")
    assert {e.sentence_type for e in grefer.expressions} == set(SENTENCE_TYPES)
    for expression in refer.expressions + grefer.expressions:
        assert expression.sentence_type == written[expression.sent_id]


def test_reader_checks_the_type_and_does_without_it(root: Path, tmp_path: Path) -> None:
    shutil.copytree(root / "refshapes", tmp_path / "refshapes")
    path = tmp_path / "refshapes" / "refs(unc).p"
    refs = pickle.loads(path.read_bytes())
    del refs[0]["sentences"][0]["type"]
    path.write_bytes(pickle.dumps(refs, protocol=2))
    types = {e.sent_id: e.sentence_type for e in load_split(tmp_path, "refshapes", refs[0]["split"]).expressions}
    assert types[refs[0]["sent_ids"][0]] is None and types[refs[0]["sent_ids"][1]] in SENTENCE_TYPES
    refs[0]["sentences"][1]["type"] = 3
    path.write_bytes(pickle.dumps(refs, protocol=2))
    pattern = rf"refs\(unc\)\.p: ref 0 \(ref_id {refs[0]['ref_id']}\) sentence 1: 'type' must be a string, got 3"
    with pytest.raises(AnnotationError, match=pattern):
        load_split(tmp_path, "refshapes", refs[0]["split"])


def _expression(sent_id: int, image_id: int, *targets: int) -> Expression:
    return Expression(sent_id=sent_id, ref_id=sent_id, image_id=image_id, sentence="", target_ids=targets)


def test_decoys_are_the_targets_of_each_image_permuted(root: Path) -> None:
    cases = {1: (1, 1, 2, 2, 3), 2: (4, 4, 4, 5), 3: (6, 6), 4: (7, 8)}
    expressions = [_expression(10 * image + n, image, t) for image, ts in cases.items() for n, t in enumerate(ts)]
    expressions += [_expression(99, 1, 1, 2), _expression(98, 1)]
    split = ReferSplit("made", "val", {}, expressions, {}, {})
    assert decoy_objects(split) == {10: 2, 11: 2, 12: 3, 13: 1, 14: 1, 40: 8, 41: 7}

    split = load_split(root, "grefshapes", "train")
    decoys = decoy_objects(split)
    targets, others = defaultdict(Counter), defaultdict(Counter)
    for expression in split.expressions:
        if expression.sent_id in decoys:
            assert expression.target_ids != (decoys[expression.sent_id],)
            targets[expression.image_id][expression.target_ids] += 1
            others[expression.image_id][(decoys[expression.sent_id],)] += 1
    assert targets == others and len(decoys) == len(load_split(root, "refshapes", "train").expressions)


def _referred(split: ReferSplit, image_id: int) -> list[int]:
    return sorted({t for e in split.expressions if e.image_id == image_id for t in e.target_ids})


def _object(split: ReferSplit, image_id: int, choose: Callable[[list[int]], int]) -> np.ndarray:
    return split.object_mask(choose(_referred(split, image_id)), image_id)


BLIND: dict[str, Predictor] = {
    "first referred object": lambda split, e: _object(split, e.image_id, lambda ids: ids[0]),
    "last referred object": lambda split, e: _object(split, e.image_id, lambda ids: ids[-1]),
    "union of referred objects": lambda split, e: np.any(
        [split.object_mask(t, e.image_id) for t in _referred(split, e.image_id)], axis=0
    ),
    "noise": lambda split, e: np.random.default_rng(e.image_id).random(split.target_mask(e).shape) < 0.3,
}


def _score(split: ReferSplit, predict: Predictor) -> tuple[dict, dict]:
    gap, by_type, metrics = GroundingGap(split), ByType(split), MetricAccumulator()
    for expression in split.expressions:
        prediction = predict(split, expression)
        gap.add(prediction, expression)
        by_type.add(prediction, expression)
        metrics.add(prediction, split.target_mask(expression))
    return gap.summary() | by_type.summary(), metrics.summary()


@pytest.mark.parametrize("name", BLIND)
def test_grounding_gap_is_zero_for_predictors_that_ignore_the_sentence(root: Path, name: str) -> None:
    results, metrics = _score(load_split(root, "refshapes", "train"), BLIND[name])
    assert abs(results["grounding_gap"]) < 0.02
    assert results["grounding_gap"] == pytest.approx(0.0, abs=1e-12)
    assert metrics["overall_iou"] > 0.01


def test_grounding_gap_of_a_perfect_reader_is_its_overall_iou(root: Path) -> None:
    split = load_split(root, "refshapes", "train")
    for image_id, objects in split.objects_by_image.items():
        assert np.sum([split.object_mask(o, image_id) for o in objects], axis=0).max() == 1, "masks overlap"
    results, metrics = _score(split, lambda split, e: split.target_mask(e))
    assert results["grounding_gap"] == metrics["overall_iou"] == 1.0
    decoys = decoy_objects(split)
    results, _ = _score(split, lambda split, e: split.object_mask(decoys[e.sent_id], e.image_id))
    assert results["grounding_gap"] == -1.0

    def reads_positions(split: ReferSplit, expression: Expression) -> np.ndarray:
        if expression.sentence_type in ("position", "ordinal"):
            return split.target_mask(expression)
        return BLIND["first referred object"](split, expression)

    results, metrics = _score(split, reads_positions)
    assert 0.1 < results["grounding_gap"] < metrics["overall_iou"] < 0.9


def test_overall_iou_by_type(root: Path) -> None:
    split = load_split(root, "refshapes", "val")
    counts = Counter(e.sentence_type for e in split.expressions)
    results, _ = _score(split, lambda split, e: split.target_mask(e))
    assert results["by_type"] == {kind: {"overall_iou": 1.0, "count": count} for kind, count in counts.items()}
    results, _ = _score(load_split(root, "grefshapes", "val"), lambda split, e: np.zeros_like(split.target_mask(e)))
    assert {kind: scores["overall_iou"] for kind, scores in results["by_type"].items()} == {
        kind: float(kind == "no_target") for kind in SENTENCE_TYPES
    }


def test_sums_add_up_over_shards_and_all_reduce(root: Path, tmp_path: Path) -> None:
    split = load_split(root, "grefshapes", "val")
    whole, shards = (GroundingGap(split), ByType(split)), [(GroundingGap(split), ByType(split)) for _ in range(2)]
    for expression in split.expressions:
        prediction = BLIND["noise"](split, expression) | split.target_mask(expression)
        for accumulator in (*whole, *shards[expression.image_id % 2]):
            accumulator.add(prediction, expression)
    for index, accumulator in enumerate(whole):
        torch.testing.assert_close(accumulator.sums, shards[0][index].sums + shards[1][index].sums)
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        before = [accumulator.summary() for accumulator in whole]
        for accumulator in whole:
            accumulator.all_reduce()
        assert [accumulator.summary() for accumulator in whole] == before
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("dataset", ["refshapes", "grefshapes"])
def test_evaluate_model_reports_proof_of_reading(root: Path, dataset: str) -> None:
    torch.manual_seed(0)
    model = create_model("risam_tiny", overrides={"image_encoder.freeze": False, "text_encoder.freeze": False})
    image = model.image_encoder.config
    data = ReferDataset(
        load_split(root, dataset, "val"),
        image.img_size,
        model.text_encoder.tokenize,
        image.pixel_mean,
        image.pixel_std,
        keep_original_masks=True,
    )
    device = torch.device("cpu")
    results = evaluate_model(model, data, 0.5, 2, device, progress=False, data_root=root)
    assert isinstance(results["grounding_gap"], float) and -1 <= results["grounding_gap"] <= 1
    counts = Counter(e.sentence_type for e in data.split.expressions)
    assert {kind: scores["count"] for kind, scores in results["by_type"].items()} == counts
    assert results["sentence_free_baseline"] == sentence_free_baseline(root, "val", dataset)
    assert results["sentence_free_baseline"] == cached_sentence_free_baseline(root, dataset, "val")
    table = results_table(results)
    assert "| Sentence-free | Gap | IoU attribute |" in table
    assert f"| {100 * results['sentence_free_baseline']:.2f} | {100 * results['grounding_gap']:.2f} |" in table
    without_root = evaluate_model(model, data, 0.5, 2, device, progress=False)
    assert "sentence_free_baseline" not in without_root and without_root["by_type"] == results["by_type"]


def test_results_table_marks_a_gap_that_could_not_be_measured() -> None:
    metrics = MetricAccumulator()
    metrics.add(np.ones((2, 2), bool), np.ones((2, 2), bool))
    results = metrics.summary() | {"sentence_free_baseline": 0.25, "grounding_gap": None}
    results["by_type"] = {"relation": {"overall_iou": 0.5, "count": 3}}
    table = results_table(results)
    assert "| IoU | mIoU | Sentence-free | Gap | IoU relation |" in table
    assert "| 100.00 | 100.00 | 25.00 | - | 50.00 |" in table
