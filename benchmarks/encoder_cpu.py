"""The frozen image encoder on the CPU, side by side in one run: segment_anything fp32, ours fp32, bf16, compiled.

Every mode runs in a fresh process (so that its peak resident memory, VmHWM, is its own: the weights,
the Meta-format file's tensors while they load, and one forward pass) on the same
random weights, saved once in Meta's format, and the same input. Per mode: seconds per image (median
of ``--repeats`` after one warm-up pass; a compiled mode's first call is reported apart as
``compile_s``), peak RSS, the achieved GFLOP/s and its share of the matmul rate of the same precision
measured in this run (a 2048 x 2048 x 2048 matmul), and the error of the tapped features against
segment_anything's fp32 encoder: the largest, over the taps, of |a - b|_2 / |b|_2, and the largest
absolute difference. Prints one JSON object.

Every mode's process keeps freed memory for reuse, as the ``risam`` command does
(:func:`risam.cpu_memory.reuse_freed_memory`); ``--system-malloc`` leaves glibc's defaults, to measure
what that setting gains. A compiled mode (:func:`risam.modeling.compiled.compile_or_eager`, as
``--compile`` runs it) runs twice, each in a fresh process: with an empty inductor cache
(``compile_s_cold``, and the timings) and again with the cache the first run filled (``compile_s_warm``).

Modes (``--modes``): ``segment_anything_fp32``, ``fp32``, ``fp32_compiled``, ``bf16`` (weights and
activations in bfloat16, as ``--precision bf16`` keeps the frozen encoders) and ``bf16_compiled``.
On a CPU without AMX-BF16 or AVX512-BF16, bfloat16 matmuls are emulated and slower than float32 (ViT-B:
70 s against 13 s on 2 AVX2 cores), and ``--precision auto`` does not pick them: the bf16 modes are
skipped there unless ``--emulated-bf16`` is given (``--repeats 0`` times only the first pass, which
still gives the error of the taps).

    python -m benchmarks.encoder_cpu --model risam_vit_b --repeats 3
    python -m benchmarks.encoder_cpu --model risam_vit_b --modes fp32 fp32_compiled

``--encoders`` instead puts the image encoders of several models side by side (SAM ViT-B/L/H against SAM 2.1's
Hiera T/S/B+/L): seconds per 1024 px image, peak memory, and trainable and total parameters
(:mod:`benchmarks.encoder_side_by_side`):

    python -m benchmarks.encoder_cpu --encoders risam_vit_h risam_sam2_l --repeats 1
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import safetensors.torch
import torch

from benchmarks.encoder_gpu import count_flops
from benchmarks.encoder_side_by_side import ENCODERS, side_by_side
from benchmarks.entry import run
from benchmarks.sam_reference import meta_encoder, randomize_positions, tap_hooks
from risam.cpu_memory import reuse_freed_memory
from risam.modeling.build import default_dtype
from risam.modeling.compiled import compile_or_eager
from risam.modeling.image_encoder import SamImageEncoder
from risam.precision import PRECISION_DTYPES, native_bf16
from risam.registry.names import get_config

MODES = ("segment_anything_fp32", "fp32", "fp32_compiled", "bf16", "bf16_compiled")


def matmul_gflops(dtype: torch.dtype, size: int = 2048, repeats: int = 5) -> float:
    """GFLOP/s of a size^3 matmul in ``dtype`` with the weight layout of ``nn.Linear`` (x @ w.T; on a CPU
    that emulates bf16, a row-major right operand takes another, 60x slower path), the median of
    ``repeats`` after one warm-up."""
    x, weight = torch.randn(size, size).to(dtype), torch.randn(size, size).to(dtype)
    torch.nn.functional.linear(x, weight)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        torch.nn.functional.linear(x, weight)
        times.append(time.perf_counter() - start)
    return 2 * size**3 / sorted(times)[len(times) // 2] / 1e9


def peak_rss_gib() -> float:
    """This process's peak resident memory (VmHWM) in GiB."""
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmHWM"))
    return int(line.split()[1]) / 2**20


