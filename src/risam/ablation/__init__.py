"""The paper's ablations and baselines: the variants as data (:mod:`~risam.ablation.variants`) and the
runner that trains, evaluates and tabulates them alike (:mod:`~risam.ablation.runner`)."""

from risam.ablation.runner import (
    describe_variants,
    list_variants,
    parse_variants,
    run_ablation,
    trainable_parameters,
    variant_config,
)
from risam.ablation.summary import CLAIMS, Claim, ablation_markdown
from risam.ablation.variants import VARIANTS, PaperResult, Variant

__all__ = [
    "CLAIMS",
    "VARIANTS",
    "Claim",
    "PaperResult",
    "Variant",
    "ablation_markdown",
    "describe_variants",
    "list_variants",
    "parse_variants",
    "run_ablation",
    "trainable_parameters",
    "variant_config",
]
