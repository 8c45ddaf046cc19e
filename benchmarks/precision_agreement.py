"""What bf16 frozen encoders change in a trained model's masks: overall IoU in fp32 and bf16, and the
fraction of pixels whose mask differs between them, on a RefShapes split.

The same trained weights are loaded twice, once with the frozen encoders in fp32 and once in bf16
(``precision=`` of ``create_model``); every sentence of the split is predicted by both at the
original resolution, exactly as ``risam evaluate`` predicts (``risam.engine.evaluator.predict_masks``).
Prints one JSON object.

    risam quickstart --out qs
    python -m benchmarks.precision_agreement --checkpoint qs/run/checkpoints/last.safetensors \\
        --data qs/data --config refshapes_tiny
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from torch.utils.data import DataLoader

from benchmarks.entry import run
from risam.data.dataset import identity_collate
from risam.data.sampler import GroupedBatchSampler
from risam.engine.evaluator import predict_masks
from risam.engine.experiment import build_dataset
from risam.evaluation.metrics import MetricAccumulator
from risam.io.config_files import load_config
from risam.precision import native_bf16
from risam.registry.create import create_model
from risam.registry.files import resolve_checkpoint

PRECISIONS = ("fp32", "bf16")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="RISAM weights file or a shipped model's name")
    parser.add_argument("--data", required=True, help="RefShapes data root")
    parser.add_argument("--config", default="refshapes_tiny", help="experiment config (dataset, threshold)")
    parser.add_argument("--split", default="val")
    args = parser.parse_args()

    config = load_config(args.config, [f"data.root={args.data}"])
    checkpoint = resolve_checkpoint(args.checkpoint)
    models = {precision: create_model(checkpoint=checkpoint, precision=precision).eval() for precision in PRECISIONS}
    dataset = build_dataset(config, models["fp32"], args.split, for_eval=True)
    sampler = GroupedBatchSampler(dataset.image_ids, config.eval.images_per_batch, shuffle=False)
    loader = DataLoader(dataset, batch_sampler=sampler, collate_fn=identity_collate)
    metrics = {precision: MetricAccumulator() for precision in PRECISIONS}
    seconds = dict.fromkeys(PRECISIONS, 0.0)
    differing = pixels = sentences_differing = 0
    with torch.no_grad():
        for batch in loader:
            masks = {}
            for precision, model in models.items():
                start = time.perf_counter()
                logits = model(batch.images, batch.tokens, image_index=batch.image_index)
                seconds[precision] += time.perf_counter() - start
                masks[precision] = predict_masks(logits, batch, dataset.img_size, config.eval.threshold)
                for mask, target in zip(masks[precision], batch.original_masks, strict=True):
                    metrics[precision].add(mask, target)
            for full, half in zip(masks["fp32"], masks["bf16"], strict=True):
                changed = int((full != half).sum())
                differing += changed
                sentences_differing += changed > 0
                pixels += full.numel()
    results = {precision: metrics[precision].summary() for precision in PRECISIONS}
    print(
        json.dumps(
            {
                "benchmark": "precision_agreement",
                "checkpoint": str(args.checkpoint),
                "split": args.split,
                "sentences": results["fp32"]["num_samples"],
                "overall_iou": {precision: results[precision]["overall_iou"] for precision in PRECISIONS},
                "mean_iou": {precision: results[precision]["mean_iou"] for precision in PRECISIONS},
                "overall_iou_difference_points": 100
                * (results["bf16"]["overall_iou"] - results["fp32"]["overall_iou"]),
                "fraction_of_pixels_differing": differing / pixels,
                "fraction_of_sentences_with_any_pixel_differing": sentences_differing / results["fp32"]["num_samples"],
                "model_seconds": seconds,
                "native_bf16": native_bf16(torch.device("cpu"))[0],
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    run(main)
