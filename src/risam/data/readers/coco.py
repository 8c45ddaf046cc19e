"""What REFER and gRefCOCO share: a file of refs over the objects of a COCO ``instances.json``.

A ref is ``{ref_id, ann_id, image_id, split, sentences: [{sent_id, sent, raw, tokens}], ...}``.
The sentence text is ``sent``, REFER's normalized lowercase form, which every published sentence
carries; ``raw`` is read only where a sentence has no ``sent``. A sentence's optional ``type`` (a
string, which RefShapes writes) becomes ``Expression.sentence_type``. The ref's own ``file_name``
(the COCO file name with a suffix) is ignored: the image file is the ``file_name`` of the image in
``instances.json``, as in REFER's own API. Every annotation a ref lists must be one of the ref's
image. The split holds the images its refs refer to and every annotated object of those images.
"""

from __future__ import annotations

from abc import abstractmethod
from pathlib import Path
from typing import Any

from risam.data.masks import AnnotationError
from risam.data.readers.base import SplitReader
from risam.data.readers.fields import (
    get_id,
    get_key,
    get_list,
    image_size,
    index_by,
    is_id,
    load_json,
    load_list,
    report,
)
from risam.data.records import Expression, ImageRecord, ReferSplit
from risam.errors import shown

COCO_INSTANCES = "instances.json"


class CocoRefsReader(SplitReader):
    """A refs file (``spec.refs_file``) and ``instances.json`` in the dataset's folder.

    A subclass says how the refs file is loaded (:meth:`load_refs`), what a ref's ``ann_id``
    means (:meth:`ref_targets`) and which listed annotations are targets (:meth:`counts_as_target`).
    """

    @property
    def refs_path(self) -> Path:
        """The refs file; the same for every split (each ref names its split)."""
        return self.folder / self.spec.refs_file

    @property
    def instances_path(self) -> Path:
        """COCO's ``instances.json``: images, and annotations with their segmentations."""
        return self.folder / COCO_INSTANCES

    def annotation_files(self, split: str) -> tuple[Path, ...]:
        """The refs file and ``instances.json``."""
        return self.refs_path, self.instances_path

    def segmentation_file(self, split: str) -> Path:
        """``instances.json``."""
        return self.instances_path

    @abstractmethod
    def load_refs(self, path: Path) -> Any:
        """The content of the refs file ``path``, which must be a list of refs."""

    @abstractmethod
    def ref_targets(self, ann_id: Any, where: str) -> tuple[int, ...]:
        """The annotation ids a ref's ``ann_id`` lists (empty: no target); AnnotationError when malformed."""

    def counts_as_target(self, annotation: dict[str, Any]) -> bool:
        """Whether a listed annotation is part of the ref's target; every one is, unless a format says otherwise."""
        return True

    def read(self, split: str, image_dir: Path, problems: list[str] | None) -> ReferSplit:
        """The refs of ``split`` with their images and the objects of those images (see the module docstring)."""
        instances_path = self.instances_path
        refs = load_list(self.refs_path, self.load_refs, "refs")
        instances = load_json(instances_path)
        image_entries = get_list(instances, "images", str(instances_path))
        annotation_entries = get_list(instances, "annotations", str(instances_path))
        images_by_id = index_by(
            image_entries, f"{instances_path}: images", "id", ("file_name", "height", "width"), problems
        )
        annotations_by_id = index_by(
            annotation_entries, f"{instances_path}: annotations", "id", ("image_id", "segmentation"), problems
        )

        images: dict[int, ImageRecord] = {}
        expressions: list[Expression] = []
        for position, ref in enumerate(refs):
            try:
                ref_id = get_id(ref, "ref_id", f"{self.refs_path}: ref {position}")
                where = f"{self.refs_path}: ref {position} (ref_id {ref_id})"
                if get_key(ref, "split", where) != split:
                    continue
                image_id = get_id(ref, "image_id", where)
                image = images.get(image_id) or self._image(images_by_id, image_id, image_dir, where)
                targets = self._targets(get_key(ref, "ann_id", where), image_id, annotations_by_id, where)
                ref_expressions = [
                    Expression(
                        sent_id=get_key(sentence, "sent_id", f"{where} sentence {index}"),
                        ref_id=ref_id,
                        image_id=image_id,
                        sentence=_sentence_text(sentence, f"{where} sentence {index}"),
                        target_ids=targets,
                        sentence_type=_sentence_type(sentence, f"{where} sentence {index}"),
                    )
                    for index, sentence in enumerate(get_list(ref, "sentences", where))
                ]
            except AnnotationError as error:
                report(error, problems)
                continue
            images[image_id] = image
            expressions.extend(ref_expressions)

        segmentations: dict[int, Any] = {}
        objects_by_image: dict[int, list[int]] = {image_id: [] for image_id in images}
        for ann_id, annotation in annotations_by_id.items():
            image_id = annotation["image_id"]
            if is_id(image_id) and image_id in objects_by_image:
                objects_by_image[image_id].append(ann_id)
                segmentations[ann_id] = annotation["segmentation"]
        return self.split_record(split, images, expressions, segmentations, objects_by_image)

    def _image(
        self, images_by_id: dict[Any, dict[str, Any]], image_id: Any, image_dir: Path, where: str
    ) -> ImageRecord:
        """The image record of ``image_id`` from ``instances.json``."""
        entry = images_by_id.get(image_id)
        if entry is None:
            raise AnnotationError(f"{where}: image_id {image_id} is not an image id in {self.instances_path}")
        height, width = image_size(entry, f"{self.instances_path}: image {image_id}")
        file_name = entry["file_name"]
        if not isinstance(file_name, str) or not file_name:
            raise AnnotationError(
                f"{self.instances_path}: image {image_id}: 'file_name' must be a non-empty string, "
                f"got {shown(file_name)}"
            )
        return ImageRecord(image_id=image_id, path=image_dir / file_name, height=height, width=width)

    def _targets(
        self, ann_id: Any, image_id: Any, annotations_by_id: dict[Any, dict[str, Any]], where: str
    ) -> tuple[int, ...]:
        """The target ids of a ref of image ``image_id``: every listed annotation must be one of that image,
        and those that do not :meth:`counts_as_target` are left out."""
        targets = self.ref_targets(ann_id, where)
        for target in targets:
            annotation = annotations_by_id.get(target)
            if annotation is None:
                raise AnnotationError(f"{where}: ann_id {target} is not an annotation id in {self.instances_path}")
            if not is_id(annotation["image_id"]) or annotation["image_id"] != image_id:
                raise AnnotationError(
                    f"{where}: ann_id {target} is an annotation of image {shown(annotation['image_id'])} in "
                    f"{self.instances_path}, but the ref's image_id is {image_id}"
                )
        return tuple(target for target in targets if self.counts_as_target(annotations_by_id[target]))


def _sentence_text(sentence: Any, where: str) -> str:
    """A REFER sentence's text: ``sent``, or ``raw`` when there is no ``sent``."""
    key = "raw" if isinstance(sentence, dict) and "sent" not in sentence and "raw" in sentence else "sent"
    text = get_key(sentence, key, where)
    if not isinstance(text, str):
        raise AnnotationError(f"{where}: {key!r} must be a string, got {shown(text)}")
    return text


def _sentence_type(sentence: dict[str, Any], where: str) -> str | None:
    """A sentence's optional ``type`` (RefShapes), which must be a string; None when absent."""
    if "type" not in sentence:
        return None
    kind = sentence["type"]
    if not isinstance(kind, str):
        raise AnnotationError(f"{where}: 'type' must be a string, got {shown(kind)}")
    return kind
