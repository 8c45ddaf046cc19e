"""gRefCOCO's format (gRefCOCO, gRefShapes): ``grefs(unc).json`` and COCO's ``instances.json``.

``grefs(unc).json`` is a JSON list of refs like REFER's, with ``ann_id`` a list of annotation ids,
or ``[-1]`` for a ref that refers to nothing. As in the G_REFER API a single int is read as a
one-element list, and ``ann_id``, not ``no_target``, decides. The target is the union of the
listed annotations except crowd ones (``iscrowd`` 1), which ReLA's loader leaves out of the ground
truth that published gRefCOCO numbers are measured on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from risam.data.masks import AnnotationError
from risam.data.readers.coco import CocoRefsReader
from risam.data.readers.fields import is_int, load_json
from risam.errors import shown

NO_TARGET = -1


class GReferReader(CocoRefsReader):
    """gRefCOCO: refs with zero, one or several target annotations."""

    no_target_refs = True

    def layout(self) -> str:
        """The refs JSON and ``instances.json``."""
        return f"gRefCOCO's layout: {self.refs_path} (a JSON list of refs) and {self.instances_path}"

    def load_refs(self, path: Path) -> Any:
        """The refs JSON."""
        return load_json(path)

    def ref_targets(self, ann_id: Any, where: str) -> tuple[int, ...]:
        """The listed ids (an int counts as a list of one); ``()`` for ``[-1]``, which may not be mixed with ids."""
        ann_ids = ann_id if isinstance(ann_id, list) else [ann_id]
        if not ann_ids or not all(is_int(value) for value in ann_ids):
            raise AnnotationError(
                f"{where}: 'ann_id' must be an annotation id or a non-empty list of them ([-1]: no target), "
                f"got {shown(ann_id)}"
            )
        if NO_TARGET in ann_ids:
            if len(ann_ids) > 1:
                raise AnnotationError(
                    f"{where}: 'ann_id' {shown(ann_id)} mixes the no-target marker -1 with annotation ids"
                )
            return ()
        return tuple(ann_ids)

    def counts_as_target(self, annotation: dict[str, Any]) -> bool:
        """Crowd annotations (``iscrowd`` 1) are not targets."""
        return not annotation.get("iscrowd", 0)
