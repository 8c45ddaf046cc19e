from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFont

from risam import create_model, get_config, save_weights
from risam.data.records import Expression, ImageRecord, ReferSplit
from risam.data.refshapes import generate_refshapes
from risam.drawing.overlays import sheet_rows
from risam.drawing.viz import (
    MIN_PANEL_WIDTH,
    PREDICTION_COLOR,
    TARGET_COLOR,
    SheetCell,
    SheetRow,
    contact_sheet,
    draw_panel,
    fit_size,
    load_font,
    outline_mask,
    overlay_mask,
    prediction_panel,
    scale_nearest,
    sheet_picture,
    wrap_text,
)
from risam.evaluation.metrics import mask_iou
from risam.io.config_files import load_config
from risam.quickstart import _draw_overlays


def _scene(height: int, width: int, seed: int) -> tuple[Image.Image, np.ndarray, np.ndarray]:
    """A random RGB image and two overlapping rectangular masks on it."""
    rng = np.random.default_rng(seed)
    image = Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8))
    prediction = np.zeros((height, width), dtype=bool)
    prediction[10:60, 20:70] = True
    target = np.zeros((height, width), dtype=bool)
    target[30:80, 40:100] = True
    return image, prediction, target


def _crop(image: Image.Image, box: tuple[int, int, int, int]) -> np.ndarray:
    return np.asarray(image.crop(box))


def _has_text(image: Image.Image, box: tuple[int, int, int, int]) -> bool:
    """Whether the region holds dark (text) pixels on the white background."""
    return bool((_crop(image, box).max(axis=2) < 100).any())


def test_load_font_is_a_legible_truetype_font():
    font = load_font(20)
    assert isinstance(font, ImageFont.FreeTypeFont)
    top, bottom = font.getbbox("H")[1::2]
    assert bottom - top >= 13  # a 20 px font's capital letter


def test_wrap_text_breaks_at_spaces_within_the_width():
    font = load_font(20)
    text = "the second dotted shape from the top of the picture"
    lines = wrap_text(text, font, 200)
    assert len(lines) > 1 and " ".join(lines) == text
    assert all(font.getlength(line) <= 200 for line in lines)
    assert wrap_text("", font, 200) == []


def test_mask_iou_matches_the_metric_definition():
    _, prediction, target = _scene(90, 120, 0)
    expected = (prediction & target).sum() / (prediction | target).sum()
    assert mask_iou(prediction, target) == pytest.approx(expected)
    empty = np.zeros_like(prediction)
    assert mask_iou(empty, empty) == 1.0 and mask_iou(prediction, empty) == 0.0


def test_panel_is_wide_with_labels_above_and_the_sentence_below_the_untouched_pictures():
    image, prediction, target = _scene(120, 130, 1)
    board = draw_panel(image, prediction, target, "the small striped green ring", iou=0.83)
    (pred_box, target_box) = board.boxes[0]
    # 130 px scaled up by a whole factor (3) with nearest-neighbour: at least 384 px per picture.
    assert pred_box[2] - pred_box[0] == target_box[2] - target_box[0] == 390 >= MIN_PANEL_WIDTH
    assert pred_box[2] <= target_box[0] and pred_box[1] == target_box[1]
    scaled, (scaled_prediction, scaled_target) = scale_nearest(image, [prediction, target], (390, 360))
    assert np.array_equal(np.asarray(scaled)[::3, ::3], np.asarray(image))
    for box, mask, color in (
        (pred_box, scaled_prediction, PREDICTION_COLOR),
        (target_box, scaled_target, TARGET_COLOR),
    ):
        expected = outline_mask(overlay_mask(scaled, mask, color, thickness=3), mask, color, 3)
        assert np.array_equal(_crop(board.image, box), np.asarray(expected))
    # Labels in the strip above each picture, the sentence in the strip below them.
    for box in (pred_box, target_box):
        assert _has_text(board.image, (box[0], 0, box[2], box[1]))
    assert _has_text(board.image, (0, pred_box[3], board.image.width, board.image.height))
    # The IoU changes only the prediction's label; a long sentence only the caption strip (wrapped).
    no_iou = draw_panel(image, prediction, target, "the small striped green ring").image
    differs = np.argwhere((np.asarray(no_iou) != np.asarray(board.image)).any(axis=2))
    assert differs[:, 0].max() < pred_box[1] and differs[:, 1].max() < target_box[0]
    long = draw_panel(image, prediction, target, "the small striped green ring " * 8, iou=0.83).image
    assert long.width == board.image.width and long.height > board.image.height
    top = np.asarray(board.image)[: pred_box[3]]
    assert np.array_equal(np.asarray(long)[: pred_box[3]], top)
    assert np.array_equal(
        np.asarray(prediction_panel(image, prediction, target, "the small striped green ring", 0.83)),
        np.asarray(board.image),
    )


