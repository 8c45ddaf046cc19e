from types import SimpleNamespace

import numpy as np
import torch
from PIL import Image
from segment_anything.modeling import Sam
from segment_anything.utils.transforms import ResizeLongestSide

from risam.configs import SAM_PIXEL_MEAN, SAM_PIXEL_STD
from risam.data.transforms import postprocess_logits, preprocess_image, preprocess_mask, resized_shape


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
