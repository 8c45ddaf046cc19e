"""Forward + backward throughput of the trainable head alone (Feature Enhancement, Mutual-Aware
Attention, decoder) on precomputed encoder features. Prints one JSON object.

    python -m benchmarks.head_throughput --batch 32 --grid 64 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from benchmarks.entry import run
from risam import create_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="risam_vit_h")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--grid", type=int, default=64, help="feature map side (64 for 1024 x 1024 input)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    model = create_model(args.model, device="meta")
    config = model.image_encoder.config
    text = model.text_encoder.config
    head = torch.nn.ModuleDict({"enhancement": model.enhancement, "fusion": model.fusion, "decoder": model.decoder})
    head = head.to_empty(device=args.device)
    for module in head.modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
    torch.nn.init.normal_(head["decoder"].query_token, std=0.02)
    model.enhancement, model.fusion, model.decoder = head["enhancement"], head["fusion"], head["decoder"]
    device = torch.device(args.device)
    taps = [torch.randn(args.batch, config.embed_dim, args.grid, args.grid, device=device) for _ in range(3)]
    words = torch.randn(args.batch, text.max_words, text.feature_dim, device=device)
    padding = torch.zeros(args.batch, text.max_words, dtype=torch.bool, device=device)
    padding[:, 10:] = True
    parameters = [p for p in head.parameters() if p.requires_grad]

    def step() -> None:
        logits = model.decode(model.visual_features(taps), words, padding)
        logits.float().mean().backward()
        for p in parameters:
            p.grad = None

    step()
    times = []
    for _ in range(args.repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    seconds = sorted(times)[len(times) // 2]
    print(
        json.dumps(
            {
                "benchmark": "head_throughput",
                "model": args.model,
                "device": args.device,
                "threads": torch.get_num_threads(),
                "batch": args.batch,
                "feature_grid": args.grid,
                "trainable_params": sum(p.numel() for p in parameters),
                "seconds_per_step": seconds,
                "samples_per_s": args.batch / seconds,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    run(main)
