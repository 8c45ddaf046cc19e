"""The ``risam`` command line. ``main(argv)`` returns the exit code and is testable."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from risam.config import DEFAULT_THRESHOLD
from risam.data.catalog import DATASETS
from risam.registry import list_models


class _Parser(argparse.ArgumentParser):
    """argparse with its errors as one line (no usage block), exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {terminal_safe(message)} (see {self.prog} --help)\n")


def terminal_safe(text: str) -> str:
    """``text`` with control characters (escape sequences, newlines) shown as escapes, never sent raw."""
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)


def argument_text(text: str) -> str:
    """A command-line argument as valid Unicode: bytes that were not UTF-8 become U+FFFD.

    Python keeps such bytes as lone surrogates, which no UTF-8 writer (JSON, PNG text) accepts.
    """
    return os.fsencode(text).decode("utf-8", errors="replace")


def _threshold(text: str) -> float:
    """``--threshold``: a probability strictly between 0 and 1."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a probability strictly between 0 and 1")
    return value


def _png_path(text: str) -> Path:
    """``-o`` of a figure: a file name ending in .png."""
    path = Path(text)
    if path.suffix.lower() != ".png":
        raise argparse.ArgumentTypeError(f"{text!r}: the figure is a PNG; give a file name ending in .png")
    return path


def _info(args: argparse.Namespace) -> int:
    from risam.info import format_info, model_info

    info = model_info(args.model)
    print(json.dumps(info, indent=2) if args.json else format_info(info))
    return 0


def _data_synth(args: argparse.Namespace) -> int:
    from risam.data.refshapes import generate_refshapes

    summary = generate_refshapes(args.out, num_images=args.images, seed=args.seed, progress=True)
    print(json.dumps({"out": str(args.out), "splits": summary}, indent=2))
    return 0


def _data_check(args: argparse.Namespace) -> int:
    from risam.data.check import check_data_root

    report = check_data_root(args.root, args.dataset, image_root=args.image_root)
    print(report.format())
    return 0 if report.ok else 1


def _train(args: argparse.Namespace) -> int:
    from risam.config.experiment import load_config
    from risam.engine.trainer import train

    results = train(load_config(args.config, args.set), resume=args.resume)
    if results:
        print(json.dumps(results, indent=2))
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from risam.config.experiment import load_config
    from risam.engine.evaluator import run_evaluation
    from risam.metrics import results_table

    results = run_evaluation(load_config(args.config, args.set), args.checkpoint, args.split, args.output)
    print(results_table(results))
    return 0


def _ablate(args: argparse.Namespace) -> int:
    from risam.ablation import ablation_markdown, describe_variants, list_variants, run_ablation
    from risam.config import ConfigError
    from risam.config.experiment import load_config

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
    from risam.errors import InputError
    from risam.image_io import load_image
    from risam.predictor import MAX_EXPRESSIONS, RISAMPredictor, check_expressions
    from risam.segment_output import SegmentationWriter

    expressions = [argument_text(text) for text in args.expressions]
    check_expressions(expressions, MAX_EXPRESSIONS)
    if args.output.exists() and not args.output.is_dir():
        raise InputError(f"-o {args.output}: exists and is not a folder; give a folder for the masks and overlays")
    predictor = RISAMPredictor.from_checkpoint(
        args.checkpoint, args.sam_checkpoint, args.clip_checkpoint, threshold=args.threshold
    )
    image = load_image(args.image)
    predictor.set_image(image)
    writer = SegmentationWriter(image, args.output)
    for start in range(0, len(expressions), predictor.expression_chunk):
        chunk = predictor.predict(expressions[start : start + predictor.expression_chunk])
        for record in writer.add(chunk):
            print(terminal_safe(f"{record['score']:.3f}  {record['bbox']}  {record['text']}"))
    writer.finish(str(args.image), str(args.checkpoint))
    return 0


def _explain(args: argparse.Namespace) -> int:
    from risam.errors import InputError
    from risam.explain import explain, render_explanation
    from risam.files import atomic_path
    from risam.image_io import load_image
    from risam.predictor import RISAMPredictor

    if args.output.is_dir():
        raise InputError(f"{args.output}: is a folder; give the figure's file name, e.g. figure.png")
    predictor = RISAMPredictor.from_checkpoint(args.checkpoint, args.sam_checkpoint, args.clip_checkpoint)
    image = load_image(args.image)
    predictor.set_image(image)
    expression = argument_text(args.expression)
    result = explain(predictor, expression, pixel=tuple(args.pixel) if args.pixel else None, block=args.block)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(args.output) as temporary:
        render_explanation(image, result).save(temporary, format="PNG")
    weights = ", ".join(f"{w}={v:.2f}" for w, v in zip(result.words, result.word_weights, strict=True))
    print(terminal_safe(f"wrote {args.output}; word weights at {result.pixel}: {weights}"))
    return 0


def _convert_clip(args: argparse.Namespace) -> int:
    from risam.modeling.text_encoder import convert_clip_checkpoint

    if args.run_torchscript:
        print(f"running the TorchScript code in {args.source} to read it (--run-torchscript)", file=sys.stderr)
    count = convert_clip_checkpoint(args.source, args.destination, run_torchscript=args.run_torchscript)
    print(f"wrote {count} text-tower tensors of {args.source} to {args.destination}")
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
    parser = _Parser(prog="risam", description="Referring image segmentation with RISAM.")
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
    segment.add_argument("expressions", nargs="+", help="one or more expressions (at most 100 per call)")
    segment.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    segment.add_argument(
        "--threshold",
        type=_threshold,
        default=DEFAULT_THRESHOLD,
        help=f"sigmoid threshold, in (0, 1) (default {DEFAULT_THRESHOLD})",
    )
    segment.set_defaults(run=_segment)

    explain = commands.add_parser("explain", help="per-word attention maps and word weights at a pixel, as a figure")
    _add_model_files(explain)
    explain.add_argument("image", type=Path, help="image file")
    explain.add_argument("expression", help="the expression")
    explain.add_argument("-o", "--output", type=_png_path, required=True, help="figure file (.png)")
    explain.add_argument("--pixel", type=int, nargs=2, metavar=("X", "Y"), help="default: the mask's centre")
    explain.add_argument("--block", type=int, default=-1, help="Mutual-Aware Attention block (default: last)")
    explain.set_defaults(run=_explain)

    convert = commands.add_parser(
        "convert-clip", help="write a CLIP checkpoint's text tower to safetensors (once, for files risam won't read)"
    )
    convert.add_argument("source", type=Path, help="CLIP checkpoint (.pt, .pth, .bin, .safetensors)")
    convert.add_argument("destination", type=Path, help="text tower to write (.safetensors)")
    convert.add_argument(
        "--run-torchscript",
        action="store_true",
        help="for a TorchScript archive that risam refuses to read: load it with torch.jit, running its code. "
        "Only for files you trust",
    )
    convert.set_defaults(run=_convert_clip)

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

    Bad input (a file, image, expression, config, checkpoint or argument that cannot be used,
    a file that cannot be read or written) prints one readable line to stderr and returns 2,
    never a traceback. An unexpected failure prints one line naming it and returns 1; set
    RISAM_TRACEBACK=1 to see its traceback.
    """
    from risam.errors import InputError

    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (InputError, OSError) as error:
        print(f"risam {args.command}: error: {terminal_safe(_one_line(error))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"risam {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        if os.environ.get("RISAM_TRACEBACK"):
            raise
        message = f"{type(error).__name__}: {error}"
        print(
            f"risam {args.command}: internal error: {terminal_safe(message)} "
            "(rerun with RISAM_TRACEBACK=1 for the traceback, and report it)",
            file=sys.stderr,
        )
        return 1


def _one_line(error: Exception) -> str:
    """The message of ``error``; for an OSError, its file and the reason (``x.png: Permission denied``)."""
    if isinstance(error, OSError) and error.strerror:
        names = [str(name) for name in (error.filename, error.filename2) if name is not None]
        return f"{' -> '.join(names)}: {error.strerror}" if names else error.strerror
    return str(error)


if __name__ == "__main__":
    sys.exit(main())
