"""VGPhraseCut's format: ``refer_<split>.json`` per split and ``image_data_split.json``.

``refer_<split>.json`` is a list of tasks ``{task_id, image_id, phrase, Polygons, ...}``; image
sizes come from ``image_data_split.json`` and image files are ``<image_id>.jpg``, as the dataset's
downloader and RefVGLoader have them. Each task is one expression: ``sent_id`` and ``ref_id`` are
the task's position in the file (``task_id`` is a string), the sentence is ``phrase``. Each entry
of ``Polygons`` is one instance, a list of polygons of ``[x, y]`` points; it becomes one object
with COCO flat polygons, its id the running count of instances in the file order of the split.
Polygons of fewer than 3 points have no area and are dropped (PhraseCut's own rasterizer skips
those under 2 points); an instance left without polygons gets an empty mask.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from risam.data.masks import AnnotationError
from risam.data.readers.base import SplitReader
from risam.data.readers.fields import get_key, get_list, image_size, index_by, load_json, load_list, report
from risam.data.records import Expression, ImageRecord, ReferSplit

PHRASECUT_IMAGE_INFO = "image_data_split.json"


class PhraseCutReader(SplitReader):
    """VGPhraseCut: one task (phrase and instance polygons) per expression."""

    def annotation_files(self, split: str) -> tuple[Path, ...]:
        """``refer_<split>.json`` (``spec.refs_file`` of the split) and ``image_data_split.json``."""
        return self.segmentation_file(split), self.folder / PHRASECUT_IMAGE_INFO

    def segmentation_file(self, split: str) -> Path:
        """``refer_<split>.json``, whose tasks hold the polygons."""
        return self.folder / self.spec.refs_file.format(split=split)

    def layout(self) -> str:
        """VGPhraseCut_v0's file names."""
        return f"VGPhraseCut_v0's files in {self.folder}: refer_<split>.json and {PHRASECUT_IMAGE_INFO}"

    def read(self, split: str, image_dir: Path, problems: list[str] | None) -> ReferSplit:
        """The tasks of ``split``, their images (``<image_id>.jpg`` under ``image_dir``) and instances."""
        refs_path, info_path = self.annotation_files(split)
        tasks = load_list(refs_path, load_json, "tasks")
        infos_by_id = index_by(
            load_list(info_path, load_json, "images"), str(info_path), "image_id", ("height", "width"), problems
        )

        images: dict[int, ImageRecord] = {}
        expressions: list[Expression] = []
        segmentations: dict[int, Any] = {}
        objects_by_image: dict[int, list[int]] = {}
        for position, task in enumerate(tasks):
            try:
                task_id = get_key(task, "task_id", f"{refs_path}: task {position}")
                where = f"{refs_path}: task {position} (task_id {task_id})"
                image_id = get_key(task, "image_id", where)
                phrase = get_key(task, "phrase", where)
                info = infos_by_id.get(image_id)
                if info is None:
                    raise AnnotationError(f"{where}: image_id {image_id} is not an image_id in {info_path}")
                height, width = image_size(info, f"{info_path}: image_id {image_id}")
                instances = [
                    _instance(instance, height, width, f"{where} 'Polygons'[{index}]")
                    for index, instance in enumerate(get_list(task, "Polygons", where))
                ]
            except AnnotationError as error:
                report(error, problems)
                continue
            object_ids = tuple(range(len(segmentations), len(segmentations) + len(instances)))
            segmentations.update(zip(object_ids, instances, strict=True))
            objects_by_image.setdefault(image_id, []).extend(object_ids)
            images[image_id] = ImageRecord(image_id, image_dir / f"{image_id}.jpg", height, width)
            expressions.append(
                Expression(sent_id=position, ref_id=position, image_id=image_id, sentence=phrase, target_ids=object_ids)
            )
        return self.split_record(split, images, expressions, segmentations, objects_by_image)


def _instance(instance: Any, height: int, width: int, where: str) -> list[list[float]] | dict[str, Any]:
    """One PhraseCut instance (polygons of ``[x, y]`` points) as COCO flat polygons, or an empty RLE (H x W)."""
    if not isinstance(instance, list):
        raise AnnotationError(f"{where}: expected a list of polygons, got {type(instance).__name__}")
    polygons = []
    for index, polygon in enumerate(instance):
        if not isinstance(polygon, list) or not all(isinstance(point, list) and len(point) == 2 for point in polygon):
            raise AnnotationError(f"{where}: polygon {index} is malformed; expected a list of [x, y] points")
        if len(polygon) >= 3:
            polygons.append([coordinate for point in polygon for coordinate in point])
    return polygons or {"size": [height, width], "counts": [height * width]}
