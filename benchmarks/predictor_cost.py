"""Cost of one more expression after ``set_image`` against a full image + text pass (CPU).

Prints one JSON object. Weights are random (timing does not depend on them):

    python -m benchmarks.predictor_cost --model risam_vit_b --repeats 3
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np
import torch

from benchmarks.entry import run
from risam import create_model
from risam.predictor import RISAMPredictor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="risam_vit_b")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--expressions", type=int, nargs="+", default=[1, 5, 20])
    args = parser.parse_args()

    predictor = RISAMPredictor(create_model(args.model))
    image = np.random.default_rng(0).integers(0, 256, size=(480, 640, 3), dtype=np.uint8)
    texts = [f"the {i}th person from the left in a red shirt" for i in range(max(args.expressions))]
    predictor.set_image(image)
    predictor.predict(texts[0])

    def timed(function) -> float:
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            function()
            times.append(time.perf_counter() - start)
        return float(np.median(times))

    full_pass = timed(lambda: (predictor.set_image(image), predictor.predict(texts[0])))
    one_more = timed(lambda: predictor.predict(texts[0]))
    many = {
        str(n): timed(lambda n=n: (predictor.set_image(image), predictor.predict(texts[:n]))) for n in args.expressions
    }
    print(
        json.dumps(
            {
                "benchmark": "predictor_cost",
                "model": args.model,
                "image": "480x640 RGB, resized to the model's input",
                "device": "cpu",
                "threads": torch.get_num_threads(),
                "machine": platform.processor() or platform.machine(),
                "full_pass_s": full_pass,
                "one_more_expression_s": one_more,
                "one_more_over_full_pass": one_more / full_pass,
                "set_image_then_n_expressions_s": many,
                "n_expressions_over_full_pass": {n: t / full_pass for n, t in many.items()},
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    run(main)
