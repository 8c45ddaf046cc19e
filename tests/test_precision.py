"""The frozen encoders' precision: what auto picks, and fp32 / bf16 through the library and the CLI."""

import json
import warnings

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from risam import create_model
from risam.cli import main
from risam.config import ConfigError
from risam.data.refshapes import generate_refshapes
from risam.demo.examples import load_examples
from risam.engine.experiment import place_model
from risam.info import model_info
from risam.io.config_files import load_config
from risam.precision import AUTO_PRECISION_ENV, choose_precision, cpu_bf16_features, warn_if_emulated
from risam.predictor import RISAMPredictor

AVX2_ONLY = {"cpu_name": "AMD EPYC", "avx2": True, "avx512_bf16": False, "amx_bf16": False}


@pytest.mark.parametrize(
    ("capabilities", "expected"),
    [
        (AVX2_ONLY, "fp32"),
        ({**AVX2_ONLY, "cpu_name": "Xeon", "avx512_bf16": True}, "bf16"),
        ({**AVX2_ONLY, "cpu_name": "Xeon", "amx_bf16": True}, "bf16"),
        ({"cpu_name": "old"}, "fp32"),
    ],
)
def test_auto_is_bf16_only_on_cpus_that_multiply_it_natively(capabilities, expected, monkeypatch):
    monkeypatch.delenv(AUTO_PRECISION_ENV, raising=False)  # the CPU decides, whatever --auto-precision says
    choice = choose_precision("auto", "cpu", capabilities)
    assert (choice.name, choice.requested) == (expected, "auto")
    assert choice.dtype == {"fp32": torch.float32, "bf16": torch.bfloat16}[expected]
    assert capabilities["cpu_name"] in choice.reason
    for feature in cpu_bf16_features(capabilities):
        assert feature in choice.reason
    if expected == "fp32":
        assert "neither amx_bf16 nor avx512_bf16" in choice.reason


def test_auto_on_this_machine_follows_its_cpu_and_info_says_so(capsys, monkeypatch):
    monkeypatch.delenv(AUTO_PRECISION_ENV, raising=False)
    choice = choose_precision("auto", "cpu")
    capabilities = torch.cpu.get_capabilities()
    assert (choice.name == "bf16") == bool(capabilities.get("amx_bf16") or capabilities.get("avx512_bf16"))
    assert model_info("risam_tiny")["precision_auto"]["cpu"] == {"precision": choice.name, "reason": choice.reason}
    assert main(["info", "risam_tiny"]) == 0
    assert f"precision auto on cpu: {choice.name} ({choice.reason})" in capsys.readouterr().out


