"""How far the overall IoU of a small sample of RefShapes val lies from that of the whole split.

Evaluates a weights file (default: the shipped risam_tiny_refshapes) once on the val split of DATA,
keeps each image's summed intersection and union, then draws DRAWS random subsets of SAMPLE images
and prints one JSON object: the full split's overall IoU and the spread of the subsets' (standard
deviation, 99th and 99.9th percentile and largest absolute deviation). The tolerance of
``tests/test_shipped_model.py``'s reproduction comes from it.

    python -m benchmarks.val_sample_spread --data runs/refshapes_tiny_long/data --sample 100
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch
from torch.utils.data import DataLoader

from benchmarks.entry import run
from risam.data.dataset import identity_collate
from risam.data.sampler import GroupedBatchSampler
from risam.engine.evaluator import predict_masks
from risam.engine.experiment import build_dataset
from risam.io.config_files import load_config
from risam.registry.create import create_model
from risam.registry.files import DEFAULT_PRETRAINED, resolve_checkpoint


def intersections_and_unions(checkpoint: str, data: str) -> tuple[np.ndarray, np.ndarray]:
    """Per val image of ``data``: the intersections and unions of all its sentences' masks, summed."""
    config = load_config("refshapes_tiny_long", [f"data.root={data}", "train.progress=false"])
    model = create_model(checkpoint=resolve_checkpoint(checkpoint)).eval()
    dataset = build_dataset(config, model, "val", for_eval=True)
    image_of = {expression.sent_id: expression.image_id for expression in dataset.split.expressions}
    sums: dict[int, list[int]] = {}
    sampler = GroupedBatchSampler(dataset.image_ids, 16, shuffle=False)
    with torch.no_grad():
        for batch in DataLoader(dataset, batch_sampler=sampler, collate_fn=identity_collate):
            logits = model(batch.images, batch.tokens, image_index=batch.image_index)
            predictions = predict_masks(logits.float(), batch, dataset.img_size, config.eval.threshold)
            for prediction, target, sent_id in zip(predictions, batch.original_masks, batch.sent_ids, strict=True):
                predicted = torch.as_tensor(prediction, dtype=torch.bool)
                truth = torch.as_tensor(target, dtype=torch.bool)
                row = sums.setdefault(image_of[sent_id], [0, 0])
                row[0] += int((predicted & truth).sum())
                row[1] += int((predicted | truth).sum())
    values = np.array(list(sums.values()), dtype=np.float64)
    return values[:, 0], values[:, 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default=DEFAULT_PRETRAINED)
    parser.add_argument("--data", required=True, help="RefShapes data root")
    parser.add_argument("--sample", type=int, default=100, help="images per subset")
    parser.add_argument("--draws", type=int, default=5000)
    args = parser.parse_args()
    intersection, union = intersections_and_unions(args.checkpoint, args.data)
    full = intersection.sum() / union.sum()
    rng = np.random.default_rng(0)
    subsets = (rng.choice(len(union), args.sample, replace=False) for _ in range(args.draws))
    draws = np.array([intersection[subset].sum() / union[subset].sum() for subset in subsets])
    deviations = np.abs(draws - full)
    report = {
        "benchmark": "val_sample_spread",
        "images": len(union),
        "sample": args.sample,
        "full_overall_iou": round(float(full), 4),
        "std": round(float(draws.std()), 4),
        "p99_deviation": round(float(np.quantile(deviations, 0.99)), 4),
        "p999_deviation": round(float(np.quantile(deviations, 0.999)), 4),
        "max_deviation": round(float(deviations.max()), 4),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    run(main)
