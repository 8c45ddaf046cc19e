import numpy as np
import pytest
import torch
from PIL import Image

from risam.data.transforms import postprocess_logits, preprocess_image
from risam.predictor import ExpressionError, RISAMPredictor, mask_bbox


@pytest.fixture
def picture():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(90, 150, 3), dtype=np.uint8)


def test_predict_equals_the_full_forward_pass(tiny_model, picture):
    predictor = RISAMPredictor(tiny_model)
    predictor.set_image(picture)
    texts = ["the red circle on the left", "the second square"]
    results = predictor.predict(texts)
    config = tiny_model.image_encoder.config
    tensor, resized = preprocess_image(Image.fromarray(picture), config.img_size, config.pixel_mean, config.pixel_std)
    with torch.no_grad():
        logits = tiny_model(tensor[None].expand(2, -1, -1, -1), tiny_model.text_encoder.tokenize(texts))
    for result, row, text in zip(results, logits, texts, strict=True):
        expected = torch.sigmoid(postprocess_logits(row, config.img_size, resized, (90, 150))).numpy()
        np.testing.assert_allclose(result.probability, expected, atol=1e-5)
        np.testing.assert_array_equal(result.mask, expected > 0.35)
        assert result.text == text and result.mask.shape == (90, 150)
        assert result.bbox == mask_bbox(result.mask)
        if result.mask.any():
            assert result.score == pytest.approx(float(expected[expected > 0.35].mean()), rel=1e-5)


def test_image_is_encoded_once_for_many_expressions(tiny_model, picture):
    calls = []
    tiny_model.image_encoder.register_forward_hook(lambda module, args, out: calls.append(args[0].shape[0]))
    predictor = RISAMPredictor(tiny_model)
    predictor.set_image(picture)
    single = predictor.predict("a shape")
    predictor.predict(["one", "two", "three"])
    assert calls == [1]
    assert not isinstance(single, list)


def test_paths_pil_and_arrays_give_the_same_result(tiny_model, picture, tmp_path):
    path = tmp_path / "picture.png"
    Image.fromarray(picture).save(path)
    predictor = RISAMPredictor(tiny_model)
    outputs = []
    for source in (picture, Image.fromarray(picture), path, str(path)):
        predictor.set_image(source)
        outputs.append(predictor.predict("the thing").probability)
    for output in outputs[1:]:
        np.testing.assert_array_equal(output, outputs[0])


def test_expressions_users_send(tiny_model, picture):
    predictor = RISAMPredictor(tiny_model)
    with pytest.raises(RuntimeError, match="set_image"):
        predictor.predict("too early")
    predictor.set_image(picture)
    for empty in ("", "   \n", []):
        with pytest.raises(ExpressionError):
            predictor.predict(empty)
    with pytest.warns(UserWarning, match="truncated to the model's 17"):
        long = predictor.predict(" ".join(["word"] * 200))
    assert long.mask.shape == (90, 150)
    for text in ("the 🐶 on the left", "左边的狗", "собака слева"):
        assert predictor.predict(text).probability.shape == (90, 150)


def test_mask_bbox_by_hand():
    mask = np.zeros((5, 6), dtype=bool)
    assert mask_bbox(mask) is None
    mask[1:3, 2:5] = True
    assert mask_bbox(mask) == (2, 1, 4, 2)
