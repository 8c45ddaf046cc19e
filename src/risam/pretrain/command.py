"""``risam pretrain-tiny``: pretrain the tiny encoders once and write the weights file the package ships.

Stages, each resumable (a finished stage is saved in ``OUT`` and skipped when the command is run again):

1. generate ``num_images`` RefShapes scenes of generator ``seed`` (a seed that no evaluated split uses);
2. pretrain the image encoder with dense labels (:mod:`risam.pretrain.image`);
3. pretrain the text encoder against the frozen image encoder (:mod:`risam.pretrain.text`);
4. write ``OUT/risam_tiny_encoders.safetensors``: both encoders in float16, with metadata that record
   the config, the command, the seed, the package version, the held-out scores and the wall time.
"""

from __future__ import annotations

import json
import os
import shlex
import time
from pathlib import Path
from typing import Any

import torch

from risam.io.files import atomic_write_json
from risam.io.logs import append_text
from risam.io.reading import read_json
from risam.io.weights import ENCODERS_FORMAT, atomic_save_safetensors, encoder_architecture, load_safetensors
from risam.modeling.model import RISAM
from risam.pretrain.defaults import DEFAULT_IMAGE_STEPS, DEFAULT_IMAGES, DEFAULT_SEED, DEFAULT_TEXT_STEPS
from risam.pretrain.image import pretrain_image_encoder
from risam.pretrain.scenes import build_pretraining_set
from risam.pretrain.text import object_features, pretrain_text_encoder
from risam.registry.create import create_model
from risam.registry.names import get_config
from risam.version import __version__

ENCODERS_FILE = "risam_tiny_encoders.safetensors"
HELD_OUT_SHARE = 0.05
PARTS = ("image_encoder", "text_encoder")


def pretrain_tiny(
    out: str | os.PathLike,
    seed: int = DEFAULT_SEED,
    num_images: int = DEFAULT_IMAGES,
    image_steps: int = DEFAULT_IMAGE_STEPS,
    text_steps: int = DEFAULT_TEXT_STEPS,
    progress: bool = True,
) -> Path:
    """Run every stage into ``out``; returns the path of the encoders file."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    log_file = out / "pretrain.log"

    def log(line: str) -> None:
        print(line, flush=True)
        append_text(log_file, line + "\n")

    torch.manual_seed(seed)
    started = time.perf_counter()
    model = create_model("risam_tiny", pretrained=False)
    image_config = model.image_encoder.config
    feature_grid = image_config.feature_size
    data = build_pretraining_set(
        num_images,
        seed,
        image_config.img_size,
        label_grid=4 * feature_grid,
        feature_grid=feature_grid,
        pixel_mean=image_config.pixel_mean,
        pixel_std=image_config.pixel_std,
        progress=progress,
    )
    held_out = max(1, int(HELD_OUT_SHARE * num_images))
    train_rows, held_out_rows = torch.arange(num_images - held_out), torch.arange(num_images - held_out, num_images)
    seconds = time.perf_counter() - started
    log(f"{num_images} scenes of seed {seed} ({len(data.sentences)} sentences) in {seconds:.0f} s")
    scores: dict[str, Any] = {"image_steps": image_steps, "text_steps": text_steps}
    stage = out / "image_encoder.safetensors"
    if stage.is_file():
        model.image_encoder.load_state_dict(load_safetensors(stage))
        scores["image"] = read_json(out / "image_scores.json")
        log(f"image encoder: resumed from {stage}")
    else:
        tap_dims = (image_config.embed_dim,) * len(image_config.tap_indices)
        scores["image"] = pretrain_image_encoder(
            model.image_encoder, tap_dims, data, train_rows, held_out_rows, image_steps, seed=seed, log=log
        )
        # The scores first: the stage file is what marks the stage as finished.
        atomic_write_json(out / "image_scores.json", scores["image"])
        atomic_save_safetensors(model.image_encoder.state_dict(), stage, {})
    scores["image_seconds"] = round(time.perf_counter() - started)
    model.image_encoder.requires_grad_(False)
    objects = object_features(model.image_encoder, data)
    scores["text"] = pretrain_text_encoder(
        model.text_encoder, objects, data, train_rows, held_out_rows, text_steps, seed=seed, log=log
    )
    wall = time.perf_counter() - started
    log(f"done in {wall:.0f} s: {json.dumps(scores)}")
    path = out / ENCODERS_FILE
    save_encoders(model, path, seed=seed, scores=scores, wall_seconds=wall, num_images=num_images)
    return path


def pretrain_command(out: Path, seed: int, num_images: int, image_steps: int, text_steps: int) -> list[str]:
    """The ``risam pretrain-tiny`` command line that reproduces a run."""
    return [
        "risam", "pretrain-tiny", "--out", str(out), "--seed", str(seed), "--images", str(num_images),
        "--image-steps", str(image_steps), "--text-steps", str(text_steps),
    ]  # fmt: skip


def save_encoders(
    model: RISAM, path: Path, seed: int, scores: dict[str, Any], wall_seconds: float, num_images: int
) -> None:
    """Both encoders of ``model`` at ``path`` (floating-point tensors in float16, counters as they are), with the
    metadata that say how they were made."""
    tensors = {
        f"{part}.{key}": value.detach().to(torch.float16) if value.is_floating_point() else value.detach()
        for part in PARTS
        for key, value in getattr(model, part).state_dict().items()
    }
    config = get_config("risam_tiny")
    metadata = {
        "format": ENCODERS_FORMAT,
        "risam_version": __version__,
        "config": json.dumps({part: encoder_architecture(getattr(config, part)) for part in PARTS}),
        "command": shlex.join(
            pretrain_command(path.parent, seed, num_images, scores["image_steps"], scores["text_steps"])
        ),
        "seed": str(seed),
        "num_images": str(num_images),
        "scores": json.dumps(scores),
        "wall_seconds": str(round(wall_seconds)),
    }
    atomic_save_safetensors(tensors, path, metadata)
