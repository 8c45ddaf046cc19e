"""One training step of the quickstart model with Adam's default update against the fused one.

The quickstart config's ``risam_tiny`` (as the config builds it) on a synthetic batch shaped
like one of its image-grouped batches (4 images, 7 sentences each); the two optimizers
alternate ``--rounds`` times so that machine noise hits both. Prints one JSON object with the
median seconds per step of each and the loss after the last step (equal losses show that the
two updates compute the same thing).

    python -m benchmarks.training_step --rounds 3 --steps 20
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F

from benchmarks.entry import run
from risam import create_model
from risam.evaluation.losses import risam_loss
from risam.io.config_files import load_config


def time_steps(fused: bool, steps: int, warmup: int, batch: dict[str, torch.Tensor]) -> tuple[float, float]:
    """Seconds per step over ``steps`` steps after ``warmup`` steps, and the last loss."""
    config = load_config("refshapes_tiny", [])
    torch.manual_seed(0)
    model = create_model(config.model.name, overrides=config.model.overrides).train()
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(parameters, lr=config.optim.lr, fused=fused)
    size = batch["masks"].shape[-2:]

    def step() -> float:
        logits = model(batch["images"], batch["tokens"], image_index=batch["image_index"])
        logits = F.interpolate(logits[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
        loss = risam_loss(logits, batch["masks"])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.item()

    for _ in range(warmup):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        loss = step()
    return (time.perf_counter() - start) / steps, loss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    generator = torch.Generator().manual_seed(0)
    images, sentences = 4, 7
    batch = {
        "images": torch.randn(images, 3, 128, 128, generator=generator),
        "tokens": torch.randint(1, 400, (images * sentences, 17), generator=generator),
        "image_index": torch.arange(images).repeat_interleave(sentences),
        "masks": (torch.rand(images * sentences, 128, 128, generator=generator) > 0.5).float(),
    }
    seconds: dict[str, list[float]] = {"default": [], "fused": []}
    losses: dict[str, float] = {}
    for _ in range(args.rounds):
        for name in seconds:
            per_step, losses[name] = time_steps(name == "fused", args.steps, args.warmup, batch)
            seconds[name].append(per_step)
    median = {name: statistics.median(values) for name, values in seconds.items()}
    print(
        json.dumps(
            {
                "threads": args.threads,
                "seconds_per_step": median,
                "all_seconds_per_step": seconds,
                "fused_speedup": median["default"] / median["fused"],
                "last_loss": losses,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    run(main)
