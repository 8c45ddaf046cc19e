import json
import os
import stat

import numpy as np
import pytest
from PIL import Image

from risam.data.masks import decode_segmentation
from risam.drawing.segment_output import OVERLAY_MAX_SIDE, valid_utf8, write_segmentation
from risam.drawing.viz import overlay_mask, shrink_to
from risam.predictor import Prediction, mask_bbox


def _prediction(text: str, mask: np.ndarray, score: float = 0.75) -> Prediction:
    return Prediction(text, mask, score, mask_bbox(mask))


@pytest.fixture
def wide_image():
    """A 3000 x 120 image: wider than the overlays' bound, cheap to make."""
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (120, 3000, 3), dtype=np.uint8))


def test_full_resolution_masks_shrunk_overlays_and_json(tmp_path, wide_image):
    first = np.zeros((120, 3000), dtype=bool)
    first[10:90, 100:2500] = True
    second = np.zeros_like(first)
    predictions = [_prediction("the long bar", first, 0.8), _prediction("nothing", second, 0.0)]
    records = write_segmentation(wide_image, predictions, tmp_path / "out", "photo.png", "tiny.safetensors")
    summary = json.loads((tmp_path / "out" / "predictions.json").read_text(encoding="utf-8"))
    assert summary["predictions"] == json.loads(json.dumps(records))
    assert (summary["image"], summary["checkpoint"]) == ("photo.png", "tiny.safetensors")
    assert summary["image_size"] == [3000, 120] and summary["overlay_max_side"] == OVERLAY_MAX_SIDE
    for index, (record, prediction) in enumerate(zip(records, predictions, strict=True)):
        assert (record["mask"], record["overlay"]) == (f"{index:02d}_mask.png", f"{index:02d}_overlay.jpg")
        assert (record["text"], record["score"], record["bbox"]) == (prediction.text, prediction.score, prediction.bbox)
        with Image.open(tmp_path / "out" / record["mask"]) as mask:
            assert mask.mode == "1" and mask.size == (3000, 120)
            np.testing.assert_array_equal(np.asarray(mask), prediction.mask)
        np.testing.assert_array_equal(decode_segmentation(record["rle"], 120, 3000, "rle"), prediction.mask)
        with Image.open(tmp_path / "out" / record["overlay"]) as overlay:
            assert overlay.format == "JPEG" and overlay.mode == "RGB"
            assert overlay.size == (OVERLAY_MAX_SIDE, 82) and record["overlay_size"] == [OVERLAY_MAX_SIDE, 82]
            shown = np.asarray(overlay).astype(float)
        expected = np.asarray(overlay_mask(shrink_to(wide_image, OVERLAY_MAX_SIDE), prediction.mask)).astype(float)
        plain = np.asarray(shrink_to(wide_image, OVERLAY_MAX_SIDE)).astype(float)
        # JPEG is lossy: the overlay is near the exact blend, and much nearer to it than to the untinted image
        # wherever the mask tints it
        assert np.abs(shown - expected).mean() < 10  # on this random noise, the worst case for JPEG
        if prediction.mask.any():
            assert np.abs(shown - expected).mean() < np.abs(shown - plain).mean() / 3
    assert records[1]["bbox"] is None


def test_texts_that_are_not_utf8_are_replaced_and_json_is_valid_utf8(tmp_path):
    image = Image.new("RGB", (16, 12), (10, 20, 30))
    mask = np.zeros((12, 16), dtype=bool)
    texts = [os.fsdecode(b"caf\xe9 au lait"), "a\ud800b", "左边的狗 🐶"]
    records = write_segmentation(image, [_prediction(t, mask) for t in texts], tmp_path, "x\udcff.png", "m")
    raw = (tmp_path / "predictions.json").read_bytes().decode("utf-8")  # strict: raises on invalid UTF-8
    summary = json.loads(raw)
    assert [r["text"] for r in summary["predictions"]] == ["caf\ufffd au lait", "a\ufffd\ufffd\ufffdb", "左边的狗 🐶"]
    assert summary["image"] == "x\ufffd.png" and [r["text"] for r in records] == [valid_utf8(t) for t in texts]


@pytest.mark.parametrize("umask", [0o022, 0o007])
def test_files_are_written_whole_with_the_process_umask(tmp_path, umask):
    image = Image.new("RGB", (8, 8))
    mask = np.ones((8, 8), dtype=bool)
    previous = os.umask(umask)
    try:
        write_segmentation(image, [_prediction("all", mask)], tmp_path, "i.png", "m")
    finally:
        os.umask(previous)
    names = sorted(path.name for path in tmp_path.iterdir())
    assert names == ["00_mask.png", "00_overlay.jpg", "predictions.json"]  # no temporary file left
    for name in names:
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o666 & ~umask
