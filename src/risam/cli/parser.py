"""The arguments of every ``risam`` subcommand."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import NoReturn

from risam.cli.argument_types import non_negative_int, png_path, positive_int, probability, seed_list
from risam.cli.commands import (
    run_ablate,
    run_convert_clip,
    run_demo,
    run_evaluate,
    run_explain,
    run_info,
    run_pretrain_tiny,
    run_quickstart,
    run_train,
)
from risam.cli.data_parser import add_data_command
from risam.cli.segment_command import run_segment
from risam.cli.text import terminal_safe
from risam.cli.weights_parser import add_download_command, add_export_command
from risam.config import DEFAULT_THRESHOLD
from risam.config.experiment import PRECISIONS
from risam.registry.files import DEFAULT_PRETRAINED, DOWNLOAD, SHIPPED_MODEL_LIMITS
from risam.registry.names import list_models

# What ``risam --help`` ends with: from a machine with internet to RefCOCO numbers (README, "Real data").
REAL_DATA_PATH = f"""from a fresh machine with internet to RefCOCO numbers:
  risam download sam_vit_h clip_vit_b16                  # into $RISAM_HOME (~/.cache/risam), SHA-256 checked
  risam data download refcoco --root data --images       # annotations + COCO train2014, then risam data check
  risam train --config refcoco --set data.root=data \\
      --set model.sam_checkpoint={DOWNLOAD} --set model.clip_checkpoint={DOWNLOAD}
"""


# ``--set KEY=VALUE`` of the commands that read an experiment config.
_OVERRIDES = {"action": "append", "default": [], "metavar": "KEY=VALUE", "help": "override a config value"}


class _Parser(argparse.ArgumentParser):
    """argparse with its errors as one line (no usage block), exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {terminal_safe(message)} (see {self.prog} --help)\n")


def _add_model_files(parser: argparse.ArgumentParser) -> None:
    """The weights file of a trained model and the encoder files it was trained on."""
    parser.add_argument(
        "--checkpoint",
        type=str,
        default=None,
        help="RISAM weights (.safetensors), a shipped model's name, or a model on the Hugging Face Hub, "
        f"hf-hub:ORG/NAME[@REVISION] (default: the built-in {DEFAULT_PRETRAINED})",
    )
    parser.add_argument(
        "--sam-checkpoint",
        type=str,
        default=None,
        help=f"official SAM file (frozen encoder), '{DOWNLOAD}' for the cached official file (fetched if absent), "
        "or a Hub repo of its weights (hf-hub:timm/samvit_huge_patch16.sa1b)",
    )
    parser.add_argument(
        "--clip-checkpoint",
        type=str,
        default=None,
        help=f"CLIP file (frozen encoder), '{DOWNLOAD}' for the cached official file (fetched if absent), or a "
        "Hub repo of its weights (hf-hub:timm/vit_base_patch16_clip_224.openai)",
    )
    parser.add_argument(
        "--random-encoders",
        action="store_true",
        help="run a paper model without its SAM and CLIP files, on random frozen encoders: for timing and "
        "memory measurements only, its masks mean nothing",
    )


def _add_compile(parser: argparse.ArgumentParser) -> None:
    """``--compile``: the frozen image encoder through torch.compile (:mod:`risam.modeling.compiled`)."""
    parser.add_argument(
        "--compile",
        action="store_true",
        help="run the image encoder through torch.compile (minutes at the first image; a failed compile "
        "warns and runs eager)",
    )


def _add_precision(parser: argparse.ArgumentParser, default: str | None) -> None:
    """``--precision`` of the frozen encoders (:mod:`risam.precision`)."""
    where = f"default {default}" if default else "default: the config's train.encoder_precision"
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default=default,
        help=f"the frozen encoders' precision; auto: bf16 on CUDA and on CPUs with AMX or AVX512-BF16, "
        f"fp32 elsewhere ({where}; risam info shows what auto picks here)",
    )


