"""The arguments of the commands that move weights files: ``risam export`` (and its upload) and ``risam download``."""

from __future__ import annotations

import argparse
from pathlib import Path

from risam.cli.commands import run_download, run_export
from risam.registry.files import CLIP_WEIGHTS, DOWNLOAD, SAM_WEIGHTS


def _weights_help() -> str:
    """The names ``risam download`` takes, with their files."""
    files = ", ".join(f"{name} ({remote.file_name})" for name, remote in {**SAM_WEIGHTS, **CLIP_WEIGHTS}.items())
    return f"{files}, or all"


def add_export_command(commands: argparse._SubParsersAction) -> None:
    """``risam export SOURCE OUT``: a run's weights as one file with its record, or as a folder for the Hub."""
    export = commands.add_parser(
        "export",
        help="a finished run's weights as one file that records its recipe, command, seed and results, or as a "
        "folder for the Hugging Face Hub (weights, config.json, model card)",
    )
    export.add_argument(
        "source",
        metavar="SOURCE",
        help="the run's output folder (train.output_dir), or a weights file, shipped model or hf-hub: name whose "
        "record is kept",
    )
    export.add_argument(
        "output", metavar="OUT", type=Path, help="weights file to write (.safetensors), or a folder for the Hub (else)"
    )
    export.add_argument("--weights", choices=("last", "best"), default="last", help="which weights (default last)")
    export.add_argument(
        "--command", dest="recorded_command", default=None, help="the commands that made the run, to record"
    )
    export.add_argument("--cost", default=None, help="what the run cost, to record (e.g. 1 h 50 min on 2 CPU cores)")
    export.add_argument("--license", default="apache-2.0", help="the model card's license (default apache-2.0)")
    export.add_argument(
        "--push-to-hub",
        metavar="ORG/NAME",
        default=None,
        help="upload the folder to this model repo (created if absent; log in first: hf auth login, or HF_TOKEN)",
    )
    export.add_argument("--private", action="store_true", help="with --push-to-hub: create the repo private")
    export.set_defaults(run=run_export)


def add_download_command(commands: argparse._SubParsersAction) -> None:
    """``risam download NAME...``: the official encoder files into the cache."""
    download = commands.add_parser(
        "download",
        help="fetch the official SAM and CLIP files into the cache",
        description="Fetch the official encoder files into $RISAM_HOME/weights (default ~/.cache/risam/weights), "
        "resuming an interrupted transfer and checking each file's SHA-256; a file already there is checked "
        f"again. Models and commands then take '{DOWNLOAD}' in place of an encoder file, e.g. "
        f"risam train --config refcoco --set model.sam_checkpoint={DOWNLOAD} --set model.clip_checkpoint={DOWNLOAD}.",
    )
    download.add_argument(
        "names", nargs="+", choices=[*SAM_WEIGHTS, *CLIP_WEIGHTS, "all"], metavar="NAME", help=_weights_help()
    )
    download.add_argument(
        "--source",
        choices=("official", "hub"),
        default="official",
        help="official: Meta's and OpenAI's URLs into $RISAM_HOME (default); hub: the same weights from timm's and "
        "open_clip's Hugging Face repos into the Hugging Face cache, checked against the Hub's SHA-256",
    )
    download.set_defaults(run=run_download)
