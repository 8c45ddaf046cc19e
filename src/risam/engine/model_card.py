"""The model card and ``config.json`` of an exported model, as the Hugging Face Hub shows them.

The card is a ``README.md`` whose YAML front matter holds the Hub's metadata (``library_name: risam``,
``pipeline_tag: image-segmentation``, license, datasets, tags) and a ``model-index`` with the results that
the weights file records. Those numbers are the record's own, unchanged: fractions in [0, 1], as
``risam evaluate`` writes them (the card's text shows them in percent). The text says what the model is,
how to use it, the encoder files it needs, its results per split, the recipe with its command and seed,
and its limits. Everything comes from the weights file: its config and its record (:mod:`risam.engine.export`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import yaml

from risam.config import ConfigError, RISAMConfig, config_from_yaml
from risam.evaluation.metrics import results_table
from risam.io.download import RemoteFile
from risam.io.hub import CONFIG_FILE, LIBRARY_NAME, WEIGHTS_FILE
from risam.registry.files import (
    CLIP_HUB_REPOS,
    CLIP_WEIGHTS,
    SAM_HUB_REPOS,
    SAM_WEIGHTS,
    SHIPPED_ENCODERS,
    SHIPPED_MODEL_LIMITS,
    SHIPPED_MODELS,
)
from risam.version import __version__

DEFAULT_LICENSE = "apache-2.0"  # SAM's weights and code are Apache-2.0, CLIP's MIT; risam's code Apache-2.0
DATASET_NAMES = {
    "refcoco": "RefCOCO",
    "refcoco+": "RefCOCO+",
    "refcocog_umd": "G-Ref (UMD)",
    "refcocog_google": "G-Ref (Google)",
    "grefcoco": "gRefCOCO",
    "phrasecut": "PhraseCut",
    "refshapes": "RefShapes",
    "grefshapes": "gRefShapes",
    "custom": "custom data (refs.jsonl)",
}
# The results a model-index lists: record key -> the metric's display name.
INDEX_METRICS = {
    "overall_iou": "oIoU",
    "mean_iou": "mIoU",
    "ciou": "cIoU",
    "giou": "gIoU",
    "n_acc": "N-acc",
    "t_acc": "T-acc",
}
TAGS = ("referring-image-segmentation", "risam", "segment-anything", "clip", "pytorch")


def recorded_results(record: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """The results per split that a weights file records (``{}`` when it records none)."""
    text = record.get("results")
    if not text:
        return {}
    try:
        results = json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigError(f"metadata key 'results' is not JSON ({error})") from error
    if not isinstance(results, dict) or not all(isinstance(value, dict) for value in results.values()):
        raise ConfigError("metadata key 'results' is not a mapping of split -> results")
    return results


def model_index(name: str, dataset: str, results: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The Hub's ``model-index`` of model ``name``: one entry per split of ``dataset`` with the recorded
    metrics (overall and mean IoU, precision at each threshold, and gRefCOCO's where recorded)."""
    entries = []
    for split, scores in results.items():
        metrics = [
            {"type": key, "value": scores[key], "name": label} for key, label in INDEX_METRICS.items() if key in scores
        ]
        metrics += [
            {"type": f"precision@{threshold}", "value": value, "name": f"Prec@{threshold}"}
            for threshold, value in scores.get("precision", {}).items()
        ]
        name_of, _, split = split.rpartition("/")  # a mixed run's results are keyed DATASET/SPLIT
        evaluated = scores.get("dataset", name_of or dataset)
        entries.append(
            {
                "task": {"type": "image-segmentation", "name": "Referring image segmentation"},
                "dataset": {"name": DATASET_NAMES.get(evaluated, evaluated), "type": evaluated, "split": split},
                "metrics": metrics,
            }
        )
    return [{"name": name, "results": entries}]


def encoder_files(config: RISAMConfig) -> list[str]:
    """What the card says about the frozen encoder files a model of ``config`` needs, one line each."""
    if config.name in SHIPPED_ENCODERS:
        return [f"None to fetch: the encoders of `{config.name}` ship in the risam package."]
    image, text = config.image_encoder, config.text_encoder
    if image.family == "timm":
        image_line = f"Image encoder: the timm weights of `{image.backbone}` (`--sam-checkpoint PATH`)."
    else:
        image_line = _encoder_line("Image", image.variant, SAM_WEIGHTS, SAM_HUB_REPOS, "Meta's", "--sam-checkpoint")
    text_line = _encoder_line("Text", text.variant, CLIP_WEIGHTS, CLIP_HUB_REPOS, "OpenAI's", "--clip-checkpoint")
    return [image_line, text_line]