def test_panel_without_ground_truth_and_of_a_large_image():
    image, prediction, _ = _scene(300, 500, 2)
    board = draw_panel(image, prediction, None, "the dog")
    assert len(board.boxes[0]) == 1
    box = board.boxes[0][0]
    assert (box[2] - box[0], box[3] - box[1]) == (500, 300)  # already wide enough: not scaled


def test_contact_sheet_has_4_rows_of_an_input_and_4_labelled_cells():
    rows = []
    for row, (height, width) in enumerate(((112, 176), (176, 112), (140, 150), (120, 160))):
        image, prediction, target = _scene(height, width, 10 + row)
        cells = [
            SheetCell(f"sentence {row} {column} " * (column + 1), prediction, target, 0.25 * column)
            for column in range(4)
        ]
        rows.append(SheetRow(image, f"image {row}", cells))
    board = contact_sheet(rows, "RefShapes val: 4 sentences per image")
    assert 1500 <= board.image.width <= 1900
    assert [len(row) for row in board.boxes] == [5, 5, 5, 5]
    for row, boxes in zip(rows, board.boxes, strict=True):
        size = fit_size(row.image.width, row.image.height, (352, 300))
        scaled, _ = scale_nearest(row.image, [], size)
        assert np.array_equal(_crop(board.image, boxes[0]), np.asarray(scaled))
        for box, cell in zip(boxes[1:], row.cells, strict=True):
            _, (prediction, target) = scale_nearest(row.image, [cell.prediction, cell.target], size)
            assert np.array_equal(_crop(board.image, box), np.asarray(sheet_picture(scaled, prediction, target)))
        for left, right in pairwise(boxes):
            assert left[2] < right[0] and left[1] == right[1]
        for box in boxes:
            assert _has_text(board.image, (box[0], box[1] - 20, box[2], box[1]))  # label
            assert _has_text(board.image, (box[0], box[3], box[2], box[3] + 24))  # caption
    for upper, lower in pairwise(board.boxes):
        # The longest caption of the upper row (4 lines) ends before the lower row's labels.
        assert not _has_text(board.image, (0, lower[0][1] - 40, board.image.width, lower[0][1] - 28))
        assert upper[0][3] + 4 * 20 < lower[0][1]
    assert _has_text(board.image, (0, 0, board.image.width, board.boxes[0][0][1] - 20))  # title and key


def _expression(sent_id: int, image_id: int, targets: tuple[int, ...]) -> Expression:
    return Expression(sent_id, sent_id, image_id, f"sentence {sent_id}", targets)


def test_sheet_rows_prefer_full_images_and_spread_sentences_over_objects():
    targets = [(1,), (1,), (1,), (2,), (2,), (1, 2), (3,), ()]
    expressions = [_expression(10 + i, 7, t) for i, t in enumerate(targets)]
    expressions += [_expression(20, 8, (5,)), _expression(21, 8, (6,))]
    expressions += [_expression(30 + i, 9, (i % 4,)) for i in range(6)]
    images = {i: ImageRecord(i, Path(f"{i}.png"), 10, 10) for i in (7, 8, 9)}
    split = ReferSplit("refshapes", "val", images, expressions, {}, {})
    rows = sheet_rows(split, images=2, sentences=4)
    # Image 7: objects 1, 2, 3 first, then 1 again; the multi- and no-target sentences never.
    assert [[split.expressions[i].sent_id for i in row] for row in rows] == [[10, 13, 16, 11], [30, 31, 32, 33]]
    assert [len(row) for row in sheet_rows(split, images=3, sentences=4)] == [4, 4, 2]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A RefShapes root of 10 images (1 val image, 7 sentences) and a random ``risam_tiny`` checkpoint."""
    folder = tmp_path_factory.mktemp("overlays")
    generate_refshapes(folder / "data", num_images=10, seed=0)
    overrides = {"image_encoder.freeze": False, "text_encoder.freeze": False}
    path = folder / "tiny.safetensors"
    save_weights(
        create_model("risam_tiny", overrides=overrides).trainable_state_dict(),
        get_config("risam_tiny", overrides),
        path,
    )
    return folder


def test_draw_overlays_writes_panels_and_the_sheet(tiny_run):
    config = load_config("refshapes_tiny", [f"data.root={tiny_run / 'data'}"])
    out = tiny_run / "out"
    _draw_overlays(config, tiny_run / "tiny.safetensors", out, 3)
    panels = sorted(path.name for path in out.glob("0*.png"))
    assert len(panels) == 3 and panels[0].startswith("00_sent")
    for name in panels:
        with Image.open(out / name) as panel:
            assert panel.width >= 2 * MIN_PANEL_WIDTH
    with Image.open(out / "sheet.png") as sheet:
        assert sheet.width <= 1900 and sheet.height > 300
