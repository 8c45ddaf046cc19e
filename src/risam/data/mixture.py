"""Several datasets in one training set, with no evaluation image among the training images.

RefCOCO, RefCOCO+ and G-Ref (and gRefCOCO) annotate the same COCO train2014 images, each with its own
splits, so an image of one dataset's val or test split can be an image of another's train split.
:func:`mixed_train_split` joins the train splits of a list of datasets into one :class:`MixedSplit` and,
under the leakage rule (``data.exclude_eval_images``, on by default), first removes every training image
that is an image of a *held-out* split: any split other than its train split of every listed dataset,
and any split named in ``data.held_out_splits``. :class:`Overlap` counts what each dataset lost.

Which images are the same: two images are when their files are, by absolute path; images in COCO's
train2014 folder (the datasets whose catalog entry puts them there) also when their COCO ids are,
wherever the files lie (another ``image_root``), so a user's ``refs.jsonl`` line on a COCO file and
RefCOCO's image of that file are one image. In the joined split an image seen by
several datasets is one image, with the sentences of all of them, so image-grouped batches keep them
together; images and sentences are numbered anew, and each sentence keeps its own dataset's masks.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from risam.config import ConfigError
from risam.config.experiment import DataSection, DatasetEntry
from risam.data.catalog import COCO_IMAGES, dataset_spec
from risam.data.readers import load_split
from risam.data.records import Expression, ImageRecord, ReferSplit

ImageKey = tuple[str, int | str]


def image_keys(split: ReferSplit, image_id: int) -> tuple[ImageKey, ...]:
    """What makes an image of ``split`` the same image as another dataset's (module docstring): its file,
    and for COCO's images also its COCO id; the first key numbers it in a joined split."""
    file_key = ("file", os.path.abspath(split.images[image_id].path))
    if dataset_spec(split.dataset).image_dir == COCO_IMAGES:
        return (("coco_train2014", image_id), file_key)
    return (file_key,)


@dataclass
class MixedSplit:
    """The joined train splits: what :class:`~risam.data.dataset.ReferDataset` reads of a
    :class:`~risam.data.records.ReferSplit` (images, expressions, masks), over several datasets.

    ``sources[sent_id]`` is the split and the expression, as its dataset numbers it, that sentence
    ``sent_id`` of the joined split comes from.
    """

    dataset: str
    split: str
    images: dict[int, ImageRecord]
    expressions: list[Expression]
    sources: list[tuple[ReferSplit, Expression]] = field(repr=False)

    def target_mask(self, expression: Expression) -> np.ndarray:
        """The union of the expression's objects, from its own dataset's segmentations."""
        split, original = self.sources[expression.sent_id]
        return split.target_mask(original)


@dataclass(frozen=True)
class Overlap:
    """What the leakage rule found in one dataset's train split: its images and sentences, and how many of
    each are (on) images of held-out splits, which the rule removes (``images_lost``, ``sentences_lost``);
    ``shared[label]`` counts its train images in held-out split ``label``
    (``DATASET/SPLIT``)."""

    dataset: str
    train_split: str
    images: int
    sentences: int
    images_lost: int
    sentences_lost: int
    shared: dict[str, int]


def entry_root(entry: DatasetEntry, data: DataSection) -> str:
    """The data root of ``entry``: its own, else the data section's (ConfigError when neither is set)."""
    root = entry.root or data.root
    if root is None:
        raise ConfigError(
            f"data.datasets entry {entry.name!r} has no data root; set data.root=/path/to/data or the entry's root"
        )
    return root


def entry_image_root(entry: DatasetEntry, data: DataSection) -> str | None:
    """The image folder of ``entry`` (None: the dataset's folder under its root)."""
    return entry.image_root if entry.image_root is not None else (data.image_root if entry.root is None else None)


def load_entry_split(entry: DatasetEntry, data: DataSection, split: str) -> ReferSplit:
    """Split ``split`` of the dataset of ``entry``."""
    return load_split(entry_root(entry, data), entry.name, split, image_root=entry_image_root(entry, data))