def _encoder_line(
    part: str,
    variant: str,
    official_files: Mapping[str, RemoteFile],
    hub_repos: Mapping[str, str],
    maker: str,
    flag: str,
) -> str:
    """The card's line on one encoder file: the official file and its Hub copy, or the weights it was trained on."""
    if variant not in official_files:
        return f"{part} encoder: the `{variant}` weights it was trained on (`{flag} PATH`)."
    official = official_files[variant]
    return (
        f"{part} encoder: {maker} `{official.file_name}` ({official.url}; `{flag} download` fetches it), or the "
        f"same weights from the Hub: `{flag} hf-hub:{hub_repos[variant]}`."
    )


def hub_config(config: RISAMConfig, record: Mapping[str, str], trainable: int) -> dict[str, Any]:
    """The ``config.json`` of an exported model: what library reads it, the model's config, its weights file."""
    return {
        "library_name": LIBRARY_NAME,
        "risam_version": __version__,
        "architecture": config.name,
        "weights": WEIGHTS_FILE,
        "trainable_parameters": trainable,
        "seed": record.get("seed"),
        "config": config.to_dict(),
    }


def model_card(
    name: str,
    config: RISAMConfig,
    record: Mapping[str, str],
    trainable: int,
    license: str = DEFAULT_LICENSE,
    repo_id: str | None = None,
) -> str:
    """The ``README.md`` of the exported model ``name`` (``repo_id``: where it will live on the Hub, for the
    loading examples): YAML front matter, then the text described in the module docstring."""
    experiment = None
    if "experiment" in record:
        experiment = config_from_yaml(record["experiment"].encode(), "the weights file's record 'experiment'")
    names = [entry.name for entry in experiment.data.datasets] if experiment else []
    dataset = " + ".join(names) if names else (experiment.data.dataset if experiment else "unknown")
    results = recorded_results(record)
    results = dict(sorted(results.items(), key=lambda item: item[0] != "val"))  # val first, then as recorded
    metadata = {
        "library_name": LIBRARY_NAME,
        "pipeline_tag": "image-segmentation",
        "license": license,
        "datasets": names or [dataset],
        "tags": list(TAGS),
        "model-index": model_index(name, dataset, results),
    }
    hub_name = f"hf-hub:{repo_id}" if repo_id else "hf-hub:ORG/NAME"
    needs_files = config.name not in SHIPPED_ENCODERS
    files = ', sam_checkpoint="download", clip_checkpoint="download"' if needs_files else ""
    flags = " --sam-checkpoint download --clip-checkpoint download" if needs_files else ""
    parts = [
        "---\n" + yaml.safe_dump(metadata, sort_keys=False, allow_unicode=True) + "---",
        f"# {name}",
        f"A RISAM model (Zhang et al. 2024, *RISAM: Referring Image Segmentation via Mutual-Aware Attention "
        f"Features*) for referring image segmentation: given an image and "
        f"an expression, it returns the mask of the region the expression describes. Architecture "
        f"`{config.name}`: a frozen {_image_encoder(config)}, a frozen {_text_encoder(config)}, and "
        f"{trainable:,} trainable parameters (Feature Enhancement, Mutual-Aware Attention, Mutual-Aware Mask "
        f"Decoder; head width C = {config.head.dim}), trained on {DATASET_NAMES.get(dataset, dataset)}.",
        "## Use",
        "```python\nfrom risam import RISAMPredictor\n\n"
        f'predictor = RISAMPredictor.from_pretrained("{hub_name}"{files})\n'
        'predictor.set_image("photo.jpg")\nmask = predictor.predict("the red square").mask  # H x W bool\n```',
        f'```bash\nrisam segment photo.jpg "the red square" --checkpoint {hub_name}{flags} --out out/\n```',
        f"`{hub_name}@REVISION` takes a branch, tag or commit id; the files stay in the Hugging Face cache, "
        "and `HF_HUB_OFFLINE=1` uses them without a network.",
        *(
            [f'It also ships inside the risam package: `RISAMPredictor.from_pretrained("{name}")`.']
            if name in SHIPPED_MODELS
            else []
        ),
        "## Encoder files it needs\n\n" + "\n".join(f"- {line}" for line in encoder_files(config)),
        "## Results\n\n" + _results_section(name, dataset, results),
        "## Recipe\n\n" + _recipe_section(record, experiment),
        "## Limits\n\n" + _limits(name, dataset),
        f"Exported by risam {__version__}: `{WEIGHTS_FILE}` (a RISAM weights file that records the above), "
        f"`{CONFIG_FILE}`, and this card.",
    ]
    return "\n\n".join(parts) + "\n"


