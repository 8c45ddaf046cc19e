"""Other image backbones through timm (the paper's Tab. 7: ImageNet ViT-B, Swin-B), frozen like SAM.

``image_encoder.backbone`` names a timm model with ``forward_intermediates`` (ViTs, Swins and
most recent timm models); it is built at ``image_encoder.img_size`` with
``image_encoder.timm_kwargs`` (e.g. a small width for tests), without its classifier, final
norm or the blocks after the last tap. ``image_encoder.tap_indices`` are timm's intermediate
indices: blocks of a ViT, stages of a Swin.

Decisions (docs/ablations.md):
- Taps: for a plain ViT-B the blocks at the depths of SAM ViT-B's taps (5, 8, 11); for Swin-B
  its last three stages (strides 8, 16, 32), the shallow-middle-deep split of Feature
  Enhancement.
- Every tap is resampled to the ``img_size / patch_size`` grid the head reads: finer maps by
  area averaging, coarser maps by bilinear upsampling. Taps keep their own widths; Feature
  Enhancement projects each with its own MLP.
- Weights come from a local timm checkpoint (``model.sam_checkpoint``), never downloaded; the
  model's own ``checkpoint_filter_fn`` adapts it (position embeddings resampled to
  ``img_size``), the classifier and final norm are dropped, everything else must fit exactly.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

import timm
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from risam.config import ConfigError
from risam.config.model import ImageEncoderConfig
from risam.io.state_dict import CheckpointError, load_state_dict_strict, torch_load_weights_only
from risam.io.weights import load_safetensors
from risam.modeling.image_encoder import check_images


def resample_to_grid(features: Tensor, size: int) -> Tensor:
    """B x C x h x w -> B x C x size x size: area average when shrinking, bilinear when growing."""
    if features.shape[-2:] == (size, size):
        return features
    if features.shape[-1] >= size and features.shape[-2] >= size:
        return F.adaptive_avg_pool2d(features, size)
    return F.interpolate(features, size=(size, size), mode="bilinear", align_corners=False)


def _create(config: ImageEncoderConfig) -> nn.Module:
    """The whole timm model of ``config`` (classifier removed), randomly initialized."""
    try:
        return timm.create_model(
            config.backbone, pretrained=False, num_classes=0, img_size=config.img_size, **config.timm_kwargs
        )
    except TypeError as error:
        raise ConfigError(
            f"image_encoder.backbone={config.backbone!r} with image_encoder.timm_kwargs={config.timm_kwargs} and "
            f"img_size={config.img_size}: timm could not build it ({error}); use a model that takes img_size, "
            "such as a ViT or a Swin"
        ) from error


class TimmBackbone(nn.Module):
    """A timm image model returning its tapped features on the head's grid.

    Input: normalized images, B x 3 x S x S with S = ``config.img_size``.
    Output: one B x C_i x S/p x S/p map per index in ``config.tap_indices`` (p =
    ``config.patch_size``, C_i = ``tap_dims[i]``).
    """

    global_attn_indexes: tuple[int, ...] = ()  # none listed: the attention is the timm model's own

    def __init__(self, config: ImageEncoderConfig) -> None:
        super().__init__()
        self.config = config
        self.model = _create(config)
        if not hasattr(self.model, "forward_intermediates"):
            raise ConfigError(
                f"image_encoder.backbone={config.backbone!r}: the timm model has no forward_intermediates; use a "
                "ViT or a Swin"
            )
        info = self.model.feature_info
        if config.tap_indices[-1] >= len(info):
            raise ConfigError(
                f"image_encoder.tap_indices={config.tap_indices}: {config.backbone} has {len(info)} intermediate "
                f"outputs ({', '.join(item['module'] for item in info)}); indices must lie in [0, {len(info)})"
            )
        self.tap_dims = tuple(int(info[index]["num_chs"]) for index in config.tap_indices)
        self.model.prune_intermediate_layers(list(config.tap_indices), prune_norm=True, prune_head=True)

    def forward(self, images: Tensor) -> list[Tensor]:
        """Tapped features of ``images`` (B x 3 x S x S): a list of B x C_i x S/p x S/p."""
        check_images(images, self.config.img_size, type(self).__name__)
        taps = self.model.forward_intermediates(
            images, indices=list(self.config.tap_indices), intermediates_only=True, output_fmt="NCHW"
        )
        return [resample_to_grid(tap, self.config.feature_size) for tap in taps]

    def load_pretrained(self, path: str | os.PathLike) -> None:
        """Load a local timm checkpoint of the backbone (``model.safetensors`` or ``pytorch_model.bin``
        of the timm model's hub repository, or a ``.pth`` state dict).

        The model's ``checkpoint_filter_fn`` adapts it (position embeddings resampled to
        ``img_size``); the classifier and the parts not built (final norm, blocks after the last
        tap) are dropped; every built parameter must be in the file with its shape, and every key
        of the file must belong to the model, otherwise CheckpointError names the file and keys.
        """
        path = Path(path)
        expected = f"expected a timm checkpoint of {self.config.backbone} (.safetensors, or a .bin/.pth state dict)"
        if path.suffix == ".safetensors":
            if not path.is_file():
                raise FileNotFoundError(f"checkpoint not found: {path} ({expected})")
            state_dict: object = load_safetensors(path)
        else:
            state_dict = torch_load_weights_only(path, expected)
        if isinstance(state_dict, Mapping):
            state_dict = state_dict.get("state_dict", state_dict.get("model", state_dict))
        if not isinstance(state_dict, Mapping) or not all(isinstance(v, Tensor) for v in state_dict.values()):
            raise CheckpointError(f"{path} is not a state dict of tensors; {expected}")
        with torch.device("meta"):
            reference = _create(self.config)
        module = sys.modules[type(reference).__module__]
        filter_fn = getattr(module, "checkpoint_filter_fn", None)
        if filter_fn is not None:
            state_dict = filter_fn(dict(state_dict), reference)
        classifier = reference.pretrained_cfg.get("classifier", "head")
        known = set(reference.state_dict())
        unknown = sorted(k for k in state_dict if k not in known and not k.startswith(f"{classifier}."))
        if unknown:
            raise CheckpointError(
                f"{path} does not fit {self.config.backbone} with timm_kwargs={self.config.timm_kwargs}: unexpected "
                f"keys ({len(unknown)}): {', '.join(unknown[:12])}"
            )
        built = self.model.state_dict()
        load_state_dict_strict(self.model, {k: v for k, v in state_dict.items() if k in built}, source=str(path))