def worker(
    model: str, mode: str, checkpoint: Path, taps_out: Path, repeats: int, system_malloc: bool
) -> dict[str, object]:
    """Build one mode's encoder from ``checkpoint``, time it, save its taps (float32) to ``taps_out``."""
    if not system_malloc:
        reuse_freed_memory()
    config = get_config(model).image_encoder
    dtype = PRECISION_DTYPES["bf16" if mode.startswith("bf16") else "fp32"]
    if mode == "segment_anything_fp32":
        encoder = meta_encoder(config)
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        encoder.load_state_dict({k.removeprefix("image_encoder."): v for k, v in state.items()})
        del state
        taps: dict[int, torch.Tensor] = {}
        tap_hooks(encoder, config.tap_indices, taps)

        def run(images: torch.Tensor) -> list[torch.Tensor]:
            encoder(images)
            return [taps[index] for index in config.tap_indices]
    else:
        with default_dtype(dtype):  # built in its precision, as create_model builds frozen encoders
            built = SamImageEncoder(config).eval()
        built.load_pretrained(checkpoint)
        run = compile_or_eager(built, "image encoder") if mode.endswith("_compiled") else built
    images = torch.randn(1, 3, config.img_size, config.img_size, generator=torch.Generator().manual_seed(0))
    images = images.to(dtype)
    with torch.inference_mode(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        start = time.perf_counter()
        outputs = run(images)
        first = time.perf_counter() - start
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            run(images)
            times.append(time.perf_counter() - start)
    safetensors.torch.save_file({str(i): tap.float().contiguous() for i, tap in enumerate(outputs)}, str(taps_out))
    if not times:  # --repeats 0: the first call's time, one-time costs included
        return {"first_call_s": first, "peak_rss_gib": peak_rss_gib()}
    seconds = sorted(times)[len(times) // 2]
    result: dict[str, object] = {"s_per_image": seconds, "peak_rss_gib": peak_rss_gib()}
    if mode.endswith("_compiled"):
        result["compile_s"] = first - seconds
        failures = [str(warning.message) for warning in caught if "torch.compile" in str(warning.message)]
        result["compile_failed"] = failures
    return result


def run_worker(
    model: str, mode: str, checkpoint: Path, taps_out: Path, repeats: int, system_malloc: bool, cache: Path
) -> dict[str, object]:
    """:func:`worker` in a fresh process with the inductor cache ``cache``; its JSON, or {"error": ...}
    with the last line it printed."""
    command = [sys.executable, "-m", "benchmarks.encoder_cpu", "--model", model, "--repeats", str(repeats)]
    command += ["--worker", mode, "--checkpoint", str(checkpoint), "--taps-out", str(taps_out)]
    command += ["--system-malloc"] if system_malloc else []
    environment = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(cache)}
    result = subprocess.run(
        command, capture_output=True, text=True, cwd=Path(__file__).resolve().parent.parent, env=environment
    )
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines()
        return {"error": lines[-1] if lines else f"exit code {result.returncode}"}
    return json.loads(result.stdout)


def tap_errors(taps: Path, reference: Path) -> dict[str, float]:
    """The largest relative L2 error and absolute difference over the taps in ``taps`` against ``reference``."""
    ours, truth = safetensors.torch.load_file(str(taps)), safetensors.torch.load_file(str(reference))
    relative = max(float((ours[k] - truth[k]).norm() / truth[k].norm()) for k in truth)
    absolute = max(float((ours[k] - truth[k]).abs().max()) for k in truth)
    return {"relative_l2_error_of_taps": relative, "max_abs_difference_of_taps": absolute}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="risam_vit_b", help="a registered SAM ViT model (risam_vit_b/l/h)")
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="timed forward passes per mode after the first (median reported); 0: time only the first pass",
    )
    parser.add_argument("--emulated-bf16", action="store_true", help="run the bf16 modes on a CPU that emulates bf16")
    parser.add_argument("--system-malloc", action="store_true", help="leave glibc's malloc settings as they are")
    parser.add_argument(
        "--encoders", nargs="+", choices=ENCODERS, help="time these models' image encoders side by side instead"
    )
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto", help="with --encoders")
    parser.add_argument("--worker", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--checkpoint", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--taps-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.encoders:
        print(json.dumps(side_by_side(args.encoders, args.precision, args.repeats), indent=2))
        return
    if args.worker:
        result = worker(args.model, args.worker, args.checkpoint, args.taps_out, args.repeats, args.system_malloc)
        print(json.dumps(result))
        return

    config = get_config(args.model).image_encoder
    native, why = native_bf16(torch.device("cpu"))
    rates = {"fp32": matmul_gflops(torch.float32)}
    if native or args.emulated_bf16:
        rates["bf16"] = matmul_gflops(torch.bfloat16)
    flops = count_flops(lambda: SamImageEncoder(config), config.img_size)
    modes: dict[str, dict[str, object]] = {}
    with tempfile.TemporaryDirectory() as folder:
        checkpoint = Path(folder) / "sam.pth"
        torch.manual_seed(0)
        reference = meta_encoder(config)
        randomize_positions(reference.blocks, reference.pos_embed)
        torch.save({f"image_encoder.{k}": v for k, v in reference.state_dict().items()}, checkpoint)
        del reference
        order = sorted(args.modes, key=MODES.index)
        for mode in order:
            precision = "bf16" if mode.startswith("bf16") else "fp32"
            if precision == "bf16" and not (native or args.emulated_bf16):
                modes[mode] = {"skipped": f"{why}; pass --emulated-bf16 to run it anyway"}
                continue
            taps, cache = Path(folder) / f"{mode}.safetensors", Path(folder) / f"inductor-{mode}"
            entry = run_worker(args.model, mode, checkpoint, taps, args.repeats, args.system_malloc, cache)
            if mode.endswith("_compiled") and "compile_s" in entry:
                warm = run_worker(args.model, mode, checkpoint, taps, 1, args.system_malloc, cache)
                entry["compile_s_cold"] = entry.pop("compile_s")
                entry["compile_s_warm"] = warm.get("compile_s", warm.get("error"))
            if "s_per_image" in entry:
                achieved = flops / 1e9 / entry["s_per_image"]
                entry["achieved_gflop_per_s"] = achieved
                entry["share_of_matmul_rate"] = achieved / rates[precision]
            modes[mode] = entry
        reference_taps = Path(folder) / "segment_anything_fp32.safetensors"
        for mode, entry in modes.items():
            if "peak_rss_gib" in entry and reference_taps.exists() and mode != "segment_anything_fp32":
                entry.update(tap_errors(Path(folder) / f"{mode}.safetensors", reference_taps))
    baseline = modes.get("segment_anything_fp32", {}).get("s_per_image")
    for entry in modes.values():
        if baseline and "s_per_image" in entry:
            entry["speedup_over_segment_anything_fp32"] = baseline / entry["s_per_image"]
    print(
        json.dumps(
            {
                "benchmark": "encoder_cpu",
                "model": args.model,
                "input": f"1 x 3 x {config.img_size} x {config.img_size}",
                "threads": torch.get_num_threads(),
                "cpu": torch.cpu.get_capabilities().get("cpu_name"),
                "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                "native_bf16": native,
                "reuse_freed_memory": not args.system_malloc,
                "gflops_per_image": flops / 1e9,
                "matmul_gflop_per_s": rates,
                "modes": modes,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    run(main)
