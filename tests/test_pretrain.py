"""The shipped tiny encoders and the command that makes them (``risam pretrain-tiny``)."""

import json

import pytest
import safetensors.torch
import torch

from risam import __version__, create_model
from risam.cli import main
from risam.config import ConfigError
from risam.io.weights import NOT_ARCHITECTURE, encoder_architecture, encoders_metadata, load_encoders
from risam.pretrain.image import DenseReadout, dense_accuracy, pretrain_image_encoder
from risam.pretrain.scenes import IGNORE, build_pretraining_set
from risam.registry.create import load_shipped_encoders
from risam.registry.files import shipped_encoders_path
from risam.registry.names import get_config


def test_shipped_encoders_load_and_record_how_they_were_made():
    path = shipped_encoders_path("risam_tiny")
    assert path.stat().st_size <= 10 * 1024 * 1024
    metadata = encoders_metadata(path)
    # The shipped file was written when the attention chunk was recorded too; it is not architecture.
    recorded = {
        part: {key: value for key, value in section.items() if key not in NOT_ARCHITECTURE}
        for part, section in json.loads(metadata["config"]).items()
    }
    config = get_config("risam_tiny")
    # A field added after the file was made is not recorded there and holds its default (load_shipped_encoders).
    added_later = {"image_encoder": {"high_res_features": False}}
    assert {part: {**section, **added_later.get(part, {})} for part, section in recorded.items()} == {
        "image_encoder": encoder_architecture(config.image_encoder),
        "text_encoder": encoder_architecture(config.text_encoder),
    }
    assert (
        metadata["command"].startswith("risam pretrain-tiny ") and f"--seed {metadata['seed']}" in metadata["command"]
    )
    assert int(metadata["seed"]) >= 100 and metadata["risam_version"] == __version__
    scores = json.loads(metadata["scores"])
    assert scores["image"]["colour_accuracy"] > 0.9 and scores["image"]["kind_accuracy"] > 0.5
    assert scores["text"]["own_image_accuracy"] > 0.7

    _, tensors = load_encoders(path)
    model = create_model("risam_tiny")
    assert model.frozen_parts == ("image_encoder", "text_encoder")
    for part in ("image_encoder", "text_encoder"):
        for key, value in getattr(model, part).state_dict().items():
            assert torch.equal(value, tensors[f"{part}.{key}"].to(value.dtype)), key
    random = create_model("risam_tiny", pretrained=False)
    weight = "vit.blocks.0.attn.qkv.weight"
    assert not torch.equal(random.image_encoder.state_dict()[weight], model.image_encoder.state_dict()[weight])


def test_shipped_encoders_refuse_another_architecture():
    model = create_model("risam_tiny", overrides={"image_encoder.patch_size": 16}, pretrained=False)
    with pytest.raises(ConfigError, match=r"image_encoder\.patch_size=16 \(file: 8\).*pretrained=False"):
        load_shipped_encoders(model, shipped_encoders_path("risam_tiny"))
    with pytest.warns(UserWarning, match=r"patch_size=16 \(file: 8\); the image encoder keeps random weights"):
        mixed = create_model("risam_tiny", overrides={"image_encoder.patch_size": 16})
    _, tensors = load_encoders(shipped_encoders_path("risam_tiny"))
    for key, value in mixed.text_encoder.state_dict().items():
        assert torch.equal(value, tensors[f"text_encoder.{key}"].to(value.dtype)), key


def test_pretraining_labels_follow_the_generated_scenes():
    config = get_config("risam_tiny").image_encoder
    data = build_pretraining_set(6, seed=123, img_size=128, label_grid=64, feature_grid=16,
                                 pixel_mean=config.pixel_mean, pixel_std=config.pixel_std)  # fmt: skip
    assert data.images.shape == (6, 3, 128, 128)
    kind, colour, instance = data.labels["kind"], data.labels["colour"], data.labels["instance"]
    assert ((kind > 0) == (colour != IGNORE)).all() and ((kind > 0) == (instance != IGNORE)).all()
    assert set(data.object_image.tolist()) == set(range(6))
    # Each object's cells in the label map belong to its own image, and every sentence's target is one of them.
    for row in range(len(data.object_image)):
        image = int(data.object_image[row])
        assert (instance[image] == row).any()
    assert all(data.object_image[target] < 6 for target in data.sentence_object)
    # Centres lie inside the padded frame and inside their own object's cells on average.
    assert ((data.centres >= 0) & (data.centres <= 1)).all()
    assert len(data.sentences) == len(data.sentence_object) >= 6 * 7


def test_a_few_pretraining_steps_lower_the_dense_loss():
    torch.manual_seed(0)
    model = create_model("risam_tiny", pretrained=False)
    config = model.image_encoder.config
    data = build_pretraining_set(8, seed=321, img_size=128, label_grid=64, feature_grid=16,
                                 pixel_mean=config.pixel_mean, pixel_std=config.pixel_std)  # fmt: skip
    rows = torch.arange(8)
    torch.manual_seed(0)
    before = dense_accuracy(model.image_encoder, DenseReadout((64, 64, 64), 64), data, rows)
    after = pretrain_image_encoder(model.image_encoder, (64, 64, 64), data, rows, rows, steps=40, batch_images=8,
                                   lr=3e-3, log=lambda line: None)  # fmt: skip
    assert after["colour_accuracy"] > max(before["colour_accuracy"], 0.5)
    assert after["centre_error_px"] < before["centre_error_px"]


def test_pretrain_command_writes_a_loadable_file_and_resumes(tmp_path, capsys):
    out = tmp_path / "pretrain"
    args = ["pretrain-tiny", "--out", str(out), "--seed", "77", "--images", "24", "--image-steps", "3",
            "--text-steps", "3"]  # fmt: skip
    assert main(args) == 0
    path = out / "risam_tiny_encoders.safetensors"
    metadata = encoders_metadata(path)
    assert (
        metadata["command"] == f"risam pretrain-tiny --out {out} --seed 77 --images 24 --image-steps 3 --text-steps 3"
    )
    model = create_model("risam_tiny", pretrained=False)
    load_shipped_encoders(model, path)
    stage = safetensors.torch.load_file(str(out / "image_encoder.safetensors"))
    for key, value in model.image_encoder.state_dict().items():
        expected = stage[key].half().float() if value.is_floating_point() else stage[key]
        assert torch.equal(value, expected), key
    # A second run resumes the finished image stage instead of training it again.
    assert main(args) == 0
    assert "image encoder: resumed from" in (out / "pretrain.log").read_text()
    assert "tiny encoders written to" in capsys.readouterr().out
