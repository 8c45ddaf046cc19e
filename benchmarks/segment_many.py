"""Wall time of ``risam segment`` with many expressions on a large photo, in a fresh process on the CPU.

Writes a weights file for MODEL (see ``segment_memory.py``) and a WIDTH x HEIGHT JPEG that looks like
a photo to the encoders that matter here (smooth gradients, a few shapes, sensor-like noise: PNG
writing of overlays is as costly as for a real photo), runs ``risam segment`` with EXPRESSIONS
expressions under ``/usr/bin/time -v`` and prints one JSON object with the wall time, the peak RSS
and what was written.

    python -m benchmarks.segment_many --model risam_tiny --expressions 100
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from benchmarks.entry import run
from benchmarks.segment_memory import run_segment, write_weights


def write_photo(path: Path, width: int, height: int, seed: int = 0) -> None:
    """A ``width`` x ``height`` photo-like JPEG (quality 90)."""
    rng = np.random.default_rng(seed)
    rows = np.linspace(0, 1, height, dtype=np.float32)[:, None]
    cols = np.linspace(0, 1, width, dtype=np.float32)[None, :]
    image = np.empty((height, width, 3), dtype=np.uint8)
    for channel, (a, b) in enumerate(((90, 120), (140, -60), (200, -110))):
        plane = a + b * rows + 40 * np.sin(6 * cols + channel) + rng.normal(0, 6, (height, width)).astype(np.float32)
        image[..., channel] = plane.clip(0, 255)
    picture = Image.fromarray(image)
    draw = ImageDraw.Draw(picture)
    for index in range(12):
        x, y = int(rng.integers(0, width * 7 // 8)), int(rng.integers(0, height * 7 // 8))
        box = (x, y, x + width // 10, y + height // 8)
        fill = tuple(int(v) for v in rng.integers(0, 256, 3))
        (draw.ellipse if index % 2 else draw.rectangle)(box, fill=fill)
    picture.save(path, quality=90)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="risam_tiny")
    parser.add_argument("--expressions", type=int, default=100)
    parser.add_argument("--width", type=int, default=4000)
    parser.add_argument("--height", type=int, default=3000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        write_weights(args.model, root / "model.safetensors")
        write_photo(root / "photo.jpg", args.width, args.height)
        texts = [f"the shape number {i} from the left" for i in range(args.expressions)]
        peak, wall = run_segment(root / "model.safetensors", root / "photo.jpg", texts, root / "out")
        written = sum(path.stat().st_size for path in (root / "out").iterdir())
        with Image.open(root / "out" / "00_overlay.jpg") as overlay:
            overlay_size = overlay.size
    print(
        json.dumps(
            {
                "benchmark": "segment_many",
                "model": args.model,
                "expressions": args.expressions,
                "image": f"{args.width}x{args.height} JPEG, {args.width * args.height / 1e6:.1f} MP",
                "cpu_cores": os.cpu_count(),
                "wall_s": round(wall, 1),
                "peak_rss_gib": round(peak, 3),
                "overlay_size": list(overlay_size),
                "written_mib": round(written / 2**20, 1),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    run(main)
