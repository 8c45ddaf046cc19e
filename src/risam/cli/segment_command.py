"""``risam segment``: one image into OUT, or many images (files, folders, globs, a manifest) in one process."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from risam.cli.commands import model_label, predictor_of
from risam.cli.text import argument_text, terminal_safe


def run_segment(args: argparse.Namespace) -> int:
    """Segment the images of ``args``; 0 when every image was written or skipped as finished, else 2."""
    from risam.errors import InputError
    from risam.io.segment_inputs import (
        SegmentInputError,
        expand_image_arguments,
        is_image_argument,
        looks_like_image_path,
        read_manifest,
    )
    from risam.predictor import MAX_EXPRESSIONS, check_expressions

    texts = [argument_text(text) for text in args.inputs]
    if args.manifest is not None:
        images, expressions = [], texts
    elif not texts:
        raise SegmentInputError("give an image (a file, folder or glob) and expressions, or --manifest FILE")
    else:
        count = 1  # the first argument is an image, whether or not it exists (its error then names it)
        while count < len(texts) and is_image_argument(texts[count]):
            count += 1
        images, expressions = texts[:count], texts[count:]
    for text in expressions:
        if looks_like_image_path(text):
            raise SegmentInputError(
                f"{text}: no such image file; images come before the expressions (an expression that ends like a "
                "file name goes after -e)"
            )
    expressions += [argument_text(text) for text in args.expression]
    if args.output.exists() and not args.output.is_dir():
        raise InputError(f"-o {args.output}: exists and is not a folder; give a folder for the masks and overlays")
    # One image file (or a path that names nothing: reading it says why) writes into OUT itself.
    single = args.manifest is None and len(images) == 1
    single = single and (Path(images[0]).is_file() or not is_image_argument(images[0]))
    if single and args.format == "risam":
        check_expressions(expressions, MAX_EXPRESSIONS)
        return _segment_one(args, Path(images[0]), expressions)
    items = read_manifest(args.manifest) if args.manifest is not None else expand_image_arguments(images)
    if expressions:
        check_expressions(expressions, MAX_EXPRESSIONS)
    return _segment_many(args, items, expressions, flat=single)


def _segment_one(args: argparse.Namespace, image_path: Path, expressions: list[str]) -> int:
    """One image into OUT, its expressions decoded and written chunk by chunk, a line printed for each.
    Before the first file is written, the temporary files that a killed run's writes left in OUT (named like
    ours, ``.NAME.RANDOM.tmp``) and OUT's earlier ``predictions.json`` are deleted; nothing else of OUT is."""
    from risam.drawing.segment_output import SegmentationWriter
    from risam.io.files import remove_stale_temporaries
    from risam.io.images import load_image

    predictor = predictor_of(args, threshold=args.threshold)
    image = load_image(image_path)
    predictor.set_image(image)
    remove_stale_temporaries(args.output)
    writer = SegmentationWriter(image, args.output)
    for start in range(0, len(expressions), predictor.expression_chunk):
        chunk = predictor.predict(expressions[start : start + predictor.expression_chunk])
        for record in writer.add(chunk):
            print(terminal_safe(f"{record['score']:.3f}  {record['bbox']}  {record['text']}"))
    writer.finish(str(image_path), model_label(args), predictor.model.encoder_precision, predictor.threshold)
    return 0


def _segment_many(args: argparse.Namespace, items: list, expressions: list[str], flat: bool) -> int:
    """Every item into OUT/KEY (or OUT for ``flat``), finished ones skipped; prints the summary."""
    from tqdm import tqdm

    from risam.drawing.segment_run import segment_images

    predictor = predictor_of(args, threshold=args.threshold)
    summary = segment_images(
        predictor,
        items,
        expressions,
        args.output,
        model_label(args),
        flat=flat,
        batch_size=args.batch_size,
        num_workers=args.workers,
        coco_results=args.format == "coco",
        progress=None,
        report=lambda line: tqdm.write(f"risam segment: error: {terminal_safe(line)}", file=sys.stderr),
    )
    written = ", ".join(str(path) for path in summary.files)
    print(
        terminal_safe(
            f"{len(items)} images: {summary.done} done, {summary.skipped} skipped (finished before), "
            f"{summary.failed} failed; {summary.lines} predictions in {written}"
        )
    )
    if summary.failed:
        print(f"risam segment: {summary.failed} of {len(items)} images failed (listed above)", file=sys.stderr)
    return 2 if summary.failed else 0
