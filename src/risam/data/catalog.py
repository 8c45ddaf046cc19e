"""Where each dataset's files lie under a data root, and its splits.

The layout is REFER's, which most RIS code expects::

    ROOT/images/mscoco/images/train2014/COCO_train2014_*.jpg
    ROOT/refcoco/instances.json   ROOT/refcoco/refs(unc).p
    ROOT/refcoco+/instances.json  ROOT/refcoco+/refs(unc).p
    ROOT/refcocog/instances.json  ROOT/refcocog/refs(umd).p  ROOT/refcocog/refs(google).p
    ROOT/grefcoco/instances.json  ROOT/grefcoco/grefs(unc).json
    ROOT/phrasecut/refer_{train,val,test}.json  ROOT/phrasecut/images/*.jpg
    ROOT/refshapes/...  ROOT/grefshapes/...  ROOT/images/refshapes/*.png   (``risam data synth``)

Users' own data (``custom``) is a root of its own: ``ROOT/refs.jsonl``, one line per object, with
image and mask paths relative to ROOT (:mod:`risam.data.readers.jsonl`). An image folder elsewhere
is passed as ``image_root``.
"""

from __future__ import annotations

from dataclasses import dataclass

from risam.config import ConfigError


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset: its reader, folder, annotation file, splits, image folder, text length.

    ``kind`` names the annotation format, a key of :data:`risam.data.readers.READERS` (the reader
    class); ``refs_file`` is that reader's refs file in ``folder`` (``{split}`` stands for the split).
    """

    name: str
    kind: str
    folder: str
    refs_file: str
    splits: tuple[str, ...]
    image_dir: str
    max_words: int


COCO_IMAGES = "images/mscoco/images/train2014"

DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec("refcoco", "refer", "refcoco", "refs(unc).p", ("train", "val", "testA", "testB"), COCO_IMAGES, 17),
        DatasetSpec(
            "refcoco+", "refer", "refcoco+", "refs(unc).p", ("train", "val", "testA", "testB"), COCO_IMAGES, 25
        ),
        DatasetSpec("refcocog_umd", "refer", "refcocog", "refs(umd).p", ("train", "val", "test"), COCO_IMAGES, 25),
        DatasetSpec("refcocog_google", "refer", "refcocog", "refs(google).p", ("train", "val"), COCO_IMAGES, 25),
        DatasetSpec(
            "grefcoco", "grefer", "grefcoco", "grefs(unc).json", ("train", "val", "testA", "testB"), COCO_IMAGES, 25
        ),
        DatasetSpec(
            "phrasecut",
            "phrasecut",
            "phrasecut",
            "refer_{split}.json",
            ("train", "val", "test"),
            "phrasecut/images",
            25,
        ),
        DatasetSpec(
            "refshapes", "refer", "refshapes", "refs(unc).p", ("train", "val", "testA", "testB"), "images/refshapes", 17
        ),
        DatasetSpec(
            "grefshapes",
            "grefer",
            "grefshapes",
            "grefs(unc).json",
            ("train", "val", "testA", "testB"),
            "images/refshapes",
            17,
        ),
        DatasetSpec("custom", "jsonl", "", "refs.jsonl", ("train", "val", "test"), "", 25),
    )
}


def dataset_spec(name: str) -> DatasetSpec:
    """The spec of dataset ``name``; unknown names raise ConfigError listing the known ones."""
    if name not in DATASETS:
        raise ConfigError(f"unknown dataset {name!r}; known datasets: {', '.join(DATASETS)}")
    return DATASETS[name]
