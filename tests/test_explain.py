import numpy as np
import pytest
import torch
from PIL import Image

from risam.cli import main
from risam.explain import ExplainError, explain, render_explanation
from risam.predictor import RISAMPredictor


@pytest.fixture
def predictor(tiny_model):
    predictor = RISAMPredictor(tiny_model)
    image = np.random.default_rng(2).integers(0, 256, size=(64, 128, 3), dtype=np.uint8)
    predictor.set_image(image)
    return predictor


def test_maps_and_weights_are_the_models_attention(predictor):
    text = "the small green ring"
    result = explain(predictor, text, pixel=(100, 10))
    assert result.words == ["<start>", "the", "small", "green", "ring", "<end>"]
    assert result.word_maps.shape == (6, 64, 128)
    model = predictor.model
    tokens = model.text_encoder.tokenize([text])
    with torch.no_grad():
        features, padding = model.encode_text(tokens)
        _, outputs = model.decode(predictor.encoded.visual, features, padding, return_attention=True)
    # 128 x 64 -> content of 128 x 64 in the 128 x 128 input: grid x grid/2 of the grid x grid feature cells.
    grid = model.image_encoder.config.feature_size
    row, col = 10 * (grid // 2) // 64, 100 * grid // 128
    np.testing.assert_allclose(
        result.word_weights, outputs[-1].vision_guided[0, row * grid + col, :6].numpy(), rtol=1e-6
    )
    assert result.word_weights.sum() == pytest.approx(1.0, abs=1e-5) or result.word_weights.sum() == 0
    first_word = outputs[-1].language_guided[0, 1].reshape(grid, grid)[: grid // 2, :]
    # The map over the image is the word's attention over the content cells, upsampled.
    coarse = torch.nn.functional.avg_pool2d(torch.from_numpy(result.word_maps[1])[None, None], 128 // grid)[0, 0]
    assert torch.corrcoef(torch.stack([coarse.flatten(), first_word.flatten()]))[0, 1] > 0.9


def test_default_pixel_is_the_mask_centre(predictor):
    result = explain(predictor, "a shape")
    ys, xs = np.nonzero(result.prediction.mask)
    expected = (int(xs.mean()), int(ys.mean())) if xs.size else (64, 32)
    assert result.pixel == expected
    with pytest.raises(ExplainError, match="outside"):
        explain(predictor, "a shape", pixel=(500, 5))


def test_figure_and_cli(predictor, tmp_path):
    image = Image.fromarray(np.random.default_rng(2).integers(0, 256, size=(64, 128, 3), dtype=np.uint8))
    figure = render_explanation(image, explain(predictor, "the dog"))
    assert figure.width >= 4 * 128 and figure.height > 64
    from risam import get_config, save_weights

    weights = tmp_path / "tiny.safetensors"
    model = predictor.model
    save_weights(model.trainable_state_dict(), get_config("risam_tiny"), weights)
    image.save(tmp_path / "photo.png")
    out = tmp_path / "figure.png"
    code = main(["explain", "--checkpoint", str(weights), str(tmp_path / "photo.png"), "the dog", "-o", str(out)])
    assert code == 0 and Image.open(out).width == figure.width
