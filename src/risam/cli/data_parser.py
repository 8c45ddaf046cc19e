"""The arguments of ``risam data``: ``synth``, ``download`` and ``check``."""

from __future__ import annotations

import argparse
from pathlib import Path

from risam.cli.commands import run_data_check, run_data_download, run_data_synth
from risam.data.catalog import DATASETS
from risam.data.download import DOWNLOADS


def add_data_command(commands: argparse._SubParsersAction) -> None:
    """``risam data``, with its subcommands."""
    data = commands.add_parser("data", help="datasets: download, generate RefShapes, check a data root")
    data_commands = data.add_subparsers(dest="data_command", required=True, metavar="DATA_COMMAND")
    for add in (_add_data_synth, _add_data_download, _add_data_check):
        add(data_commands)


def _add_data_synth(commands: argparse._SubParsersAction) -> None:
    """``risam data synth``: RefShapes in REFER formats."""
    synth = commands.add_parser("synth", help="write the RefShapes synthetic benchmark in REFER formats")
    synth.add_argument("--out", type=Path, required=True, help="data root to write")
    synth.add_argument("--images", type=int, default=1000, help="number of images (default 1000)")
    synth.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    synth.add_argument(
        "--refer-layout",
        action="store_true",
        help="write the files where REFER and gRefCOCO look for RefCOCO and gRefCOCO (OUT/refcoco, OUT/grefcoco, "
        "images under OUT/images/mscoco/images/train2014), so that REFER(OUT, 'refcoco', 'unc') opens them; "
        "risam reads them as --dataset refcoco and grefcoco",
    )
    synth.set_defaults(run=run_data_synth)


def _add_data_download(commands: argparse._SubParsersAction) -> None:
    """``risam data download DATASET``: a dataset's annotations (and COCO images) into a data root."""
    fetch = commands.add_parser(
        "download",
        help="fetch a dataset's annotations (and COCO train2014) into a data root, then check it",
        description="Fetch a dataset's published annotation files into ROOT in the layout risam data check "
        "expects, then run that check. The sources are the datasets' own READMEs (docs/data.md).",
    )
    fetch.add_argument("dataset", choices=list(DOWNLOADS), help="dataset to fetch")
    fetch.add_argument("--root", type=Path, required=True, help="data root to fill")
    fetch.add_argument(
        "--images",
        action="store_true",
        help="also fetch COCO train2014 (13 GiB, about 26 GiB of disk while it is unpacked)",
    )
    fetch.add_argument("--url-base", default=None, help="a mirror: every file is fetched as URL_BASE/<file name>")
    fetch.set_defaults(run=run_data_download)


def _add_data_check(commands: argparse._SubParsersAction) -> None:
    """``risam data check ROOT``: a data root validated, with counts per split."""
    check = commands.add_parser("check", help="validate a data root and print counts per split")
    check.add_argument("root", type=Path, help="data root (REFER layout)")
    check.add_argument(
        "--dataset",
        required=True,
        nargs="+",
        choices=list(DATASETS),
        help="dataset(s) to check; with several, also the table of training images that are images of their "
        "val and test splits (what a mixed experiment's leakage rule removes)",
    )
    check.add_argument("--image-root", type=Path, default=None, help="image folder, if not under the root")
    check.set_defaults(run=run_data_check)
