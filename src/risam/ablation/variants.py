"""The paper's systems as data: every variant's config overrides, its paper table and row, and the
paper's numbers for it (in percent). The runner (:mod:`risam.ablation.runner`) trains and evaluates them;
docs/ablations.md lists them with the decisions behind them. Adding a variant is one entry of
``_VARIANT_LIST``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

REFERENCE_SPLIT = "RefCOCO val"
TINY_MODELS = ("risam_tiny",)


@dataclass(frozen=True)
class PaperResult:
    """A paper row on one split, in percent: overall IoU and, where the paper gives them, Pr@50 ... Pr@90."""

    iou: float
    precision: tuple[float, float, float, float, float] | None = None


@dataclass(frozen=True)
class Variant:
    """One system of the paper as config overrides.

    ``overrides`` are dotted model-config keys. ``tiny_overrides``, when given, replace them on
    the test-sized models (``risam_tiny``): a timm backbone there is built small and random.
    ``paper`` names the table and row; ``results`` holds the paper's numbers by split
    (``"RefCOCO val"``, ...); empty when the paper only plots them.
    """

    name: str
    description: str
    paper: str
    overrides: Mapping[str, Any] = field(default_factory=dict)
    results: Mapping[str, PaperResult] = field(default_factory=dict)
    tiny_overrides: Mapping[str, Any] | None = None

    def overrides_for(self, model_name: str) -> dict[str, Any]:
        """The overrides that build this variant of registered model ``model_name``."""
        if model_name in TINY_MODELS and self.tiny_overrides is not None:
            return dict(self.tiny_overrides)
        return dict(self.overrides)


def _row(
    refcoco: Sequence[float], refcoco_plus: Sequence[float] | None = None, gref: Sequence[float] | None = None
) -> dict[str, PaperResult]:
    """Ablation-table rows (Pr@50, ..., Pr@90, IoU) on the three val splits the paper ablates on."""
    rows = {}
    for split, values in (("RefCOCO val", refcoco), ("RefCOCO+ val", refcoco_plus), ("G-Ref val (U)", gref)):
        if values is not None:
            rows[split] = PaperResult(values[5], tuple(values[:5]))
    return rows


_TABLE1_SPLITS = (
    "RefCOCO val",
    "RefCOCO testA",
    "RefCOCO testB",
    "RefCOCO+ val",
    "RefCOCO+ testA",
    "RefCOCO+ testB",
    "G-Ref val (U)",
    "G-Ref test (U)",
    "G-Ref val (G)",
)


def _ious(splits: Sequence[str], values: Sequence[float]) -> dict[str, PaperResult]:
    return {split: PaperResult(value) for split, value in zip(splits, values, strict=True)}


_FULL = {
    **_ious(_TABLE1_SPLITS, (76.20, 78.92, 71.84, 66.37, 72.10, 57.33, 65.48, 66.60, 64.78)),
    **_row(
        (85.77, 83.75, 80.36, 72.11, 42.38, 76.20),
        (74.59, 72.69, 69.32, 61.87, 36.58, 66.37),
        (73.88, 70.30, 65.89, 56.47, 29.94, 65.48),
    ),
    "PhraseCut test (trained on RefCOCO)": PaperResult(22.82),
}

# SAM 2.1's Hiera-L in place of SAM ViT-H, and the tiny random Hiera-T that stands for it in the test model.
_SAM2_L: dict[str, Any] = {
    "image_encoder.backbone": "sam2_hiera_large",
    "image_encoder.variant": "sam2.1_hiera_large",
    "image_encoder.tap_indices": [23, 33, 43],
    "image_encoder.patch_size": 16,
}
_TINY_HIERA: dict[str, Any] = {
    "image_encoder.backbone": "sam2_hiera_tiny",
    "image_encoder.variant": "tiny_hiera",
    "image_encoder.timm_kwargs": {"embed_dim": 16},
    "image_encoder.tap_indices": [5, 7, 9],
    "image_encoder.img_size": 256,
    "image_encoder.patch_size": 16,
}

_TAU_VALUES = ("0.05", "0.1", "0.15", "0.2", "0.25", "0.3", "0.4", "0.45", "0.5")
TAU_VARIANTS = tuple(f"tau_{tau}" for tau in _TAU_VALUES)  # Fig. 8's sweep; tau = 0.35 is "full"

_VARIANT_LIST = [
    Variant(
        "full", "RISAM as published (FE, 2 MA blocks, tau 0.35, Mutual-Aware Mask Decoder)", "Tab. 2 #4", {}, _FULL
    ),
    Variant(
        "no_fe",
        "without Feature Enhancement: the deep tap projected to C",
        "Tab. 2 #1, Tab. 6 #1",
        {"head.enhancement": "deep_only"},
        _row(
            (77.83, 75.09, 71.92, 64.51, 37.84, 69.19),
            (63.68, 61.17, 57.44, 47.29, 28.90, 56.65),
            (65.15, 62.42, 57.78, 48.97, 26.70, 58.58),
        ),
    ),
    Variant(
        "conv_fusion",
        "MA replaced by convolutions over visual features and the tiled sentence",
        "Tab. 2 #2",
        {"head.fusion": "conv"},
        _row(
            (79.30, 78.69, 74.48, 66.53, 38.86, 71.27),
            (69.53, 66.44, 62.15, 53.03, 29.71, 61.83),
            (67.52, 64.16, 60.18, 51.06, 27.40, 60.21),
        ),
    ),
    Variant(
        "sam_decoder",
        "our decoder replaced by SAM's two-way mask decoder (F_val as prompt tokens; token MLP 8C, so 34% more "
        "trainable parameters than full: 420,976 against 313,104 on risam_tiny, 7,508,352 against 5,798,880 on ViT-H)",
        "Tab. 2 #3",
        {"head.decoder": "sam"},
        _row(
            (84.69, 82.45, 78.82, 69.69, 40.04, 74.97),
            (73.14, 71.10, 67.55, 59.94, 33.85, 65.09),
            (71.32, 68.28, 63.16, 54.68, 28.26, 63.84),
        ),
    ),
    Variant(
        "sam_decoder_narrow",
        "sam_decoder with token MLPs C wide instead of 8C: about full's capacity (305,392 trainable parameters "
        "against 313,104 on risam_tiny, 5,669,760 against 5,798,880 on ViT-H)",
        "Tab. 2 #3, capacity-matched (not in the paper)",
        {"head.decoder": "sam", "head.sam_decoder_mlp_ratio": 1},
    ),
    Variant(
        "te_fusion",
        "MA replaced by ReSTR's transformer encoder over both modalities",
        "Tab. 3 #5",
        {"head.fusion": "transformer"},
        _row(
            (83.94, 81.29, 78.62, 70.17, 39.77, 74.85),
            (71.51, 69.47, 66.02, 55.41, 28.32, 63.23),
            (68.96, 64.94, 59.64, 50.58, 24.78, 62.21),
        ),
    ),
    Variant(
        "sdf_fusion",
        "MA replaced by VLT's spatial dynamic fusion (vision-guided only)",
        "Tab. 3 #6",
        {"head.fusion": "spatial_dynamic"},
        _row(
            (84.45, 82.38, 78.91, 70.25, 40.22, 75.08),
            (72.14, 70.10, 66.55, 56.94, 28.95, 64.09),
            (70.56, 66.44, 61.48, 51.94, 26.80, 63.17),
        ),
    ),
    Variant(
        "bcm_fusion",
        "MA replaced by BRINet's serial bidirectional cross-modal module",
        "Tab. 3 #7",
        {"head.fusion": "bidirectional_serial"},
        _row(
            (84.63, 82.60, 79.17, 70.54, 40.56, 75.20),
            (73.51, 70.89, 66.48, 57.41, 30.82, 64.73),
            (70.92, 67.46, 63.20, 54.98, 28.48, 63.73),
        ),
    ),
    Variant(
        "sdf_fusion_masked",
        "sdf_fusion with MA's attention mask (tau 0.35): differs from full in the fusion only",
        "Tab. 3 #6, masked (not in the paper)",
        {"head.fusion": "spatial_dynamic", "head.masked_fusion": True},
    ),
    Variant(
        "bcm_fusion_masked",
        "bcm_fusion with MA's attention mask (tau 0.35) in both directions: differs from full in the serial order only",
        "Tab. 3 #7, masked (not in the paper)",
        {"head.fusion": "bidirectional_serial", "head.masked_fusion": True},
    ),
    Variant(
        "no_attn_mask",
        "MA without the attention mask (tau = 0)",
        "Tab. 3 #8",
        {"head.tau": 0.0},
        _row(
            (85.01, 83.14, 80.08, 71.62, 41.71, 75.52),
            (73.81, 71.74, 67.36, 58.31, 32.61, 65.82),
            (73.62, 69.98, 65.20, 55.74, 29.17, 64.83),
        ),
    ),
    Variant(
        "ma_blocks_1",
        "one MA block",
        "Tab. 4 (1 block)",
        {"head.num_ma_blocks": 1},
        _row((84.45, 82.94, 79.95, 71.69, 42.51, 75.88)),
    ),
    Variant(
        "ma_blocks_3",
        "three MA blocks",
        "Tab. 4 (3 blocks)",
        {"head.num_ma_blocks": 3},
        _row((84.32, 82.76, 79.51, 71.46, 41.16, 75.89)),
    ),
    Variant(
        "share_mask",
        "MA with a mask that ignores the scores' level: keep a pair where the pixel's softmax weight on the word "
        "is at least tau / its number of words (tau 0.35)",
        "not in the paper",
        {"head.mask_rule": "softmax_share"},
    ),
    *(
        Variant(
            f"tau_{tau}", f"attention-mask threshold tau = {tau}", "Fig. 8 (plotted only)", {"head.tau": float(tau)}
        )
        for tau in _TAU_VALUES
    ),
    Variant(
        "decoder_t2i",
        "SAM's token-to-image attention inserted in every decoder layer",
        "Tab. 5 #9",
        {"head.decoder": "mutual_aware_t2i"},
        _row(
            (84.76, 82.63, 79.21, 71.07, 40.65, 75.40),
            (72.96, 70.88, 67.70, 59.32, 33.41, 64.87),
            (71.14, 67.26, 62.38, 54.28, 28.36, 63.84),
        ),
    ),
    Variant(
        "decoder_no_text",
        "without extra linguistic guidance: the decoder's only token is the query token, a learned constant (the "
        "paper's #10 uses VLT's decoder instead: a departure)",
        "Tab. 5 #10",
        {"head.decoder_text_guidance": False},
        _row(
            (83.79, 81.19, 78.55, 67.96, 38.62, 74.42),
            (71.46, 69.30, 66.59, 56.64, 31.75, 63.45),
            (70.30, 67.02, 62.68, 53.98, 28.24, 62.98),
        ),
    ),
    Variant(
        "sam_decoder_unmasked",
        "sam_decoder without the attention mask (tau = 0): differs from no_attn_mask in the decoder only",
        "Tab. 2 #3, mask off (not in the paper)",
        {"head.decoder": "sam", "head.tau": 0.0},
    ),
    Variant(
        "decoder_no_text_unmasked",
        "decoder_no_text without the attention mask (tau = 0): differs from no_attn_mask in the decoder only",
        "Tab. 5 #10, mask off (not in the paper)",
        {"head.decoder_text_guidance": False, "head.tau": 0.0},
    ),
    Variant(
        "simple_pyramid",
        "ViT-Det's simple feature pyramid from the last layer instead of FE",
        "Tab. 6 #11",
        {"head.enhancement": "simple_pyramid"},
        _row((80.72, 77.40, 74.74, 66.79, 37.85, 71.55)),
    ),
    Variant(
        "vit_b_imagenet",
        "ImageNet ViT-B (timm vit_base_patch16_224) instead of SAM, taps after blocks 5, 8, 11",
        "Tab. 7 (ViT-B)",
        {
            "image_encoder.backbone": "vit_base_patch16_224",
            "image_encoder.variant": "vit_b_imagenet",
            "image_encoder.tap_indices": [5, 8, 11],
            # vit_base_patch16_224 (augreg2_in21k_ft_in1k) normalizes with mean = std = 0.5.
            "image_encoder.pixel_mean": [127.5, 127.5, 127.5],
            "image_encoder.pixel_std": [127.5, 127.5, 127.5],
        },
        _ious(("RefCOCO val", "RefCOCO testA", "RefCOCO testB"), (72.16, 74.73, 68.25)),
        tiny_overrides={
            "image_encoder.backbone": "vit_base_patch16_224",
            "image_encoder.variant": "tiny_vit",
            "image_encoder.timm_kwargs": {"embed_dim": 64, "depth": 4, "num_heads": 2},
            "image_encoder.tap_indices": [1, 2, 3],
            "image_encoder.pixel_mean": [127.5, 127.5, 127.5],
            "image_encoder.pixel_std": [127.5, 127.5, 127.5],
        },
    ),
    Variant(
        "swin_b",
        "Swin-B (timm swin_base_patch4_window12_384) instead of SAM, its last three stages as taps",
        "Tab. 7 (Swin-B)",
        {
            "image_encoder.backbone": "swin_base_patch4_window12_384",
            "image_encoder.variant": "swin_b",
            "image_encoder.tap_indices": [1, 2, 3],
        },
        _ious(("RefCOCO val", "RefCOCO testA", "RefCOCO testB"), (74.96, 77.51, 70.96)),
        tiny_overrides={
            "image_encoder.backbone": "swin_base_patch4_window12_384",
            "image_encoder.variant": "tiny_swin",
            "image_encoder.timm_kwargs": {
                "embed_dim": 16,
                "depths": [1, 1, 1, 1],
                "num_heads": [1, 1, 2, 2],
                "window_size": 4,
            },
            "image_encoder.tap_indices": [1, 2, 3],
        },
    ),
    Variant(
        "sam2_encoder",
        "SAM 2.1's Hiera-L (timm sam2_hiera_large) instead of SAM ViT-H, taps at its stride-16 global blocks",
        "not in the paper",
        _SAM2_L,
        tiny_overrides=_TINY_HIERA,
    ),
    Variant(
        "sam2_high_res",
        "sam2_encoder with the trunk's stride-8 and stride-4 maps added while the decoder upsamples, as in SAM 2",
        "not in the paper",
        {**_SAM2_L, "image_encoder.high_res_features": True},
        tiny_overrides={**_TINY_HIERA, "image_encoder.high_res_features": True},
    ),
    Variant(
        "unfrozen_text",
        "the CLIP text encoder trained too",
        "Tab. 9",
        {"text_encoder.freeze": False},
        {
            **_ious(_TABLE1_SPLITS, (75.82, 77.24, 70.06, 64.32, 71.38, 56.42, 64.19, 64.80, 62.45)),
            "PhraseCut test (trained on RefCOCO)": PaperResult(17.96),
        },
    ),
    Variant(
        "sam_directly",
        "SAM directly: frozen encoders, CLIP words linearly projected as prompts of SAM's mask decoder",
        "Tab. 11",
        {"head.enhancement": "deep_only", "head.fusion": "none", "head.decoder": "sam"},
        _ious(_TABLE1_SPLITS, (57.23, 58.71, 56.34, 44.95, 50.35, 41.38, 47.87, 49.31, 46.23)),
    ),
]

VARIANTS: dict[str, Variant] = {variant.name: variant for variant in _VARIANT_LIST}
