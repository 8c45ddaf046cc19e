import os

import pytest
import torch

from risam import create_model
from risam.precision import AUTO_PRECISION_ENV, choose_precision


def pytest_addoption(parser):
    parser.addoption(
        "--auto-precision",
        choices=("native", "fp32", "bf16"),
        default="native",
        help="what precision 'auto' resolves to in the whole run: this machine's choice (native), or forced "
        f"to fp32 or bf16 through {AUTO_PRECISION_ENV}",
    )


def pytest_configure(config):
    forced = config.getoption("--auto-precision")
    if forced != "native":
        os.environ[AUTO_PRECISION_ENV] = forced


def pytest_report_header(config):
    choice = choose_precision("auto", "cpu")
    return f"precision auto on cpu: {choice.name} ({choice.reason})"


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
