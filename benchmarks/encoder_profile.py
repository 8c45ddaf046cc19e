"""Where the image encoder's time goes: one forward pass under ``torch.profiler``, by part and by operator.

The encoder runs as the predictor runs it, without autograd (:mod:`risam.modeling.sam_block`). Each
part of every block (LayerNorms, the attention's qkv and proj, the attention between them, the MLP's two
linears and GELU) is labelled with ``torch.profiler.record_function`` through forward hooks; the
attention's matmuls (``aten::bmm``, ``aten::baddbmm``: scores, weighted sums and the bias's einsums)
are counted apart from the rest of it (bias additions, softmax, chunk copies), and what the blocks do
outside the labelled parts (window padding, splitting and merging heads, residuals) is its own part, so
the table adds up to the whole pass. Prints one JSON object: seconds and share per part, the 12 operators
with the most self time, and the achieved GFLOP/s of the pass.

    python -m benchmarks.encoder_profile --model risam_vit_b --precision fp32
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict

import torch
from torch import nn
from torch.autograd.profiler import record_function
from torch.profiler import ProfilerActivity, profile

from benchmarks.encoder_gpu import count_flops
from benchmarks.entry import run
from benchmarks.sam_reference import randomize_positions
from risam.cpu_memory import reuse_freed_memory
from risam.modeling.image_encoder import SamImageEncoder
from risam.precision import PRECISION_DTYPES
from risam.registry.names import get_config

# Labelled modules of a block, by attribute path, and the part they are counted as.
BLOCK_PARTS = {
    "norm1": "layer norms",
    "norm2": "layer norms",
    "attn.qkv": "attention qkv/proj linears",
    "attn.proj": "attention qkv/proj linears",
    "mlp.fc1": "mlp linears",
    "mlp.fc2": "mlp linears",
    "mlp.act": "gelu",
    "attention_core": "attention",
}


def label_modules(encoder: SamImageEncoder) -> list:
    """Forward hooks that open a ``record_function`` per labelled module (and per block and attention)."""
    handles = []

    def wrap(module: nn.Module, label: str) -> None:
        scopes: list = []

        def enter(_module: nn.Module, _inputs: object) -> None:
            scope = record_function(label)
            scope.__enter__()
            scopes.append(scope)

        def leave(_module: nn.Module, _inputs: object, _output: object) -> None:
            scopes.pop().__exit__(None, None, None)

        handles.extend([module.register_forward_pre_hook(enter), module.register_forward_hook(leave)])

    wrap(encoder.vit.patch_embed, "part: patch embedding")
    for block in encoder.vit.blocks:
        kind = "window" if block.window_size else "global"
        wrap(block, f"block: {kind}")
        for path, part in BLOCK_PARTS.items():
            wrap(block.get_submodule(path), f"part: {part}")
    return handles


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="risam_vit_b", help="registered model whose image encoder to profile")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32", help="the encoder's weights dtype")
    args = parser.parse_args()
    reuse_freed_memory()  # as the risam command does
    torch.manual_seed(0)
    config = get_config(args.model).image_encoder
    dtype = PRECISION_DTYPES[args.precision]
    encoder = SamImageEncoder(config).eval()
    randomize_positions(encoder.vit.blocks, encoder.vit.pos_embed)
    encoder.to(dtype)
    images = torch.randn(1, 3, config.img_size, config.img_size, dtype=dtype)
    flops = count_flops(lambda: SamImageEncoder(config), config.img_size)
    with torch.inference_mode():
        encoder(images)
        start = time.perf_counter()
        encoder(images)
        seconds = time.perf_counter() - start
        handles = label_modules(encoder)
        with profile(activities=[ProfilerActivity.CPU]) as profiler, record_function("forward"):
            encoder(images)
    for handle in handles:
        handle.remove()

    totals: dict[str, float] = defaultdict(float)
    operators = []
    for event in profiler.key_averages():
        if event.key.startswith(("part: ", "block: ", "attention: ", "forward")):
            totals[event.key] += event.cpu_time_total / 1e6
        elif not event.key.startswith("ProfilerStep"):
            operators.append((event.key, event.self_cpu_time_total / 1e6, event.count))
    whole = totals["forward"]
    parts = {key.removeprefix("part: "): value for key, value in totals.items() if key.startswith("part: ")}
    inside_blocks = totals["block: window"] + totals["block: global"]
    labelled = sum(value for name, value in parts.items() if name != "patch embedding")  # inside the blocks
    attention = parts.pop("attention", 0.0)
    matmuls = sum(s for name, s, _ in operators if name in ("aten::bmm", "aten::baddbmm"))
    parts["attention matmuls (scores, weighted sums, bias einsums)"] = matmuls
    parts["attention bias additions, softmax and chunk copies"] = attention - matmuls
    parts["window padding, head split and merge, residuals"] = inside_blocks - labelled
    parts["everything else (position embedding, taps, profiler labels)"] = (
        whole - inside_blocks - parts.get("patch embedding", 0.0)
    )
    print(
        json.dumps(
            {
                "benchmark": "encoder_profile",
                "model": args.model,
                "precision": args.precision,
                "input": f"1 x 3 x {config.img_size} x {config.img_size}",
                "threads": torch.get_num_threads(),
                "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                "s_per_image_unprofiled": seconds,
                "gflops_per_image": flops / 1e9,
                "achieved_gflop_per_s": flops / 1e9 / seconds,
                "profiled_s": whole,
                "parts_s": dict(sorted(parts.items(), key=lambda item: -item[1])),
                "parts_share": {name: value / whole for name, value in sorted(parts.items(), key=lambda i: -i[1])},
                "top_operators_self_s": [
                    {"operator": name, "self_s": s, "calls": count}
                    for name, s, count in sorted(operators, key=lambda item: -item[1])[:12]
                ],
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    run(main)
