import pytest
import torch

from risam import create_model


@pytest.fixture
def tiny_model():
    torch.manual_seed(0)
    return create_model("risam_tiny")
