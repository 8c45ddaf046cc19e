"""Our SAM image encoder (timm) against Meta's ``segment_anything`` encoder on identical weights.

Prints one JSON object: seconds per image, images/s, the speed ratio, the largest difference
of the tapped features, and each encoder's peak resident memory (measured in a fresh process
per encoder). Weights are random; both encoders load the same Meta-format file.

    python benchmarks/encoder_vs_segment_anything.py --variant vit_b --repeats 3
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from benchmarks.sam_reference import meta_encoder, randomize_positions, tap_hooks
from risam.modeling.image_encoder import SamImageEncoder
from risam.registry import get_config

VARIANTS = {"vit_b": "risam_vit_b", "vit_l": "risam_vit_l", "vit_h": "risam_vit_h"}


def time_forward(encoder: nn.Module, images: torch.Tensor, repeats: int) -> float:
    """Median seconds per forward pass (after one warm-up pass)."""
    with torch.no_grad():
        encoder(images)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            encoder(images)
            times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def peak_memory(variant: str, which: str, checkpoint: Path) -> float:
    """Peak resident memory (GiB, VmHWM) of one forward pass of one encoder, in a fresh process.

    VmHWM belongs to the new process image; ru_maxrss would carry over the parent's peak.
    """
    code = (
        "import sys, torch; sys.argv=['x']; "
        "import benchmarks.encoder_vs_segment_anything as b; "
        f"e = b.build('{variant}', '{which}', '{checkpoint}'); "
        "x = torch.randn(1, 3, 1024, 1024)\n"
        "with torch.no_grad(): e(x)\n"
        "print(next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')))"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=Path.cwd())
    return int(output.stdout.strip().splitlines()[-1]) / 2**20


def build(variant: str, which: str, checkpoint: str | Path) -> nn.Module:
    """One encoder with the weights of ``checkpoint`` (Meta's format)."""
    if which == "meta":
        encoder = meta_encoder(get_config(VARIANTS[variant]).image_encoder)
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        encoder.load_state_dict({k.removeprefix("image_encoder."): v for k, v in state.items()})
        return encoder
    encoder = SamImageEncoder(get_config(VARIANTS[variant]).image_encoder).eval()
    encoder.load_pretrained(checkpoint)
    return encoder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--variant", choices=list(VARIANTS), default="vit_b")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as folder:
        checkpoint = Path(folder) / "sam.pth"
        reference = meta_encoder(get_config(VARIANTS[args.variant]).image_encoder)
        randomize_positions(reference.blocks, reference.pos_embed)
        torch.save({f"image_encoder.{k}": v for k, v in reference.state_dict().items()}, checkpoint)
        ours = build(args.variant, "ours", checkpoint)
        images = torch.randn(1, 3, 1024, 1024)

        taps: dict[int, torch.Tensor] = {}
        hooks = tap_hooks(reference, ours.config.tap_indices, taps)
        with torch.no_grad():
            reference(images)
            difference = max(
                float((tap - taps[index]).abs().max())
                for tap, index in zip(ours(images), ours.config.tap_indices, strict=True)
            )
        for hook in hooks:
            hook.remove()

        meta_seconds = time_forward(reference, images, args.repeats)
        our_seconds = time_forward(ours, images, args.repeats)
        del reference, ours
        memory = {which: peak_memory(args.variant, which, checkpoint) for which in ("meta", "ours")}
    print(
        json.dumps(
            {
                "benchmark": "encoder_vs_segment_anything",
                "variant": args.variant,
                "input": "1 x 3 x 1024 x 1024, float32, CPU",
                "threads": torch.get_num_threads(),
                "segment_anything_s_per_image": meta_seconds,
                "risam_s_per_image": our_seconds,
                "segment_anything_images_per_s": 1 / meta_seconds,
                "risam_images_per_s": 1 / our_seconds,
                "speedup": meta_seconds / our_seconds,
                "max_abs_difference_of_taps": difference,
                "peak_rss_gib": memory,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
