"""Peak resident memory of ``risam segment`` on the CPU, measured in a fresh process.

Writes a weights file for MODEL (random trainable weights; the frozen encoders are left
random, as their values do not change the memory) and an image, runs ``risam segment`` under
``/usr/bin/time -v`` and prints one JSON object with the peak RSS and the wall time.

    python benchmarks/segment_memory.py --model risam_vit_h
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from risam import get_config, save_weights
from risam.modeling.build import build_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="risam_vit_h")
    parser.add_argument("--expressions", type=int, default=3)
    args = parser.parse_args()
    config = get_config(args.model)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        model = build_model(config)
        save_weights(model.trainable_state_dict(), config, root / "model.safetensors")
        del model
        rng = np.random.default_rng(0)
        Image.fromarray(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)).save(root / "image.jpg")
        texts = [f"the person number {i} from the left" for i in range(args.expressions)]
        command = ["/usr/bin/time", "-v", sys.executable, "-W", "ignore::UserWarning", "-m", "risam.cli", "segment"]
        command += ["--checkpoint", str(root / "model.safetensors"), str(root / "image.jpg"), *texts]
        command += ["-o", str(root / "out")]
        start = time.perf_counter()
        result = subprocess.run(command, capture_output=True, text=True, check=True)
        wall = time.perf_counter() - start
    peak_kib = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", result.stderr).group(1))
    print(
        json.dumps(
            {
                "benchmark": "segment_memory",
                "model": args.model,
                "expressions": args.expressions,
                "image": "480x640 JPEG",
                "peak_rss_gib": peak_kib / 2**20,
                "wall_s": wall,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
