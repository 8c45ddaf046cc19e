"""The first ``risam segment`` with the built-in model, in a fresh process, and where its time goes.

Runs ``risam segment EXAMPLE "SENTENCE" -o DIR`` (no ``--checkpoint``: the shipped
risam_tiny_refshapes) REPEATS times in fresh processes on the first demo example, and prints one JSON
object: the wall times, the time to import ``risam.cli`` and, from ``python -X importtime``, what
the largest imports cost inside it (cumulative seconds; nested imports count in each of their parents).

    python -m benchmarks.first_segment --repeats 3
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time

from benchmarks.entry import run
from risam.demo.examples import load_examples

# Imports whose cumulative cost is reported: the package, its frameworks and what torchvision pulls in.
WATCHED = ("risam.cli", "torch", "timm", "torchvision", "torch._dynamo", "open_clip")


def wall_seconds(command: list[str]) -> float:
    """Seconds from starting ``command`` to its exit (it must succeed)."""
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - start


def import_costs() -> dict[str, float]:
    """Cumulative seconds of the :data:`WATCHED` imports when ``risam.cli`` is imported in a fresh process
    (the first time each is imported)."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import risam.cli"], check=True, capture_output=True, text=True
    )
    costs: dict[str, float] = {}
    for line in result.stderr.splitlines():
        match = re.match(r"import time:\s+\d+ \|\s+(\d+) \|\s*(\S+)", line)
        if match and match.group(2) in WATCHED and match.group(2) not in costs:
            costs[match.group(2)] = int(match.group(1)) / 1e6
    return costs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    image, sentences = load_examples()[0]
    with tempfile.TemporaryDirectory() as folder:
        command = [sys.executable, "-m", "risam.cli", "segment", str(image), sentences[0], "-o", folder]
        walls = [wall_seconds(command) for _ in range(args.repeats)]
    imports = [wall_seconds([sys.executable, "-c", "import risam.cli"]) for _ in range(args.repeats)]
    python = [wall_seconds([sys.executable, "-c", "pass"]) for _ in range(args.repeats)]
    print(
        json.dumps(
            {
                "benchmark": "first_segment",
                "image": image.name,
                "sentence": sentences[0],
                "segment_wall_s": [round(value, 2) for value in walls],
                "segment_wall_median_s": round(statistics.median(walls), 2),
                "import_risam_cli_process_median_s": round(statistics.median(imports), 2),
                "empty_python_process_median_s": round(statistics.median(python), 2),
                "import_cumulative_s": {name: round(value, 2) for name, value in import_costs().items()},
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    run(main)
