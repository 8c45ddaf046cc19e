"""Peak resident memory of ``risam segment`` on the CPU, measured in fresh processes.

Writes a weights file for MODEL (random trainable weights; risam_tiny loads its shipped encoders,
the other models keep random frozen encoders, whose values do not change the memory) and an image
of about PIXELS pixels (4:3, a flat colour with a few shapes, PNG: small on disk however large),
runs ``risam segment`` with EXPRESSIONS expressions under ``/usr/bin/time -v``, then the same
command on a 64 x 48 image with 1 expression (the baseline: the model, its weights and the
interpreter), and prints one JSON object with both peak RSS values, their difference and the wall
times.

    python -m benchmarks.segment_memory --model risam_vit_h
    python -m benchmarks.segment_memory --model risam_tiny --pixels 49000000 --expressions 10
    python -m benchmarks.segment_memory --model risam_vit_h --expressions 1 --precision fp32 --no-baseline
"""

from __future__ import annotations

import argparse
import json
import math
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageDraw

from benchmarks.entry import run
from risam import get_config, save_weights
from risam.modeling.build import build_model

# ``risam segment`` through risam.cli.main (the same code as the ``risam`` console script).
CLI_MAIN = "import sys; from risam.cli import main; sys.exit(main())"
SEGMENT = [sys.executable, "-W", "ignore::UserWarning", "-c", CLI_MAIN]


def write_weights(model: str, path: Path) -> None:
    """A weights file of ``model`` with random trainable weights at ``path``."""
    config = get_config(model)
    save_weights(build_model(config).trainable_state_dict(), config, path)


def image_size(pixels: int) -> tuple[int, int]:
    """(width, height) of a 4:3 image of about ``pixels`` pixels, at most ``pixels``."""
    width = max(1, int(math.sqrt(pixels * 4 / 3)))
    return width, max(1, pixels // width)


def write_flat_png(path: Path, width: int, height: int) -> None:
    """A ``width`` x ``height`` PNG: a flat background with an ellipse, a rectangle and a bar."""
    image = Image.new("RGB", (width, height), (120, 160, 200))
    draw = ImageDraw.Draw(image)
    draw.ellipse((width // 8, height // 8, width // 2, height // 2), fill=(210, 40, 40))
    draw.rectangle((width * 5 // 8, height * 5 // 8, width * 15 // 16, height * 15 // 16), fill=(40, 190, 60))
    draw.rectangle((0, height * 3 // 4, width, height * 3 // 4 + max(1, height // 40)), fill=(20, 20, 20))
    image.save(path)


def run_segment(
    weights: Path, image: Path, texts: list[str], out: Path, precision: str = "auto"
) -> tuple[float, float]:
    """Run ``risam segment --precision PRECISION`` in a fresh process; (peak RSS in GiB, wall seconds)."""
    command = ["/usr/bin/time", "-v", *SEGMENT, "segment", "--random-encoders", "--checkpoint", str(weights)]
    command += ["--precision", precision]
    command += [str(image), *texts]
    start = time.perf_counter()
    result = subprocess.run([*command, "-o", str(out)], capture_output=True, text=True, check=True)
    wall = time.perf_counter() - start
    peak_kib = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", result.stderr).group(1))
    return peak_kib / 2**20, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="risam_vit_h")
    parser.add_argument("--expressions", type=int, default=3)
    parser.add_argument("--pixels", type=int, default=480 * 640, help="pixels of the image (default 480 x 640)")
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto", help="of the frozen encoders")
    parser.add_argument("--no-baseline", action="store_true", help="skip the 64 x 48 baseline run")
    args = parser.parse_args()
    width, height = image_size(args.pixels)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        write_weights(args.model, root / "model.safetensors")
        write_flat_png(root / "image.png", width, height)
        write_flat_png(root / "tiny.png", 64, 48)
        file_bytes = (root / "image.png").stat().st_size
        texts = [f"the person number {i} from the left" for i in range(args.expressions)]
        peak, wall = run_segment(root / "model.safetensors", root / "image.png", texts, root / "out", args.precision)
        with (root / "out" / "predictions.json").open() as summary:
            precision = json.load(summary)["precision"]
        result = {
            "benchmark": "segment_memory",
            "model": args.model,
            "precision": precision,
            "expressions": args.expressions,
            "image": f"{width}x{height} PNG, {width * height / 1e6:.1f} MP, {file_bytes:,} bytes",
            "peak_rss_gib": round(peak, 3),
            "wall_s": round(wall, 1),
            "masks_gib": round(args.expressions * width * height / 2**30, 3),
        }
        if not args.no_baseline:
            weights, tiny = root / "model.safetensors", root / "tiny.png"
            base_peak, base_wall = run_segment(weights, tiny, texts[:1], root / "base", args.precision)
            result |= {
                "baseline": "64x48 PNG, 1 expression",
                "baseline_peak_rss_gib": round(base_peak, 3),
                "baseline_wall_s": round(base_wall, 1),
                "peak_above_baseline_gib": round(peak - base_peak, 3),
            }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    run(main)
