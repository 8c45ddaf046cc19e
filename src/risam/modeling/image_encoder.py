"""The frozen SAM ViT image encoder: timm's ``VisionTransformerSAM``, tapped by block index.

RISAM reads the outputs of the 2nd, 3rd and 4th global-attention blocks (paper Sec. 3.1),
so the model is built only up to the last tapped block and without SAM's neck.
Weights come from Meta's official SAM checkpoints (``sam_vit_{b,l,h}_*.pth``) or from timm's files of the
same weights on the Hugging Face Hub (``timm/samvit_*_patch16.sa1b``: ``model.safetensors`` in timm's names).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from functools import partial

from timm.models.vision_transformer_sam import VisionTransformerSAM, checkpoint_filter_fn
from torch import Tensor, nn

from risam.config.model import ImageEncoderConfig
from risam.io.files import readable_file
from risam.io.state_dict import CheckpointError, load_state_dict_strict, torch_load_weights_only
from risam.io.weights import load_safetensors
from risam.modeling.sam_block import SamBlock

_SAM_PREFIX = "image_encoder."
_BLOCK_KEY = re.compile(r"blocks\.(\d+)\.")


def check_images(images: Tensor, img_size: int, encoder: str) -> None:
    """ValueError naming ``encoder`` unless ``images`` is a B x 3 x img_size x img_size batch."""
    if images.ndim != 4 or tuple(images.shape[1:]) != (3, img_size, img_size):
        raise ValueError(
            f"{encoder} expects images normalized with image_encoder.pixel_mean/pixel_std, of shape "
            f"(B, 3, {img_size}, {img_size}) (resized and padded to img_size={img_size}), got {tuple(images.shape)}"
        )


def conv_stem(embed_dim: int, patch_size: int) -> nn.Sequential:
    """A small CNN in place of the patch embedding: B x 3 x S x S -> B x embed_dim x S/patch x S/patch.

    log2(patch_size) stages, each a stride-2 and a stride-1 3 x 3 convolution with BatchNorm and
    ReLU (widths 3/8, 3/4 and 1 x embed_dim for patch 8), then a 3 x 3 convolution to embed_dim.
    """
    count = patch_size.bit_length() - 1
    widths = [3] + [embed_dim * 3 >> (count - index) for index in range(count - 1)] + [embed_dim]
    layers: list[nn.Module] = []
    for index in range(count):
        for stride, width_in in ((2, widths[index]), (1, widths[index + 1])):
            layers += [
                nn.Conv2d(width_in, widths[index + 1], kernel_size=3, stride=stride, padding=1, bias=False),
                nn.BatchNorm2d(widths[index + 1]),
                nn.ReLU(),
            ]
    layers.append(nn.Conv2d(embed_dim, embed_dim, kernel_size=3, padding=1))
    return nn.Sequential(*layers)


class SamImageEncoder(nn.Module):
    """SAM's ViT up to the last tapped block; returns the tapped block outputs.

    Input: SAM-normalized images, B x 3 x S x S with S = ``config.img_size``.
    Output: one B x C_img x S/16 x S/16 map per index in ``config.tap_indices``
    (C_img = ``config.embed_dim``), in the order of the indices.
    """

    def __init__(self, config: ImageEncoderConfig) -> None:
        super().__init__()
        self.config = config
        self.vit = VisionTransformerSAM(
            img_size=config.img_size,
            patch_size=config.patch_size,
            num_classes=0,
            embed_dim=config.embed_dim,
            depth=config.tap_indices[-1] + 1,
            num_heads=config.num_heads,
            mlp_ratio=4.0,
            qkv_bias=True,
            norm_layer=partial(nn.LayerNorm, eps=1e-6),
            act_layer=nn.GELU,
            use_abs_pos=True,
            use_rel_pos=True,
            window_size=config.window_size,
            global_attn_indexes=config.global_attn_indexes,
            neck_chans=None,
            block_fn=partial(SamBlock, attention_chunk=config.attention_chunk),
        )
        # With neck_chans=None timm puts a LayerNorm2d in the neck's place; pruning replaces it with an
        # identity, so the weights are the patch embedding, pos_embed and blocks (the head has none).
        self.vit.prune_intermediate_layers(list(config.tap_indices), prune_norm=True)
        if config.stem == "conv":
            self.vit.patch_embed.proj = conv_stem(config.embed_dim, config.patch_size)

    @property
    def tap_dims(self) -> tuple[int, ...]:
        """The channel count of each tap: C_img for all."""
        return (self.config.embed_dim,) * len(self.config.tap_indices)

    @property
    def global_attn_indexes(self) -> tuple[int, ...]:
        """The blocks of SAM's ViT that attend globally (``risam info`` lists them)."""
        return self.config.global_attn_indexes

    def forward(self, images: Tensor) -> list[Tensor]:
        """Tapped features of ``images`` (B x 3 x S x S): a list of B x C_img x S/16 x S/16."""
        check_images(images, self.config.img_size, type(self).__name__)
        return self.vit.forward_intermediates(
            images, indices=list(self.config.tap_indices), intermediates_only=True, stop_early=True
        )

    def load_pretrained(self, path: str | os.PathLike) -> None:
        """Load Meta's SAM checkpoint (``sam_vit_h_4b8939.pth``, ...) or an image-encoder state dict.

        A full SAM state dict has ``image_encoder.*`` keys in Meta's names; an image-encoder
        state dict has them without the prefix, in Meta's or timm's names, in a torch file or a
        ``.safetensors`` file (timm's files on the Hub: ``model.safetensors``). The neck and the
        blocks after the last tap are dropped; everything else must fit exactly (no
        resampling of position embeddings), otherwise CheckpointError names the keys.
        """
        path = readable_file(path, "SAM checkpoint")
        expected = "expected Meta's SAM checkpoint (e.g. sam_vit_h_4b8939.pth) or an image-encoder state dict"
        if path.suffix == ".safetensors":
            try:
                state_dict = load_safetensors(path)
            except Exception as error:  # safetensors raises its own errors, and OSError, for a damaged file
                raise CheckpointError(f"{path} could not be read ({type(error).__name__}); {expected}") from error
        else:
            state_dict = torch_load_weights_only(path, expected)
        if not isinstance(state_dict, Mapping):
            raise CheckpointError(
                f"{path} holds a {type(state_dict).__name__}; expected a state dict mapping parameter names "
                "to tensors (Meta's SAM checkpoint or an image-encoder state dict)"
            )
        not_tensors = sorted(str(k) for k, v in state_dict.items() if not isinstance(v, Tensor))
        if not_tensors:
            raise CheckpointError(
                f"{path} is not a state dict of tensors: the values of {not_tensors[:12]} are not tensors"
            )
        load_state_dict_strict(self.vit, self._to_timm_keys(state_dict), source=str(path))

    def _to_timm_keys(self, state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Rename Meta's keys to timm's and drop the neck and the blocks this model does not build.

        A full SAM file goes through timm's ``checkpoint_filter_fn`` (its image encoder's keys, renamed);
        an image-encoder state dict in Meta's names, which that function leaves as it is, gets the same
        renaming here.
        """
        if any(key.startswith(_SAM_PREFIX) for key in state_dict):
            encoder_keys = {k: v for k, v in state_dict.items() if k.startswith(_SAM_PREFIX)}
            state_dict = checkpoint_filter_fn(encoder_keys, self.vit)
        built = len(self.vit.blocks)
        mapped = {}
        for key, value in state_dict.items():
            block = _BLOCK_KEY.match(key)
            if key.startswith("neck.") or (block and built <= int(block.group(1)) < self.config.depth):
                continue
            mapped[key.replace(".mlp.lin", ".mlp.fc")] = value
        return mapped
