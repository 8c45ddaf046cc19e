"""The ``risam`` command line. ``main(argv)`` returns the exit code and is testable."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from risam.data.catalog import DATASETS
from risam.registry import list_models


def _info(args: argparse.Namespace) -> int:
    from risam.info import format_info, model_info

    info = model_info(args.model)
    print(json.dumps(info, indent=2) if args.json else format_info(info))
    return 0


def _data_synth(args: argparse.Namespace) -> int:
    from risam.data.synthetic import generate_refshapes

    summary = generate_refshapes(args.out, num_images=args.images, seed=args.seed, progress=True)
    print(json.dumps({"out": str(args.out), "splits": summary}, indent=2))
    return 0


def _data_check(args: argparse.Namespace) -> int:
    from risam.data.check import check_data_root

    report = check_data_root(args.root, args.dataset, image_root=args.image_root)
    print(report.format())
    return 0 if report.ok else 1


def _train(args: argparse.Namespace) -> int:
    from risam.engine.config import load_config
    from risam.engine.trainer import train

    results = train(load_config(args.config, args.set), resume=args.resume)
    if results:
        print(json.dumps(results, indent=2))
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from risam.engine.config import load_config
    from risam.engine.evaluator import run_evaluation
    from risam.metrics import results_table

    results = run_evaluation(load_config(args.config, args.set), args.checkpoint, args.split, args.output)
    print(results_table(results))
    return 0


def _ablate(args: argparse.Namespace) -> int:
    from risam.ablation import ablation_markdown, describe_variants, list_variants, run_ablation
    from risam.configs.parse import ConfigError
    from risam.engine.config import load_config

    config = load_config(args.config, args.set)
    if args.list:
        print(describe_variants(config))
        return 0
    if args.variants is None:
        raise ConfigError(f"--variants is required, comma-separated, from: {', '.join(list_variants())}")
    out = args.out if args.out is not None else Path(config.train.output_dir) / "ablation"
    table = run_ablation(config, args.variants, out, split=args.split)
    print(ablation_markdown(table))
    print(f"written to {out / 'ablation.json'} and {out / 'ablation.md'}")
    return 0


def _quickstart(args: argparse.Namespace) -> int:
    from risam.quickstart import quickstart

    results = quickstart(args.out, **({"num_images": args.images} if args.images else {}), seed=args.seed)
    print(
        f"overall IoU on RefShapes val: {100 * results['overall_iou']:.2f}% (sentence-free baseline "
        f"{100 * results['sentence_free_baseline']:.2f}%, grounding gap {100 * (results['grounding_gap'] or 0):.2f} "
        f"points; written to {args.out})"
    )
    return 0


def _pretrain_tiny(args: argparse.Namespace) -> int:
    from risam.pretrain.command import pretrain_tiny

    path = pretrain_tiny(
        args.out, seed=args.seed, num_images=args.images, image_steps=args.image_steps, text_steps=args.text_steps
    )
    print(f"tiny encoders written to {path}")
    return 0


def _segment(args: argparse.Namespace) -> int:
    from PIL import Image

    from risam.data.masks import encode_mask
    from risam.image_io import load_image
    from risam.predictor import RISAMPredictor
    from risam.viz import overlay_mask

    predictor = RISAMPredictor.from_checkpoint(
        args.checkpoint, args.sam_checkpoint, args.clip_checkpoint, threshold=args.threshold
    )
    image = load_image(args.image)
    predictor.set_image(image)
    results = predictor.predict(args.expressions)
    args.output.mkdir(parents=True, exist_ok=True)
    records = []
    for index, result in enumerate(results):
        Image.fromarray(result.mask.astype("uint8") * 255).save(args.output / f"{index:02d}_mask.png")
        overlay_mask(image, result.mask).save(args.output / f"{index:02d}_overlay.png")
        records.append(
            {
                "text": result.text,
                "score": result.score,
                "bbox": result.bbox,
                "rle": encode_mask(result.mask),
                "mask": f"{index:02d}_mask.png",
                "overlay": f"{index:02d}_overlay.png",
            }
        )
    summary = {"image": str(args.image), "checkpoint": str(args.checkpoint), "predictions": records}
    (args.output / "predictions.json").write_text(json.dumps(summary, indent=2) + "\n")
    for record in records:
        print(f"{record['score']:.3f}  {record['bbox']}  {record['text']}")
    return 0


def _explain(args: argparse.Namespace) -> int:
    from risam.explain import explain, render_explanation
    from risam.image_io import load_image
    from risam.predictor import RISAMPredictor

    predictor = RISAMPredictor.from_checkpoint(args.checkpoint, args.sam_checkpoint, args.clip_checkpoint)
    image = load_image(args.image)
    predictor.set_image(image)
    result = explain(predictor, args.expression, pixel=tuple(args.pixel) if args.pixel else None, block=args.block)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    render_explanation(image, result).save(args.output)
    weights = ", ".join(f"{w}={v:.2f}" for w, v in zip(result.words, result.word_weights, strict=True))
    print(f"wrote {args.output}; word weights at {result.pixel}: {weights}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from risam.demo import launch_demo

    launch_demo(
        args.checkpoint,
        args.sam_checkpoint,
        args.clip_checkpoint,
        host=args.host,
        port=args.port,
        max_upload_bytes=args.max_upload_bytes,
    )
    return 0


def _add_model_files(parser: argparse.ArgumentParser) -> None:
    """The weights file of a trained model and the encoder files it was trained on."""
    parser.add_argument("--checkpoint", type=Path, required=True, help="RISAM weights (.safetensors)")
    parser.add_argument("--sam-checkpoint", type=Path, default=None, help="official SAM file (frozen encoder)")
    parser.add_argument("--clip-checkpoint", type=Path, default=None, help="CLIP file (frozen encoder)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every ``risam`` subcommand."""
    parser = argparse.ArgumentParser(prog="risam", description="Referring image segmentation with RISAM.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    info = commands.add_parser("info", help="a model's parts, parameter counts and input settings")
    info.add_argument("model", nargs="?", default="risam_vit_h", choices=list_models(), help="registered model")
    info.add_argument("--json", action="store_true", help="print one JSON object")
    info.set_defaults(run=_info)

    overrides = {"action": "append", "default": [], "metavar": "KEY=VALUE", "help": "override a config value"}
    train = commands.add_parser("train", help="train a model (torchrun for several processes)")
    train.add_argument("--config", required=True, help="experiment YAML, or a shipped name such as refcoco")
    train.add_argument("--set", **overrides)
    train.add_argument("--resume", action="store_true", help="continue from OUTPUT_DIR/checkpoints/last.pt")
    train.set_defaults(run=_train)

    evaluate = commands.add_parser("evaluate", help="evaluate a RISAM weights file on a split")
    evaluate.add_argument("--config", required=True, help="experiment YAML, or a shipped name")
    evaluate.add_argument("--checkpoint", type=Path, required=True, help="RISAM weights (.safetensors)")
    evaluate.add_argument("--split", required=True, help="split to evaluate, e.g. val, testA")
    evaluate.add_argument("--output", type=Path, default=None, help="results JSON (a .md table is written beside)")
    evaluate.add_argument("--set", **overrides)
    evaluate.set_defaults(run=_evaluate)

    ablate = commands.add_parser(
        "ablate", help="train and evaluate the paper's ablations and baselines alike, and tabulate them"
    )
    ablate.add_argument("--config", required=True, help="experiment YAML, or a shipped name such as refcoco")
    ablate.add_argument("--variants", default=None, help="comma-separated variant names, e.g. full,no_fe,conv_fusion")
    ablate.add_argument("--set", **overrides)
    ablate.add_argument("--out", type=Path, default=None, help="output folder (default: TRAIN.OUTPUT_DIR/ablation)")
    ablate.add_argument("--split", default=None, help="split to evaluate (default: the config's val split)")
    ablate.add_argument("--list", action="store_true", help="list the variants with their trainable parameters")
    ablate.set_defaults(run=_ablate)

    quick = commands.add_parser(
        "quickstart",
        help="generate RefShapes, train risam_tiny's head on its frozen shipped encoders, evaluate, draw overlays",
    )
    quick.add_argument("--out", type=Path, default=Path("risam-quickstart"), help="output folder")
    quick.add_argument("--images", type=int, default=None, help="RefShapes images to generate (default 1000)")
    quick.add_argument("--seed", type=int, default=0, help="random seed")
    quick.set_defaults(run=_quickstart)

    from risam.pretrain.defaults import DEFAULT_IMAGE_STEPS, DEFAULT_IMAGES, DEFAULT_SEED, DEFAULT_TEXT_STEPS

    pretrain = commands.add_parser(
        "pretrain-tiny",
        help="pretrain risam_tiny's image and text encoders on generated RefShapes (the weights the package ships)",
    )
    pretrain.add_argument("--out", type=Path, required=True, help="output folder (a rerun resumes finished stages)")
    pretrain.add_argument(
        "--seed", type=int, default=DEFAULT_SEED, help=f"generator and training seed (default {DEFAULT_SEED})"
    )
    pretrain.add_argument("--images", type=int, default=DEFAULT_IMAGES, help=f"scenes (default {DEFAULT_IMAGES})")
    pretrain.add_argument(
        "--image-steps", type=int, default=DEFAULT_IMAGE_STEPS, help=f"image steps (default {DEFAULT_IMAGE_STEPS})"
    )
    pretrain.add_argument(
        "--text-steps", type=int, default=DEFAULT_TEXT_STEPS, help=f"text steps (default {DEFAULT_TEXT_STEPS})"
    )
    pretrain.set_defaults(run=_pretrain_tiny)

    segment = commands.add_parser("segment", help="segment expressions in an image: mask PNGs, overlays, JSON")
    _add_model_files(segment)
    segment.add_argument("image", type=Path, help="image file")
    segment.add_argument("expressions", nargs="+", help="one or more expressions")
    segment.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    segment.add_argument("--threshold", type=float, default=0.35, help="sigmoid threshold (default 0.35)")
    segment.set_defaults(run=_segment)

    explain = commands.add_parser("explain", help="per-word attention maps and word weights at a pixel, as a figure")
    _add_model_files(explain)
    explain.add_argument("image", type=Path, help="image file")
    explain.add_argument("expression", help="the expression")
    explain.add_argument("-o", "--output", type=Path, required=True, help="figure file (PNG)")
    explain.add_argument("--pixel", type=int, nargs=2, metavar=("X", "Y"), help="default: the mask's centre")
    explain.add_argument("--block", type=int, default=-1, help="Mutual-Aware Attention block (default: last)")
    explain.set_defaults(run=_explain)

    demo = commands.add_parser("demo", help="serve the web demo (needs the 'demo' extra)")
    _add_model_files(demo)
    demo.add_argument("--host", default="127.0.0.1", help="address to bind (default: localhost only)")
    demo.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    demo.add_argument("--max-upload-bytes", type=int, default=20_000_000, help="largest accepted upload")
    demo.set_defaults(run=_demo)

    data = commands.add_parser("data", help="datasets: generate RefShapes, check a data root")
    data_commands = data.add_subparsers(dest="data_command", required=True, metavar="DATA_COMMAND")
    synth = data_commands.add_parser("synth", help="write the RefShapes synthetic benchmark in REFER formats")
    synth.add_argument("--out", type=Path, required=True, help="data root to write")
    synth.add_argument("--images", type=int, default=1000, help="number of images (default 1000)")
    synth.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    synth.set_defaults(run=_data_synth)
    check = data_commands.add_parser("check", help="validate a data root and print counts per split")
    check.add_argument("root", type=Path, help="data root (REFER layout)")
    check.add_argument("--dataset", required=True, choices=list(DATASETS), help="dataset to check")
    check.add_argument("--image-root", type=Path, default=None, help="image folder, if not under the root")
    check.set_defaults(run=_data_check)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``risam`` with ``argv`` (default: the process arguments); returns the exit code.

    Bad input (a file, image, expression, config or checkpoint that cannot be used) prints
    one readable line to stderr and returns 2, never a traceback.
    """
    from risam.configs.parse import ConfigError
    from risam.data.masks import AnnotationError
    from risam.image_io import ImageInputError
    from risam.modeling.state_dict import CheckpointError
    from risam.predictor import ExpressionError

    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (
        AnnotationError,
        CheckpointError,
        ConfigError,
        ExpressionError,
        FileNotFoundError,
        ImageInputError,
    ) as error:
        print(f"risam {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
