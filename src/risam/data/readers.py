"""Readers of the published annotation files: REFER, gRefCOCO and VGPhraseCut, one split at a time.

Every reader returns a :class:`~risam.data.records.ReferSplit` with one expression per sentence.
Where the formats leave room, the readers decide as follows.

- REFER (RefCOCO, RefCOCO+, RefCOCOg, RefShapes): ``refs(<split_by>).p`` is a pickle of refs
  ``{ref_id, ann_id, image_id, split, sentences: [{sent_id, sent, raw, tokens}], ...}`` read with
  :func:`~risam.data.safe_pickle.load_pickle`; ``instances.json`` is COCO. The sentence text is
  ``sent``, REFER's normalized lowercase form, which every published sentence carries;
  ``raw`` is read only where a sentence has no ``sent``. A sentence's optional ``type`` (a string,
  which RefShapes writes) becomes ``Expression.sentence_type``. The ref's own ``file_name`` (the COCO
  file name with a suffix) is ignored: the image file is the ``file_name`` of the image in
  ``instances.json``, as in REFER's own API.
- gRefCOCO: ``grefs(unc).json`` is a JSON list of refs like REFER's, with ``ann_id`` a list of
  annotation ids, or ``[-1]`` for a ref that refers to nothing. As in the G_REFER API a single
  int is read as a one-element list, and ``ann_id``, not ``no_target``, decides. The target is
  the union of the listed annotations except crowd ones (``iscrowd`` 1), which ReLA's loader
  leaves out of the ground truth that published gRefCOCO numbers are measured on.
- VGPhraseCut: ``refer_<split>.json`` is a list of tasks ``{task_id, image_id, phrase, Polygons,
  ...}``; image sizes come from ``image_data_split.json`` and image files are
  ``<image_id>.jpg``, as the dataset's downloader and RefVGLoader have them. Each task is one
  expression: ``sent_id`` and ``ref_id`` are the task's position in the file (``task_id`` is a
  string), the sentence is ``phrase``. Each entry of ``Polygons`` is one instance, a list of
  polygons of ``[x, y]`` points; it becomes one object with COCO flat polygons, its id the
  running count of instances in the file order of the split. Polygons of fewer than 3 points
  have no area and are dropped (PhraseCut's own rasterizer skips those under 2 points); an
  instance left without polygons gets an empty mask.

Problems name the file and the ref, task, image or annotation (by position and id) and the key.
By default the first one raises; with a ``problems`` list, per-record problems are appended to
it and the record skipped, so that ``risam data check`` can report all of them at once.
Image files are not opened here.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from risam.configs.parse import ConfigError
from risam.data.catalog import DatasetSpec, dataset_spec
from risam.data.masks import AnnotationError
from risam.data.records import Expression, ImageRecord, ReferSplit
from risam.data.safe_pickle import load_pickle

NO_TARGET = -1
PHRASECUT_IMAGE_INFO = "image_data_split.json"
COCO_INSTANCES = "instances.json"


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
    or unreadable files raise in either case. Raises KeyError for an unknown dataset, ValueError for
    an unknown split, FileNotFoundError for a missing annotation file, AnnotationError otherwise.
    """
    spec = dataset_spec(dataset)
    if split not in spec.splits:
        raise ConfigError(f"unknown split {split!r} of dataset {dataset!r}; known splits: {', '.join(spec.splits)}")
    root = Path(root)
    image_dir = Path(image_root) if image_root is not None else root / spec.image_dir
    if spec.kind == "phrasecut":
        return _load_phrasecut(spec, root, split, image_dir, problems)
    return _load_coco_refs(spec, root, split, image_dir, problems)


def segmentation_file(root: str | Path, dataset: str, split: str) -> Path:
    """The file holding a split's object segmentations: ``instances.json``, or PhraseCut's ``refer_<split>.json``."""
    spec = dataset_spec(dataset)
    refs_path, other_path = _annotation_paths(spec, Path(root), split)
    return refs_path if spec.kind == "phrasecut" else other_path


