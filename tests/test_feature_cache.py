"""Head-only training on cached frozen-encoder outputs gives the training of the full forward pass."""

import pytest
import torch

from risam.config import ConfigError
from risam.data.refshapes import generate_refshapes
from risam.engine.feature_cache import FeatureCache
from risam.engine.trainer import Trainer
from risam.io.config_files import load_config


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("refshapes")
    generate_refshapes(root, num_images=14, seed=9)
    return root


def _config(data_root, output_dir, *extra):
    settings = [f"data.root={data_root}", f"train.output_dir={output_dir}", "data.num_workers=0",
                "batch.global_groups=2", "train.progress=false", "train.max_steps=3", *extra]  # fmt: skip
    return load_config("refshapes_tiny", settings)


def test_cached_batches_hold_what_the_encoders_compute(data_root, tmp_path):
    trainer = Trainer(_config(data_root, tmp_path / "run", "train.cache_features=false"))
    model, dataset = trainer.model.eval(), trainer.train_set
    cache = FeatureCache.build(model, dataset, images_per_batch=3)
    indices = [5, 0, 1, 12]
    cached, batch = cache.batch(indices), dataset.__getitems__(indices)
    with torch.no_grad():
        for tap, expected in zip(cached.taps, model.image_taps(batch.images), strict=True):
            torch.testing.assert_close(tap, expected, atol=1e-5, rtol=1e-5)
        text, padding = model.encode_text(batch.tokens)
    assert torch.equal(cached.image_index, batch.image_index)
    torch.testing.assert_close(cached.text, text)
    assert torch.equal(cached.padding, padding) and torch.equal(cached.masks, batch.masks)


def test_training_on_cached_features_equals_training_end_to_end(data_root, tmp_path):
    weights = {}
    for cached in (False, True):
        trainer = Trainer(_config(data_root, tmp_path / str(cached), f"train.cache_features={str(cached).lower()}"))
        assert (trainer.cache is not None) == cached
        trainer.train()
        weights[cached] = trainer.model.trainable_state_dict()
    assert weights[True].keys() == weights[False].keys()
    for key, value in weights[False].items():
        torch.testing.assert_close(weights[True][key], value, atol=1e-5, rtol=1e-4, msg=key)


def test_cache_needs_frozen_encoders(data_root, tmp_path):
    config = _config(data_root, tmp_path / "run", "train.cache_features=true",
                     "model.overrides={text_encoder.freeze: false}")  # fmt: skip
    with pytest.raises(ConfigError, match=r"train\.cache_features=true needs frozen encoders, but text_encoder trains"):
        Trainer(config)
