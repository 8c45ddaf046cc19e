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

    summary = generate_refshapes(args.out, num_images=args.images, seed=args.seed)
    print(json.dumps({"out": str(args.out), "splits": summary}, indent=2))
    return 0


def _data_check(args: argparse.Namespace) -> int:
    from risam.data.check import check_data_root

    report = check_data_root(args.root, args.dataset, image_root=args.image_root)
    print(report.format())
    return 0 if report.ok else 1


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every ``risam`` subcommand."""
    parser = argparse.ArgumentParser(prog="risam", description="Referring image segmentation with RISAM.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    info = commands.add_parser("info", help="a model's parts, parameter counts and input settings")
    info.add_argument("model", nargs="?", default="risam_vit_h", choices=list_models(), help="registered model")
    info.add_argument("--json", action="store_true", help="print one JSON object")
    info.set_defaults(run=_info)

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
    """Run ``risam`` with ``argv`` (default: the process arguments); returns the exit code."""
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