def held_out_splits(data: DataSection) -> list[tuple[DatasetEntry, str]]:
    """The splits no training image may be in: every split but its train split of each listed dataset, then
    ``data.held_out_splits`` (``DATASET/SPLIT``; the dataset read with the data section's root)."""
    held = [
        (entry, split)
        for entry in data.datasets
        for split in dataset_spec(entry.name).splits
        if split != entry.train_split
    ]
    for item in data.held_out_splits:
        name, slash, split = item.rpartition("/")
        if not slash or not name:
            raise ConfigError(f"data.held_out_splits: {item!r} is not DATASET/SPLIT, e.g. refcocog_umd/test")
        listed = next((entry for entry in data.datasets if entry.name == name), DatasetEntry(name=name))
        if split not in dataset_spec(name).splits:
            known = ", ".join(dataset_spec(name).splits)
            raise ConfigError(f"data.held_out_splits: {item!r}: {name} has no split {split!r}; its splits: {known}")
        if (listed, split) not in held:
            held.append((listed, split))
    return held


def held_out_images(data: DataSection) -> dict[str, set[ImageKey]]:
    """The images of every held-out split (:func:`held_out_splits`), by ``DATASET/SPLIT``."""
    images = {}
    for entry, split in held_out_splits(data):
        loaded = load_entry_split(entry, data, split)
        images[f"{entry.name}/{split}"] = {key for image_id in loaded.images for key in image_keys(loaded, image_id)}
    return images


def find_overlaps(trains: Sequence[ReferSplit], held_out: dict[str, set[ImageKey]]) -> list[Overlap]:
    """What each of the train splits ``trains`` shares with the held-out images (by ``DATASET/SPLIT``)."""
    overlaps = []
    every_held = set().union(*held_out.values())
    for train in trains:
        keys = {image_id: image_keys(train, image_id) for image_id in train.images}
        lost = {image_id for image_id, own in keys.items() if not every_held.isdisjoint(own)}
        overlaps.append(
            Overlap(
                dataset=train.dataset,
                train_split=train.split,
                images=len(train.images),
                sentences=len(train.expressions),
                images_lost=len(lost),
                sentences_lost=sum(1 for expression in train.expressions if expression.image_id in lost),
                shared={
                    label: sum(1 for own in keys.values() if not images.isdisjoint(own))
                    for label, images in held_out.items()
                },
            )
        )
    return overlaps


def _train_splits(data: DataSection) -> tuple[list[ReferSplit], dict[str, set[ImageKey]], list[Overlap]]:
    """The train splits of ``data.datasets``, the held-out images by ``DATASET/SPLIT``, and their overlaps."""
    if not data.datasets:
        raise ConfigError("data.datasets is empty; list the datasets to train on together")
    names = [entry.name for entry in data.datasets]
    if len(set(names)) != len(names):
        raise ConfigError(f"data.datasets lists a dataset twice: {names}")
    trains = [load_entry_split(entry, data, entry.train_split) for entry in data.datasets]
    held_out = held_out_images(data)
    return trains, held_out, find_overlaps(trains, held_out)


def dataset_overlaps(data: DataSection) -> list[Overlap]:
    """What the leakage rule finds in each train split of ``data.datasets`` (``risam data check``'s table)."""
    return _train_splits(data)[2]


def mixed_train_split(data: DataSection) -> tuple[MixedSplit, list[Overlap], list[float]]:
    """The joined train splits of ``data.datasets`` (less the held-out images under the leakage rule), what
    the rule found per dataset, and the sampling weight of every sentence of the joined split: ``weight /
    sentences`` of its dataset (all equal by default), for :class:`~risam.data.sampler.GroupedBatchSampler`.
    """
    trains, held_out, overlaps = _train_splits(data)
    excluded = set().union(*held_out.values()) if data.exclude_eval_images else set()
    images: dict[int, ImageRecord] = {}
    numbers: dict[ImageKey, int] = {}
    expressions: list[Expression] = []
    sources: list[tuple[ReferSplit, Expression]] = []
    datasets: list[int] = []  # the index in data.datasets of every joined sentence
    for index, train in enumerate(trains):
        for expression in train.expressions:
            own = image_keys(train, expression.image_id)
            if not excluded.isdisjoint(own):
                continue
            key = own[0]
            if key not in numbers:
                numbers[key] = len(numbers)
                record = train.images[expression.image_id]
                images[numbers[key]] = ImageRecord(numbers[key], record.path, record.height, record.width)
            joined = Expression(
                len(expressions),
                expression.ref_id,
                numbers[key],
                expression.sentence,
                expression.target_ids,
                expression.sentence_type,
            )
            expressions.append(joined)
            sources.append((train, expression))
            datasets.append(index)
    names = [entry.name for entry in data.datasets]
    if not expressions:
        raise ConfigError(f"data.datasets {names}: no training sentences are left (leakage rule, or empty splits)")
    counts = Counter(datasets)
    rates = _sentence_rates(data.datasets, [counts[index] for index in range(len(trains))])
    mixed = MixedSplit("+".join(names), "train", images, expressions, sources)
    return mixed, overlaps, [rates[index] for index in datasets]


