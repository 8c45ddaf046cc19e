import json
import os

import pytest
import safetensors.torch
import torch

from risam import create_model, get_config, load_weights, save_weights
from risam.config import ConfigError, RISAMConfig
from risam.io.state_dict import CheckpointError
from risam.io.weights import ENCODERS_FORMAT, load_encoders


def _trained_tiny(tmp_path):
    torch.manual_seed(0)
    model = create_model("risam_tiny")
    with torch.no_grad():
        for param in model.parameters():
            if param.requires_grad:
                param.add_(torch.randn_like(param) * 0.1)
    model.decoder.upsample[1].running_mean.normal_()
    path = tmp_path / "tiny.safetensors"
    save_weights(model.trainable_state_dict(), get_config("risam_tiny"), path)
    return model, path


def test_weights_file_holds_only_trainable_parts_and_rebuilds_the_model(tmp_path):
    model, path = _trained_tiny(tmp_path)
    config, state = load_weights(path)
    assert config == get_config("risam_tiny")
    assert not any(key.startswith(("image_encoder.", "text_encoder.")) for key in state)
    assert "decoder.upsample.1.running_mean" in state

    loaded = create_model(checkpoint=path).eval()  # the same shipped frozen encoders as the saved model
    model.eval()
    images = torch.randn(2, 3, 128, 128)
    tokens = model.text_encoder.tokenize(["a red square", "the left one"])
    with torch.no_grad():
        torch.testing.assert_close(loaded(images, tokens), model(images, tokens), atol=0, rtol=0)


def test_loading_without_encoder_files_warns(tmp_path):
    _, path = _trained_tiny(tmp_path)
    with pytest.warns(UserWarning, match="they keep random weights unless you pass") as record:
        create_model(checkpoint=path, pretrained=False)
    messages = " ".join(str(warning.message) for warning in record)
    assert "sam_checkpoint=" in messages and "clip_checkpoint=" in messages


def test_config_travels_with_the_weights(tmp_path):
    model = create_model("risam_tiny", overrides={"head.tau": 0.2, "head.num_ma_blocks": 3})
    path = tmp_path / "tau.safetensors"
    save_weights(
        model.trainable_state_dict(),
        get_config("risam_tiny", {"head.tau": 0.2, "head.num_ma_blocks": 3}),
        path,
    )
    loaded = create_model(checkpoint=path)
    assert len(loaded.fusion) == 3 and loaded.fusion[0].tau == 0.2


def test_missing_unexpected_and_misshaped_keys_are_named(tmp_path):
    _, path = _trained_tiny(tmp_path)
    _, state = load_weights(path)
    metadata = {"format": "risam.weights/1", "config": json.dumps(get_config("risam_tiny").to_dict())}
    state.pop("decoder.query_token")
    state["decoder.extra_weight"] = torch.zeros(3)
    state["enhancement.mlp_deep.fc1.bias"] = torch.zeros(7)
    broken = tmp_path / "broken.safetensors"
    safetensors.torch.save_file(state, str(broken), metadata=metadata)
    with pytest.raises(CheckpointError) as error:
        create_model(checkpoint=broken)
    message = str(error.value)
    assert str(broken) in message
    assert "missing keys (1): decoder.query_token" in message
    assert "unexpected keys (1): decoder.extra_weight" in message
    assert "enhancement.mlp_deep.fc1.bias: file (7,), model (64,)" in message


def test_bad_files_are_refused_with_their_name(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nowhere\.safetensors"):
        create_model(checkpoint=tmp_path / "nowhere.safetensors")
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"not a safetensors file at all")
    with pytest.raises(CheckpointError, match=r"garbage\.safetensors"):
        create_model(checkpoint=garbage)
    foreign = tmp_path / "foreign.safetensors"
    safetensors.torch.save_file({"w": torch.zeros(1)}, str(foreign))
    with pytest.raises(CheckpointError, match="'format'"):
        create_model(checkpoint=foreign)
    bad_config = tmp_path / "bad_config.safetensors"
    config = get_config("risam_tiny").to_dict()
    config["head"]["width"] = 3
    safetensors.torch.save_file(
        {"w": torch.zeros(1)},
        str(bad_config),
        metadata={"format": "risam.weights/1", "config": json.dumps(config)},
    )
    with pytest.raises(CheckpointError, match=r"head\.width"):
        create_model(checkpoint=bad_config)


