"""Fetching the published datasets into a data root, in the layout of :mod:`risam.data.catalog`.

Where each file comes from (the URLs that the datasets' own READMEs give):

- RefCOCO, RefCOCO+, RefCOCOg: ``refcoco.zip``, ``refcoco+.zip``, ``refcocog.zip`` from UNC, as listed
  under "Download" in the README of github.com/lichengunc/refer. Each zip holds the dataset's folder
  (``refcoco/instances.json``, ``refcoco/refs(unc).p``, ...) and is unpacked into the root.
- gRefCOCO: ``grefs(unc).json`` and ``instances.json`` from the Hugging Face dataset FudanCVL/gRefCOCO,
  linked from the README of github.com/henghuiding/gRefCOCO; they go to ``ROOT/grefcoco``.
- COCO train2014 (only when asked for: 13 GiB): ``train2014.zip`` from cocodataset.org's download page,
  unpacked to ``ROOT/images/mscoco/images/train2014``.

None of these publishes a checksum, so the files are not verified; the SHA-256 of every file fetched is
reported, for the record. ``url_base`` fetches every file by its name from a mirror instead. Files
are fetched into ``ROOT/.downloads`` (resumable, :func:`risam.io.download.fetch`); a zip is unpacked into a
staging folder there, moved into place and deleted (so COCO's needs about twice its 13 GiB while it is
unpacked); a JSON file is parsed before it is moved into place. A dataset whose annotation files are all
in place is not fetched again.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Any

from risam.config import ConfigError
from risam.data.catalog import COCO_IMAGES, dataset_spec
from risam.data.readers import reader_for
from risam.io.archives import move_into, unpack_zip
from risam.io.download import DownloadError, RemoteFile, fetch, sha256_of
from risam.io.reading import read_bytes

REFER_BASE = "https://bvisionweb1.cs.unc.edu/licheng/referit/data"
GREFCOCO_BASE = "https://huggingface.co/datasets/FudanCVL/gRefCOCO/resolve/main"
COCO_BASE = "http://images.cocodataset.org/zips"
ARCHIVES = ".downloads"  # the folder of the data root that holds archives while they are fetched


@dataclass(frozen=True)
class DatasetFiles:
    """What to fetch for one downloadable dataset: its files, the folder of the root they go to (zips are
    unpacked there, other files placed there), and the datasets of the catalog they hold."""

    files: tuple[RemoteFile, ...]
    folder: str
    datasets: tuple[str, ...]


def _refer(name: str, datasets: tuple[str, ...]) -> DatasetFiles:
    return DatasetFiles((RemoteFile(f"{REFER_BASE}/{name}.zip", f"{name}.zip"),), "", datasets)


DOWNLOADS: dict[str, DatasetFiles] = {
    "refcoco": _refer("refcoco", ("refcoco",)),
    "refcoco+": _refer("refcoco+", ("refcoco+",)),
    "refcocog": _refer("refcocog", ("refcocog_umd", "refcocog_google")),
    "grefcoco": DatasetFiles(
        (
            RemoteFile(f"{GREFCOCO_BASE}/grefs(unc).json", "grefs(unc).json"),
            RemoteFile(f"{GREFCOCO_BASE}/instances.json", "instances.json"),
        ),
        "grefcoco",
        ("grefcoco",),
    ),
}
COCO_TRAIN2014 = DatasetFiles(
    (RemoteFile(f"{COCO_BASE}/train2014.zip", "train2014.zip"),), str(PurePosixPath(COCO_IMAGES).parent), ()
)


def download_dataset(
    name: str, root: str | os.PathLike, images: bool = False, url_base: str | None = None, progress: bool = True
) -> dict[str, Any]:
    """Fetch dataset ``name`` (a key of :data:`DOWNLOADS`) into the data root ``root``, and with ``images``
    COCO's train2014 too; ``url_base`` replaces every file's URL by ``{url_base}/{file name}``.

    Returns ``{"root", "datasets": [catalog names], "files": [{"url", "path", "sha256"}], "skipped": [...]}``;
    a group of files already in place is listed under ``skipped`` and not fetched. Raises ConfigError for an
    unknown name, DownloadError when a file cannot be fetched or unpacked.
    """
    if name not in DOWNLOADS:
        raise ConfigError(f"no download for dataset {name!r}; downloadable: {', '.join(DOWNLOADS)}")
    root = Path(root)
    wanted = DOWNLOADS[name]
    summary: dict[str, Any] = {"root": str(root), "datasets": list(wanted.datasets), "files": [], "skipped": []}
    groups = [(wanted, _annotations_in_place(wanted, root))]
    if images:
        groups.append((COCO_TRAIN2014, (root / COCO_IMAGES).is_dir() and any((root / COCO_IMAGES).iterdir())))
    for group, in_place in groups:
        for remote in group.files:
            remote = replace(remote, url=f"{url_base.rstrip('/')}/{remote.file_name}") if url_base else remote
            if in_place:
                summary["skipped"].append(remote.file_name)
                continue
            summary["files"].append(_fetch_into(remote, root, root / group.folder, progress))
    return summary


def _annotation_files(group: DatasetFiles, root: Path) -> set[Path]:
    """The annotation files that the catalog's readers of ``group``'s datasets read, under ``root``."""
    files: set[Path] = set()
    for dataset in group.datasets:
        spec = dataset_spec(dataset)
        reader = reader_for(spec, root)
        for split in spec.splits:
            files.update(reader.annotation_files(split))
    return files


def _annotations_in_place(group: DatasetFiles, root: Path) -> bool:
    """Whether every annotation file of ``group``'s datasets is already under ``root``."""
    return all(path.is_file() for path in _annotation_files(group, root))


def _fetch_into(remote: RemoteFile, root: Path, destination: Path, progress: bool) -> dict[str, str]:
    """Fetch ``remote`` into ``ROOT/.downloads`` and put it in ``destination``: a zip unpacked there (and
    deleted), a JSON file parsed first, any file moved there."""
    fetched = fetch(remote, root / ARCHIVES, progress=progress)
    if fetched.suffix == ".json":
        _check_json(fetched)
    digest = sha256_of(fetched)
    if fetched.suffix == ".zip":
        unpack_zip(fetched, destination)
        fetched.unlink()
        path = destination
    else:
        path = destination / remote.file_name
        move_into(fetched, path)
    return {"url": remote.url, "path": str(path), "sha256": digest}


def _check_json(path: Path) -> None:
    """DownloadError, and ``path`` removed, unless it holds JSON: a transfer cut short without a stated length,
    which no published checksum would catch, is not put in place (where it would count as fetched)."""
    try:
        json.loads(read_bytes(path))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        path.unlink()
        raise DownloadError(
            f"{path} is not JSON ({error}); the transfer was cut short, it was removed: run again"
        ) from error
