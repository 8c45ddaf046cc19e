"""Which predictions to draw, and the contact sheet of them (``overlays/sheet.png`` of ``risam quickstart``).

The sheet shows a few images of a split, each with several single-target sentences that
refer to different objects where possible, so that a reader sees at a glance that different
sentences on the same image give different masks.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping

import numpy as np

from risam.data.dataset import read_image
from risam.data.records import ReferSplit
from risam.drawing.viz import Board, SheetCell, SheetRow, contact_sheet
from risam.evaluation.metrics import mask_iou

SHEET_IMAGES = 4
SHEET_SENTENCES = 4


def sheet_rows(split: ReferSplit, images: int = SHEET_IMAGES, sentences: int = SHEET_SENTENCES) -> list[list[int]]:
    """Indices into ``split.expressions`` for a contact sheet: up to ``images`` rows of up to ``sentences``.

    Only single-target sentences are used. Images with at least ``sentences`` of them come
    first (then those with the most), in split order; within an image the sentences are taken
    round-robin over their targets, so that they refer to different objects where possible.
    """
    by_image: dict[int, dict[int, list[int]]] = defaultdict(lambda: defaultdict(list))
    for index, expression in enumerate(split.expressions):
        if len(expression.target_ids) == 1:
            by_image[expression.image_id][expression.target_ids[0]].append(index)
    rows = []
    for targets in by_image.values():
        queues = list(targets.values())
        row = [queue[depth] for depth in range(max(map(len, queues))) for queue in queues if depth < len(queue)]
        rows.append(row[:sentences])
    rows.sort(key=len, reverse=True)  # stable: split order among equals
    return rows[:images]


def draw_sheet(split: ReferSplit, rows: list[list[int]], predictions: Mapping[int, np.ndarray]) -> Board:
    """The contact sheet of ``rows`` (from :func:`sheet_rows`), given the H x W bool prediction of every index."""
    drawn = []
    for row in rows:
        image_id = split.expressions[row[0]].image_id
        cells = []
        for index in row:
            expression = split.expressions[index]
            target = split.target_mask(expression)
            cells.append(
                SheetCell(expression.sentence, predictions[index], target, mask_iou(predictions[index], target))
            )
        drawn.append(SheetRow(read_image(split.images[image_id]), f"image {image_id}", cells))
    sentences = max(map(len, rows))
    title = (
        f"{split.dataset} {split.split}: {sentences} sentence{'s' if sentences > 1 else ''} per image, "
        "each picture is the model's mask for the sentence under it"
    )
    return contact_sheet(drawn, title)
