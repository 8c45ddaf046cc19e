"""``risam segment`` over many images in one process: skip what is finished, write in the background,
and gather the run's ``predictions.jsonl`` (and with ``coco_results`` the COCO results JSON).

Layout of the output folder OUT:

- ``OUT/KEY/``: one image's files as :mod:`risam.drawing.segment_output` writes them (``KEY``: its path
  relative to the folder, glob base or manifest it came from, without suffix; :mod:`risam.io.segment_inputs`).
  A single image file given alone writes into OUT itself, as ``risam segment IMAGE TEXT...`` always has.
- ``OUT/predictions.jsonl``: one line per (image, expression), in input order: ``image`` (as given),
  ``key``, ``expression``, ``score``, ``bbox`` ([x, y, width, height], COCO's convention, [0, 0, 0, 0] for
  an empty mask), ``rle`` (compressed COCO RLE of the full-resolution mask) and ``mask`` (its PNG,
  relative to OUT).
- ``OUT/coco_results.json`` (``--format coco``): COCO's results format, a list of ``image_id``,
  ``category_id`` (1: a referring expression names no category), ``segmentation``, ``score``, ``bbox``,
  plus the ``expression``; the image ids come from COCO-style file names (``COCO_train2014_000000581857.jpg``).

An image is finished when its ``predictions.json`` (written last, atomically) records the same image,
model, precision, threshold and expressions; a rerun of the same command skips it. A killed run thus
loses at most the images being written, and writes each image's result once. A rerun first deletes the
temporary files a killed run's unfinished writes left in OUT and in the folders of the images it redoes
(:func:`risam.io.files.remove_stale_temporaries`); finished images' folders are not touched.
"""

from __future__ import annotations

import re
import sys
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from risam.drawing.segment_output import PREDICTIONS_FILE, SegmentationWriter, valid_utf8
from risam.io.files import remove_stale_temporaries
from risam.io.run_records import read_record, write_json_list, write_jsonl
from risam.io.segment_inputs import SegmentInputError, SegmentItem
from risam.predictor import RISAMPredictor

PENDING_WRITES = 4  # images whose files may wait for the writer thread; beyond, the loop waits
JSONL_FILE = "predictions.jsonl"
COCO_FILE = "coco_results.json"
COCO_CATEGORY = 1
_COCO_ID = re.compile(r"(\d+)\.[A-Za-z]+$")


@dataclass
class RunSummary:
    """What a run did: images ``done`` now, ``skipped`` (finished by an earlier run), ``failed``; the
    lines of ``predictions.jsonl`` and the files written."""

    done: int
    skipped: int
    failed: int
    lines: int
    files: list[Path]


@dataclass
class _Job:
    """One image of the run: its item, its expressions (its own or the command line's) and its folder."""

    item: SegmentItem
    expressions: list[str]
    folder: Path


def coco_image_id(path: Path) -> int:
    """The COCO image id in a COCO-style file name (``COCO_val2014_000000000042.jpg`` -> 42);
    SegmentInputError for a name that ends in no number."""
    match = _COCO_ID.search(path.name)
    if match is None:
        raise SegmentInputError(
            f"{path}: --format coco needs COCO-style file names that end in the image id "
            "(COCO_train2014_000000581857.jpg); this one has none"
        )
    return int(match.group(1))


def segment_images(
    predictor: RISAMPredictor,
    items: Sequence[SegmentItem],
    expressions: Sequence[str],
    output_dir: Path,
    checkpoint_label: str,
    flat: bool = False,
    batch_size: int = 1,
    num_workers: int | None = None,
    coco_results: bool = False,
    progress: bool | None = True,
    report: Callable[[str], None] | None = None,
) -> RunSummary:
    """Segment every item (with its own expressions, else ``expressions``) into ``output_dir``, skipping
    the finished ones; a failed image is reported as one line on stderr, counted, and the others go on.
    ``flat``: the one item writes into ``output_dir`` itself. ``progress``: a tqdm bar over the images on
    stderr (None: only where stderr is a terminal). ``report`` prints a failed image's line (default: on
    stderr, above the bar). Returns the counts and the files written."""
    report = report or (lambda line: tqdm.write(line, file=sys.stderr))
    ids = {item.key: coco_image_id(item.path) for item in items} if coco_results else {}
    jobs = [
        _Job(item, item.expressions or list(expressions), output_dir if flat else output_dir / item.key)
        for item in items
    ]
    for job in jobs:
        if not job.expressions:
            raise SegmentInputError(
                f"{job.item.path}: no expressions; give them on the command line or in the manifest"
            )
    settings = _settings(predictor, checkpoint_label)
    pending = [job for job in jobs if not _finished(job, settings)]
    for folder in {output_dir, *(job.folder for job in pending)}:
        remove_stale_temporaries(folder)
    done = failed = 0
    bar = tqdm(
        total=len(jobs),
        initial=len(jobs) - len(pending),
        unit="img",
        disable=None if progress is None else not progress,
        file=sys.stderr,
    )
    writes: deque[Future] = deque()
    with bar, ThreadPoolExecutor(max_workers=1) as writer:
        results = predictor.segment_many(
            ((str(job.item.path), job.expressions) for job in pending), batch_size=batch_size, num_workers=num_workers
        )
        for result in results:
            job = pending[result.index]
            if result.error is not None:
                report(valid_utf8(result.error))
                failed += 1
            else:
                writes.append(writer.submit(_write, job, result.image, result.predictions, settings))
                done += 1
            while len(writes) > PENDING_WRITES:
                writes.popleft().result()
            bar.update()
        for write in writes:
            write.result()
    rows = _jsonl_rows(jobs, settings, output_dir)
    lines = write_jsonl(output_dir / JSONL_FILE, rows)
    files = [output_dir / JSONL_FILE]
    if coco_results:
        write_json_list(output_dir / COCO_FILE, _coco_rows(jobs, settings, ids))
        files.append(output_dir / COCO_FILE)
    return RunSummary(done, len(jobs) - len(pending), failed, lines, files)


