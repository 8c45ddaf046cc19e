"""Pictures of predictions: mask overlays, labelled prediction panels and contact sheets.

Every function here is pure: it takes images, masks, sentences and IoUs and returns PIL
images (or a :class:`Board`, a PIL image with the place of every picture in it). Small images
are scaled up with nearest-neighbour, so that a pixel of the mask stays a visible block, and
text is drawn only in strips around the pictures, never over them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw, ImageFont

PREDICTION_COLOR = (30, 200, 80)
TARGET_COLOR = (240, 140, 20)
MIN_PANEL_WIDTH = 384
SHEET_CELL_WIDTH = 352
SHEET_CELL_HEIGHT = 300
TEXT_COLOR = (25, 25, 25)
OUTLINE_BORDER = (20, 20, 20)
BACKGROUND = (255, 255, 255)
GAP = 16
LABEL_SIZE = 20
CAPTION_SIZE = 20
TITLE_SIZE = 28

LEGEND: tuple[tuple[tuple[int, int, int] | None, bool, str], ...] = (
    (PREDICTION_COLOR, False, "prediction (the model's mask)"),
    (TARGET_COLOR, True, "ground truth (outline)"),
    (None, False, "IoU: overlap of the two, 100% = exact"),
)  # the key of a sheet: swatch colour (None: no swatch), whether the swatch is an outline, text

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont
Box = tuple[int, int, int, int]


def load_font(size: int) -> Font:
    """A TrueType font of ``size`` pixels: Pillow's bundled one (Pillow >= 10.1), else DejaVu Sans.

    Falls back to Pillow's small bitmap font only when neither TrueType font can be loaded.
    """
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, ImportError):  # Pillow < 10.1 has no size; without FreeType there is no TrueType
        try:
            return ImageFont.truetype("DejaVuSans.ttf", size)
        except OSError:
            return ImageFont.load_default()


def wrap_text(text: str, font: Font, width: int) -> list[str]:
    """``text`` broken at spaces into lines no wider than ``width`` pixels (a longer word keeps its own line)."""
    lines: list[str] = []
    for word in text.split():
        if lines and font.getlength(f"{lines[-1]} {word}") <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return lines


def _erode(mask: np.ndarray, steps: int) -> np.ndarray:
    """``mask`` shrunk by ``steps`` pixels (4-neighbourhood); outside the image counts as background."""
    for _ in range(steps):
        padded = np.pad(mask, 1)
        mask = mask & padded[2:, 1:-1] & padded[:-2, 1:-1] & padded[1:-1, 2:] & padded[1:-1, :-2]
    return mask


def _dilate(mask: np.ndarray, steps: int) -> np.ndarray:
    """``mask`` grown by ``steps`` pixels (4-neighbourhood)."""
    for _ in range(steps):
        padded = np.pad(mask, 1)
        mask = mask | padded[2:, 1:-1] | padded[:-2, 1:-1] | padded[1:-1, 2:] | padded[1:-1, :-2]
    return mask


def shrink_to(image: Image.Image, max_side: int) -> Image.Image:
    """``image`` scaled down (bilinear, after an integer box reduction for speed) so that its long side
    is at most ``max_side``; the image itself when it already fits."""
    if max(image.size) <= max_side:
        return image
    size = fit_size(image.width, image.height, (max_side, max_side))
    return image.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)


def _resize_mask(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    """An H x W bool ``mask`` at height x width, nearest-neighbour (pixel centres); itself if it has that shape."""
    if mask.shape == (height, width):
        return mask
    rows = ((np.arange(height) + 0.5) * (mask.shape[0] / height)).astype(np.int64)
    cols = ((np.arange(width) + 0.5) * (mask.shape[1] / width)).astype(np.int64)
    return mask[rows[:, None], cols]


def overlay_mask(
    image: Image.Image,
    mask: np.ndarray,
    color: tuple[int, int, int] = PREDICTION_COLOR,
    alpha: float = 0.5,
    thickness: int = 1,
    max_side: int | None = None,
) -> Image.Image:
    """``image`` with the bool ``mask`` tinted in ``color`` and outlined ``thickness`` pixels inside its edge.

    The picture is ``image`` (RGB), first shrunk with :func:`shrink_to` when ``max_side`` is given and
    its long side is longer. ``mask`` is H x W at the picture's size or at another size of the same
    aspect (a full-resolution mask over a shrunk image): it is then resized nearest-neighbour. The
    blend runs in uint8 through a lookup table (the values of the float blend, rounded), so a large
    image is never copied as floats.
    """
    picture = image if image.mode == "RGB" else image.convert("RGB")
    if max_side is not None:
        picture = shrink_to(picture, max_side)
    mask = _resize_mask(mask, picture.height, picture.width)
    levels = np.arange(256, dtype=np.float32)
    table = [np.round((1 - alpha) * levels + alpha * np.float32(value)).astype(np.uint8) for value in color]
    tinted = Image.composite(picture.point(np.concatenate(table).tolist()), picture, Image.fromarray(mask))
    tinted.paste(color, mask=Image.fromarray(mask & ~_erode(mask, thickness)))
    return tinted


def outline_mask(
    image: Image.Image, mask: np.ndarray, color: tuple[int, int, int] = TARGET_COLOR, thickness: int = 3
) -> Image.Image:
    """``image`` with a ``thickness``-pixel ring in ``color`` just outside the H x W bool ``mask``.

    A 1-pixel dark ring around it keeps the outline visible on objects of a similar colour.
    """
    out = np.array(image.convert("RGB"))
    ring = _dilate(mask, thickness)
    out[_dilate(ring, 1) & ~ring] = OUTLINE_BORDER
    out[ring & ~mask] = color
    return Image.fromarray(out)


def scale_nearest(
    image: Image.Image, masks: Sequence[np.ndarray], size: tuple[int, int]
) -> tuple[Image.Image, list[np.ndarray]]:
    """``image`` and its H x W bool ``masks`` resized to ``size`` (width, height) with nearest-neighbour."""
    scaled = [np.asarray(Image.fromarray(mask).resize(size, Image.Resampling.NEAREST)) for mask in masks]
    return image.resize(size, Image.Resampling.NEAREST), scaled


def panel_size(width: int, height: int, min_width: int = MIN_PANEL_WIDTH) -> tuple[int, int]:
    """The size of an image of ``width`` x ``height`` scaled up by the smallest whole factor to ``min_width``."""
    factor = max(1, math.ceil(min_width / width))
    return width * factor, height * factor


def fit_size(width: int, height: int, box: tuple[int, int]) -> tuple[int, int]:
    """The largest size of the shape of ``width`` x ``height`` that fits ``box`` (width, height)."""
    scale = min(box[0] / width, box[1] / height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def iou_label(iou: float | None) -> str:
    """``"prediction · IoU 83%"``, or ``"prediction"`` when the IoU is unknown."""
    return "prediction" if iou is None else f"prediction · IoU {iou:.0%}"


def quoted(sentence: str) -> str:
    """The sentence, its spaces collapsed, in typographic quotes: a caption."""
    return f"\N{LEFT DOUBLE QUOTATION MARK}{' '.join(sentence.split())}\N{RIGHT DOUBLE QUOTATION MARK}"


@dataclass(frozen=True)
class Tile:
    """A picture in a grid, with a ``label`` above it and an optional ``caption`` below.

    ``swatch``: the colour of a small filled square drawn before the label (a key to the picture's overlay).
    """

    picture: Image.Image
    label: str
    caption: str = ""
    swatch: tuple[int, int, int] | None = None


@dataclass
class Board:
    """A drawn figure and, row by row, the (left, top, right, bottom) box of every tile's picture in it."""

    image: Image.Image
    boxes: list[list[Box]] = field(default_factory=list)


def _text_height(font: Font) -> int:
    """The line height of ``font``: the height of its tallest and deepest glyphs, plus a little leading."""
    box = font.getbbox("Hg\N{LEFT DOUBLE QUOTATION MARK}")
    return box[3] + max(2, (box[3] - box[1]) // 4)


def _draw_swatch(
    draw: ImageDraw.ImageDraw, x: int, y: int, size: int, color: tuple[int, int, int], outlined: bool
) -> None:
    """A ``size``-pixel legend square at (x, y): filled with ``color``, or a 3-pixel outline of it."""
    if outlined:
        draw.rectangle((x - 1, y - 1, x + size, y + size), outline=OUTLINE_BORDER, width=1)
        draw.rectangle((x, y, x + size - 1, y + size - 1), outline=color, width=3)
    else:
        draw.rectangle((x, y, x + size - 1, y + size - 1), fill=color)


def draw_grid(
    rows: Sequence[Sequence[Tile]],
    cell_width: int,
    title: str = "",
    legend: bool = False,
    footer: str = "",
) -> Board:
    """Tiles in rows of cells ``cell_width`` wide, each picture under its label and above its caption.

    Every row is as tall as its tallest picture and its longest (wrapped) caption; pictures sit
    at the left of their cells. ``title`` (large) and, with ``legend``, a key to the colours go
    above the grid; ``footer`` (wrapped across the whole width) below it. Text never overlaps a
    picture.
    """
    label_font, caption_font, title_font = load_font(LABEL_SIZE), load_font(CAPTION_SIZE), load_font(TITLE_SIZE)
    label_height, caption_height = _text_height(label_font), _text_height(caption_font)
    columns = max(len(row) for row in rows)
    legend_width = sum(LABEL_SIZE + 6 + round(label_font.getlength(text)) + 2 * GAP for _, _, text in LEGEND)
    width = max(GAP + columns * (cell_width + GAP), 2 * GAP + legend_width if legend else 0)
    inner = width - 2 * GAP
    title_lines = wrap_text(title, title_font, inner)
    footer_lines = wrap_text(footer, caption_font, inner)
    captions = [[wrap_text(tile.caption, caption_font, cell_width) for tile in row] for row in rows]
    heights = [
        label_height + max(tile.picture.height for tile in row) + caption_height * max(map(len, lines)) + GAP // 2
        for row, lines in zip(rows, captions, strict=True)
    ]
    header = len(title_lines) * _text_height(title_font) + (label_height + GAP // 2 if legend else 0)
    height = GAP + header + sum(heights) + GAP * len(rows) + len(footer_lines) * caption_height
    canvas = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    y = GAP
    for line in title_lines:
        draw.text((GAP, y), line, font=title_font, fill=TEXT_COLOR)
        y += _text_height(title_font)
    if legend:
        y += GAP // 2
        x = GAP
        for color, outlined, text in LEGEND:
            if color is not None:
                _draw_swatch(draw, x, y + 2, LABEL_SIZE - 2, color, outlined)
            x += LABEL_SIZE + 6
            draw.text((x, y), text, font=label_font, fill=TEXT_COLOR)
            x += round(label_font.getlength(text)) + 2 * GAP
        y += label_height
    boxes = []
    for row, lines, row_height in zip(rows, captions, heights, strict=True):
        y += GAP
        picture_height = max(tile.picture.height for tile in row)
        row_boxes = []
        for column, (tile, caption) in enumerate(zip(row, lines, strict=True)):
            x = GAP + column * (cell_width + GAP)
            text_x = x
            if tile.swatch is not None:
                _draw_swatch(draw, x, y + 2, LABEL_SIZE - 2, tile.swatch, outlined=False)
                text_x += LABEL_SIZE + 6
            draw.text((text_x, y), tile.label, font=label_font, fill=TEXT_COLOR)
            top = y + label_height
            canvas.paste(tile.picture, (x, top))
            row_boxes.append((x, top, x + tile.picture.width, top + tile.picture.height))
            for index, line in enumerate(caption):
                draw.text(
                    (x, top + picture_height + GAP // 4 + index * caption_height),
                    line,
                    font=caption_font,
                    fill=TEXT_COLOR,
                )
        boxes.append(row_boxes)
        y += row_height
    for line in footer_lines:
        draw.text((GAP, y), line, font=caption_font, fill=TEXT_COLOR)
        y += caption_height
    return Board(canvas, boxes)


def draw_panel(
    image: Image.Image,
    prediction: np.ndarray,
    target: np.ndarray | None,
    sentence: str,
    iou: float | None = None,
    min_width: int = MIN_PANEL_WIDTH,
) -> Board:
    """The prediction (green) and, if given, the ground truth (orange) side by side, the sentence below.

    The image is scaled up by a whole factor (nearest-neighbour) to at least ``min_width`` pixels;
    the prediction's label states ``iou`` when given. One row of boxes: prediction, ground truth.
    """
    size = panel_size(image.width, image.height, min_width)
    masks = [prediction] if target is None else [prediction, target]
    scaled, (scaled_prediction, *scaled_target) = scale_nearest(image, masks, size)
    thickness = max(1, size[0] // image.width)

    def highlight(mask: np.ndarray, color: tuple[int, int, int]) -> Image.Image:
        """``mask`` tinted and ringed in ``color`` (the ring shows on objects of the same colour)."""
        return outline_mask(overlay_mask(scaled, mask, color, thickness=thickness), mask, color, thickness)

    tiles = [Tile(highlight(scaled_prediction, PREDICTION_COLOR), iou_label(iou), swatch=PREDICTION_COLOR)]
    if scaled_target:
        tiles.append(Tile(highlight(scaled_target[0], TARGET_COLOR), "ground truth", swatch=TARGET_COLOR))
    return draw_grid([tiles], cell_width=size[0], footer=quoted(sentence))


def prediction_panel(
    image: Image.Image,
    prediction: np.ndarray,
    target: np.ndarray | None,
    sentence: str,
    iou: float | None = None,
) -> Image.Image:
    """The image of :func:`draw_panel`: prediction and ground truth labelled side by side, the sentence below."""
    return draw_panel(image, prediction, target, sentence, iou).image


@dataclass(frozen=True)
class SheetCell:
    """One sentence on a sheet's image: the predicted and ground-truth H x W bool masks and the IoU."""

    sentence: str
    prediction: np.ndarray
    target: np.ndarray | None = None
    iou: float | None = None


@dataclass(frozen=True)
class SheetRow:
    """One image of a sheet, its name (the label of the plain image) and its sentences."""

    image: Image.Image
    name: str
    cells: Sequence[SheetCell]


def sheet_picture(image: Image.Image, prediction: np.ndarray, target: np.ndarray | None) -> Image.Image:
    """The prediction tinted green with, if given, the ground truth's orange outline around it, on ``image``."""
    picture = overlay_mask(image, prediction, thickness=2)
    return picture if target is None else outline_mask(picture, target, thickness=3)


def contact_sheet(
    rows: Sequence[SheetRow],
    title: str,
    cell_width: int = SHEET_CELL_WIDTH,
    cell_height: int = SHEET_CELL_HEIGHT,
) -> Board:
    """Per row, an image as it is and then one cell per sentence: its prediction, IoU and caption.

    Pictures are scaled (nearest-neighbour) to fit ``cell_width`` x ``cell_height``; a title and a
    colour key go on top. Boxes: per row, the plain image, then one per cell.
    """
    grid = []
    for row in rows:
        size = fit_size(row.image.width, row.image.height, (cell_width, cell_height))
        scaled, _ = scale_nearest(row.image, [], size)
        tiles = [Tile(scaled, row.name, caption="(input, no overlay)")]
        for cell in row.cells:
            masks = [cell.prediction] if cell.target is None else [cell.prediction, cell.target]
            _, (prediction, *target) = scale_nearest(row.image, masks, size)
            picture = sheet_picture(scaled, prediction, target[0] if target else None)
            tiles.append(Tile(picture, iou_label(cell.iou), quoted(cell.sentence), PREDICTION_COLOR))
        grid.append(tiles)
    return draw_grid(grid, cell_width, title=title, legend=True)
