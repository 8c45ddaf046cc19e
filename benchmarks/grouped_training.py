"""One RefShapes training epoch with image-grouped batches against per-sentence batches.

Same model (a frozen ViT-B-sized SAM encoder at a reduced input size, for CPU time), same
data, same number of sentences per step on average: counts image-encoder calls (images
encoded) and wall time, and prints one JSON object.

    python -m benchmarks.grouped_training --images 100 --img-size 256
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from benchmarks.entry import run
from risam import create_model
from risam.data.dataset import ReferDataset, identity_collate
from risam.data.readers import load_split
from risam.data.refshapes import generate_refshapes
from risam.data.sampler import GroupedBatchSampler
from risam.evaluation.losses import risam_loss


def run_epoch(model, dataset: ReferDataset, sampler: GroupedBatchSampler) -> dict[str, float]:
    """Train one epoch; returns images encoded, sentences and seconds."""
    encoded = []
    hook = model.image_encoder.register_forward_hook(lambda module, args, out: encoded.append(args[0].shape[0]))
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    loader = DataLoader(dataset, batch_sampler=sampler, collate_fn=identity_collate)
    model.train()
    sentences, start = 0, time.perf_counter()
    for batch in loader:
        logits = model(batch.images, batch.tokens, image_index=batch.image_index)
        logits = F.interpolate(logits[:, None], size=batch.masks.shape[-2:], mode="bilinear")[:, 0]
        loss = risam_loss(logits, batch.masks)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        sentences += batch.tokens.shape[0]
    hook.remove()
    return {"images_encoded": sum(encoded), "sentences": sentences, "seconds": time.perf_counter() - start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--img-size", type=int, default=256)
    parser.add_argument("--images-per-batch", type=int, default=4)
    args = parser.parse_args()
    torch.manual_seed(0)
    model = create_model("risam_vit_b", overrides={"image_encoder.img_size": args.img_size})
    config = model.image_encoder.config
    with tempfile.TemporaryDirectory() as root:
        generate_refshapes(root, num_images=args.images, seed=0)
        split = load_split(root, "refshapes", "train")
        dataset = ReferDataset(split, config.img_size, model.text_encoder.tokenize, config.pixel_mean, config.pixel_std)
        per_image = len(dataset) / len(set(dataset.image_ids))
        grouped = GroupedBatchSampler(dataset.image_ids, args.images_per_batch, seed=0)
        per_sentence = GroupedBatchSampler(
            dataset.image_ids, round(args.images_per_batch * per_image), sentences_per_image=1, seed=0
        )
        results = {
            "grouped": run_epoch(model, dataset, grouped),
            "per_sentence": run_epoch(model, dataset, per_sentence),
        }
    print(
        json.dumps(
            {
                "benchmark": "grouped_training",
                "model": "risam_vit_b (frozen encoders)",
                "img_size": args.img_size,
                "train_images": len(set(dataset.image_ids)),
                "sentences_per_image": per_image,
                **results,
                "encoder_calls_ratio": results["per_sentence"]["images_encoded"] / results["grouped"]["images_encoded"],
                "encoder_calls_ratio_one_call_per_sentence": len(dataset) / results["grouped"]["images_encoded"],
                "speedup": results["per_sentence"]["seconds"] / results["grouped"]["seconds"],
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    run(main)
