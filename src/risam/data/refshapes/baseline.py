"""The sentence-free baseline of a split: how far an answer gets without reading the sentences."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

from risam.data.readers import load_split


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
