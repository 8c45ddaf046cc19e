"""What each ``risam`` subcommand runs: ``run_<command>(args)`` returns the exit code.

Imports happen inside each function, so that a command loads only what it uses.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from risam.cli.text import argument_text, terminal_safe

if TYPE_CHECKING:
    from risam.predictor import RISAMPredictor


def run_info(args: argparse.Namespace) -> int:
    from risam.info import format_info, model_info

    info = model_info(args.model)
    print(json.dumps(info, indent=2) if args.json else format_info(info))
    return 0


def run_data_synth(args: argparse.Namespace) -> int:
    from risam.data.refshapes import generate_refshapes

    summary = generate_refshapes(
        args.out, num_images=args.images, seed=args.seed, progress=True, refer_layout=args.refer_layout
    )
    print(json.dumps({"out": str(args.out), "splits": summary}, indent=2))
    return 0


def run_download(args: argparse.Namespace) -> int:
    from risam.registry.files import (
        CLIP_HUB_REPOS,
        CLIP_WEIGHTS,
        SAM_HUB_REPOS,
        SAM_WEIGHTS,
        hub_encoder_weights,
        official_weights,
    )

    names = [*SAM_WEIGHTS, *CLIP_WEIGHTS] if "all" in args.names else list(dict.fromkeys(args.names))
    for name in names:
        if args.source == "hub":
            repo = SAM_HUB_REPOS.get(name) or CLIP_HUB_REPOS[name]
            path, checked = hub_encoder_weights(name)
            flag = "--sam-checkpoint" if name in SAM_HUB_REPOS else "--clip-checkpoint"
            print(f"{name}: {path} ({checked}, as the Hub records it); pass {flag} hf-hub:{repo} or the path")
            continue
        table = SAM_WEIGHTS if name in SAM_WEIGHTS else CLIP_WEIGHTS
        path = official_weights(table, name, "NAME", recheck=True)
        print(f"{name}: {path} (SHA-256 {table[name].sha256}, checked)")
    return 0


def run_data_download(args: argparse.Namespace) -> int:
    from risam.data.check import check_data_root
    from risam.data.download import download_dataset

    summary = download_dataset(args.dataset, args.root, images=args.images, url_base=args.url_base)
    print(json.dumps(summary, indent=2))
    reports = [check_data_root(args.root, dataset) for dataset in summary["datasets"]]
    print("\n".join(report.format() for report in reports))
    return 0 if all(report.ok for report in reports) else 1


def run_data_check(args: argparse.Namespace) -> int:
    from risam.data.check import check_data_root

    names = list(dict.fromkeys(args.dataset))
    reports = [check_data_root(args.root, name, image_root=args.image_root) for name in names]
    print("\n".join(report.format() for report in reports))
    if len(names) > 1 and all(report.ok for report in reports):
        from risam.config.experiment import DataSection, DatasetEntry
        from risam.data.mixture import dataset_overlaps, format_overlaps

        data = DataSection(
            root=str(args.root),
            image_root=None if args.image_root is None else str(args.image_root),
            datasets=[DatasetEntry(name) for name in names],
        )
        overlaps = dataset_overlaps(data)
        print(f"\nImages shared by {', '.join(names)} (train splits against every val and test split):")
        print(format_overlaps(overlaps, applied=True))
    return 0 if all(report.ok for report in reports) else 1


def run_train(args: argparse.Namespace) -> int:
    from risam.engine.trainer import train
    from risam.io.config_files import load_config

    results = train(load_config(args.config, args.set + _precision_override(args)), resume=args.resume)
    if results:
        print(json.dumps(results, indent=2))
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    from risam.engine.evaluator import run_evaluation
    from risam.evaluation.metrics import results_table
    from risam.io.config_files import load_config

    compile_override = ["eval.compile=true"] if args.compile else []
    config = load_config(args.config, args.set + _precision_override(args) + compile_override)
    results = run_evaluation(config, args.checkpoint, args.split, args.output)
    print(results_table(results))
    return 0


def run_ablate(args: argparse.Namespace) -> int:
    from risam.ablation import ablation_markdown, describe_variants, list_variants, run_ablation
    from risam.config import ConfigError
    from risam.io.config_files import load_config

    config = load_config(args.config, args.set)
    if args.list:
        print(describe_variants(config))
        return 0
    if args.variants is None:
        raise ConfigError(f"--variants is required, comma-separated, from: {', '.join(list_variants())}")
    out = args.out if args.out is not None else Path(config.train.output_dir) / "ablation"
    table = run_ablation(
        config, args.variants, out, split=args.split, seeds=args.seeds, run_missing=not args.table_only
    )
    print(ablation_markdown(table))
    print(f"written to {out / 'ablation.json'}, {out / 'ablation.md'} and {out / 'ablation.png'}")
    return 0


def run_quickstart(args: argparse.Namespace) -> int:
    from risam.quickstart import quickstart

    results = quickstart(args.out, **({"num_images": args.images} if args.images else {}), seed=args.seed)
    print(
        f"overall IoU on RefShapes val: {100 * results['overall_iou']:.2f}% (sentence-free baseline "
        f"{100 * results['sentence_free_baseline']:.2f}%, grounding gap {100 * (results['grounding_gap'] or 0):.2f} "
        f"points; written to {args.out})"
    )
    return 0


def run_pretrain_tiny(args: argparse.Namespace) -> int:
    from risam.pretrain.command import pretrain_tiny

    path = pretrain_tiny(
        args.out, seed=args.seed, num_images=args.images, image_steps=args.image_steps, text_steps=args.text_steps
    )
    print(f"tiny encoders written to {path}")
    return 0


def run_explain(args: argparse.Namespace) -> int:
    from risam.errors import InputError
    from risam.explain import explain, render_explanation
    from risam.io.images import atomic_save_image, load_image

    if args.output.is_dir():
        raise InputError(f"{args.output}: is a folder; give the figure's file name, e.g. figure.png")
    predictor = predictor_of(args)
    image = load_image(args.image)
    predictor.set_image(image)
    expression = argument_text(args.expression)
    result = explain(predictor, expression, pixel=tuple(args.pixel) if args.pixel else None, block=args.block)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    atomic_save_image(args.output, render_explanation(image, result), "PNG")
    weights = ", ".join(f"{w}={v:.2f}" for w, v in zip(result.words, result.word_weights, strict=True))
    print(terminal_safe(f"wrote {args.output}; word weights at {result.pixel}: {weights}"))
    return 0


def run_convert_clip(args: argparse.Namespace) -> int:
    from risam.modeling.text_encoder import convert_clip_checkpoint

    if args.run_torchscript:
        print(f"running the TorchScript code in {args.source} to read it (--run-torchscript)", file=sys.stderr)
    count = convert_clip_checkpoint(args.source, args.destination, run_torchscript=args.run_torchscript)
    print(f"wrote {count} text-tower tensors of {args.source} to {args.destination}")
    return 0


def run_demo(args: argparse.Namespace) -> int:
    from risam.demo import launch_demo

    launch_demo(
        args.checkpoint,
        args.sam_checkpoint,
        args.clip_checkpoint,
        random_encoders=args.random_encoders,
        precision=args.precision,
        host=args.host,
        port=args.port,
        max_upload_bytes=args.max_upload_bytes,
        compile=args.compile,
    )
    return 0


def run_export(args: argparse.Namespace) -> int:
    from risam.engine.export import export_run
    from risam.errors import InputError

    folder = args.output.suffix != ".safetensors"
    if args.push_to_hub and not folder:
        raise InputError(f"--push-to-hub uploads a folder; give a folder as OUT, not {args.output}")
    record = export_run(
        args.source,
        args.output,
        weights=args.weights,
        command=args.recorded_command,
        cost=args.cost,
        license=args.license,
        repo_id=args.push_to_hub,
    )
    what = "model.safetensors, config.json and README.md" if folder else f"the {args.weights} weights"
    print(f"wrote {args.output}: {what} of {args.source}, recording " + ", ".join(sorted(record)))
    if args.push_to_hub:
        from risam.io.hub import push_folder

        url = push_folder(args.output, args.push_to_hub, private=args.private)
        print(f"uploaded to {args.push_to_hub}: {url}; load it as hf-hub:{args.push_to_hub}")
    return 0


def predictor_of(args: argparse.Namespace, **options: float) -> RISAMPredictor:
    """The predictor of ``--checkpoint`` (a file, a shipped model's name, or the built-in default)."""
    from risam.predictor import RISAMPredictor

    return RISAMPredictor.from_checkpoint(
        args.checkpoint,
        args.sam_checkpoint,
        args.clip_checkpoint,
        precision=args.precision,
        random_encoders=args.random_encoders,
        **options,
    )


def _precision_override(args: argparse.Namespace) -> list[str]:
    """``--precision`` of train and evaluate as a config override (none when not given)."""
    return [] if args.precision is None else [f"train.encoder_precision={args.precision}"]


def model_label(args: argparse.Namespace) -> str:
    """The weights a command used, as written in its outputs: the file, or the shipped model's name."""
    from risam.registry.files import DEFAULT_PRETRAINED

    return str(args.checkpoint) if args.checkpoint is not None else DEFAULT_PRETRAINED
