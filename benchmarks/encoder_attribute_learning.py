"""How fast the quickstart's image encoder, trained from scratch, learns what RefShapes sentences name.

The ``refshapes_tiny`` image encoder (a 4-block SAM ViT, patch 8, width 64) gets a 1x1
convolution over its three taps and is trained with direct per-pixel supervision: cross
entropy on each object pixel's kind, colour, size and texture (background is a class of its
own). No language is involved, so this is an upper bound on how fast the encoder can come to
see these attributes inside RISAM, where the only signal is the referring loss. Scenes come
from RefShapes' generator (in memory, seed ``--seed``); the last 200 are held out. Prints one
JSON object: the held-out accuracy of each attribute on object pixels at every
``--eval-every`` steps, and the accuracy of always answering the most frequent value.

    python -m benchmarks.encoder_attribute_learning --steps 1200 --eval-every 300
"""

from __future__ import annotations

import argparse
import json
import random
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from risam import create_model
from risam.data.synthetic import COLOURS, KINDS, SIZES, TEXTURES, Scene, refshapes_scenes
from risam.data.transforms import preprocess_image, preprocess_mask
from risam.engine.config import load_config

ATTRIBUTES = {"kind": KINDS, "colour": tuple(COLOURS), "size": SIZES, "texture": TEXTURES}
HELD_OUT = 200


def pixel_labels(scene: Scene, size: int, pixel_mean, pixel_std) -> tuple[torch.Tensor, torch.Tensor]:
    """(3 x size x size image; 4 x size x size labels, 0 = background, else 1 + index of the value)."""
    image, _ = preprocess_image(Image.fromarray(scene.image), size, pixel_mean, pixel_std)
    labels = torch.zeros(len(ATTRIBUTES), size, size, dtype=torch.long)
    for shape in scene.shapes:
        inside = preprocess_mask(shape.mask, size) > 0
        for row, (name, values) in enumerate(ATTRIBUTES.items()):
            labels[row][inside] = values.index(getattr(shape, name)) + 1
    return image, labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=1200)
    parser.add_argument("--eval-every", type=int, default=300)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--images", type=int, default=1500, help="training scenes")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = load_config("refshapes_tiny", [])
    encoder = create_model(config.model.name, overrides=config.model.overrides).image_encoder.train()
    settings = encoder.config
    widths = [len(values) + 1 for values in ATTRIBUTES.values()]
    head = torch.nn.Conv2d(settings.embed_dim * len(settings.tap_indices), sum(widths), kernel_size=1)
    data = [
        pixel_labels(scene, settings.img_size, settings.pixel_mean, settings.pixel_std)
        for scene in refshapes_scenes(args.images + HELD_OUT, args.seed)
    ]
    train, held_out = data[:-HELD_OUT], data[-HELD_OUT:]
    optimizer = torch.optim.Adam([*encoder.parameters(), *head.parameters()], lr=args.lr)

    def predict(images: torch.Tensor) -> list[torch.Tensor]:
        logits = head(torch.cat(encoder(images), dim=1))
        logits = F.interpolate(logits, size=images.shape[-2:], mode="bilinear", align_corners=False)
        return list(logits.split(widths, dim=1))

    test_images = torch.stack([image for image, _ in held_out])
    test_labels = torch.stack([labels for _, labels in held_out])
    on_object = test_labels[:, 0] > 0
    majority = {
        name: float(np.bincount(test_labels[:, row][on_object].numpy()).max() / on_object.sum().item())
        for row, name in enumerate(ATTRIBUTES)
    }
    curve: list[dict[str, float]] = []
    order = random.Random(0)
    start = time.perf_counter()
    for step in range(1, args.steps + 1):
        chosen = order.sample(train, args.batch)
        images = torch.stack([image for image, _ in chosen])
        labels = torch.stack([labels for _, labels in chosen])
        loss = sum(F.cross_entropy(logits, labels[:, row]) for row, logits in enumerate(predict(images)))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step % args.eval_every == 0:
            encoder.eval()
            with torch.no_grad():
                predicted = [logits.argmax(1) for logits in predict(test_images)]
            encoder.train()
            accuracy = {
                name: (predicted[row][on_object] == test_labels[:, row][on_object]).float().mean().item()
                for row, name in enumerate(ATTRIBUTES)
            }
            curve.append({"step": step, "seconds": time.perf_counter() - start, **accuracy})
    print(
        json.dumps(
            {
                "threads": args.threads,
                "batch": args.batch,
                "lr": args.lr,
                "training_scenes": args.images,
                "most_frequent_value_accuracy": majority,
                "held_out_accuracy_on_object_pixels": curve,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