def _annotation_paths(spec: DatasetSpec, root: Path, split: str) -> tuple[Path, Path]:
    """(refs file, instances.json or PhraseCut's image_data_split.json) of one split."""
    folder = root / spec.folder
    if spec.kind == "phrasecut":
        return folder / spec.refs_file.format(split=split), folder / PHRASECUT_IMAGE_INFO
    return folder / spec.refs_file, folder / COCO_INSTANCES


def _require_files(spec: DatasetSpec, root: Path, paths: tuple[Path, ...]) -> None:
    """FileNotFoundError naming the first missing path and the layout the dataset expects."""
    folder = root / spec.folder
    layouts = {
        "refer": f"REFER's layout: {folder / spec.refs_file} (a pickle of refs) and {folder / COCO_INSTANCES} (COCO)",
        "grefer": f"gRefCOCO's layout: {folder / spec.refs_file} (a JSON list of refs) and {folder / COCO_INSTANCES}",
        "phrasecut": f"VGPhraseCut_v0's files in {folder}: refer_<split>.json and {PHRASECUT_IMAGE_INFO}",
    }
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist; dataset {spec.name!r} expects {layouts[spec.kind]}")


def _report(error: AnnotationError, problems: list[str] | None) -> None:
    """Raise ``error``, or append it to ``problems`` when a list is given."""
    if problems is None:
        raise error
    problems.append(str(error))


def _load_json(path: Path) -> Any:
    """The JSON value in ``path``; AnnotationError naming it when it is not valid UTF-8 JSON."""
    try:
        with path.open(encoding="utf-8") as file:
            return json.load(file)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise AnnotationError(f"{path}: not valid JSON ({error})") from error


def _get(record: Any, key: str, where: str) -> Any:
    """``record[key]``; AnnotationError naming ``where`` and ``key`` when the record is no dict or lacks the key."""
    if not isinstance(record, dict):
        raise AnnotationError(f"{where}: expected a dict with key {key!r}, got {type(record).__name__}")
    if key not in record:
        raise AnnotationError(f"{where}: missing key {key!r}")
    return record[key]


def _get_list(record: Any, key: str, where: str) -> list[Any]:
    """``record[key]``, which must be a list."""
    value = _get(record, key, where)
    if not isinstance(value, list):
        raise AnnotationError(f"{where}: {key!r} must be a list, got {type(value).__name__}")
    return value


def _load_list(path: Path, load: Callable[[Path], Any], what: str) -> list[Any]:
    """The list stored in ``path`` (read by ``load``); AnnotationError when it holds something else."""
    value = load(path)
    if not isinstance(value, list):
        raise AnnotationError(f"{path}: expected a list of {what}, got {type(value).__name__}")
    return value


def _index(
    records: list[Any], where: str, id_key: str, keys: tuple[str, ...], problems: list[str] | None
) -> dict[Any, dict[str, Any]]:
    """Records by ``record[id_key]``; records lacking ``id_key`` or any of ``keys`` are reported."""
    index: dict[Any, dict[str, Any]] = {}
    for position, record in enumerate(records):
        try:
            record_id = _get(record, id_key, f"{where}[{position}]")
            for key in keys:
                _get(record, key, f"{where}[{position}] ({id_key} {record_id})")
        except AnnotationError as error:
            _report(error, problems)
            continue
        index[record_id] = record
    return index