def _settings(predictor: RISAMPredictor, checkpoint_label: str) -> dict[str, Any]:
    """What a finished image's ``predictions.json`` must record besides its image and expressions."""
    return {
        "checkpoint": valid_utf8(checkpoint_label),
        "precision": predictor.model.encoder_precision,
        "threshold": predictor.threshold,
    }


def _finished(job: _Job, settings: dict[str, Any]) -> dict[str, Any] | None:
    """The ``predictions.json`` of ``job`` if it records this image, these settings and these expressions."""
    record = read_record(job.folder / PREDICTIONS_FILE)
    if record is None or record.get("image") != valid_utf8(str(job.item.path)):
        return None
    if any(record.get(key) != value for key, value in settings.items()):
        return None
    predictions = record.get("predictions")
    if not isinstance(predictions, list) or not all(isinstance(row, dict) for row in predictions):
        return None
    if [row.get("text") for row in predictions] != [valid_utf8(text) for text in job.expressions]:
        return None
    return record


def _write(job: _Job, image: Any, predictions: list, settings: dict[str, Any]) -> None:
    """Write one image's masks, overlays and (last) ``predictions.json``; the writer deletes an earlier
    run's record first, so that a write stopped midway leaves the image unfinished."""
    writer = SegmentationWriter(image, job.folder, writers=1)  # this runs in the run's writer thread
    writer.add(predictions)
    writer.finish(str(job.item.path), settings["checkpoint"], settings["precision"], settings["threshold"])


def _xywh(bbox: Sequence[int] | None) -> list[int]:
    """Inclusive corners (x0, y0, x1, y1) -> COCO's [x, y, width, height]; [0, 0, 0, 0] for None."""
    if bbox is None:
        return [0, 0, 0, 0]
    x0, y0, x1, y1 = bbox
    return [x0, y0, x1 - x0 + 1, y1 - y0 + 1]


def _finished_rows(jobs: Sequence[_Job], settings: dict[str, Any]) -> Iterator[tuple[_Job, dict]]:
    """(job, prediction record) for every expression of every finished job, in input order, read back
    from the files (so the run's memory does not grow with its images)."""
    for job in jobs:
        record = _finished(job, settings)
        for row in record["predictions"] if record else ():
            yield job, row


def _jsonl_rows(jobs: Sequence[_Job], settings: dict[str, Any], output_dir: Path) -> Iterator[dict[str, Any]]:
    """The lines of ``predictions.jsonl``."""
    for job, row in _finished_rows(jobs, settings):
        folder = job.folder.relative_to(output_dir)
        yield {
            "image": valid_utf8(str(job.item.path)),
            "key": job.item.key,
            "expression": row["text"],
            "score": row["score"],
            "bbox": _xywh(row["bbox"]),
            "rle": row["rle"],
            "mask": (folder / row["mask"]).as_posix(),
        }


def _coco_rows(jobs: Sequence[_Job], settings: dict[str, Any], ids: dict[str, int]) -> Iterator[dict[str, Any]]:
    """The entries of ``coco_results.json``: every finished prediction in COCO's results format."""
    for job, row in _finished_rows(jobs, settings):
        yield {
            "image_id": ids[job.item.key],
            "category_id": COCO_CATEGORY,
            "segmentation": row["rle"],
            "score": row["score"],
            "bbox": _xywh(row["bbox"]),
            "expression": row["text"],
        }
