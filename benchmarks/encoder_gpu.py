"""The frozen image encoder on a GPU: fp32, bf16 autocast, bf16 weights, compiled; against ``segment_anything``.

For each mode and batch size: images/s (median over ``--repeats`` timed forward passes after
``--warmup`` untimed ones, ``torch.cuda.synchronize`` around each, under ``torch.inference_mode``),
peak GPU memory (``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``; weights
included), achieved TFLOP/s and the percent of the card's dense peak. Per mode, the largest
difference of the tapped features from our fp32 encoder on batch 1, so that speedups come with
their accuracy. Prints one JSON object.

Modes (``--modes``):

- ``fp32``: float32 weights and inputs (TF32 matmuls only with ``--tf32``),
- ``bf16_autocast``: float32 weights under ``torch.autocast(dtype=torch.bfloat16)``,
- ``bf16_weights``: weights stored in bfloat16 and inputs cast to it, as ``RISAM.store_frozen_encoders``
  keeps the frozen encoders in training and evaluation,
- ``bf16_weights_compiled``: the same under ``torch.compile`` (default mode, static shapes: one
  compilation per batch size, timed separately as ``compile_s`` and excluded from the timing),
- ``segment_anything_fp32``, ``segment_anything_bf16_autocast``: Meta's ``ImageEncoderViT`` with the
  same random weights as ours (when ``segment_anything`` is importable).

FLOPs per image are counted once per encoder with ``torch.utils.flop_counter.FlopCounterMode`` on one
batch-1 forward pass on the meta device (shapes only), with SDPA's math backend so that the
attention matmuls are counted on every device; a multiply-add counts as 2 FLOPs.

    python -m benchmarks.encoder_gpu --model risam_vit_b
    python -m benchmarks.encoder_gpu --model risam_vit_h --batch-sizes 1 4
    python -m benchmarks.encoder_gpu --device cpu --model risam_tiny --batch-sizes 1 2 --repeats 1 --warmup 0
"""

from __future__ import annotations

import argparse
import copy
import gc
import importlib.metadata
import json
import platform
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import timm
import torch
from torch import Tensor, nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.entry import run
from benchmarks.sam_reference import ImageEncoderViT, meta_encoder, randomize_positions, tap_hooks
from risam.config.model import ImageEncoderConfig
from risam.modeling.image_encoder import SamImageEncoder
from risam.registry.names import get_config


@dataclass(frozen=True)
class Mode:
    """How one mode runs: which encoder, its weight dtype, autocast, compile."""

    encoder: str  # "ours" or "segment_anything"
    weights: torch.dtype
    autocast: bool
    compiled: bool

    @property
    def precision(self) -> str:
        """The precision of the matmuls: "bf16" or "fp32" (TF32 with ``--tf32`` on CUDA)."""
        return "bf16" if self.autocast or self.weights == torch.bfloat16 else "fp32"


MODES = {
    "fp32": Mode("ours", torch.float32, autocast=False, compiled=False),
    "bf16_autocast": Mode("ours", torch.float32, autocast=True, compiled=False),
    "bf16_weights": Mode("ours", torch.bfloat16, autocast=False, compiled=False),
    "bf16_weights_compiled": Mode("ours", torch.bfloat16, autocast=False, compiled=True),
    "segment_anything_fp32": Mode("segment_anything", torch.float32, autocast=False, compiled=False),
    "segment_anything_bf16_autocast": Mode("segment_anything", torch.float32, autocast=True, compiled=False),
}

# Dense (no sparsity) peak TFLOP/s from NVIDIA's datasheets, keyed by a substring of
# torch.cuda.get_device_name(); the first match wins. None: not in the table, pass --peak-tflops.
PEAK_TFLOPS: list[tuple[str, str, dict[str, float] | None]] = [
    ("H100 PCIe", "H100 PCIe", {"bf16": 756.0, "tf32": 378.0, "fp32": 51.2}),
    ("H100 NVL", "H100 NVL", None),
    ("H200 NVL", "H200 NVL", None),
    ("H100", "H100 SXM", {"bf16": 989.4, "tf32": 494.7, "fp32": 66.9}),
    ("H200", "H200 (as H100 SXM)", {"bf16": 989.4, "tf32": 494.7, "fp32": 66.9}),
    ("A100", "A100", {"bf16": 312.0, "tf32": 156.0, "fp32": 19.5}),
]

