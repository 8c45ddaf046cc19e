"""Many images in one ``risam segment`` run against one process per image, on the CPU. Prints one JSON object.

1. ``separate``: IMAGES RefShapes images x 4 expressions with ``risam_tiny_refshapes``, as one
   ``risam segment --manifest`` run and as SEPARATE ``risam segment IMAGE TEXT...`` processes on the
   same inputs (the speedup is per image: SEPARATE may be fewer than IMAGES to save time).
2. ``loop``: in one process, the predictor's own ``set_image`` + ``predict`` time for each image against
   the wall time per image of ``segment_images`` (reading, the loop and writing included) on the same
   images, the model loaded once for both; REPEATS alternating rounds, medians.
3. ``memory``: the peak RSS of one manifest run over RSS_SMALL and over RSS_LARGE items (the images
   repeated), each in a fresh process under ``/usr/bin/time -v``.
4. ``vit_b``: VIT_B images of 1024 x 1024 px through ``risam_vit_b --random-encoders`` (random weights:
   the time does not depend on them), images/s at batch sizes 1 and 2, in the precision auto picks.

    python -m benchmarks.segment_many_images --images 200 --separate 200
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
import torch
from PIL import Image

from benchmarks.entry import run
from benchmarks.segment_memory import write_weights
from risam.data.refshapes import generate_refshapes
from risam.drawing.segment_run import segment_images
from risam.io.segment_inputs import SegmentItem, read_manifest
from risam.precision import cpu_bf16_features
from risam.predictor import RISAMPredictor

EXPRESSIONS = ["the red circle", "the big square", "the shape on the left", "the small blue triangle"]
RISAM = [sys.executable, "-m", "risam.cli"]


def write_manifest(images: list[Path], path: Path, repeat_to: int | None = None) -> None:
    """A manifest of ``images`` (cycled to ``repeat_to`` lines), each with :data:`EXPRESSIONS`."""
    count = repeat_to or len(images)
    lines = [json.dumps({"image": str(images[i % len(images)]), "expressions": EXPRESSIONS}) for i in range(count)]
    path.write_text("\n".join(lines) + "\n")


def timed_run(command: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS in MiB) of ``command`` in a fresh process."""
    start = time.perf_counter()
    result = subprocess.run(["/usr/bin/time", "-v", *command], capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed: {result.stderr[-2000:]}")
    peak = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", result.stderr).group(1))
    return wall, peak / 1024


def separate(images: list[Path], count: int, work: Path) -> dict:
    manifest = work / "manifest.jsonl"
    write_manifest(images, manifest)
    one_run, _ = timed_run([*RISAM, "segment", "--manifest", str(manifest), "-o", str(work / "one_run")])
    walls = []
    for index, image in enumerate(images[:count]):
        wall, _ = timed_run([*RISAM, "segment", str(image), *EXPRESSIONS, "-o", str(work / "separate" / str(index))])
        walls.append(wall)
    per_image_one_run = one_run / len(images)
    per_image_separate = float(np.mean(walls))
    return {
        "images": len(images),
        "expressions_per_image": len(EXPRESSIONS),
        "one_run_s": round(one_run, 2),
        "one_run_per_image_s": round(per_image_one_run, 4),
        "separate_processes": count,
        "separate_per_image_s": round(per_image_separate, 3),
        "separate_total_s": round(float(np.sum(walls)), 1),
        "speedup": round(per_image_separate / per_image_one_run, 1),
    }


def loop(images: list[Path], work: Path, repeats: int) -> dict:
    predictor = RISAMPredictor.from_pretrained(precision="auto")
    for image in images[:3]:  # warm-up
        predictor.set_image(image)
        predictor.predict(EXPRESSIONS)
    own, run = [], []
    for repeat in range(repeats):  # alternating, so that a slower spell of the machine hits both
        start = time.perf_counter()
        for image in images:
            predictor.set_image(image)
            predictor.predict(EXPRESSIONS)
        own.append((time.perf_counter() - start) / len(images))
        items = [SegmentItem(image, f"{index:04d}", EXPRESSIONS) for index, image in enumerate(images)]
        start = time.perf_counter()
        summary = segment_images(predictor, items, EXPRESSIONS, work / f"loop_{repeat}", "shipped", progress=False)
        run.append((time.perf_counter() - start) / len(images))
        assert summary.done == len(images), summary
    return {
        "images": len(images),
        "repeats": repeats,
        "predictor_per_image_s": round(float(np.median(own)), 4),
        "segment_images_per_image_s": round(float(np.median(run)), 4),
        "ratio": round(float(np.median(run)) / float(np.median(own)), 3),
        "ratios": [round(b / a, 3) for a, b in zip(own, run, strict=True)],
        "precision": predictor.precision.name,
    }


def memory(images: list[Path], small: int, large: int, work: Path) -> dict:
    peaks = {}
    for count in (small, large):
        manifest = work / f"manifest_{count}.jsonl"
        write_manifest(images, manifest, repeat_to=count)
        assert len(read_manifest(manifest)) == count
        _, peaks[count] = timed_run([*RISAM, "segment", "--manifest", str(manifest), "-o", str(work / f"rss_{count}")])
    return {
        "items": [small, large],
        "peak_rss_mib": [round(peaks[small]), round(peaks[large])],
        "growth": round(peaks[large] / peaks[small] - 1, 3),
    }


def vit_b(count: int, work: Path) -> dict:
    weights = work / "risam_vit_b.safetensors"
    write_weights("risam_vit_b", weights)
    rng = np.random.default_rng(0)
    folder = work / "photos_1024"
    folder.mkdir()
    for index in range(count):
        pixels = rng.integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
        Image.fromarray(pixels).resize((1024, 1024), Image.BILINEAR).save(folder / f"{index:03d}.png")
    rates = {}
    for batch in (1, 2):
        command = [*RISAM, "segment", "--random-encoders", "--checkpoint", str(weights), str(folder), *EXPRESSIONS]
        wall, peak = timed_run([*command, "--batch-size", str(batch), "-o", str(work / f"vit_b_{batch}")])
        rates[f"batch_{batch}"] = {
            "images_per_s": round(count / wall, 3),
            "wall_s": round(wall, 1),
            "peak_rss_mib": round(peak),
        }
    return {"images": count, "size": 1024, **rates}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--separate", type=int, default=200, help="separate processes timed (at most --images)")
    parser.add_argument("--rss-small", type=int, default=100)
    parser.add_argument("--rss-large", type=int, default=1000)
    parser.add_argument("--vit-b", type=int, default=20, help="1024 px images through risam_vit_b (0: skip)")
    parser.add_argument("--repeats", type=int, default=3, help="alternating repeats of the loop comparison")
    parser.add_argument("--parts", default="separate,loop,memory,vit_b")
    args = parser.parse_args()
    parts = args.parts.split(",")
    report = {
        "cpu": torch.cpu.get_capabilities().get("cpu_name", "unknown"),
        "bf16_features": cpu_bf16_features(),
        "threads": torch.get_num_threads(),
    }
    with tempfile.TemporaryDirectory() as directory:
        work = Path(directory)
        generate_refshapes(work / "data", num_images=args.images, seed=0)
        images = sorted((work / "data").rglob("*.png"))[: args.images]
        if "loop" in parts:
            report["loop"] = loop(images, work, args.repeats)
        if "separate" in parts:
            report["separate"] = separate(images, min(args.separate, len(images)), work)
        if "memory" in parts:
            report["memory"] = memory(images, args.rss_small, args.rss_large, work)
        if "vit_b" in parts and args.vit_b:
            report["vit_b"] = vit_b(args.vit_b, work)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    run(main)
