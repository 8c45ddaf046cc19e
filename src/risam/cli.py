"""The ``risam`` command line. ``main(argv)`` returns the exit code and is testable."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from risam.registry import list_models


def _info(args: argparse.Namespace) -> int:
    from risam.info import format_info, model_info

    info = model_info(args.model)
    print(json.dumps(info, indent=2) if args.json else format_info(info))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every ``risam`` subcommand."""
    parser = argparse.ArgumentParser(prog="risam", description="Referring image segmentation with RISAM.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    info = commands.add_parser("info", help="a model's parts, parameter counts and input settings")
    info.add_argument("model", nargs="?", default="risam_vit_h", choices=list_models(), help="registered model")
    info.add_argument("--json", action="store_true", help="print one JSON object")
    info.set_defaults(run=_info)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``risam`` with ``argv`` (default: the process arguments); returns the exit code."""
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
