"""The demo's gallery: RefShapes images with suggested sentences, shipped in ``risam/demo/examples/``.

They are the first :data:`EXAMPLE_COUNT` val images of RefShapes generated with seed :data:`EXAMPLE_SEED`
(a seed no shipped weights were trained or selected on), each with one sentence of every sentence type
that the image has (attribute, position, relation, ordinal). The shipped files were written by::

    python -m risam.demo.examples --out src/risam/demo/examples

in about 10 seconds on 2 CPU cores. ``examples.json`` lists them: ``[{"image": file name, "sentences":
[...]}, ...]``.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from risam.data.readers import load_split
from risam.data.refshapes import generate_refshapes
from risam.io.files import atomic_copy, atomic_write_json
from risam.io.reading import read_json

EXAMPLES_DIR = Path(__file__).parent / "examples"
EXAMPLE_SEED = 2
EXAMPLE_IMAGES = 60  # generated, so that the val split has EXAMPLE_COUNT images
EXAMPLE_COUNT = 4
SENTENCE_TYPES = ("attribute", "position", "relation", "ordinal")


def load_examples(folder: Path = EXAMPLES_DIR) -> list[tuple[Path, list[str]]]:
    """(image path, suggested sentences) of every example in ``folder``, in the order of ``examples.json``."""
    entries = read_json(folder / "examples.json")
    return [(folder / entry["image"], list(entry["sentences"])) for entry in entries]


def write_examples(out: Path, seed: int = EXAMPLE_SEED, count: int = EXAMPLE_COUNT) -> list[dict[str, object]]:
    """Generate RefShapes with ``seed``, copy its first ``count`` val images to ``out`` with one sentence per
    sentence type, and write ``out/examples.json``; returns its entries."""
    out.mkdir(parents=True, exist_ok=True)
    entries: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory() as scratch:
        generate_refshapes(scratch, num_images=EXAMPLE_IMAGES, seed=seed, progress=False)
        split = load_split(scratch, "refshapes", "val")
        for image_id in sorted(split.images)[:count]:
            record = split.images[image_id]
            by_type = {e.sentence_type: e.sentence for e in split.expressions if e.image_id == image_id}
            name = f"refshapes_seed{seed}_{image_id}.png"
            atomic_copy(record.path, out / name)
            entries.append({"image": name, "sentences": [by_type[kind] for kind in SENTENCE_TYPES if kind in by_type]})
    atomic_write_json(out / "examples.json", entries)
    return entries


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="write the demo's example images and sentences")
    parser.add_argument("--out", type=Path, default=EXAMPLES_DIR, help="folder (default: the package's)")
    parser.add_argument("--seed", type=int, default=EXAMPLE_SEED, help=f"RefShapes seed (default {EXAMPLE_SEED})")
    arguments = parser.parse_args()
    for entry in write_examples(arguments.out, arguments.seed):
        print(entry)