def test_checkpoint_name_must_match(tmp_path):
    _, path = _trained_tiny(tmp_path)
    with pytest.raises(ValueError, match="risam_tiny"):
        create_model("risam_vit_b", checkpoint=path)


def test_save_is_atomic_and_leaves_no_temp_files(tmp_path, monkeypatch):
    model, path = _trained_tiny(tmp_path)
    before = path.read_bytes()

    def disk_full(descriptor):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", disk_full)  # the new file is written, not yet flushed
    with pytest.raises(OSError, match="disk full"):
        save_weights(model.trainable_state_dict(), get_config("risam_tiny"), path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.safetensors"]


def test_config_round_trip_and_errors():
    config = get_config("risam_vit_b")
    assert RISAMConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(ConfigError, match=r"image_encoder\.depthh"):
        RISAMConfig.from_dict({"image_encoder": {"depthh": 3}})
    with pytest.raises(ConfigError, match=r"head\.tau"):
        config.replace(**{"head.tau": 1.5})
    with pytest.raises(ConfigError, match="must be an integer"):
        config.replace(**{"head.dim": "256"})
    with pytest.raises(ConfigError, match="tap_indices"):
        config.replace(**{"image_encoder.tap_indices": [5, 8, 12]})
    with pytest.raises(ConfigError, match="risam_tiny"):
        get_config("risam_vit_q")


def _save_with(path, state, config, poisoned):
    """``state`` saved at ``path`` with the first element of each tensor of ``poisoned`` set to its value."""
    state = {key: value.clone() for key, value in state.items()}
    for key, value in poisoned.items():
        state[key].view(-1)[0] = value
    metadata = {"format": "risam.weights/1", "config": json.dumps(config.to_dict())}
    safetensors.torch.save_file(state, str(path), metadata=metadata)
    return path


def test_non_finite_weights_are_refused_in_one_line(tmp_path):
    _, path = _trained_tiny(tmp_path)
    config, state = load_weights(path)
    keys = sorted(key for key, value in state.items() if value.is_floating_point())[:4]
    values = (float("nan"), float("inf"), float("-inf"), float("nan"))
    diverged = _save_with(tmp_path / "diverged.safetensors", state, config, dict(zip(keys, values, strict=True)))
    with pytest.raises(CheckpointError) as error:
        load_weights(diverged)
    assert str(error.value) == (
        f"{diverged}: 4 tensors hold NaN or inf values ({', '.join(keys[:3])}, ...); "
        "the file is damaged or came from a diverged run"
    )
    one = _save_with(tmp_path / "one.safetensors", state, config, {"decoder.query_token": float("nan")})
    with pytest.raises(
        CheckpointError, match=r"one\.safetensors: 1 tensor holds NaN or inf values \(decoder\.query_token\)"
    ):
        create_model(checkpoint=one)


def test_non_finite_encoders_are_refused(tmp_path):
    path = tmp_path / "encoders.safetensors"
    tensors = {
        "image_encoder.w": torch.tensor([1.0, float("nan")], dtype=torch.float16),
        "text_encoder.n": torch.ones(1),
    }
    safetensors.torch.save_file(tensors, str(path), metadata={"format": ENCODERS_FORMAT, "config": "{}"})
    with pytest.raises(
        CheckpointError, match=r"encoders\.safetensors: 1 tensor holds NaN or inf values \(image_encoder\.w\)"
    ):
        load_encoders(path)
