"""Our SAM 2.1 taps against Meta's own Hiera (the ``sam2`` package), on random weights saved in Meta's format.

For each of Hiera T, S, B+ and L: Meta's ``sam2.modeling.backbones.hieradet.Hiera`` is built with the trunk
arguments of SAM 2.1's configs (``sam2/configs/sam2.1/sam2.1_hiera_*.yaml``), its weights drawn at random
(every parameter, the position embeddings included), and saved as Meta's checkpoints hold them (under
``model``, keys ``image_encoder.trunk.*``). Our encoder of the matching model (``risam_sam2_*``) loads that file;
both run the same image in float32, and the outputs of Meta's blocks at the tapped indices are compared with
our taps: the largest absolute difference and relative L2 error. With ``image_encoder.high_res_features``, our
stride-8 and stride-4 maps are compared with the first two of Meta's ``Hiera.forward`` outputs (its stage ends,
what SAM 2's neck reads at those strides). Prints one JSON object.

``sam2`` builds from source only (``pip install sam2==1.1.0 --no-build-isolation`` with ``SAM2_BUILD_CUDA=0``
and ``hydra-core`` and ``iopath`` beside it); it is not a dependency of risam.

    python -m benchmarks.sam2_equivalence --size 1024
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.entry import run
from risam.modeling.variants.hiera_encoder import META_TRUNK_PREFIX, HieraEncoder
from risam.registry.names import get_config

# SAM 2.1's trunk arguments per size (its configs; what a config leaves out is Hiera's default).
META_TRUNKS = {
    "risam_sam2_t": {
        "embed_dim": 96,
        "num_heads": 1,
        "stages": (1, 2, 7, 2),
        "global_att_blocks": (5, 7, 9),
        "window_pos_embed_bkg_spatial_size": (7, 7),
    },
    "risam_sam2_s": {
        "embed_dim": 96,
        "num_heads": 1,
        "stages": (1, 2, 11, 2),
        "global_att_blocks": (7, 10, 13),
        "window_pos_embed_bkg_spatial_size": (7, 7),
    },
    "risam_sam2_bp": {"embed_dim": 112, "num_heads": 2},
    "risam_sam2_l": {
        "embed_dim": 144,
        "num_heads": 2,
        "stages": (2, 6, 36, 4),
        "global_att_blocks": (23, 33, 43),
        "window_spec": (8, 4, 16, 8),
        "window_pos_embed_bkg_spatial_size": (7, 7),
    },
}


def compare(model: str, size: int, folder: Path) -> dict[str, object]:
    """Meta's trunk and ours on one random image; the largest differences of the taps and of the stride-8 and
    stride-4 maps, and the timings (of the taps)."""
    from sam2.modeling.backbones.hieradet import Hiera

    torch.manual_seed(0)
    meta = Hiera(**META_TRUNKS[model]).eval()
    with torch.no_grad():
        for parameter in meta.parameters():
            parameter.normal_(std=0.05)
    path = folder / f"{model}.pt"
    torch.save({"model": {META_TRUNK_PREFIX + k: v for k, v in meta.state_dict().items()}}, path)
    config = get_config(model, {"image_encoder.img_size": size, "image_encoder.high_res_features": True}).image_encoder
    ours = HieraEncoder(config).eval()
    ours.load_pretrained(path)
    images = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        start = time.perf_counter()
        *taps, stride8, stride4 = ours(images)
        ours_s = time.perf_counter() - start
        start = time.perf_counter()
        x = meta.patch_embed(images)
        x = x + meta._get_pos_embed(x.shape[1:3])
        expected = []
        for index, block in enumerate(meta.blocks[: config.tap_indices[-1] + 1]):
            x = block(x)
            if index in config.tap_indices:
                expected.append(x.permute(0, 3, 1, 2))
        meta_s = time.perf_counter() - start
        meta_stride4, meta_stride8 = meta(images)[:2]
    high_res = ((stride8, meta_stride8), (stride4, meta_stride4))
    return {
        "tap_indices": list(config.tap_indices),
        "max_abs_difference": max(float((a - b).abs().max()) for a, b in zip(taps, expected, strict=True)),
        "relative_l2_error": max(float((a - b).norm() / b.norm()) for a, b in zip(taps, expected, strict=True)),
        "high_res_shapes": [list(ours.shape) for ours, _ in high_res],
        "high_res_max_abs_difference": max(float((a - b).abs().max()) for a, b in high_res),
        "ours_s": ours_s,
        "meta_s": meta_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=1024, help="input side in pixels (a multiple of 32)")
    parser.add_argument("--models", nargs="+", choices=list(META_TRUNKS), default=list(META_TRUNKS))
    args = parser.parse_args()
    try:
        import sam2  # noqa: F401
    except ImportError as error:
        print(json.dumps({"benchmark": "sam2_equivalence", "error": f"Meta's sam2 package is not importable: {error}"}))
        return
    with tempfile.TemporaryDirectory() as folder:
        results = {model: compare(model, args.size, Path(folder)) for model in args.models}
    print(
        json.dumps(
            {
                "benchmark": "sam2_equivalence",
                "input": f"1 x 3 x {args.size} x {args.size}, float32",
                "threads": torch.get_num_threads(),
                "cpu": torch.cpu.get_capabilities().get("cpu_name"),
                "models": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    run(main)
