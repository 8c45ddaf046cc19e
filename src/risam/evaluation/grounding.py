"""Proof of reading: metrics that a model which ignores the sentences cannot score well on.

Every RefShapes evaluation (datasets ``refshapes`` and ``grefshapes``) reports, next to the
metrics of :mod:`risam.evaluation.metrics`:

- ``sentence_free_baseline``: the best overall IoU of an answer that ignores the sentence,
  chosen with the ground truth (:func:`risam.data.refshapes.sentence_free_baseline`, cached
  here by :func:`cached_sentence_free_baseline`);
- ``grounding_gap`` (:class:`GroundingGap`): the overall IoU of the predictions against each
  sentence's own target minus the overall IoU of the same predictions against a *decoy*, another
  object of the same image that another single-target sentence refers to
  (:func:`decoy_objects`). The decoys of an image are its targets in another order, so a
  predictor that gives every sentence of an image the same mask scores exactly 0, whatever the
  mask; a perfect predictor on objects that do not overlap (RefShapes' visible masks) scores its
  overall IoU, 1. Only single-target sentences count (in ``grefshapes`` the multi- and
  no-target ones are left out), and only in images where decoys exist (see
  :func:`decoy_objects`); the gap is None when no sentence qualifies;
- ``by_type`` (:class:`ByType`): the overall IoU and the number of sentences of each sentence
  type (``Expression.sentence_type``); a type whose union is empty (``no_target`` predicted
  empty every time) scores 1, as in :mod:`risam.evaluation.metrics`.

The accumulators are fed one H x W bool prediction at a time at the original resolution, keep
sums only, and sum them over ranks (:meth:`all_reduce`) like
:class:`~risam.evaluation.metrics.MetricAccumulator`, so each rank may evaluate any shard of the split.
"""

from __future__ import annotations

import functools
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from risam.data.readers import segmentation_file
from risam.data.records import Expression, ReferSplit
from risam.data.refshapes import sentence_free_baseline
from risam.evaluation.metrics import all_reduce_sums

REFSHAPES_DATASETS = ("refshapes", "grefshapes")


def decoy_objects(split: ReferSplit) -> dict[int, int]:
    """The decoy object id of each single-target sentence (by ``sent_id``) that has one.

    Per image, the single-target sentences sorted by (target id, sent_id) take as decoy the
    target of the sentence ``c`` places further on, cyclically, where ``c`` is the largest number
    of sentences that share one target. The decoys are thus the image's targets permuted, and
    never a sentence's own target. That needs every object to be the target of at most half of
    the image's single-target sentences: images where one object has more (among them images
    with a single referred object) get no decoys, and their sentences count in neither term of
    the grounding gap. Sentences are told apart by ``sent_id``, unique within a split.
    """
    singles: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for expression in split.expressions:
        if len(expression.target_ids) == 1:
            singles[expression.image_id].append((expression.target_ids[0], expression.sent_id))
    decoys = {}
    for sentences in singles.values():
        sentences.sort()
        shift = max(Counter(target for target, _ in sentences).values())
        if 2 * shift > len(sentences):
            continue
        for position, (_, sent_id) in enumerate(sentences):
            decoys[sent_id] = sentences[(position + shift) % len(sentences)][0]
    return decoys


def _overlap(prediction: torch.Tensor, target: np.ndarray, where: str) -> tuple[int, int]:
    """(intersection, union) pixel counts of an H x W bool prediction and target."""
    mask = torch.from_numpy(target)
    if prediction.shape != mask.shape:
        raise ValueError(
            f"{where}: prediction {tuple(prediction.shape)} and target {tuple(mask.shape)} differ in size; "
            "compare at the original image resolution"
        )
    return int((prediction & mask).sum()), int((prediction | mask).sum())


def _ratio(intersection: float, union: float) -> float:
    """Overall IoU from summed counts; 1 when the union is empty (as in :mod:`risam.evaluation.metrics`)."""
    return intersection / union if union else 1.0


