"""SAM 2's Hiera trunk as RISAM's frozen image encoder (``risam_sam2_t``, ``_s``, ``_bp``, ``_l``).

The trunk is timm's ``HieraDet`` (``sam2_hiera_tiny`` ... ``sam2_hiera_large``), which builds SAM 2's
image encoder trunk block for block. Decisions (docs/architecture.md, "SAM 2 encoders"):

- **Taps.** Hiera's stride-16 stage has its own global-attention blocks (``global_att_blocks`` of SAM 2's
  configs: T 5, 7, 9; S 7, 10, 13; B+ 12, 16, 20; L 23, 33, 43). RISAM taps the outputs of those three, the
  analogue of SAM ViT's 2nd-4th global blocks: shallow, middle and deep features at one resolution
  (64 x 64 at 1024 px), for Feature Enhancement. The last is the stage's end, the stride-16 feature SAM 2's
  neck reads. The stride-32 stage after it is not built.
- **The higher-resolution levels** (strides 4 and 8, which SAM 2's mask decoder adds back while
  upsampling) feed RISAM's decoder only with ``image_encoder.high_res_features: true``; off by default, as
  the paper's decoder reads stride-16 features only. On, the encoder also returns the outputs of the
  stride-8 and stride-4 stages' last blocks (what SAM 2's neck reads for those levels), after the taps,
  and the decoder adds each through a trainable 1 x 1 convolution (:class:`risam.modeling.layers.HighResSkips`:
  SAM 2's neck convolution and its decoder's ``conv_s1``/``conv_s0`` in a row are one such convolution, as its
  neck adds no top-down features at these levels). ``image_encoder.timm_kwargs`` passes architecture
  changes to timm.
- **Input** 1024 px, SAM 2's normalisation (ImageNet mean and std, in 0-255 units the same as SAM's).

Weights: Meta's ``sam2.1_hiera_*.pt`` (and SAM 2's ``sam2_hiera_*.pt``): the trunk's keys of the file's
``model`` entry, ``image_encoder.trunk.*``, read with ``torch.load(weights_only=True)``; timm's Hub files of
the same weights (``model.safetensors`` in timm's names); or a state dict of the trunk in either naming.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

import timm
from torch import Tensor, nn

from risam.config import ConfigError
from risam.config.model import ImageEncoderConfig
from risam.io.files import readable_file
from risam.io.state_dict import CheckpointError, load_state_dict_strict, torch_load_weights_only
from risam.io.weights import load_safetensors
from risam.modeling.image_encoder import check_images

META_TRUNK_PREFIX = "image_encoder.trunk."  # where SAM 2's checkpoints keep the trunk, under "model"
_META_MLP = re.compile(r"\.mlp\.layers\.([01])\.")
_BLOCK_KEY = re.compile(r"blocks\.(\d+)\.")
_EXPECTED = (
    "expected Meta's SAM 2 checkpoint (e.g. sam2.1_hiera_large.pt), timm's model.safetensors, or a trunk state dict"
)


def to_timm_names(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """A SAM 2 state dict in timm's names: the trunk's keys of a whole SAM 2 model (``image_encoder.trunk.*``;
    the rest dropped) or of a trunk, with Meta's MLP names (``mlp.layers.0``/``1``) as timm's (``mlp.fc1``/``2``)."""
    if any(key.startswith(META_TRUNK_PREFIX) for key in state_dict):
        state_dict = {
            k.removeprefix(META_TRUNK_PREFIX): v for k, v in state_dict.items() if k.startswith(META_TRUNK_PREFIX)
        }
    return {_META_MLP.sub(lambda m: f".mlp.fc{int(m.group(1)) + 1}.", key): value for key, value in state_dict.items()}


class HieraEncoder(nn.Module):
    """SAM 2's Hiera trunk up to its last tapped block, returning the tapped blocks' outputs.

    Input: normalized images, B x 3 x S x S with S = ``config.img_size``.
    Output: one B x C x S/16 x S/16 map per block in ``config.tap_indices`` (C = the stride-16 stage's width:
    T and S 384, B+ 448, L 576); with ``config.high_res_features``, then the stride-8 and the stride-4 stage's
    last outputs, B x C_8 x S/8 x S/8 and B x C_4 x S/4 x S/4 (:attr:`high_res_dims`: T and S 192 and 96, B+ 224
    and 112, L 288 and 144).
    """

    def __init__(self, config: ImageEncoderConfig) -> None:
        super().__init__()
        self.config = config
        try:
            self.model = timm.create_model(config.backbone, pretrained=False, num_classes=0, **config.timm_kwargs)
        except TypeError as error:
            raise ConfigError(
                f"image_encoder.backbone={config.backbone!r} with image_encoder.timm_kwargs={config.timm_kwargs}: "
                f"timm could not build it ({error})"
            ) from error
        stage_ends = self.model.stage_ends
        stride16 = range(stage_ends[1] + 1, stage_ends[2] + 1)
        outside = [index for index in config.tap_indices if index not in stride16]
        if outside:
            raise ConfigError(
                f"image_encoder.tap_indices={config.tap_indices}: blocks {outside} are not in {config.backbone}'s "
                f"stride-16 stage (blocks {stride16.start}-{stride16.stop - 1}); its global-attention blocks are "
                f"{tuple(self.model.global_att_blocks)}"
            )
        if config.patch_size != 16:
            raise ConfigError(f"image_encoder.patch_size={config.patch_size}: Hiera's tapped stage has stride 16")
        self.model.prune_intermediate_layers(list(config.tap_indices), prune_norm=True, prune_head=True, coarse=False)
        self.tap_dims = tuple(int(self.model.blocks[index].dim_out) for index in config.tap_indices)
        # The stride-4 and stride-8 stages end before the first tap, so pruning keeps them.
        self.high_res_blocks = (stage_ends[1], stage_ends[0]) if config.high_res_features else ()
        self.high_res_dims = tuple(int(self.model.blocks[index].dim_out) for index in self.high_res_blocks)

    @property
    def global_attn_indexes(self) -> tuple[int, ...]:
        """The trunk's global-attention blocks (SAM 2's ``global_att_blocks``)."""
        return tuple(self.model.global_att_blocks)

    def forward(self, images: Tensor) -> list[Tensor]:
        """Tapped features of ``images`` (B x 3 x S x S): a list of B x C x S/16 x S/16, then with
        ``high_res_features`` the stride-8 and stride-4 maps (class docstring)."""
        check_images(images, self.config.img_size, type(self).__name__)
        blocks = sorted({*self.config.tap_indices, *self.high_res_blocks})
        outputs = self.model.forward_intermediates(
            images, indices=blocks, intermediates_only=True, output_fmt="NCHW", coarse=False
        )
        by_block = dict(zip(blocks, outputs, strict=True))
        return [by_block[index] for index in (*self.config.tap_indices, *self.high_res_blocks)]

    def load_pretrained(self, path: str | os.PathLike) -> None:
        """Load the trunk from Meta's SAM 2 checkpoint, timm's file or a trunk state dict (module docstring).

        The blocks after the last tap, the neck and everything that is not the trunk are dropped; every built
        parameter must be in the file with its shape, otherwise CheckpointError names the file and the keys.
        """
        path = readable_file(path, "SAM 2 checkpoint")
        if path.suffix == ".safetensors":
            try:
                loaded: object = load_safetensors(path)
            except Exception as error:  # safetensors raises its own errors, and OSError, for a damaged file
                raise CheckpointError(f"{path} could not be read ({type(error).__name__}); {_EXPECTED}") from error
        else:
            loaded = torch_load_weights_only(path, _EXPECTED)
        if isinstance(loaded, Mapping) and isinstance(loaded.get("model"), Mapping):
            loaded = loaded["model"]
        if not isinstance(loaded, Mapping) or not all(isinstance(v, Tensor) for v in loaded.values()):
            raise CheckpointError(f"{path} is not a state dict of tensors; {_EXPECTED}")
        built = len(self.model.blocks)
        state = {
            key: value
            for key, value in to_timm_names(loaded).items()
            if not key.startswith("head.") and not ((m := _BLOCK_KEY.match(key)) and int(m.group(1)) >= built)
        }
        load_state_dict_strict(self.model, state, source=str(path))
