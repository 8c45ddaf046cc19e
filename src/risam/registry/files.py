"""The files behind the model names: the official encoder files, and the files that ship in the package."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from risam.config import ConfigError, RISAMConfig
from risam.io.download import RemoteFile, fetch, risam_home
from risam.io.hub import HUB_PREFIX, checked_hub_file, hub_model_weights, is_hub_name

_PACKAGE = Path(__file__).resolve().parent.parent


# The official encoder files, fetched by ``risam download`` and by ``"download"`` in place of a file.
# SAM: Meta's URLs from the segment-anything README (SAM 2.1: below). Meta publishes no checksum; each file name
# ends in the first 6 hex digits of the file's MD5 (sam_vit_h_4b8939.pth: MD5 4b8939a8...), and the SHA-256
# here is that of the files as Meta serves them, as independent projects' download manifests record it.
# CLIP: OpenAI's URL from clip/clip.py, whose path carries the file's SHA-256 (OpenAI's loader checks it).
SAM_WEIGHTS = {
    "sam_vit_b": RemoteFile(
        "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth",
        "sam_vit_b_01ec64.pth",
        "ec2df62732614e57411cdcf32a23ffdf28910380d03139ee0f4fcbe91eb8c912",
    ),
    "sam_vit_l": RemoteFile(
        "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_l_0b3195.pth",
        "sam_vit_l_0b3195.pth",
        "3adcc4315b642a4d2101128f611684e8734c41232a17c648ed1693702a49a622",
    ),
    "sam_vit_h": RemoteFile(
        "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_h_4b8939.pth",
        "sam_vit_h_4b8939.pth",
        "a7bf3b02f3ebf1267aba913ff637d9a2d5c33d3173bb679e46d9f338c26f262e",
    ),
    # SAM 2.1's checkpoints, from the URLs of facebookresearch/sam2's checkpoints/download_ckpts.sh; the SHA-256
    # values are the Git-LFS ids of the same files on the Hub: Meta's facebook/sam2.1-hiera-tiny and -small
    # repos, and for base_plus and large mirrors of Meta's files that carry the tiny and small ids unchanged
    # (the byte sizes also match those that download scripts check against dl.fbaipublicfiles.com).
    "sam2.1_hiera_tiny": RemoteFile(
        "https://dl.fbaipublicfiles.com/segment_anything_2/092824/sam2.1_hiera_tiny.pt",
        "sam2.1_hiera_tiny.pt",
        "7402e0d864fa82708a20fbd15bc84245c2f26dff0eb43a4b5b93452deb34be69",
    ),
    "sam2.1_hiera_small": RemoteFile(
        "https://dl.fbaipublicfiles.com/segment_anything_2/092824/sam2.1_hiera_small.pt",
        "sam2.1_hiera_small.pt",
        "6d1aa6f30de5c92224f8172114de081d104bbd23dd9dc5c58996f0cad5dc4d38",
    ),
    "sam2.1_hiera_base_plus": RemoteFile(
        "https://dl.fbaipublicfiles.com/segment_anything_2/092824/sam2.1_hiera_base_plus.pt",
        "sam2.1_hiera_base_plus.pt",
        "a2345aede8715ab1d5d31b4a509fb160c5a4af1970f199d9054ccfb746c004c5",
    ),
    "sam2.1_hiera_large": RemoteFile(
        "https://dl.fbaipublicfiles.com/segment_anything_2/092824/sam2.1_hiera_large.pt",
        "sam2.1_hiera_large.pt",
        "2647878d5dfa5098f2f8649825738a9345572bae2d4350a2468587ece47dd318",
    ),
}
CLIP_WEIGHTS = {
    "clip_vit_b16": RemoteFile(
        "https://openaipublic.azureedge.net/clip/models/"
        "5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f/ViT-B-16.pt",
        "ViT-B-16.pt",
        "5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f",
    ),
}
# The same encoder files on the Hugging Face Hub, the second source (``risam download --source hub``, or an
# ``hf-hub:`` name in place of an encoder file): timm's SAM repos (timm's names, which the image encoder
# reads) and the repo of open_clip's ``ViT-B-16`` ``openai`` weights (open_clip's names, which are OpenAI's).
# Each repo's files in order of preference; the Hub's recorded SHA-256 checks the one taken.
SAM_HUB_FILES = ("model.safetensors", "pytorch_model.bin")
CLIP_HUB_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
SAM_HUB_REPOS = {
    "sam_vit_b": "timm/samvit_base_patch16.sa1b",
    "sam_vit_l": "timm/samvit_large_patch16.sa1b",
    "sam_vit_h": "timm/samvit_huge_patch16.sa1b",
    "sam2.1_hiera_tiny": "timm/sam2_hiera_tiny.fb_r896_2pt1",
    "sam2.1_hiera_small": "timm/sam2_hiera_small.fb_r896_2pt1",
    "sam2.1_hiera_base_plus": "timm/sam2_hiera_base_plus.fb_r896_2pt1",
    "sam2.1_hiera_large": "timm/sam2_hiera_large.fb_r1024_2pt1",
}
CLIP_HUB_REPOS = {"clip_vit_b16": "timm/vit_base_patch16_clip_224.openai"}
# What an encoder file argument may say instead of a path: fetch the official file into the cache.
DOWNLOAD = "download"
WEIGHTS_CACHE = "weights"  # the folder of :func:`risam.io.download.risam_home` that holds encoder files
# Encoder weights that ship inside the package (risam/pretrained/), made by a committed command.
SHIPPED_ENCODERS = {"risam_tiny": "risam_tiny_encoders.safetensors"}
# Trained RISAM weights that ship inside the package, made by a committed recipe (docs/training.md).
SHIPPED_MODELS = {"risam_tiny_refshapes": "risam_tiny_refshapes.safetensors"}
# What segment, explain, the demo and RISAMPredictor.from_pretrained use when given no weights file.
DEFAULT_PRETRAINED = "risam_tiny_refshapes"
# The one sentence that says what the shipped model can do; README, --help and the demo page show it.
SHIPPED_MODEL_LIMITS = (
    "The built-in model risam_tiny_refshapes knows only RefShapes' world (shapes, colours, textures and "
    "positions on generated scenes): on a photo it segments whatever looks like a shape. For real photos, "
    "train a paper config (e.g. risam train --config refcoco) with the official SAM and CLIP files."
)


def official_weights(table: Mapping[str, RemoteFile], variant: str, key: str, recheck: bool = False) -> Path:
    """The official encoder file of ``variant`` in ``table`` (:data:`SAM_WEIGHTS` or :data:`CLIP_WEIGHTS`):
    the cached copy under ``$RISAM_HOME/weights`` (with ``recheck``, checked against its SHA-256 again),
    else fetched there and checked.

    ``key`` names the config key in the error for a variant with no official file (e.g. the tiny encoders).
    """
    if variant not in table:
        raise ConfigError(
            f"{key}={variant!r} has no official weights to download; those with: {', '.join(table)}. "
            "Pass the encoder file's path instead"
        )
    return fetch(table[variant], risam_home() / WEIGHTS_CACHE, recheck=recheck)


def hub_encoder_weights(name: str) -> tuple[Path, str]:
    """The Hub's copy of the official encoder file ``name`` (a key of :data:`SAM_HUB_REPOS` or
    :data:`CLIP_HUB_REPOS`) in the Hugging Face cache, checked; returns (path, its checked hash)."""
    if name in SAM_HUB_REPOS:
        return checked_hub_file(HUB_PREFIX + SAM_HUB_REPOS[name], SAM_HUB_FILES)
    return checked_hub_file(HUB_PREFIX + CLIP_HUB_REPOS[name], CLIP_HUB_FILES)


def encoder_file(value: str | os.PathLike | None, config: RISAMConfig, part: str) -> str | os.PathLike | None:
    """An encoder file argument (``part``: "sam" or "clip") as a local file: ``"download"`` is the official file
    of the model's encoder (fetched into the cache if absent), an ``hf-hub:ORG/NAME[@REVISION]`` name the
    repo's encoder file (:data:`SAM_HUB_FILES`, :data:`CLIP_HUB_FILES`) from the Hugging Face cache, anything
    else (a path, or None) is returned as it is."""
    if value is None:
        return None
    if is_hub_name(value):
        return checked_hub_file(value, SAM_HUB_FILES if part == "sam" else CLIP_HUB_FILES)[0]
    if str(value) != DOWNLOAD:
        return value
    if part == "clip":
        return official_weights(CLIP_WEIGHTS, config.text_encoder.variant, "text_encoder.variant")
    if config.image_encoder.family == "timm":
        raise ConfigError(
            f"image_encoder.backbone={config.image_encoder.backbone!r} is a timm model: '{DOWNLOAD}' fetches "
            "only Meta's SAM files; pass the timm checkpoint's path as sam_checkpoint"
        )
    return official_weights(SAM_WEIGHTS, config.image_encoder.variant, "image_encoder.variant")


def pretrained_path(name: str) -> Path:
    """The weights file of the shipped trained model ``name`` (:data:`SHIPPED_MODELS`) inside the package."""
    if name not in SHIPPED_MODELS:
        raise ConfigError(f"no shipped model {name!r}; shipped models: {', '.join(sorted(SHIPPED_MODELS))}")
    return _PACKAGE / "pretrained" / SHIPPED_MODELS[name]


def resolve_checkpoint(checkpoint: str | os.PathLike | None) -> Path:
    """The weights file a command uses: the default shipped model for None, a shipped model for its name
    (unless a file of that name exists), a model on the Hub for ``hf-hub:ORG/NAME[@REVISION]`` (from the
    Hugging Face cache, fetched if absent: :func:`risam.io.hub.hub_model_weights`), else ``checkpoint``."""
    if checkpoint is None:
        return pretrained_path(DEFAULT_PRETRAINED)
    if is_hub_name(checkpoint):
        return hub_model_weights(checkpoint)
    if str(checkpoint) in SHIPPED_MODELS and not Path(checkpoint).exists():
        return pretrained_path(str(checkpoint))
    return Path(checkpoint)


def missing_encoder_files(
    config: RISAMConfig,
    sam_checkpoint: str | os.PathLike | None = None,
    clip_checkpoint: str | os.PathLike | None = None,
) -> list[str]:
    """The frozen encoder files a model of ``config`` was trained on that neither the package ships nor the
    caller gave, each as "<parameter>= <file> (<where it comes from>)"; [] when nothing is missing. The
    parameters are ``create_model``'s; the command line names its own flags for them (:mod:`risam.cli.flags`).

    A weights file holds only the trainable parts, so a paper model needs the official SAM and CLIP files
    back to predict anything meaningful. (The encoders that ship in the package are not counted here.)
    """
    missing = []
    image, text = config.image_encoder, config.text_encoder
    if image.freeze and sam_checkpoint is None:
        official = SAM_WEIGHTS.get(image.variant)
        if image.family == "timm":
            source = f"the timm weights of {image.backbone}"
        elif official:
            source = f"{official.file_name} from {official.url} (or '{DOWNLOAD}' to fetch it into the cache)"
        else:
            source = f"the {image.variant} encoder weights"
        missing.append(f"sam_checkpoint= {source}")
    if text.freeze and clip_checkpoint is None:
        official = CLIP_WEIGHTS.get(text.variant)
        source = (
            f"{official.file_name} from {official.url} (or '{DOWNLOAD}' to fetch it into the cache)"
            if official
            else f"the {text.variant} encoder weights"
        )
        missing.append(f"clip_checkpoint= {source}")
    return missing


def shipped_encoders_path(name: str) -> Path:
    """The encoders file of model ``name`` inside the installed package."""
    return _PACKAGE / "pretrained" / SHIPPED_ENCODERS[name]
