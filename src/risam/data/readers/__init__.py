"""Readers of the published annotation files, one split at a time: one :class:`SplitReader` per format.

A dataset's :class:`~risam.data.catalog.DatasetSpec` names its format by ``kind``, a key of
:data:`READERS`:

- ``refer`` (:mod:`~risam.data.readers.refer`): RefCOCO, RefCOCO+, RefCOCOg, RefShapes;
- ``grefer`` (:mod:`~risam.data.readers.grefer`): gRefCOCO, gRefShapes;
- ``phrasecut`` (:mod:`~risam.data.readers.phrasecut`): VGPhraseCut;
- ``jsonl`` (:mod:`~risam.data.readers.jsonl`): ``custom``, users' own images and sentences.

REFER and gRefCOCO share :class:`~risam.data.readers.coco.CocoRefsReader` (a refs file over COCO's
``instances.json``). Every reader returns a :class:`~risam.data.records.ReferSplit` with one
expression per sentence; each reader module says how it reads where its format leaves room.

Problems name the file and the ref, task, image or annotation (by position and id) and the key.
By default the first one raises; with a ``problems`` list, per-record problems are appended to
it and the record skipped, so that ``risam data check`` can report all of them at once.
Image files are not opened here, except by the ``jsonl`` reader, which reads an image's size from
its header where a line does not state it, and reads PNG masks.

To read a new format: subclass :class:`SplitReader` (its files, segmentation file, layout in
words, and ``read``), add it to :data:`READERS` under a new kind, and add the datasets in that
format to :data:`risam.data.catalog.DATASETS` with that kind.
"""

from __future__ import annotations

from pathlib import Path

from risam.config import ConfigError
from risam.data.catalog import DatasetSpec, dataset_spec
from risam.data.readers.base import SplitReader
from risam.data.readers.grefer import GReferReader
from risam.data.readers.jsonl import JsonLinesReader
from risam.data.readers.phrasecut import PhraseCutReader
from risam.data.readers.refer import ReferReader
from risam.data.records import ReferSplit

READERS: dict[str, type[SplitReader]] = {
    "refer": ReferReader,
    "grefer": GReferReader,
    "phrasecut": PhraseCutReader,
    "jsonl": JsonLinesReader,
}

__all__ = ["READERS", "SplitReader", "load_split", "reader_for", "segmentation_file"]


def reader_for(spec: DatasetSpec, root: str | Path) -> SplitReader:
    """The reader of ``spec``'s format (``READERS[spec.kind]``) for the data root ``root``."""
    return READERS[spec.kind](spec, Path(root))


def load_split(
    root: str | Path,
    dataset: str,
    split: str,
    image_root: str | Path | None = None,
    problems: list[str] | None = None,
) -> ReferSplit:
    """Images, expressions and object segmentations of one split of ``dataset`` under the data root ``root``.

    ``image_root`` replaces the dataset's image folder (``root / spec.image_dir``). With ``problems``
    given, malformed refs, tasks, images and annotations are reported there and skipped; missing
    or unreadable files raise in either case. Raises ConfigError for an unknown dataset or split,
    FileNotFoundError for a missing annotation file, AnnotationError otherwise.
    """
    spec = dataset_spec(dataset)
    if split not in spec.splits:
        raise ConfigError(f"unknown split {split!r} of dataset {dataset!r}; known splits: {', '.join(spec.splits)}")
    image_dir = Path(image_root) if image_root is not None else Path(root) / spec.image_dir
    return reader_for(spec, root).load(split, image_dir, problems)


def segmentation_file(root: str | Path, dataset: str, split: str) -> Path:
    """The file holding a split's object segmentations: ``instances.json``, PhraseCut's ``refer_<split>.json``,
    or ``refs.jsonl``."""
    return reader_for(dataset_spec(dataset), root).segmentation_file(split)
