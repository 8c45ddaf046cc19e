import pytest
import torch

from risam import create_model


@pytest.fixture
def tiny_model():
    torch.manual_seed(0)
    return create_model("risam_tiny")


@pytest.fixture
def tiny_weights(tmp_path):
    from risam import create_model, get_config, save_weights

    overrides = {"image_encoder.freeze": False, "text_encoder.freeze": False}
    model = create_model("risam_tiny", overrides=overrides)
    path = tmp_path / "tiny.safetensors"
    save_weights(model.trainable_state_dict(), get_config("risam_tiny", overrides), path)
    return path
