"""``risam quickstart``: RefShapes -> train the head of ``risam_tiny`` -> evaluate -> overlays, from the package alone.

The paper's recipe in miniature: the tiny encoders that ship in the package stay frozen (as SAM and
CLIP do in the paper) and only the head trains, on their outputs computed once per image and sentence.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from risam.config.experiment import ExperimentConfig
from risam.data.dataset import read_image
from risam.data.refshapes import generate_refshapes
from risam.drawing.viz import prediction_panel
from risam.engine.evaluator import predict_masks, run_evaluation
from risam.engine.experiment import build_dataset
from risam.engine.trainer import train
from risam.io.config_files import load_config
from risam.io.files import atomic_write_json
from risam.io.images import atomic_save_image
from risam.registry.create import create_model


def quickstart(out: str | os.PathLike, num_images: int = 1000, seed: int = 0, overlays: int = 8) -> dict[str, Any]:
    """Generate RefShapes under ``out/data``, train with the shipped ``refshapes_tiny`` config into
    ``out/run``, evaluate its last weights on val (``out/results.json``, ``out/results.md``: overall IoU,
    mean IoU, Pr@X, the sentence-free baseline, the grounding gap and IoU per sentence type) and draw
    ``overlays`` predictions and a contact sheet (``out/overlays/*.png``). Returns the validation results."""
    out = Path(out)
    data_root = out / "data"
    summary = generate_refshapes(data_root, num_images=num_images, seed=seed, progress=True)
    atomic_write_json(out / "data_summary.json", summary)
    config = load_config(
        "refshapes_tiny", [f"data.root={data_root}", f"train.output_dir={out / 'run'}", f"train.seed={seed}"]
    )
    train(config)
    # The last weights, not the best on val: the val split reports the result, so it picks nothing.
    checkpoint = out / "run" / "checkpoints" / "last.safetensors"
    results = run_evaluation(config, checkpoint, config.data.val_split, out / "results.json")
    _draw_overlays(config, checkpoint, out / "overlays", overlays)
    return results


def _draw_overlays(config: ExperimentConfig, checkpoint: Path, folder: Path, count: int) -> None:
    """Draw the predictions of ``checkpoint`` on the val split into ``folder``.

    Writes the first ``count`` sentences as labelled panels (``{row:02d}_sent{sent_id}.png``:
    prediction and ground truth side by side, the sentence below) and ``sheet.png``: a contact
    sheet of 4 images with 4 sentences each (see :mod:`risam.drawing.overlays`).
    """
    from risam.drawing.overlays import draw_sheet, mask_iou, sheet_rows

    model = create_model(checkpoint=checkpoint).eval()
    dataset = build_dataset(config, model, config.data.val_split, for_eval=True)
    folder.mkdir(parents=True, exist_ok=True)
    panels = list(range(min(count, len(dataset))))
    rows = sheet_rows(dataset.split)
    indices = sorted({*panels, *(index for row in rows for index in row)})
    batch = dataset.__getitems__(indices)
    with torch.no_grad():
        logits = model(batch.images, batch.tokens, image_index=batch.image_index)
    masks = predict_masks(logits, batch, dataset.img_size, config.eval.threshold)
    predictions = {index: mask.numpy() for index, mask in zip(indices, masks, strict=True)}
    targets = dict(zip(indices, batch.original_masks, strict=True))
    for row, index in enumerate(panels):
        expression = dataset.split.expressions[index]
        image = read_image(dataset.split.images[expression.image_id])
        iou = mask_iou(predictions[index], targets[index])
        panel = prediction_panel(image, predictions[index], targets[index], expression.sentence, iou)
        atomic_save_image(folder / f"{row:02d}_sent{expression.sent_id}.png", panel, "PNG")
    if rows:
        atomic_save_image(folder / "sheet.png", draw_sheet(dataset.split, rows, predictions).image, "PNG")