def _add_model_command(
    commands: argparse._SubParsersAction, name: str, help: str, description: str
) -> argparse.ArgumentParser:
    """A subcommand that runs a trained model: its description ends with what the built-in model knows,
    and it takes the model's files (:func:`_add_model_files`) and ``--precision`` (default auto)."""
    parser = commands.add_parser(name, help=help, description=f"{description} {SHIPPED_MODEL_LIMITS}")
    _add_model_files(parser)
    _add_precision(parser, "auto")
    return parser


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every ``risam`` subcommand (each added by its own ``_add_*`` function)."""
    parser = _Parser(
        prog="risam",
        description="Referring image segmentation with RISAM.",
        epilog=REAL_DATA_PATH,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (
        _add_info,
        _add_train,
        _add_evaluate,
        _add_ablate,
        _add_quickstart,
        _add_pretrain_tiny,
        _add_segment,
        _add_explain,
        _add_convert_clip,
        _add_demo,
        add_export_command,
        add_download_command,
    ):
        add(commands)
    add_data_command(commands)
    return parser


def _add_info(commands: argparse._SubParsersAction) -> None:
    """``risam info MODEL``: a model's parts and parameter counts."""
    info = commands.add_parser("info", help="a model's parts, parameter counts and input settings")
    info.add_argument("model", nargs="?", default="risam_vit_h", choices=list_models(), help="registered model")
    info.add_argument("--json", action="store_true", help="print one JSON object")
    info.set_defaults(run=run_info)


def _add_train(commands: argparse._SubParsersAction) -> None:
    """``risam train --config EXPERIMENT``: train a model."""
    train = commands.add_parser("train", help="train a model (torchrun for several processes)")
    train.add_argument("--config", required=True, help="experiment YAML, or a shipped name such as refcoco")
    train.add_argument("--set", **_OVERRIDES)
    train.add_argument("--resume", action="store_true", help="continue from OUTPUT_DIR/checkpoints/last.pt")
    _add_precision(train, None)
    train.set_defaults(run=run_train)


def _add_evaluate(commands: argparse._SubParsersAction) -> None:
    """``risam evaluate``: a RISAM weights file on a split."""
    evaluate = commands.add_parser("evaluate", help="evaluate a RISAM weights file on a split")
    evaluate.add_argument("--config", required=True, help="experiment YAML, or a shipped name")
    evaluate.add_argument(
        "--checkpoint",
        type=str,
        required=True,
        help="RISAM weights (.safetensors), a shipped model's name, or hf-hub:ORG/NAME[@REVISION]",
    )
    evaluate.add_argument("--split", required=True, help="split to evaluate, e.g. val, testA")
    evaluate.add_argument("--output", type=Path, default=None, help="results JSON (a .md table is written beside)")
    evaluate.add_argument("--set", **_OVERRIDES)
    _add_precision(evaluate, None)
    _add_compile(evaluate)
    evaluate.set_defaults(run=run_evaluate)


def _add_ablate(commands: argparse._SubParsersAction) -> None:
    """``risam ablate``: the paper's ablations and baselines, trained and tabulated alike."""
    ablate = commands.add_parser(
        "ablate", help="train and evaluate the paper's ablations and baselines alike, and tabulate them"
    )
    ablate.add_argument("--config", required=True, help="experiment YAML, or a shipped name such as refcoco")
    ablate.add_argument("--variants", default=None, help="comma-separated variant names, e.g. full,no_fe,conv_fusion")
    ablate.add_argument("--set", **_OVERRIDES)
    ablate.add_argument("--out", type=Path, default=None, help="output folder (default: TRAIN.OUTPUT_DIR/ablation)")
    ablate.add_argument("--split", default=None, help="split to evaluate (default: the config's val split)")
    ablate.add_argument(
        "--seeds",
        type=seed_list,
        default=None,
        help="comma-separated training seeds, each variant run once per seed, e.g. 0,1,2 (default: train.seed); "
        "runs already in OUT are kept, so an interrupted table continues where it stopped",
    )
    ablate.add_argument("--list", action="store_true", help="list the variants with their trainable parameters")
    ablate.add_argument(
        "--table-only", action="store_true", help="write the table from the runs recorded in OUT; train nothing"
    )
    ablate.set_defaults(run=run_ablate)