class GroundingGap:
    """Overall IoU against each sentence's own target minus overall IoU against its decoy.

    ``split`` is the whole split (every rank holds it); :meth:`add` takes this rank's predictions.
    """

    def __init__(self, split: ReferSplit) -> None:
        self.split = split
        self.decoys = decoy_objects(split)
        # own intersection, own union, decoy intersection, decoy union, sentences
        self.sums = torch.zeros(5, dtype=torch.float64)

    def add(self, prediction: np.ndarray | torch.Tensor, expression: Expression) -> None:
        """Add one sentence's H x W bool prediction (original resolution); sentences without a decoy are skipped."""
        decoy = self.decoys.get(expression.sent_id)
        if decoy is None:
            return
        prediction = torch.as_tensor(prediction, dtype=torch.bool)
        where = f"{self.split.dataset} {self.split.split} sentence {expression.sent_id}"
        own = _overlap(prediction, self.split.target_mask(expression), where)
        other = _overlap(prediction, self.split.object_mask(decoy, expression.image_id), where)
        self.sums += torch.tensor([*own, *other, 1], dtype=torch.float64)

    def all_reduce(self) -> None:
        """Sum the statistics over every rank of the default process group (if one is running)."""
        self.sums = all_reduce_sums(self.sums)

    def summary(self) -> dict[str, float | None]:
        """``{"grounding_gap": own overall IoU - decoy overall IoU}``, None when no sentence was added."""
        own_intersection, own_union, decoy_intersection, decoy_union, count = self.sums.tolist()
        if not count:
            return {"grounding_gap": None}
        return {"grounding_gap": _ratio(own_intersection, own_union) - _ratio(decoy_intersection, decoy_union)}


class ByType:
    """Overall IoU per sentence type; sentences without a ``sentence_type`` are skipped.

    The types are those of the whole ``split``, so that every rank sums the same table.
    """

    def __init__(self, split: ReferSplit) -> None:
        self.split = split
        types = sorted({e.sentence_type for e in split.expressions if e.sentence_type is not None})
        self.rows = {kind: row for row, kind in enumerate(types)}
        # per type: intersection, union, sentences
        self.sums = torch.zeros(len(types), 3, dtype=torch.float64)

    def add(self, prediction: np.ndarray | torch.Tensor, expression: Expression) -> None:
        """Add one sentence's H x W bool prediction (original resolution)."""
        if expression.sentence_type is None:
            return
        prediction = torch.as_tensor(prediction, dtype=torch.bool)
        where = f"{self.split.dataset} {self.split.split} sentence {expression.sent_id}"
        overlap = _overlap(prediction, self.split.target_mask(expression), where)
        self.sums[self.rows[expression.sentence_type]] += torch.tensor([*overlap, 1], dtype=torch.float64)

    def all_reduce(self) -> None:
        """Sum the statistics over every rank of the default process group (if one is running)."""
        self.sums = all_reduce_sums(self.sums)

    def summary(self) -> dict[str, dict[str, dict[str, Any]]]:
        """``{"by_type": {type: {"overall_iou": float, "count": int}}}`` over the types that had sentences."""
        by_type = {}
        for kind, row in self.rows.items():
            intersection, union, count = self.sums[row].tolist()
            if count:
                by_type[kind] = {"overall_iou": _ratio(intersection, union), "count": int(count)}
        return {"by_type": by_type}


def cached_sentence_free_baseline(root: str | Path, dataset: str, split: str) -> float:
    """:func:`~risam.data.refshapes.sentence_free_baseline`, computed once per split's files.

    The cache key is the resolved root, the dataset, the split and the modification time of the
    segmentation file, so that regenerating a root in place is noticed.
    """
    stamp = segmentation_file(root, dataset, split).stat().st_mtime_ns
    return _sentence_free_baseline(str(Path(root).resolve()), dataset, split, stamp)


@functools.lru_cache(maxsize=32)
def _sentence_free_baseline(root: str, dataset: str, split: str, stamp: int) -> float:
    """The uncached baseline; ``stamp`` only keys the cache."""
    return sentence_free_baseline(root, split, dataset)
