"""What every dataset reader returns: images, expressions and object segmentations of one split.

Every sentence is one :class:`Expression`, the unit of training and evaluation. Its target
is the union of the objects in ``target_ids`` (none for a no-target expression).
Segmentations are kept in COCO's format (a list of flat polygons ``[x1, y1, x2, y2, ...]``,
or an RLE dict) and decoded on demand by :meth:`ReferSplit.target_mask`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from risam.data.masks import decode_segmentation


@dataclass(frozen=True)
class ImageRecord:
    """An image file and its size in pixels as the annotations state it."""

    image_id: int
    path: Path
    height: int
    width: int


@dataclass(frozen=True)
class Expression:
    """One sentence referring to zero, one or several objects of one image.

    ``sentence_type`` is the sentence's form where the annotations state it (RefShapes:
    ``attribute``, ``position``, ``ordinal``, ``relation``, ``group``, ``no_target``), else None.
    """

    sent_id: int
    ref_id: int
    image_id: int
    sentence: str
    target_ids: tuple[int, ...]
    sentence_type: str | None = None

    @property
    def no_target(self) -> bool:
        """True when the sentence refers to nothing in the image (gRefCOCO)."""
        return not self.target_ids


@dataclass
class ReferSplit:
    """One split of one dataset: images, expressions, and the segmentation of every object.

    ``segmentations`` maps object (annotation) ids to COCO segmentations;
    ``objects_by_image`` lists the object ids annotated in each image of the split;
    ``source`` names the file that holds the segmentations, for error messages.
    """

    dataset: str
    split: str
    images: dict[int, ImageRecord]
    expressions: list[Expression]
    segmentations: dict[int, Any] = field(repr=False)
    objects_by_image: dict[int, list[int]] = field(repr=False)
    source: str = ""

    def target_mask(self, expression: Expression) -> np.ndarray:
        """The union of the expression's objects, H x W bool at the image's annotated size."""
        image = self.images[expression.image_id]
        mask = np.zeros((image.height, image.width), dtype=bool)
        for target_id in expression.target_ids:
            mask |= self.object_mask(target_id, expression.image_id)
        return mask

    def object_mask(self, object_id: int, image_id: int) -> np.ndarray:
        """One object's mask, H x W bool at the image's annotated size."""
        image = self.images[image_id]
        return decode_segmentation(
            self.segmentations[object_id], image.height, image.width, where=f"{self.source} object {object_id}"
        )
