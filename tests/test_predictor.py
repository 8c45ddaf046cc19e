import numpy as np
import pytest
import torch
from PIL import Image

from risam.data.transforms import preprocess_image
from risam.demo.examples import load_examples
from risam.predictor import MAX_EXPRESSIONS, ExpressionError, RISAMPredictor, mask_bbox
from sam_geometry import postprocess_logits


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
        near = np.abs(expected - 0.35) < 1e-6  # float rounding at the threshold may go either way
        np.testing.assert_array_equal(result.mask[~near], expected[~near] > 0.35)
        assert result.text == text and result.mask.shape == (90, 150) and result.mask.dtype == bool
        assert result.bbox == mask_bbox(result.mask)
        inside = expected[result.mask]
        assert result.score == pytest.approx(float(inside.mean()) if inside.size else 0.0, rel=1e-5)
        assert not hasattr(result, "probability")


def test_chunks_of_expressions_give_the_same_predictions(tiny_model, picture):
    texts = [f"the shape number {i}" for i in range(11)]
    predictor = RISAMPredictor(tiny_model, expression_chunk=4)
    predictor.set_image(picture)
    chunked = predictor.predict(texts)
    predictor.expression_chunk = 11
    whole = predictor.predict(texts)
    for one, other in zip(chunked, whole, strict=True):
        assert one.text == other.text and one.bbox == other.bbox
        np.testing.assert_array_equal(one.mask, other.mask)
        assert one.score == pytest.approx(other.score, rel=1e-5)


@pytest.mark.filterwarnings("ignore:precision bf16")  # emulated bf16 is slow, not wrong
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_a_mask_does_not_depend_on_the_other_expressions_of_the_call(precision):
    image, sentences = load_examples()[0]  # batched, bf16 moved 8 pixels of this first mask
    predictor = RISAMPredictor.from_pretrained(precision=precision)
    predictor.set_image(image)
    together = predictor.predict(sentences)
    for sentence, in_call in zip(sentences, together, strict=True):
        alone = predictor.predict(sentence)
        np.testing.assert_array_equal(alone.mask, in_call.mask)
        assert alone.score == in_call.score and alone.bbox == in_call.bbox


def test_the_number_of_expressions_is_bounded(tiny_model, picture):
    predictor = RISAMPredictor(tiny_model)
    predictor.set_image(picture)
    assert len(predictor.predict(["a shape"] * MAX_EXPRESSIONS)) == MAX_EXPRESSIONS
    with pytest.raises(ExpressionError, match=rf"^{MAX_EXPRESSIONS + 1} expressions given; at most {MAX_EXPRESSIONS}"):
        predictor.predict(["a shape"] * (MAX_EXPRESSIONS + 1))
    small = RISAMPredictor(tiny_model, max_expressions=2)
    small.set_image(picture)
    with pytest.raises(ExpressionError, match="at most 2 are segmented per request"):
        small.predict(["one", "two", "three"])


def test_encode_changes_no_state_and_set_encoded_restores_an_image(tiny_model, picture):
    predictor = RISAMPredictor(tiny_model)
    other = np.ascontiguousarray(picture[::-1, :60])
    encoded = predictor.encode(picture)
    assert predictor.encoded is None
    predictor.set_image(other)
    assert predictor.encoded.original_size == (90, 60)
    predictor.set_encoded(encoded)
    assert predictor.encoded is encoded
    fresh = RISAMPredictor(tiny_model)
    fresh.set_image(picture)
    np.testing.assert_array_equal(predictor.predict("the thing").mask, fresh.predict("the thing").mask)


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
        outputs.append(predictor.predict("the thing"))
    for output in outputs[1:]:
        np.testing.assert_array_equal(output.mask, outputs[0].mask)
        assert output.score == outputs[0].score


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
        assert predictor.predict(text).mask.shape == (90, 150)


def test_mask_bbox_by_hand():
    mask = np.zeros((5, 6), dtype=bool)
    assert mask_bbox(mask) is None
    mask[1:3, 2:5] = True
    assert mask_bbox(mask) == (2, 1, 4, 2)


def test_the_core_calls_take_the_image_and_leave_the_predictor_as_it_was(tiny_model, picture):
    from risam.data.transforms import logits_to_masks
    from risam.explain import explain

    predictor = RISAMPredictor(tiny_model)
    other = np.ascontiguousarray(picture[::-1, :60])
    encoded, kept = predictor.encode(picture), predictor.encode(other)
    predictor.set_encoded(kept)
    texts = ["the red circle", "the square on the left"]
    stateless = predictor.predict(texts, encoded)
    logits = predictor.predict_logits(texts, encoded)
    explanation = explain(predictor, texts[0], encoded=encoded)
    assert predictor.encoded is kept  # nothing of the predictor's changed
    fresh = RISAMPredictor(tiny_model)
    fresh.set_image(picture)
    expected = fresh.predict(texts)
    for ours, theirs in zip(stateless, expected, strict=True):
        np.testing.assert_array_equal(ours.mask, theirs.mask)
    np.testing.assert_array_equal(explanation.prediction.mask, expected[0].mask)
    size = tiny_model.image_encoder.config.img_size
    grid = encoded.visual.enhanced.shape[-1]
    assert logits.shape == (2, 4 * grid, 4 * grid)
    masks, _ = logits_to_masks(logits, size, encoded.resized_size, encoded.original_size, predictor.threshold)
    for mask, theirs in zip(masks, expected, strict=True):
        np.testing.assert_array_equal(mask, theirs.mask)
    assert not np.array_equal(predictor.predict(texts[0]).mask, expected[0].mask)  # the kept image is another
