"""The RISAM model, assembled from parts passed in. No file I/O, no loss."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping

import torch
from torch import nn

from risam.config import RISAMConfig
from risam.io.state_dict import check_state_dict
from risam.modeling.layers import FusionOutput, VisualFeatures
from risam.precision import precision_name


class RISAM(nn.Module):
    """Image encoder -> Feature Enhancement; text encoder; MA blocks; Mutual-Aware Mask Decoder.

    The forward pass is split so that callers can run the image side once per image and the
    rest once per expression (grouped training batches, the predictor):

    - :meth:`encode_image`: images -> :class:`VisualFeatures` (enhanced features F_v, and the encoder's
      high-resolution maps where ``image_encoder.high_res_features`` asks for them),
    - :meth:`encode_text`: token ids -> linguistic features F_l and the padding mask,
    - :meth:`decode`: (visual features, F_l, mask) -> mask logits at 1/4 of the input size.

    A frozen encoder stays in eval mode, runs under ``torch.no_grad()`` and outside autocast (in the
    dtype of its weights) and is left out of :meth:`trainable_state_dict`.

    The parts are passed in (``modeling/build.py`` builds them from ``config``, which the model
    keeps as :attr:`config` and whose ``freeze`` switches it applies): ``enhancement`` maps the
    image encoder's taps to F_v (Feature Enhancement or an ablation), each ``fusion`` block maps
    (visual tokens, words, padding mask) to a :class:`FusionOutput` (Mutual-Aware
    Attention or a baseline), and ``decoder`` maps (F_lav, words, padding mask) to mask logits
    (the Mutual-Aware Mask Decoder or SAM's), adding the image encoder's high-resolution maps while
    it upsamples where it was built for them.
    """

    def __init__(
        self,
        config: RISAMConfig,
        image_encoder: nn.Module,
        text_encoder: nn.Module,
        enhancement: nn.Module,
        fusion: list[nn.Module],
        decoder: nn.Module,
    ) -> None:
        super().__init__()
        self.config = config
        self.image_encoder = image_encoder
        self.text_encoder = text_encoder
        self.enhancement = enhancement
        self.fusion = nn.ModuleList(fusion)
        self.decoder = decoder
        self.frozen_parts = tuple(
            name
            for name, frozen in (
                ("image_encoder", config.image_encoder.freeze),
                ("text_encoder", config.text_encoder.freeze),
            )
            if frozen
        )
        for name in self.frozen_parts:
            getattr(self, name).requires_grad_(False)
            getattr(self, name).eval()

    def train(self, mode: bool = True) -> RISAM:
        """Switch the trainable parts to ``mode``; frozen encoders always stay in eval mode."""
        super().train(mode)
        for name in self.frozen_parts:
            getattr(self, name).eval()
        return self

    def store_frozen_encoders(self, dtype: torch.dtype) -> RISAM:
        """Keep the weights of the frozen encoders in ``dtype``; the trainable parts keep theirs.

        ``torch.bfloat16`` halves the memory of the encoders, which hold nearly all the weights
        (risam_vit_h: 699.5M of 705.3M parameters). Inputs are cast to the encoder's dtype and features
        back to the trainable parts' dtype, so callers pass float32 images as before.
        """
        for name in self.frozen_parts:
            getattr(self, name).to(dtype)
        return self

    @property
    def encoder_precision(self) -> str:
        """The precision the image encoder runs in, "fp32" or "bf16": the dtype of its weights."""
        return precision_name(_floating_dtype(self.image_encoder))

    def image_taps(self, images: torch.Tensor) -> list[torch.Tensor]:
        """SAM-normalized images, B x 3 x S x S -> the image encoder's taps, each B x C_i x S/16 x S/16, then
        with ``image_encoder.high_res_features`` its stride-8 and stride-4 maps (B x C_8 x S/8 x S/8,
        B x C_4 x S/4 x S/4)."""
        with self._encoder_context("image_encoder", images.device):
            taps = self.image_encoder(images.to(_floating_dtype(self.image_encoder)))
        return [tap.to(images.dtype) for tap in taps]

    @contextlib.contextmanager
    def _encoder_context(self, name: str, device: torch.device) -> Iterator[None]:
        """No gradient and no autocast for a frozen encoder (it runs in the precision its weights are
        stored in: ``store_frozen_encoders``); a trainable one follows the caller's settings."""
        if name not in self.frozen_parts:
            yield
            return
        with torch.no_grad(), torch.autocast(device.type, enabled=False):
            yield

    def visual_features(self, taps: list[torch.Tensor]) -> VisualFeatures:
        """What :meth:`image_taps` returned -> F_v (B x C x S/16 x S/16, Feature Enhancement of the taps) and
        the high-resolution maps after them, unchanged."""
        count = len(self.image_encoder.tap_dims)
        return VisualFeatures(self.enhancement(*taps[:count]), tuple(taps[count:]))

    def encode_image(self, images: torch.Tensor) -> VisualFeatures:
        """SAM-normalized images, B x 3 x S x S -> their :class:`VisualFeatures` (F_v: B x C x S/16 x S/16)."""
        return self.visual_features(self.image_taps(images))

    def encode_text(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids, B x L_t -> (F_l, B x L_t x C'; padding mask, B x L_t, True at padding)."""
        with self._encoder_context("text_encoder", tokens.device):
            features, padding_mask = self.text_encoder(tokens)
        return features.to(_floating_dtype(self.decoder)), padding_mask

    def decode(
        self,
        visual: VisualFeatures,
        text: torch.Tensor,
        padding_mask: torch.Tensor,
        return_attention: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, list[FusionOutput]]:
        """visual: F_v (B x C x H x W) and its high-resolution maps; F_l: B x L_t x C'; padding_mask: B x L_t.

        Returns mask logits, B x 4H x 4W, and with ``return_attention`` also every MA block's
        output (its attention maps A_vg, B x HW x L_t, and A_lg, B x L_t x HW, included; None
        for fusion baselines that have no such map).
        """
        batch, dim, height, width = visual.enhanced.shape
        visual_seq = visual.enhanced.flatten(2).transpose(1, 2)
        outputs = []
        for block in self.fusion:
            out = block(visual_seq, text, padding_mask)
            visual_seq, text = out.visual, out.text
            outputs.append(out)
        lav = visual_seq.transpose(1, 2).reshape(batch, dim, height, width)
        logits = self.decoder(lav, text, padding_mask, *visual.high_res)
        return (logits, outputs) if return_attention else logits

    def forward(
        self,
        images: torch.Tensor | None,
        tokens: torch.Tensor | None,
        image_index: torch.Tensor | None = None,
        return_attention: bool = False,
        *,
        taps: list[torch.Tensor] | None = None,
        text: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, list[FusionOutput]]:
        """images: N x 3 x S x S (SAM-normalized); tokens: B x L_t.

        Without ``image_index``, N = B and sentence b reads image b. With it (B long tensor),
        sentence b reads image ``image_index[b]``: each image is encoded once for all of its
        sentences. Returns logits, B x S/4 x S/4 (and the MA blocks' outputs on request).

        ``taps`` (the image encoder's outputs for the N images) and ``text`` (F_l and the padding
        mask for the B sentences) stand in for ``images`` and ``tokens`` when the frozen encoders'
        outputs were computed before (:mod:`risam.engine.feature_cache`).
        """
        visual = self.visual_features(taps) if taps is not None else self.encode_image(images)
        if image_index is not None:
            visual = visual[image_index]
        words, padding_mask = text if text is not None else self.encode_text(tokens)
        return self.decode(visual, words, padding_mask, return_attention=return_attention)

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """Parameters and buffers of every part except the frozen encoders."""
        return {key: value for key, value in self.state_dict().items() if key.split(".", 1)[0] not in self.frozen_parts}

    def load_trainable_state_dict(self, state_dict: Mapping[str, torch.Tensor], source: str) -> None:
        """Strictly load what :meth:`trainable_state_dict` saved; ``source`` names the file."""
        check_state_dict(self.trainable_state_dict(), state_dict, source, "the trainable parts of RISAM")
        self.load_state_dict(dict(state_dict), strict=False)


def _floating_dtype(module: nn.Module) -> torch.dtype:
    """The dtype of ``module``'s first floating-point parameter."""
    return next(p.dtype for p in module.parameters() if p.is_floating_point())