def _load_coco_refs(
    spec: DatasetSpec, root: Path, split: str, image_dir: Path, problems: list[str] | None
) -> ReferSplit:
    """A split of a REFER or gRefCOCO dataset: refs file plus COCO ``instances.json``."""
    refs_path, instances_path = _annotation_paths(spec, root, split)
    _require_files(spec, root, (refs_path, instances_path))
    refs = _load_list(refs_path, load_pickle if spec.kind == "refer" else _load_json, "refs")
    instances = _load_json(instances_path)
    image_entries = _get_list(instances, "images", str(instances_path))
    annotation_entries = _get_list(instances, "annotations", str(instances_path))
    images_by_id = _index(image_entries, f"{instances_path}: images", "id", ("file_name", "height", "width"), problems)
    annotations_by_id = _index(
        annotation_entries, f"{instances_path}: annotations", "id", ("image_id", "segmentation"), problems
    )

    images: dict[int, ImageRecord] = {}
    expressions: list[Expression] = []
    for position, ref in enumerate(refs):
        try:
            ref_id = _get(ref, "ref_id", f"{refs_path}: ref {position}")
            where = f"{refs_path}: ref {position} (ref_id {ref_id})"
            if _get(ref, "split", where) != split:
                continue
            image_id = _get(ref, "image_id", where)
            image = images.get(image_id) or _coco_image(images_by_id, image_id, image_dir, where, instances_path)
            targets = _ref_targets(spec, _get(ref, "ann_id", where), where)
            for ann_id in targets:
                annotation = annotations_by_id.get(ann_id)
                if annotation is None:
                    raise AnnotationError(f"{where}: ann_id {ann_id} is not an annotation id in {instances_path}")
                if annotation["image_id"] != image_id:
                    raise AnnotationError(
                        f"{where}: ann_id {ann_id} is an annotation of image {annotation['image_id']} in "
                        f"{instances_path}, but the ref's image_id is {image_id}"
                    )
            if spec.kind == "grefer":
                targets = tuple(ann_id for ann_id in targets if not annotations_by_id[ann_id].get("iscrowd", 0))
            ref_expressions = [
                Expression(
                    sent_id=_get(sentence, "sent_id", f"{where} sentence {index}"),
                    ref_id=ref_id,
                    image_id=image_id,
                    sentence=_sentence_text(sentence, f"{where} sentence {index}"),
                    target_ids=targets,
                    sentence_type=_sentence_type(sentence, f"{where} sentence {index}"),
                )
                for index, sentence in enumerate(_get_list(ref, "sentences", where))
            ]
        except AnnotationError as error:
            _report(error, problems)
            continue
        images[image_id] = image
        expressions.extend(ref_expressions)

    segmentations: dict[int, Any] = {}
    objects_by_image: dict[int, list[int]] = {image_id: [] for image_id in images}
    for ann_id, annotation in annotations_by_id.items():
        if annotation["image_id"] in objects_by_image:
            objects_by_image[annotation["image_id"]].append(ann_id)
            segmentations[ann_id] = annotation["segmentation"]
    return ReferSplit(
        dataset=spec.name,
        split=split,
        images=images,
        expressions=expressions,
        segmentations=segmentations,
        objects_by_image=objects_by_image,
        source=str(instances_path),
    )


def _coco_image(
    images_by_id: dict[Any, dict[str, Any]], image_id: Any, image_dir: Path, where: str, instances_path: Path
) -> ImageRecord:
    """The image record of ``image_id`` from ``instances.json``."""
    entry = images_by_id.get(image_id)
    if entry is None:
        raise AnnotationError(f"{where}: image_id {image_id} is not an image id in {instances_path}")
    height, width = _image_size(entry, f"{instances_path}: image {image_id}")
    return ImageRecord(image_id=image_id, path=image_dir / entry["file_name"], height=height, width=width)


def _image_size(entry: dict[str, Any], where: str) -> tuple[int, int]:
    """(height, width) of an image entry; AnnotationError unless both are positive ints."""
    height, width = entry["height"], entry["width"]
    if not all(isinstance(value, int) and not isinstance(value, bool) and value > 0 for value in (height, width)):
        raise AnnotationError(f"{where}: 'height' and 'width' must be positive ints, got {height!r} and {width!r}")
    return height, width


def _ref_targets(spec: DatasetSpec, ann_id: Any, where: str) -> tuple[int, ...]:
    """The annotation ids a ref refers to: REFER's single ``ann_id``, or gRefCOCO's list (``[-1]``: none)."""
    if spec.kind == "refer":
        if not isinstance(ann_id, int) or isinstance(ann_id, bool):
            raise AnnotationError(f"{where}: 'ann_id' must be an annotation id (int), got {ann_id!r}")
        return (ann_id,)
    ann_ids = ann_id if isinstance(ann_id, list) else [ann_id]
    if not ann_ids or not all(isinstance(value, int) and not isinstance(value, bool) for value in ann_ids):
        raise AnnotationError(
            f"{where}: 'ann_id' must be an annotation id or a non-empty list of them ([-1]: no target), got {ann_id!r}"
        )
    if NO_TARGET in ann_ids:
        if len(ann_ids) > 1:
            raise AnnotationError(f"{where}: 'ann_id' {ann_id!r} mixes the no-target marker -1 with annotation ids")
        return ()
    return tuple(ann_ids)


