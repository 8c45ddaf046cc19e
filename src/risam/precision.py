"""The precision of the frozen encoders: ``auto``, ``fp32`` or ``bf16``, and what ``auto`` picks here.

The frozen SAM and CLIP encoders hold nearly all the weights and do nearly all the arithmetic
(risam_vit_h: 699.5M of 705.3M parameters), so their precision sets the speed and memory of
inference. Trainable weights and optimizer state always stay float32.

``auto`` picks bfloat16 where the hardware multiplies it natively: CUDA devices that support it,
and CPUs with AMX-BF16 or AVX512-BF16 (as ``torch.cpu.get_capabilities()`` reports them). Elsewhere
it picks float32: a CPU without those instructions emulates bfloat16 matmuls, slower than float32
(on 2 AVX2-only cores a bf16 linear layer ran at about 16 GFLOP/s against about 115 in fp32, and the
ViT-B encoder took 70 s against 13 s: ``python -m benchmarks.encoder_cpu --emulated-bf16``).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import torch

from risam.config.experiment import PRECISIONS
from risam.config.parse import ConfigError

PRECISION_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
# Set to "fp32" or "bf16", this environment variable is what "auto" resolves to on every device (the
# test suite's --auto-precision sets it, so the whole suite runs either way on any CPU).
AUTO_PRECISION_ENV = "RISAM_AUTO_PRECISION"
# The CPU features with native bfloat16 dot products, as torch.cpu.get_capabilities() names them.
CPU_BF16_FEATURES = ("amx_bf16", "avx512_bf16")


@dataclass(frozen=True)
class PrecisionChoice:
    """The precision the frozen encoders run in (``name``: "fp32" or "bf16"), what was asked for
    (``requested``), why this one (``reason``, one sentence) and whether the device multiplies bf16
    natively (``native_bf16``)."""

    name: str
    requested: str
    reason: str
    native_bf16: bool

    @property
    def dtype(self) -> torch.dtype:
        """torch.float32 or torch.bfloat16."""
        return PRECISION_DTYPES[self.name]


def precision_name(dtype: torch.dtype) -> str:
    """ "fp32" or "bf16" for ``dtype`` (another dtype by its torch name, e.g. "float16")."""
    names = {value: name for name, value in PRECISION_DTYPES.items()}
    return names.get(dtype, str(dtype).removeprefix("torch."))


def cpu_bf16_features(capabilities: Mapping[str, object] | None = None) -> list[str]:
    """The CPU features in :data:`CPU_BF16_FEATURES` that ``capabilities`` (default: this CPU's,
    ``torch.cpu.get_capabilities()``) reports."""
    capabilities = torch.cpu.get_capabilities() if capabilities is None else capabilities
    return [feature for feature in CPU_BF16_FEATURES if capabilities.get(feature)]


def native_bf16(device: torch.device, capabilities: Mapping[str, object] | None = None) -> tuple[bool, str]:
    """Whether ``device`` multiplies bfloat16 natively, and the reason in words.

    ``capabilities`` stands for ``torch.cpu.get_capabilities()`` on a CPU (to describe another CPU).
    """
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        # bf16 tensor cores from compute capability 8.0 (Ampere) on; earlier cards emulate bf16, which
        # torch.cuda.is_bf16_supported() counts as support by default. ROCm devices that torch runs on have it.
        major, minor = torch.cuda.get_device_capability(device)
        if torch.version.hip is not None or (major, minor) >= (8, 0):
            return True, f"the CUDA device {name} multiplies bf16 natively"
        return False, f"the CUDA device {name} (compute capability {major}.{minor}) has no bf16 tensor cores"
    if device.type == "cpu":
        capabilities = torch.cpu.get_capabilities() if capabilities is None else capabilities
        features = cpu_bf16_features(capabilities)
        cpu = str(capabilities.get("cpu_name") or "unknown CPU")
        if features:
            return (
                True,
                f"this CPU ({cpu}) has {' and '.join(features)}: bf16 matmuls run several times faster than fp32",
            )
        return False, (
            f"this CPU ({cpu}) has neither amx_bf16 nor avx512_bf16: bf16 matmuls would be emulated, slower than fp32"
        )
    return False, f"no bf16 policy for {device.type} devices"


def choose_precision(
    requested: str = "auto", device: str | torch.device = "cpu", capabilities: Mapping[str, object] | None = None
) -> PrecisionChoice:
    """The precision of the frozen encoders on ``device`` for ``requested`` ("auto", "fp32" or "bf16").

    "auto" is bf16 where :func:`native_bf16` holds and fp32 elsewhere, unless the environment variable
    ``RISAM_AUTO_PRECISION`` is "fp32" or "bf16", which it then is. ConfigError for any other value.
    """
    if requested not in PRECISIONS:
        raise ConfigError(f"precision={requested!r}: expected one of {', '.join(PRECISIONS)}")
    device = torch.device(device)
    native, why = native_bf16(device, capabilities)
    if requested == "auto":
        forced = os.environ.get(AUTO_PRECISION_ENV, "")
        if forced:
            if forced not in PRECISION_DTYPES:
                raise ConfigError(f"{AUTO_PRECISION_ENV}={forced!r}: expected fp32 or bf16 (or unset it)")
            return PrecisionChoice(forced, requested, f"{AUTO_PRECISION_ENV}={forced} is set; {why}", native)
        return PrecisionChoice("bf16" if native else "fp32", requested, why, native)
    return PrecisionChoice(requested, requested, f"asked for {requested}; {why}", native)


def warn_if_emulated(choice: PrecisionChoice, stacklevel: int = 2) -> None:
    """Warn that ``choice`` runs bf16 where the hardware emulates it: slower than fp32, though it still
    halves the encoders' memory. ``stacklevel`` as for :func:`warnings.warn`, counted from the caller."""
    if choice.name == "bf16" and not choice.native_bf16:
        warnings.warn(f"precision bf16: {choice.reason}; fp32 (or auto) runs faster here", stacklevel=stacklevel + 1)