def _add_quickstart(commands: argparse._SubParsersAction) -> None:
    """``risam quickstart``: RefShapes, a trained risam_tiny head, its scores and overlays."""
    quick = commands.add_parser(
        "quickstart",
        help="generate RefShapes, train risam_tiny's head on its frozen shipped encoders, evaluate, draw overlays",
    )
    quick.add_argument("--out", type=Path, default=Path("risam-quickstart"), help="output folder")
    quick.add_argument("--images", type=int, default=None, help="RefShapes images to generate (default 1000)")
    quick.add_argument("--seed", type=int, default=0, help="random seed")
    quick.set_defaults(run=run_quickstart)


def _add_pretrain_tiny(commands: argparse._SubParsersAction) -> None:
    """``risam pretrain-tiny``: the tiny encoders that ship in the package."""
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
    pretrain.set_defaults(run=run_pretrain_tiny)


def _add_segment(commands: argparse._SubParsersAction) -> None:
    """``risam segment IMAGE... EXPRESSION...``: mask PNGs, overlays and JSON, for one image or many."""
    segment = _add_model_command(
        commands,
        "segment",
        help="segment expressions in images: mask PNGs, overlays, JSON (one image, folders, globs, a manifest)",
        description="Segment the regions that expressions describe, in one image or many in one process. "
        "Arguments that name images (files, folders, globs such as 'photos/*.jpg') come first, then the "
        "expressions. One image file writes its files into OUT; several images, a folder, a glob or "
        "--manifest write OUT/KEY/ per image and OUT/predictions.jsonl, and a rerun skips finished images.",
    )
    segment.add_argument(
        "inputs",
        nargs="*",
        metavar="IMAGE... EXPRESSION",
        help="image files, folders or globs, then expressions (at most 100 per image)",
    )
    segment.add_argument(
        "-e", "--expression", action="append", default=[], help="an expression (repeatable; for any text)"
    )
    segment.add_argument(
        "--manifest",
        type=Path,
        default=None,
        help='JSONL, one {"image": PATH, "expressions": [...]} per line (PATH relative to the manifest); '
        "the command line's expressions apply to images with none",
    )
    segment.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    segment.add_argument(
        "--threshold",
        type=probability,
        default=DEFAULT_THRESHOLD,
        help=f"sigmoid threshold, in (0, 1) (default {DEFAULT_THRESHOLD})",
    )
    segment.add_argument(
        "--format",
        choices=("risam", "coco"),
        default="risam",
        help="coco: also OUT/coco_results.json in COCO's results format (image ids from COCO file names)",
    )
    segment.add_argument(
        "--batch-size", type=positive_int, default=1, help="images through the image encoder at once (default 1)"
    )
    segment.add_argument(
        "--workers",
        type=non_negative_int,
        default=None,
        help="processes reading images ahead (default: up to 4 on a GPU, none on the CPU, whose cores the "
        "encoder keeps busy)",
    )
    segment.set_defaults(run=run_segment)


def _add_explain(commands: argparse._SubParsersAction) -> None:
    """``risam explain IMAGE EXPRESSION``: per-word attention maps as a figure."""
    explain = _add_model_command(
        commands,
        "explain",
        help="per-word attention maps and word weights at a pixel, as a figure",
        description="Draw what each word attends to in the image.",
    )
    explain.add_argument("image", type=Path, help="image file")
    explain.add_argument("expression", help="the expression")
    explain.add_argument("-o", "--output", type=png_path, required=True, help="figure file (.png)")
    explain.add_argument("--pixel", type=int, nargs=2, metavar=("X", "Y"), help="default: the mask's centre")
    explain.add_argument("--block", type=int, default=-1, help="Mutual-Aware Attention block (default: last)")
    explain.set_defaults(run=run_explain)


def _add_convert_clip(commands: argparse._SubParsersAction) -> None:
    """``risam convert-clip SRC DST``: a CLIP file's text tower as safetensors."""
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
    convert.set_defaults(run=run_convert_clip)


def _add_demo(commands: argparse._SubParsersAction) -> None:
    """``risam demo``: the web page."""
    demo = _add_model_command(
        commands,
        "demo",
        help="serve the web demo (needs the 'demo' extra)",
        description="Serve a web page that segments expressions in uploaded or example images.",
    )
    demo.add_argument("--host", default="127.0.0.1", help="address to bind (default: localhost only)")
    demo.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    demo.add_argument("--max-upload-bytes", type=int, default=20_000_000, help="largest accepted upload")
    _add_compile(demo)
    demo.set_defaults(run=run_demo)
