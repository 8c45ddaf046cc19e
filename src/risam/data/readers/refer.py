"""REFER's format (RefCOCO, RefCOCO+, RefCOCOg, RefShapes): ``refs(<split_by>).p`` and COCO's ``instances.json``.

``refs(<split_by>).p`` is a pickle of refs, read with :func:`~risam.data.safe_pickle.load_pickle`;
each ref's ``ann_id`` is the one annotation it refers to.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from risam.data.masks import AnnotationError
from risam.data.readers.coco import CocoRefsReader
from risam.data.readers.fields import is_int
from risam.data.safe_pickle import load_pickle
from risam.errors import shown


class ReferReader(CocoRefsReader):
    """REFER: one target annotation per ref."""

    def layout(self) -> str:
        """The refs pickle and ``instances.json``."""
        return f"REFER's layout: {self.refs_path} (a pickle of refs) and {self.instances_path} (COCO)"

    def load_refs(self, path: Path) -> Any:
        """The unpickled refs; a pickle naming any class or function is refused (AnnotationError)."""
        return load_pickle(path)

    def ref_targets(self, ann_id: Any, where: str) -> tuple[int, ...]:
        """``(ann_id,)``; AnnotationError unless ``ann_id`` is an int."""
        if not is_int(ann_id):
            raise AnnotationError(f"{where}: 'ann_id' must be an annotation id (int), got {shown(ann_id)}")
        return (ann_id,)
