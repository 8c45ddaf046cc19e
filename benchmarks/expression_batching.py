"""What running each expression alone costs against one batch of them, after ``set_image`` (CPU).

``RISAMPredictor`` runs every expression through the text encoder and the head alone, so that a
mask does not depend on the other expressions of the call (batched bf16 kernels round differently
with the batch). This times both ways for N expressions on the same image features, with random
weights (timing does not depend on them), in the precision ``--precision`` picks, and counts the
mask pixels in which the batched masks differ from the alone ones. Prints one JSON object.

    python -m benchmarks.expression_batching --model risam_vit_b --expressions 8
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from benchmarks.entry import run
from risam import create_model
from risam.data.transforms import logits_to_masks
from risam.precision import cpu_bf16_features
from risam.predictor import RISAMPredictor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="risam_vit_b")
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto")
    parser.add_argument("--expressions", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    torch.manual_seed(0)
    predictor = RISAMPredictor(create_model(args.model, precision=args.precision), precision=args.precision)
    image = np.random.default_rng(0).integers(0, 256, size=(480, 640, 3), dtype=np.uint8)
    texts = [f"the {i}th person from the left in a red shirt" for i in range(args.expressions)]
    predictor.set_image(image)
    tokens = predictor.tokenize(texts)
    model = predictor.model

    # The image's features repeated for a batch of each size, made before anything is timed.
    repeated = {count: predictor.encoded.visual[torch.zeros(count, dtype=torch.long)] for count in (1, len(texts))}

    @torch.no_grad()
    def network(rows: list[torch.Tensor]) -> torch.Tensor:
        """Logits for each group of token rows, run as one batch, concatenated: N x S/4 x S/4."""
        logits = []
        for row in rows:
            features, padding = model.encode_text(row)
            logits.append(model.decode(repeated[len(row)], features, padding))
        return torch.cat(logits)

    def timed(rows: list[torch.Tensor]) -> float:
        network(rows)
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            network(rows)
            times.append(time.perf_counter() - start)
        return float(np.median(times))

    alone, together = list(tokens.split(1)), [tokens]
    alone_s, batched_s = timed(alone), timed(together)
    size = model.image_encoder.config.img_size
    image, threshold = predictor.encoded, predictor.threshold
    masks = [
        np.asarray(logits_to_masks(network(rows), size, image.resized_size, image.original_size, threshold)[0])
        for rows in (alone, together)
    ]
    print(
        json.dumps(
            {
                "benchmark": "expression_batching",
                "model": args.model,
                "precision": model.encoder_precision,
                "cpu": torch.cpu.get_capabilities().get("cpu_name"),
                "cpu_bf16_features": cpu_bf16_features(),
                "threads": torch.get_num_threads(),
                "expressions": args.expressions,
                "text_encoder_and_head_alone_s": alone_s,
                "text_encoder_and_head_batched_s": batched_s,
                "alone_over_batched": alone_s / batched_s,
                "mask_pixels_differing_batched_vs_alone": int((masks[0] != masks[1]).sum()),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    run(main)
