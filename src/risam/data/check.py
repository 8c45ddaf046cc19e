"""``risam data check``: read every split of a dataset and report every problem found, not only the first.

Beyond what loading checks (files, keys, ids), this opens nothing but verifies that every image
file referenced exists and that the mask of every object an expression refers to decodes.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from risam.data.catalog import dataset_spec
from risam.data.masks import AnnotationError, decode_segmentation
from risam.data.readers import load_split, reader_for, segmentation_file
from risam.data.records import ReferSplit


@dataclass(frozen=True)
class SplitCounts:
    """What one split holds.

    ``objects`` counts the distinct objects that the split's expressions refer to (not every
    annotated object of its images); ``no_target`` the sentences that refer to nothing.
    """

    split: str
    images: int
    objects: int
    sentences: int
    no_target: int


@dataclass
class CheckReport:
    """Counts of the splits that could be read, and every problem found, each naming its file and key or id."""

    dataset: str
    root: Path
    splits: list[SplitCounts] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    show_no_target: bool = False

    @property
    def ok(self) -> bool:
        """True when no problem was found."""
        return not self.problems

    def format(self) -> str:
        """A table ``split | images | objects | sentences`` (``| no-target`` for gRefCOCO-like data), then problems."""
        header = ["split", "images", "objects", "sentences"] + (["no-target"] if self.show_no_target else [])
        rows = [header]
        for counts in self.splits:
            numbers = [counts.images, counts.objects, counts.sentences]
            numbers += [counts.no_target] if self.show_no_target else []
            rows.append([counts.split, *map(str, numbers)])
        widths = [max(len(row[column]) for row in rows) for column in range(len(header))]
        table = [
            " | ".join(
                [row[0].ljust(widths[0])] + [cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)]
            )
            for row in rows
        ]
        table.insert(1, "-+-".join("-" * width for width in widths))
        lines = [f"{self.dataset} at {self.root}", *table]
        if self.ok:
            lines.append("no problems found")
        else:
            lines.append(f"{len(self.problems)} problem(s):")
            lines += [f"  {problem}" for problem in self.problems]
        return "\n".join(lines)


def check_data_root(root: str | Path, dataset: str, image_root: str | Path | None = None) -> CheckReport:
    """Read every split of ``dataset`` under ``root`` and collect every problem in a report.

    A split whose files are missing or unreadable is reported and left out of the counts; in
    the others, malformed refs, annotations and images are reported and skipped, missing image
    files reported, and every referred object's mask decoded.
    """
    spec = dataset_spec(dataset)
    report = CheckReport(dataset=dataset, root=Path(root), show_no_target=reader_for(spec, root).no_target_refs)
    problems: list[str] = []
    for split in spec.splits:
        try:
            data = load_split(root, dataset, split, image_root=image_root, problems=problems)
        except (FileNotFoundError, AnnotationError) as error:
            problems.append(str(error))
            continue
        problems += _missing_images(data)
        problems += _undecodable_targets(data, segmentation_file(root, dataset, split))
        report.splits.append(
            SplitCounts(
                split=split,
                images=len(data.images),
                objects=len({target for expression in data.expressions for target in expression.target_ids}),
                sentences=len(data.expressions),
                no_target=sum(expression.no_target for expression in data.expressions),
            )
        )
    report.problems = list(dict.fromkeys(problems))
    return report


def _missing_images(data: ReferSplit) -> list[str]:
    """One problem per image of the split whose file does not exist; one for all the images of a folder that
    does not exist (the images were not fetched, or lie elsewhere)."""
    problems = []
    absent_folders: Counter[Path] = Counter()
    for image in data.images.values():
        try:
            folder_exists, file_exists = image.path.parent.is_dir(), image.path.is_file()
        except OSError as error:  # a name too long for the system, a loop of links
            problems.append(f"{data.source}: image_id {image.image_id}: image file {image.path}: {error.strerror}")
            continue
        if not folder_exists:
            absent_folders[image.path.parent] += 1
        elif not file_exists:
            problems.append(f"{data.source}: image_id {image.image_id}: image file {image.path} does not exist")
    problems += [
        f"{data.source}: image folder {folder} does not exist, where {count} image(s) of split {data.split!r} "
        "should be; fetch them (risam data download DATASET --root ROOT --images), or tell risam data check "
        "where they are (--image-root)"
        for folder, count in absent_folders.items()
    ]
    return problems


def _undecodable_targets(data: ReferSplit, segmentation_path: Path) -> list[str]:
    """One problem per referred object whose segmentation does not decode to a mask of its image's size."""
    problems = []
    checked: set[int] = set()
    for expression in data.expressions:
        image = data.images[expression.image_id]
        for object_id in expression.target_ids:
            if object_id in checked:
                continue
            checked.add(object_id)
            where = f"{segmentation_path}: object {object_id} (image_id {image.image_id})"
            try:
                decode_segmentation(data.segmentations[object_id], image.height, image.width, where=where)
            except AnnotationError as error:
                problems.append(str(error))
    return problems
