from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from segment_anything.modeling import Sam
from segment_anything.utils.transforms import ResizeLongestSide

from risam.config import SAM_PIXEL_MEAN, SAM_PIXEL_STD
from risam.data.transforms import (
    logit_threshold,
    logits_to_masks,
    preprocess_image,
    preprocess_mask,
    resized_shape,
)
from sam_geometry import postprocess_logits


def test_resized_shape_follows_sam():
    for height, width in [(480, 640), (427, 640), (640, 427), (1, 1), (333, 1000), (1024, 1024)]:
        assert resized_shape(height, width, 1024) == ResizeLongestSide.get_preprocess_shape(height, width, 1024)
    assert resized_shape(427, 640, 1024) == (683, 1024)


def test_preprocess_image_equals_sam_preprocessing():
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(75, 130, 3), dtype=np.uint8)
    tensor, content = preprocess_image(Image.fromarray(pixels), 128, SAM_PIXEL_MEAN, SAM_PIXEL_STD)

    resized = torch.from_numpy(ResizeLongestSide(128).apply_image(pixels)).permute(2, 0, 1).float()
    mean = torch.tensor(SAM_PIXEL_MEAN)[:, None, None]
    std = torch.tensor(SAM_PIXEL_STD)[:, None, None]
    expected = torch.nn.functional.pad((resized - mean) / std, (0, 128 - resized.shape[2], 0, 128 - resized.shape[1]))
    assert content == (74, 128)
    torch.testing.assert_close(tensor, expected, atol=1e-6, rtol=0)
    assert torch.all(tensor[:, 74:, :] == 0)


def test_mask_follows_the_image_geometry():
    mask = np.zeros((60, 100), dtype=bool)
    mask[10:30, 50:90] = True
    out = preprocess_mask(mask, 200)
    assert out.shape == (200, 200)
    assert out.sum() == (2 * 20) * (2 * 40)
    assert out[20:60, 100:180].all()
    assert out[120:].sum() == 0  # padding below the 120-row content


def test_postprocess_equals_sam_and_inverts_preprocessing():
    original = np.zeros((75, 130), dtype=bool)
    original[20:60, 30:110] = True
    size = 128
    content = resized_shape(75, 130, size)
    low_res = torch.nn.functional.avg_pool2d(preprocess_mask(original, size)[None, None], 4)[0, 0] * 20 - 10

    ours = postprocess_logits(low_res, size, content, (75, 130))
    sam = Sam.postprocess_masks(
        SimpleNamespace(image_encoder=SimpleNamespace(img_size=size)), low_res[None, None], content, (75, 130)
    )[0, 0]
    torch.testing.assert_close(ours, sam)
    predicted = (torch.sigmoid(ours) > 0.35).numpy()
    iou = (predicted & original).sum() / (predicted | original).sum()
    assert iou > 0.95


@pytest.mark.parametrize(
    "original",
    [(75, 130), (30, 19), (111, 193), (1000, 79), (64, 40), (5, 3), (1, 1), (20, 2000), (257, 255)],
)
@pytest.mark.parametrize("band_elements", [37, 1 << 18])
def test_logits_to_masks_equals_thresholding_the_postprocessed_probability(original, band_elements):
    # Upsampling, downsampling, the content size itself (64 x 40), odd sizes, extreme aspect ratios,
    # one band and many bands (37 pixels: one row, or a piece of one, per band).
    size = 64
    content = resized_shape(*original, size)
    logits = torch.randn(3, 16, 16, generator=torch.Generator().manual_seed(sum(original))) * 4
    for threshold in (0.35, 0.9, 0.0, 1.0, -0.5, 1.5):
        masks, scores = logits_to_masks(logits, size, content, original, threshold, band_elements=band_elements)
        assert masks.shape == (3, *original) and masks.dtype == bool and scores.shape == (3,)
        for mask, score, row in zip(masks, scores, logits, strict=True):
            full = postprocess_logits(row, size, content, original)
            probability = torch.sigmoid(full).numpy()
            near = np.abs(full.numpy() - logit_threshold(threshold)) < 1e-4  # rounding may go either way
            assert near.mean() < 0.01
            np.testing.assert_array_equal(mask[~near], probability[~near] > threshold)
            inside = probability[mask].astype(np.float64)
            assert score == pytest.approx(inside.mean() if inside.size else 0.0, rel=1e-5, abs=1e-7)


def test_thresholds_outside_zero_one_select_every_pixel_or_none():
    assert logit_threshold(0.5) == 0 and logit_threshold(0.0) == -np.inf and logit_threshold(1.0) == np.inf
    assert logit_threshold(-2.0) == -np.inf and logit_threshold(7.0) == np.inf
    assert logit_threshold(0.35) == pytest.approx(np.log(0.35 / 0.65))
    with pytest.raises(ValueError, match="NaN"):
        logit_threshold(float("nan"))
    logits = torch.full((1, 8, 8), -40.0)  # sigmoid underflows to 0 in float32; still inside at threshold 0
    masks, scores = logits_to_masks(logits, 32, (32, 20), (50, 31), 0.0)
    assert masks.all() and scores[0] == pytest.approx(0.0, abs=1e-12)
    masks, scores = logits_to_masks(torch.full((1, 8, 8), 40.0), 32, (32, 20), (50, 31), 1.0)
    assert not masks.any() and scores[0] == 0.0