def _image_encoder(config: RISAMConfig) -> str:
    image = config.image_encoder
    if image.family == "timm":
        return f"timm `{image.backbone}` image encoder"
    kind = {
        "sam_vit_b": "SAM ViT-B",
        "sam_vit_l": "SAM ViT-L",
        "sam_vit_h": "SAM ViT-H",
        "sam2.1_hiera_tiny": "SAM 2.1 Hiera-T",
        "sam2.1_hiera_small": "SAM 2.1 Hiera-S",
        "sam2.1_hiera_base_plus": "SAM 2.1 Hiera-B+",
        "sam2.1_hiera_large": "SAM 2.1 Hiera-L",
    }.get(image.variant)
    size = f"{image.img_size} x {image.img_size} input"
    if kind:
        return f"{kind} image encoder ({size}, taps after blocks {', '.join(map(str, image.tap_indices))})"
    return f"{image.depth}-block ViT image encoder of width {image.embed_dim} ({image.variant}, {size})"


def _text_encoder(config: RISAMConfig) -> str:
    text = config.text_encoder
    if text.variant in CLIP_WEIGHTS:
        return "CLIP ViT-B/16 text encoder"
    return f"{text.layers}-layer text transformer of width {text.width} ({text.variant})"


def _results_section(name: str, dataset: str, results: Mapping[str, Mapping[str, Any]]) -> str:
    """The recorded results in percent, one row per split (the metrics' tables of ``risam evaluate``)."""
    if not results:
        return "No results are recorded in the weights file (export a run that has `results_<split>.json` files)."
    rows = [
        results_table({"dataset": dataset, **scores, "model": name, "split": split}).splitlines()
        for split, scores in results.items()
    ]
    table = "\n".join(rows[0][:2] + [row[2] for row in rows])
    counts = {split: scores["num_samples"] for split, scores in results.items() if "num_samples" in scores}
    samples = "; sentences per split: " + ", ".join(f"{split} {count:,}" for split, count in counts.items())
    return f"{table}\n\nIn percent{samples if counts else ''}, as `risam evaluate` measured them."


def _recipe_section(record: Mapping[str, str], experiment: Any) -> str:
    lines = []
    if experiment is not None:
        data, optim, batch, loss = experiment.data, experiment.optim, experiment.batch, experiment.loss
        trained = ", ".join(f"`{e.name}/{e.train_split}`" for e in data.datasets)
        validated = ", ".join(f"`{e.name}/{e.val_split}`" for e in data.datasets)
        rule = "without" if data.exclude_eval_images else "with"
        lines += [
            f"- Data: trained on {trained} together ({rule} the images of their val and test splits), validated on "
            f"{validated}."
            if data.datasets
            else f"- Data: `{data.dataset}`, trained on `{data.train_split}`, validated on `{data.val_split}`.",
            f"- {optim.epochs} epochs, learning rate {optim.lr:g}, x{optim.gamma:g} at epochs "
            f"{', '.join(map(str, optim.milestones)) or '-'}, weight decay {optim.weight_decay:g}; {batch.mode} "
            f"batches of {batch.global_groups} images; loss {loss.focal_weight:g} focal + {loss.dice_weight:g} dice.",
            f"- Mask threshold {experiment.eval.threshold:g}.",
        ]
    for key, label in (("command", "Command"), ("seed", "Seed"), ("cost", "Cost")):
        if key in record:
            value = f"`{record[key]}`" if key == "command" else record[key]
            lines.append(f"- {label}: {value}")
    if "experiment" in record:
        lines.append("\nThe experiment, as the run recorded it:\n\n```yaml\n" + record["experiment"].strip() + "\n```")
    return "\n".join(lines) if lines else "Not recorded in the weights file."


def _limits(name: str, dataset: str) -> str:
    if name in SHIPPED_MODELS:
        return SHIPPED_MODEL_LIMITS
    return (
        f"Trained on {DATASET_NAMES.get(dataset, dataset)} only: its expressions, objects and photos bound what it "
        "has seen, and the numbers above hold for those splits, not for other data. One expression gives one "
        "mask. Its trained head works only with the frozen encoder files it was trained on (listed above)."
    )