@pytest.mark.parametrize("forced", ["fp32", "bf16"])
def test_auto_precision_env_forces_what_auto_resolves_to(forced, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv(AUTO_PRECISION_ENV, forced)
    for capabilities in (AVX2_ONLY, {**AVX2_ONLY, "amx_bf16": True}):
        choice = choose_precision("auto", "cpu", capabilities)
        assert (choice.name, choice.requested) == (forced, "auto")
        assert f"{AUTO_PRECISION_ENV}={forced} is set" in choice.reason
    assert choose_precision("fp32", "cpu").name == "fp32"  # an explicit precision is not overridden
    assert RISAMPredictor.from_pretrained(precision="auto").model.encoder_precision == forced
    monkeypatch.setenv(AUTO_PRECISION_ENV, "half")
    with pytest.raises(ConfigError, match=f"{AUTO_PRECISION_ENV}='half': expected fp32 or bf16"):
        choose_precision("auto", "cpu")
    image = tmp_path / "a.png"
    Image.new("RGB", (40, 30)).save(image)
    assert main(["segment", str(image), "a shape", "-o", str(tmp_path / "out")]) == 2
    assert f"{AUTO_PRECISION_ENV}='half'" in capsys.readouterr().err


def test_explicit_precisions_and_bad_values():
    assert choose_precision("fp32", "cpu", {**AVX2_ONLY, "amx_bf16": True}).name == "fp32"
    native = choose_precision("bf16", "cpu", {**AVX2_ONLY, "amx_bf16": True})
    emulated = choose_precision("bf16", "cpu", AVX2_ONLY)
    assert (native.name, native.native_bf16, emulated.name, emulated.native_bf16) == ("bf16", True, "bf16", False)
    assert emulated.reason.startswith("asked for bf16; ") and "bf16 matmuls would be emulated" in emulated.reason
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_if_emulated(native)
        warn_if_emulated(choose_precision("fp32", "cpu", AVX2_ONLY))
    with pytest.warns(UserWarning, match="precision bf16: asked for bf16; .* fp32 \\(or auto\\) runs faster here"):
        warn_if_emulated(emulated)
    with pytest.raises(ConfigError, match="precision='fp16': expected one of auto, fp32, bf16"):
        choose_precision("fp16")


def test_a_predictor_in_emulated_bf16_warns_once():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        predictor = RISAMPredictor.from_pretrained(precision="bf16")
    warned = [item for item in caught if "precision bf16" in str(item.message)]
    assert len(warned) == (0 if predictor.precision.native_bf16 else 1)


def _dtypes(module):
    return {p.dtype for p in module.parameters()}


@pytest.mark.filterwarnings("ignore:precision bf16")
def test_bf16_keeps_only_the_frozen_encoders_in_bf16():
    model = create_model("risam_tiny", precision="bf16")
    assert _dtypes(model.image_encoder) == _dtypes(model.text_encoder) == {torch.bfloat16}
    for part in (model.enhancement, model.fusion, model.decoder):
        assert _dtypes(part) == {torch.float32}
    assert {value.dtype for value in model.trainable_state_dict().values() if value.is_floating_point()} == {
        torch.float32
    }
    assert _dtypes(create_model("risam_tiny")) == {torch.float32}  # fp32 is create_model's default

    config = load_config("refshapes_tiny", ["train.encoder_precision=bf16"])
    placed = place_model(create_model("risam_tiny"), config, torch.device("cpu"))
    assert _dtypes(placed.image_encoder) == {torch.bfloat16} and _dtypes(placed.decoder) == {torch.float32}
    assert load_config("refshapes_tiny").train.encoder_precision == "fp32"  # recorded results stay reproducible
    with pytest.raises(ConfigError, match="encoder_precision"):
        load_config("refshapes_tiny", ["train.encoder_precision=half"])


@pytest.mark.filterwarnings("ignore:precision bf16")
def test_bf16_masks_agree_with_fp32_on_the_shipped_model():
    image, sentences = load_examples()[0]
    masks = {}
    for precision in ("fp32", "bf16"):
        predictor = RISAMPredictor.from_pretrained(precision=precision)
        assert predictor.precision.name == precision
        predictor.set_image(image)
        masks[precision] = np.stack([p.mask for p in predictor.predict(sentences)])
    assert masks["fp32"].any()
    differing = np.mean(masks["fp32"] != masks["bf16"])
    assert differing < 0.01, differing


@pytest.mark.filterwarnings("ignore:precision bf16")
def test_cli_precision_reaches_segment_train_and_evaluate(tmp_path, capsys):
    image, sentences = load_examples()[0]
    assert main(["segment", str(image), sentences[0], "-o", str(tmp_path / "out"), "--precision", "bf16"]) == 0
    assert json.loads((tmp_path / "out" / "predictions.json").read_text())["precision"] == "bf16"
    with pytest.raises(SystemExit) as exit_info:
        main(["segment", str(image), "a shape", "-o", str(tmp_path / "out"), "--precision", "half"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'half'" in capsys.readouterr().err

    data = tmp_path / "data"
    generate_refshapes(data, num_images=8, seed=4)
    run = tmp_path / "run"
    settings = [f"data.root={data}", f"train.output_dir={run}", "train.max_steps=1", "train.progress=false"]
    train_args = ["train", "--config", "refshapes_tiny", "--precision", "bf16"]
    assert main(train_args + [part for item in settings for part in ("--set", item)]) == 0
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["encoder_precision"] == "bf16"
    checkpoint = str(run / "checkpoints" / "last.safetensors")
    evaluate = ["evaluate", "--config", str(run / "config.yaml"), "--checkpoint", checkpoint, "--split", "val"]
    for precision in ("fp32", "bf16"):
        output = tmp_path / f"results_{precision}.json"
        assert main([*evaluate, "--precision", precision, "--output", str(output)]) == 0
        results = json.loads(output.read_text())
        assert results["encoder_precision"] == precision and results["num_samples"] > 0
    assert main([*evaluate, "--output", str(tmp_path / "results.json")]) == 0  # the config's bf16
    assert json.loads((tmp_path / "results.json").read_text())["encoder_precision"] == "bf16"

    figure = tmp_path / "explain.png"
    assert main(["explain", str(image), sentences[0], "-o", str(figure), "--precision", "bf16"]) == 0
    assert figure.stat().st_size > 0


def test_frozen_encoders_run_in_their_own_precision_under_autocast():
    model = create_model("risam_tiny").eval()
    images = torch.randn(2, 3, 128, 128, generator=torch.Generator().manual_seed(0))
    tokens = model.text_encoder.tokenize(["the red circle", "the second square from the left"])
    taps, (words, _) = model.image_taps(images), model.encode_text(tokens)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # as training and evaluation run the head on CUDA
        autocast_taps, (autocast_words, _) = model.image_taps(images), model.encode_text(tokens)
    for exact, under_autocast in zip([*taps, words], [*autocast_taps, autocast_words], strict=True):
        assert under_autocast.dtype == torch.float32
        torch.testing.assert_close(under_autocast, exact, rtol=0, atol=0)


@pytest.mark.filterwarnings("ignore:precision bf16")
def test_a_precision_chosen_once_is_what_the_model_and_the_predictor_use():
    choice = choose_precision("bf16", "cpu")
    model = create_model("risam_tiny", precision=choice)
    assert _dtypes(model.image_encoder) == {torch.bfloat16}
    predictor = RISAMPredictor(model, precision=choice)
    assert predictor.precision is choice  # taken as given, not chosen again
    assert RISAMPredictor(create_model("risam_tiny"), precision="fp32").precision.name == "fp32"