def _sentence_rates(entries: Sequence[DatasetEntry], counts: Sequence[int]) -> list[float]:
    """Per dataset, the weight of one of its sentences: its share (``weight``, normalized over the list; by
    default its count of sentences) divided by its count of sentences; ConfigError for a weight <= 0."""
    total = sum(counts)
    shares = []
    for entry, count in zip(entries, counts, strict=True):
        if entry.weight is not None and entry.weight <= 0:
            raise ConfigError(f"data.datasets entry {entry.name!r}: weight={entry.weight}; give a positive number")
        shares.append(entry.weight if entry.weight is not None else count / total)
    if any(entry.weight is not None for entry in entries) and any(entry.weight is None for entry in entries):
        raise ConfigError("data.datasets: give every entry a weight, or none (then each weighs by its sentences)")
    norm = sum(share for share, count in zip(shares, counts, strict=True) if count)
    return [share / norm / count if count else 0.0 for share, count in zip(shares, counts, strict=True)]


def format_overlaps(overlaps: Sequence[Overlap], applied: bool) -> str:
    """The overlap table: per train split, its images and sentences, how many of them are images of held-out
    splits (the images and sentences the leakage rule removes), and how many it shares with each held-out
    split; ``applied`` says whether the rule removes them."""
    labels = sorted({label for overlap in overlaps for label in overlap.shared})
    header = ["train split", "images", "sentences", "held-out images", "their sentences", *[f"in {x}" for x in labels]]
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    for overlap in overlaps:
        cells = [
            f"{overlap.dataset}/{overlap.train_split}",
            f"{overlap.images:,}",
            f"{overlap.sentences:,}",
            f"{overlap.images_lost:,}",
            f"{overlap.sentences_lost:,}",
            *[f"{overlap.shared.get(label, 0):,}" for label in labels],
        ]
        lines.append("| " + " | ".join(cells) + " |")
    rule = "removed (data.exclude_eval_images=true)" if applied else "kept (data.exclude_eval_images=false)"
    return "\n".join(lines) + f"\nTraining images that are images of a held-out split: {rule}."


def overlap_records(overlaps: Sequence[Overlap], applied: bool) -> dict[str, object]:
    """The overlaps as JSON-ready data (a run's ``leakage.json``)."""
    return {
        "exclude_eval_images": applied,
        "datasets": [
            {
                "dataset": o.dataset,
                "train_split": o.train_split,
                "images": o.images,
                "sentences": o.sentences,
                "images_lost": o.images_lost if applied else 0,
                "sentences_lost": o.sentences_lost if applied else 0,
                "images_in_held_out_splits": o.images_lost,
                "shared_with": o.shared,
            }
            for o in overlaps
        ],
    }


def split_label(entry: DatasetEntry, split: str) -> str:
    """How results, logs and curves name split ``split`` of ``entry``'s dataset: ``DATASET/SPLIT``."""
    return f"{entry.name}/{split}"


def entry_for(data: DataSection, name: str) -> DatasetEntry:
    """The entry of ``name`` in ``data.datasets`` (ConfigError listing them otherwise)."""
    for entry in data.datasets:
        if entry.name == name:
            return entry
    raise ConfigError(f"{name!r} is not in data.datasets ({', '.join(e.name for e in data.datasets)})")