GIB = 2**30


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="risam_vit_b", help="registered model whose image encoder to run")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--modes", nargs="+", choices=list(MODES), default=list(MODES))
    parser.add_argument("--repeats", type=int, default=10, help="timed forward passes per cell (median reported)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed forward passes per cell before timing")
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu (cpu: a smoke check)")
    parser.add_argument("--tf32", action="store_true", help="let float32 matmuls and convolutions use TF32 on CUDA")
    parser.add_argument(
        "--peak-tflops",
        nargs="+",
        metavar="PRECISION=TFLOPS",
        help="the card's dense peak instead of the built-in table: bf16=..., tf32=..., fp32=...; "
        "a bare number applies to every precision",
    )
    parser.add_argument("--attention-chunk", type=int, help="override image_encoder.attention_chunk")
    parser.add_argument("--compile-on-cpu", action="store_true", help="run bf16_weights_compiled on CPU (slow)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if min(args.batch_sizes) < 1 or args.repeats < 1 or args.warmup < 0:
        parser.error("batch sizes and --repeats must be >= 1, --warmup >= 0")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: CUDA is not available here (use --device cpu for a smoke check)")
    return args


def peak_tflops(device: torch.device, override: list[str] | None) -> dict[str, object]:
    """The dense peaks for "bf16", "tf32", "fp32" (None where unknown) and where they come from."""
    if override:
        peaks: dict[str, float | None] = dict.fromkeys(("bf16", "tf32", "fp32"))
        for item in override:
            key, _, value = item.rpartition("=")
            if not key:
                peaks = dict.fromkeys(peaks, float(value))
            elif key in peaks:
                peaks[key] = float(value)
            else:
                raise SystemExit(f"--peak-tflops {item}: expected bf16=, tf32= or fp32=")
        return {"source": "--peak-tflops", **peaks}
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for substring, label, peaks in PEAK_TFLOPS:
            if substring in name:
                if peaks is None:
                    break
                return {"source": f"table: {label}", **peaks}
        return {"source": f"{name!r} is not in the table; pass --peak-tflops", "bf16": None, "tf32": None, "fp32": None}
    return {"source": "no table for CPUs", "bf16": None, "tf32": None, "fp32": None}


def build_encoders(config: ImageEncoderConfig, reference_wanted: bool) -> tuple[nn.Module, nn.Module | None, str]:
    """Our encoder and Meta's (or None) on the CPU in float32 with the same random weights, and why/how.

    As in ``encoder_cpu``: Meta's encoder gets random weights (relative positions and
    the position embedding too, which start at zero), is saved in Meta's format, and ours loads that
    file with ``load_pretrained``.
    """
    if not reference_wanted:
        reason = "no segment_anything mode in --modes"
    elif ImageEncoderViT is None:
        reason = "segment_anything is not importable"
    elif config.backbone != "sam":
        reason = f"image_encoder.backbone={config.backbone!r} is not a SAM ViT"
    else:
        reference = meta_encoder(config)
        randomize_positions(reference.blocks, reference.pos_embed)
        with tempfile.TemporaryDirectory() as folder:
            checkpoint = Path(folder) / "sam.pth"
            torch.save({f"image_encoder.{k}": v for k, v in reference.state_dict().items()}, checkpoint)
            ours = SamImageEncoder(config).eval()
            ours.load_pretrained(checkpoint)
        extra = config.depth - (config.tap_indices[-1] + 1)
        return (
            ours,
            reference,
            f"segment_anything's ImageEncoderViT built from the same config ({config.embed_dim} wide, "
            f"{config.depth} blocks, window {config.window_size}, {config.img_size} px) with our weights; it also "
            f"runs SAM's neck{f' and {extra} blocks after the last tap' if extra else ''}, which ours does not build",
        )
    ours = SamImageEncoder(config).eval()
    randomize_positions(ours.vit.blocks, ours.vit.pos_embed)
    return ours, None, reason


def count_flops(build: Callable[[], nn.Module], img_size: int) -> int:
    """FLOPs of one batch-1 forward pass of ``build()``, counted on the meta device (a multiply-add is 2 FLOPs)."""
    with torch.device("meta"):
        on_meta = build()
    images = torch.empty(1, 3, img_size, img_size, device="meta")
    with torch.inference_mode(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        on_meta(images)
    return counter.get_total_flops()


def make_forward(module: nn.Module, mode: Mode, device: torch.device) -> Callable[[Tensor], object]:
    """float32 images -> the encoder's output, with the mode's input cast and autocast."""

    def forward(images: Tensor) -> object:
        if mode.autocast:
            with torch.autocast(device.type, dtype=torch.bfloat16):
                return module(images)
        return module(images.to(mode.weights))

    return forward


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def error_text(error: BaseException) -> str:
    """{"error": ...} text: "out of memory" for any CUDA/CPU out-of-memory, else the exception."""
    message = str(error)
    if isinstance(error, torch.OutOfMemoryError) or "out of memory" in message.lower():
        return "out of memory"
    return f"{type(error).__name__}: {message.strip().splitlines()[0] if message.strip() else ''}"[:500]


def run_mode(
    name: str,
    mode: Mode,
    master: nn.Module,
    taps_of: Callable[[nn.Module, Callable[[Tensor], object], Tensor], list[Tensor]],
    reference_taps: list[Tensor],
    args: argparse.Namespace,
    device: torch.device,
    images_for: Callable[[int], Tensor],
) -> dict[str, object]:
    """All batch sizes of one mode; out of memory (or another failure) in a cell is recorded and skipped."""
    entry: dict[str, object] = {
        "encoder": mode.encoder,
        "weights_dtype": str(mode.weights).removeprefix("torch."),
        "autocast": "bfloat16" if mode.autocast else None,
        "compiled": mode.compiled,
        "precision": mode.precision,
    }
    if mode.compiled and device.type == "cpu" and not args.compile_on_cpu:
        entry["skipped"] = "torch.compile on the CPU is slow; pass --compile-on-cpu to run it"
        return entry
    failure = None
    try:
        module = copy.deepcopy(master).to(device=device, dtype=mode.weights)
        entry["weights_gib"] = sum(p.numel() * p.element_size() for p in module.parameters()) / GIB
        if mode.compiled:
            module = torch.compile(module, dynamic=False)
    except Exception as error:  # e.g. out of memory for the weights themselves
        failure = error_text(error)
    if failure is not None:
        free(device)
        entry["error"] = failure
        return entry
    forward = make_forward(module, mode, device)
    compile_s: dict[str, float] = {}

    def first_call(images: Tensor) -> None:
        """A compiled module compiles for each new batch size on its first call: time it apart."""
        key = str(images.shape[0])
        if mode.compiled and key not in compile_s:
            sync(device)
            start = time.perf_counter()
            with torch.inference_mode():
                forward(images)
            sync(device)
            compile_s[key] = time.perf_counter() - start

    images = None
    try:
        images = images_for(1)
        first_call(images)
        with torch.inference_mode():
            taps = taps_of(module, forward, images)
        entry["max_abs_diff_vs_ours_fp32"] = max(
            float((tap.float().cpu() - ref).abs().max()) for tap, ref in zip(taps, reference_taps, strict=True)
        )
        del taps
    except Exception as error:
        traceback.print_exc()
        entry["max_abs_diff_vs_ours_fp32"] = {"error": error_text(error)}
    images = None
    free(device)

    results: dict[str, object] = {}
    for batch in args.batch_sizes:
        print(f"encoder_gpu: {name}, batch {batch}", file=sys.stderr, flush=True)
        cell: dict[str, object] = {}
        try:
            images = images_for(batch)
            first_call(images)
            if device.type == "cuda":
                sync(device)
                torch.cuda.reset_peak_memory_stats(device)
            times = []
            with torch.inference_mode():
                for _ in range(args.warmup):
                    forward(images)
                for _ in range(args.repeats):
                    sync(device)
                    start = time.perf_counter()
                    forward(images)
                    sync(device)
                    times.append(time.perf_counter() - start)
            seconds = statistics.median(times)
            cell = {
                "s_per_batch": seconds,
                "images_per_s": batch / seconds,
                "peak_memory_gib": torch.cuda.max_memory_allocated(device) / GIB if device.type == "cuda" else None,
            }
        except Exception as error:
            if not isinstance(error, torch.OutOfMemoryError):
                traceback.print_exc()
            cell = {"error": error_text(error)}
        images = None
        free(device)
        if mode.compiled and str(batch) in compile_s:
            cell["compile_s"] = compile_s[str(batch)]
        results[str(batch)] = cell
    entry["results"] = results
    if mode.compiled:
        entry["compile_s_note"] = "first call for each batch size: compilation plus one forward pass, not timed"
    module = forward = None  # release the weights before emptying the CUDA cache
    free(device)
    return entry


def main() -> None:
    args = parse_args()
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
        torch.backends.cuda.matmul.allow_tf32 = args.tf32
        torch.backends.cudnn.allow_tf32 = args.tf32
    if hasattr(torch._dynamo.config, "recompile_limit"):
        torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, len(args.batch_sizes) + 2)
    overrides = {} if args.attention_chunk is None else {"image_encoder.attention_chunk": args.attention_chunk}
    config = get_config(args.model, overrides).image_encoder
    if config.backbone != "sam":
        raise SystemExit(f"{args.model}: image_encoder.backbone={config.backbone!r}; this benchmark runs SAM ViTs")
    modes = {name: MODES[name] for name in args.modes}
    wall = time.perf_counter()

    torch.manual_seed(args.seed)
    ours, reference, reference_note = build_encoders(config, any(m.encoder != "ours" for m in modes.values()))
    if reference is None:
        modes = {name: mode for name, mode in modes.items() if mode.encoder == "ours"}
    flops = {"ours": count_flops(lambda: SamImageEncoder(config).eval(), config.img_size)}
    if reference is not None:
        flops["segment_anything"] = count_flops(lambda: meta_encoder(config), config.img_size)

    generator = torch.Generator().manual_seed(args.seed + 1)
    image_bank: dict[int, Tensor] = {}

    def images_for(batch: int) -> Tensor:
        """Random float32 SAM-normalized images on the device, the same for every mode."""
        if batch not in image_bank:
            image_bank[batch] = torch.randn(batch, 3, config.img_size, config.img_size, generator=generator)
        return image_bank[batch].to(device)

    def our_taps(module: nn.Module, forward: Callable[[Tensor], object], images: Tensor) -> list[Tensor]:
        return list(forward(images))

    def meta_taps(module: nn.Module, forward: Callable[[Tensor], object], images: Tensor) -> list[Tensor]:
        taps: dict[int, Tensor] = {}
        hooks = tap_hooks(module, config.tap_indices, taps)
        try:
            forward(images)
        finally:
            for hook in hooks:
                hook.remove()
        return [taps[index] for index in config.tap_indices]

    # The accuracy reference: our encoder in float32 on the device, batch 1.
    fp32 = copy.deepcopy(ours).to(device)
    with torch.inference_mode():
        reference_taps = [tap.float().cpu() for tap in fp32(images_for(1))]
    del fp32
    free(device)

    entries = {}
    for name, mode in modes.items():
        master, taps_of = (ours, our_taps) if mode.encoder == "ours" else (reference, meta_taps)
        entries[name] = run_mode(name, mode, master, taps_of, reference_taps, args, device, images_for)

    peaks = peak_tflops(device, args.peak_tflops)
    tf32_on = device.type == "cuda" and args.tf32
    for entry in entries.values():
        precision = "tf32" if entry["precision"] == "fp32" and tf32_on else entry["precision"]
        entry["peak_precision"] = precision
        for batch, cell in entry.get("results", {}).items():
            if "images_per_s" not in cell:
                continue
            achieved = flops[entry["encoder"]] * cell["images_per_s"] / 1e12
            cell["achieved_tflops"] = achieved
            cell["percent_of_peak"] = 100 * achieved / peaks[precision] if peaks[precision] else None
            baseline = entries.get("fp32", {}).get("results", {}).get(batch, {})
            if "images_per_s" in baseline:
                cell["speedup_vs_ours_fp32"] = cell["images_per_s"] / baseline["images_per_s"]

    try:
        segment_anything_version = importlib.metadata.version("segment-anything") if ImageEncoderViT else None
    except importlib.metadata.PackageNotFoundError:
        segment_anything_version = "importable, version unknown"
    print(
        json.dumps(
            {
                "benchmark": "encoder_gpu",
                "model": args.model,
                "encoder": {
                    "img_size": config.img_size,
                    "embed_dim": config.embed_dim,
                    "blocks_built": config.tap_indices[-1] + 1,
                    "num_heads": config.num_heads,
                    "window_size": config.window_size,
                    "global_attn_indexes": list(config.global_attn_indexes),
                    "tap_indices": list(config.tap_indices),
                    "attention_chunk": config.attention_chunk,
                    "params": sum(p.numel() for p in ours.parameters()),
                },
                "device": str(device),
                "device_name": torch.cuda.get_device_name(device)
                if device.type == "cuda"
                else (platform.processor() or platform.machine()),
                "torch": torch.__version__,
                "cuda": torch.version.cuda,
                "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
                "timm": timm.__version__,
                "segment_anything": segment_anything_version,
                "threads": torch.get_num_threads(),
                "tf32": {
                    "flag": args.tf32,
                    "torch.backends.cuda.matmul.allow_tf32": torch.backends.cuda.matmul.allow_tf32,
                    "torch.backends.cudnn.allow_tf32": torch.backends.cudnn.allow_tf32,
                    "float32_matmul_precision": torch.get_float32_matmul_precision(),
                },
                "peak_tflops": peaks,
                "batch_sizes": args.batch_sizes,
                "warmup": args.warmup,
                "repeats": args.repeats,
                "input": f"B x 3 x {config.img_size} x {config.img_size} random float32 (cast to the weights' dtype "
                "inside the timed call for bf16_weights*)",
                "gflops_per_image": {key: value / 1e9 for key, value in flops.items()},
                "flops_note": "FlopCounterMode on one batch-1 forward on the meta device, SDPA math backend; "
                "a multiply-add counts as 2 FLOPs (GMACs = GFLOPs / 2)",
                "segment_anything_reference": {"included": reference is not None, "note": reference_note},
                "ours_fp32_taps_max_abs": max(float(tap.abs().max()) for tap in reference_taps),
                "modes": entries,
                "wall_s": time.perf_counter() - wall,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    run(main)
