"""``risam quickstart``: RefShapes -> train ``risam_tiny`` -> evaluate -> overlays, from the package alone."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from risam.data.dataset import read_image
from risam.data.synthetic import generate_refshapes
from risam.engine.config import ExperimentConfig, load_config
from risam.engine.evaluator import predict_masks, run_evaluation
from risam.engine.experiment import build_dataset
from risam.engine.trainer import train
from risam.registry import create_model
from risam.viz import prediction_panel


def quickstart(out: str | os.PathLike, num_images: int = 1000, seed: int = 0, overlays: int = 8) -> dict[str, Any]:
    """Generate RefShapes under ``out/data``, train with the shipped ``refshapes_tiny`` config into
    ``out/run``, evaluate its best weights on val (``out/results.json``, ``out/results.md``) and
    draw ``overlays`` predictions (``out/overlays/*.png``). Returns the validation results."""
    out = Path(out)
    data_root = out / "data"
    summary = generate_refshapes(data_root, num_images=num_images, seed=seed, progress=True)
    (out / "data_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    config = load_config(
        "refshapes_tiny", [f"data.root={data_root}", f"train.output_dir={out / 'run'}", f"train.seed={seed}"]
    )
    train(config)
    checkpoint = out / "run" / "checkpoints" / "best.safetensors"
    results = run_evaluation(config, checkpoint, config.data.val_split, out / "results.json")
    _draw_overlays(config, checkpoint, out / "overlays", overlays)
    return results


def _draw_overlays(config: ExperimentConfig, checkpoint: Path, folder: Path, count: int) -> None:
    model = create_model(checkpoint=checkpoint).eval()
    dataset = build_dataset(config, model, config.data.val_split, for_eval=True)
    folder.mkdir(parents=True, exist_ok=True)
    indices = list(range(min(count, len(dataset))))
    batch = dataset.__getitems__(indices)
    with torch.no_grad():
        logits = model(batch.images, batch.tokens, image_index=batch.image_index)
    predictions = predict_masks(logits, batch, dataset.img_size, config.eval.threshold)
    for row, index in enumerate(indices):
        expression = dataset.split.expressions[index]
        image = read_image(dataset.split.images[expression.image_id])
        panel = prediction_panel(image, predictions[row].numpy(), batch.original_masks[row], expression.sentence)
        panel.save(folder / f"{row:02d}_sent{expression.sent_id}.png")