def _sentence_text(sentence: Any, where: str) -> str:
    """A REFER sentence's text: ``sent``, or ``raw`` when there is no ``sent``."""
    if isinstance(sentence, dict) and "sent" not in sentence and "raw" in sentence:
        return sentence["raw"]
    return _get(sentence, "sent", where)


def _sentence_type(sentence: dict[str, Any], where: str) -> str | None:
    """A sentence's optional ``type`` (RefShapes), which must be a string; None when absent."""
    if "type" not in sentence:
        return None
    kind = sentence["type"]
    if not isinstance(kind, str):
        raise AnnotationError(f"{where}: 'type' must be a string, got {kind!r}")
    return kind


def _load_phrasecut(
    spec: DatasetSpec, root: Path, split: str, image_dir: Path, problems: list[str] | None
) -> ReferSplit:
    """A split of VGPhraseCut: ``refer_<split>.json`` plus ``image_data_split.json`` for image sizes."""
    refs_path, info_path = _annotation_paths(spec, root, split)
    _require_files(spec, root, (refs_path, info_path))
    tasks = _load_list(refs_path, _load_json, "tasks")
    infos_by_id = _index(
        _load_list(info_path, _load_json, "images"), str(info_path), "image_id", ("height", "width"), problems
    )

    images: dict[int, ImageRecord] = {}
    expressions: list[Expression] = []
    segmentations: dict[int, Any] = {}
    objects_by_image: dict[int, list[int]] = {}
    for position, task in enumerate(tasks):
        try:
            task_id = _get(task, "task_id", f"{refs_path}: task {position}")
            where = f"{refs_path}: task {position} (task_id {task_id})"
            image_id = _get(task, "image_id", where)
            phrase = _get(task, "phrase", where)
            info = infos_by_id.get(image_id)
            if info is None:
                raise AnnotationError(f"{where}: image_id {image_id} is not an image_id in {info_path}")
            height, width = _image_size(info, f"{info_path}: image_id {image_id}")
            instances = [
                _phrasecut_instance(instance, height, width, f"{where} 'Polygons'[{index}]")
                for index, instance in enumerate(_get_list(task, "Polygons", where))
            ]
        except AnnotationError as error:
            _report(error, problems)
            continue
        object_ids = tuple(range(len(segmentations), len(segmentations) + len(instances)))
        segmentations.update(zip(object_ids, instances, strict=True))
        objects_by_image.setdefault(image_id, []).extend(object_ids)
        images[image_id] = ImageRecord(image_id, image_dir / f"{image_id}.jpg", height, width)
        expressions.append(
            Expression(sent_id=position, ref_id=position, image_id=image_id, sentence=phrase, target_ids=object_ids)
        )
    return ReferSplit(
        dataset=spec.name,
        split=split,
        images=images,
        expressions=expressions,
        segmentations=segmentations,
        objects_by_image=objects_by_image,
        source=str(refs_path),
    )


def _phrasecut_instance(instance: Any, height: int, width: int, where: str) -> list[list[float]] | dict[str, Any]:
    """One PhraseCut instance (polygons of ``[x, y]`` points) as COCO flat polygons, or an empty RLE."""
    if not isinstance(instance, list):
        raise AnnotationError(f"{where}: expected a list of polygons, got {type(instance).__name__}")
    polygons = []
    for index, polygon in enumerate(instance):
        if not isinstance(polygon, list) or not all(isinstance(point, list) and len(point) == 2 for point in polygon):
            raise AnnotationError(f"{where}: polygon {index} is malformed; expected a list of [x, y] points")
        if len(polygon) >= 3:
            polygons.append([coordinate for point in polygon for coordinate in point])
    return polygons or {"size": [height, width], "counts": [height * width]}
