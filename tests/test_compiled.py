"""--compile: the image encoder through torch.compile, equal to eager, and eager where compiling fails."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
import torch._inductor.config

from risam.cli import main
from risam.data.refshapes import generate_refshapes
from risam.demo.examples import load_examples
from risam.modeling.compiled import compile_or_eager
from risam.predictor import RISAMPredictor


@pytest.fixture
def broken_compiler(monkeypatch):
    """Inductor's C++ compiler set to a file that does not exist: every compile fails."""
    monkeypatch.setattr(torch._inductor.config.cpp, "cxx", ("/nonexistent/c++",))
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def test_compiled_predictor_gives_the_eager_masks():
    image, sentences = load_examples()[0]
    eager = RISAMPredictor.from_pretrained(precision="fp32")
    compiled = RISAMPredictor.from_pretrained(precision="fp32", compile=True)
    assert list(compiled.model.state_dict()) == list(eager.model.state_dict())  # keys as saved, no _orig_mod
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a fallback to eager would warn
        eager.set_image(image)
        compiled.set_image(image)
    torch.testing.assert_close(compiled.encoded.visual.enhanced, eager.encoded.visual.enhanced, atol=1e-5, rtol=0)
    for ours, theirs in zip(compiled.predict(sentences), eager.predict(sentences), strict=True):
        assert np.mean(ours.mask != theirs.mask) < 1e-4


def test_failed_compile_warns_once_and_runs_eager(broken_compiler):
    module = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.GELU())
    x = torch.randn(2, 4, generator=torch.Generator().manual_seed(0))
    expected = module(x)
    compile_or_eager(module, "test encoder")
    expected_warning = r"torch.compile of the test encoder failed \(.*C\+\+ compiler.*\); it runs eager"
    with pytest.warns(UserWarning, match=expected_warning):
        torch.testing.assert_close(module(x), expected, atol=0, rtol=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once: the next calls are eager without a word
        torch.testing.assert_close(module(x), expected, atol=0, rtol=0)
    assert list(module.state_dict()) == ["0.weight", "0.bias"]


def test_a_modules_own_error_is_not_taken_for_a_failed_compile():
    predictor = RISAMPredictor.from_pretrained(precision="fp32", compile=True)
    encoder = predictor.model.image_encoder
    with pytest.raises(ValueError, match=r"expects images .* of shape \(B, 3, 128, 128\)"):
        encoder(torch.zeros(1, 3, 64, 64))


def test_evaluate_compile_with_a_failed_compile_gives_the_eager_results(tmp_path, tiny_weights, broken_compiler):
    data = tmp_path / "data"
    generate_refshapes(data, num_images=6, seed=3)
    base = ["evaluate", "--config", "refshapes_tiny", "--checkpoint", str(tiny_weights), "--split", "val"]
    base += ["--set", f"data.root={data}", "--set", "train.progress=false", "--precision", "fp32"]
    assert main([*base, "--output", str(tmp_path / "eager.json")]) == 0
    with pytest.warns(UserWarning, match="torch.compile of the image encoder failed"):
        assert main([*base, "--compile", "--output", str(tmp_path / "compiled.json")]) == 0
    eager, compiled = (json.loads((tmp_path / f"{name}.json").read_text()) for name in ("eager", "compiled"))
    assert compiled["num_samples"] == eager["num_samples"] > 0
    assert compiled["overall_iou"] == eager["overall_iou"] and compiled["mean_iou"] == eager["mean_iou"]
