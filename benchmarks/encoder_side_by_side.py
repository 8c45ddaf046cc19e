"""The frozen image encoders of the registered models side by side on the CPU: SAM ViT-B/L/H against SAM 2.1's
Hiera T/S/B+/L (``python -m benchmarks.encoder_cpu --encoders ...`` runs this).

Each model's encoder runs in a fresh process (its peak resident memory, VmHWM, is its own), built with random
weights in the precision ``--precision`` picks on this CPU ("auto": bf16 where it is native), on one
1024 x 1024 image: seconds per image (the median of ``--repeats`` after one warm-up pass) and peak RSS; beside
them the model's trainable and total parameters as ``risam info`` counts them. Prints one JSON object.

    python -m benchmarks.encoder_cpu --encoders risam_vit_h risam_sam2_l --repeats 1
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from risam.cpu_memory import reuse_freed_memory
from risam.info import model_info
from risam.modeling.build import default_dtype
from risam.modeling.slots import IMAGE_ENCODER
from risam.precision import choose_precision
from risam.registry.names import get_config

ENCODERS = (
    "risam_vit_b",
    "risam_vit_l",
    "risam_vit_h",
    "risam_sam2_t",
    "risam_sam2_s",
    "risam_sam2_bp",
    "risam_sam2_l",
)


def peak_rss_gib() -> float:
    """This process's peak resident memory (VmHWM) in GiB."""
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmHWM"))
    return int(line.split()[1]) / 2**20


def time_encoder(model: str, precision: str, repeats: int) -> dict[str, object]:
    """Build ``model``'s image encoder (random weights) in ``precision`` and time one image through it."""
    reuse_freed_memory()
    config = get_config(model).image_encoder
    choice = choose_precision(precision, torch.device("cpu"))
    torch.manual_seed(0)
    with default_dtype(choice.dtype):
        encoder = IMAGE_ENCODER[config.family].build(config).eval()
    images = torch.randn(1, 3, config.img_size, config.img_size, generator=torch.Generator().manual_seed(0))
    images = images.to(choice.dtype)
    times = []
    with torch.inference_mode():
        for _ in range(repeats + 1):
            start = time.perf_counter()
            taps = encoder(images)
            times.append(time.perf_counter() - start)
    timed = sorted(times[1:]) if repeats else times
    return {
        "s_per_image": timed[len(timed) // 2],
        "peak_rss_gib": peak_rss_gib(),
        "precision": choice.name,
        "taps": " ".join("x".join(map(str, tap.shape[1:])) for tap in taps),
    }


def side_by_side(models: Sequence[str], precision: str, repeats: int) -> dict[str, object]:
    """Every model of ``models`` timed in its own process, with its parameter counts; the JSON object."""
    rows: dict[str, dict[str, object]] = {}
    for model in models:
        command = [sys.executable, "-m", "benchmarks.encoder_side_by_side", model, precision, str(repeats)]
        result = subprocess.run(command, capture_output=True, text=True, cwd=Path(__file__).resolve().parent.parent)
        if result.returncode != 0:
            lines = (result.stderr or result.stdout).strip().splitlines()
            rows[model] = {"error": lines[-1] if lines else f"exit code {result.returncode}"}
            continue
        info = model_info(model)
        encoder = next(counts for part, counts in info["parts"].items() if part.startswith("image_encoder"))
        rows[model] = {
            **json.loads(result.stdout),
            "image_encoder_params": encoder["params"],
            "trainable_params": info["trainable_params"],
            "total_params": info["total_params"],
        }
    vit_h, hiera_l = rows.get("risam_vit_h", {}), rows.get("risam_sam2_l", {})
    summary = {}
    if "s_per_image" in vit_h and "s_per_image" in hiera_l:
        summary["hiera_l_speedup_over_vit_h"] = vit_h["s_per_image"] / hiera_l["s_per_image"]
    return {
        "benchmark": "encoder_side_by_side",
        "threads": torch.get_num_threads(),
        "cpu": torch.cpu.get_capabilities().get("cpu_name"),
        "input": "1 x 3 x 1024 x 1024",
        "repeats": repeats,
        "encoders": rows,
        **summary,
    }


if __name__ == "__main__":
    name, chosen, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    print(json.dumps(time_encoder(name, chosen, count)))
