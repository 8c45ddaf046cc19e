"""The interface of a dataset reader: one class per annotation format, made for one dataset and data root."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

from risam.data.catalog import DatasetSpec
from risam.data.records import Expression, ImageRecord, ReferSplit


class SplitReader(ABC):
    """Reads the splits of one dataset (``spec``) in one annotation format under the data root ``root``.

    A subclass states which files a split is read from (:meth:`annotation_files`), which of them
    holds the segmentations (:meth:`segmentation_file`), the layout it expects in words
    (:meth:`layout`), and how a split is read (:meth:`read`). :meth:`load` checks that the files
    exist and reads. ``no_target_refs`` is True for formats whose refs may refer to nothing.
    """

    no_target_refs: ClassVar[bool] = False

    def __init__(self, spec: DatasetSpec, root: Path) -> None:
        self.spec = spec
        self.folder = root / spec.folder

    @abstractmethod
    def annotation_files(self, split: str) -> tuple[Path, ...]:
        """The files ``split`` is read from, in the order they are checked; each must exist."""

    @abstractmethod
    def segmentation_file(self, split: str) -> Path:
        """The file holding the object segmentations of ``split`` (one of :meth:`annotation_files`)."""

    @abstractmethod
    def layout(self) -> str:
        """The files the format expects under the dataset's folder, in words, for a missing-file error."""

    @abstractmethod
    def read(self, split: str, image_dir: Path, problems: list[str] | None) -> ReferSplit:
        """Images (files under ``image_dir``), expressions and segmentations of ``split``, one expression per sentence.

        Called once :meth:`annotation_files` are known to exist. A malformed record raises
        AnnotationError naming its file, position, id and key, or, with a ``problems`` list, is
        appended there and skipped.
        """

    def load(self, split: str, image_dir: Path, problems: list[str] | None) -> ReferSplit:
        """:meth:`read` ``split``; FileNotFoundError naming the first missing annotation file and :meth:`layout`."""
        for path in self.annotation_files(split):
            if not path.is_file():
                raise FileNotFoundError(f"{path} does not exist; dataset {self.spec.name!r} expects {self.layout()}")
        return self.read(split, image_dir, problems)

    def split_record(
        self,
        split: str,
        images: dict[int, ImageRecord],
        expressions: list[Expression],
        segmentations: dict[int, Any],
        objects_by_image: dict[int, list[int]],
    ) -> ReferSplit:
        """The :class:`ReferSplit` of ``split`` holding what :meth:`read` found; its source is the segmentation file."""
        return ReferSplit(
            dataset=self.spec.name,
            split=split,
            images=images,
            expressions=expressions,
            segmentations=segmentations,
            objects_by_image=objects_by_image,
            source=str(self.segmentation_file(split)),
        )
