"""How ``risam segment``'s work grows with the number of expressions on a 12 MP photo, measured in process.

The steps of ``risam segment`` after the model is built, as it runs them: encode the image once
(``set_image``), then per chunk of expressions predict (text encoder, MA blocks and decoder, logits
upsampled to the photo's size and thresholded in bands) and write (mask PNG, overlay JPEG, COCO RLE;
:class:`risam.drawing.segment_output.SegmentationWriter`). For each count of expressions: seconds per step,
the total and its ratio to the total for 1 expression. Then one chunk's prediction split into the
model and ``logits_to_masks``, with the model's FLOPs per expression, and one prediction's written
files stage by stage. Prints one JSON object. The model's weights are random (timing does not depend on them).

    python -m benchmarks.postprocess_scaling --model risam_vit_b --counts 1 20 100
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import torch
from PIL import Image
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.entry import run
from benchmarks.segment_many import write_photo
from risam import create_model
from risam.data.masks import encode_mask
from risam.data.transforms import logits_to_masks
from risam.drawing.segment_output import SegmentationWriter, save_overlay, save_png
from risam.drawing.viz import overlay_mask
from risam.io.images import load_image
from risam.predictor import RISAMPredictor

T = TypeVar("T")


def timed(function: Callable[..., T], *args: object) -> tuple[T, float]:
    """(``function(*args)``, seconds)."""
    start = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - start


def run_count(predictor: RISAMPredictor, image: Image.Image, count: int, out: Path) -> dict[str, float]:
    """Seconds of predicting and writing ``count`` expressions, chunk by chunk as ``risam segment`` does."""
    texts = [f"the shape number {index} from the left" for index in range(count)]
    writer = SegmentationWriter(image, out)
    predict_s = write_s = 0.0
    for start in range(0, count, predictor.expression_chunk):
        predictions, seconds = timed(predictor.predict, texts[start : start + predictor.expression_chunk])
        predict_s += seconds
        write_s += timed(writer.add, predictions)[1]
    write_s += timed(writer.finish, "photo.jpg", "random weights")[1]
    return {"predict_s": predict_s, "write_s": write_s}


def model_and_masks(predictor: RISAMPredictor, count: int) -> dict[str, float]:
    """Seconds of the model (text encoder, MA blocks, decoder) and of ``logits_to_masks`` for ``count``
    expressions on the image set, and the model's GFLOPs per expression (``FlopCounterMode``)."""
    texts = [f"the shape number {index} from the left" for index in range(count)]
    model = predictor.model
    with torch.no_grad():
        tokens = predictor.tokenize(texts)
        visual = predictor.encoded.visual[torch.zeros(count, dtype=torch.long)]
        start = time.perf_counter()
        logits = model.decode(visual, *model.encode_text(tokens))
        model_s = time.perf_counter() - start
        # SDPA's math backend, so that the attention matmuls are counted
        with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
            model.decode(visual, *model.encode_text(tokens))
    size = model.image_encoder.config.img_size
    image = predictor.encoded
    masks_s = timed(logits_to_masks, logits, size, image.resized_size, image.original_size, 0.35)[1]
    return {
        "expressions": count,
        "model_s": model_s,
        "logits_to_masks_s": masks_s,
        "model_gflops_per_expression": counter.get_total_flops() / count / 1e9,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="risam_vit_b")
    parser.add_argument("--counts", type=int, nargs="+", default=[1, 20, 100])
    parser.add_argument("--width", type=int, default=4000)
    parser.add_argument("--height", type=int, default=3000)
    args = parser.parse_args()
    predictor = RISAMPredictor(create_model(args.model), precision="fp32")
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        write_photo(root / "photo.jpg", args.width, args.height)
        image = load_image(root / "photo.jpg")
        encode_s = timed(predictor.set_image, image)[1]
        counts = {}
        for count in args.counts:
            steps = run_count(predictor, image, count, root / f"out{count}")
            counts[str(count)] = {"encode_s": encode_s, **steps, "total_s": encode_s + sum(steps.values())}
        first = counts[str(args.counts[0])]["total_s"]
        for entry in counts.values():
            entry["total_over_first"] = entry["total_s"] / first
        chunk = model_and_masks(predictor, predictor.expression_chunk)
        prediction = predictor.predict("the shape on the left")
        shown = SegmentationWriter(image, root / "stages").shown
        stages = {
            "mask_png_s": timed(save_png, Image.fromarray(prediction.mask), root / "mask.png")[1],
            "overlay_draw_s": timed(overlay_mask, shown, prediction.mask)[1],
            "rle_s": timed(encode_mask, prediction.mask)[1],
        }
        overlay = overlay_mask(shown, prediction.mask)
        stages["overlay_jpeg_s"] = timed(save_overlay, overlay, root / "overlay.jpg")[1]
        stages["overlay_as_png_s"] = timed(save_png, overlay, root / "overlay.png")[1]
    print(
        json.dumps(
            {
                "benchmark": "postprocess_scaling",
                "model": args.model,
                "image": f"{args.width}x{args.height} photo-like JPEG ({args.width * args.height / 1e6:.1f} MP)",
                "expression_chunk": predictor.expression_chunk,
                "counts": counts,
                "one_chunk_predicted": chunk,
                "one_prediction_written": stages,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    run(main)
