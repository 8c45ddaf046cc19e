"""Evaluation: logits to the original resolution, sigmoid, threshold, metrics summed over ranks.

RefShapes evaluations also report the proof-of-reading metrics of :mod:`risam.evaluation.grounding`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from risam.config.experiment import ExperimentConfig
from risam.data.dataset import ReferBatch, ReferDataset, identity_collate
from risam.data.sampler import GroupedBatchSampler
from risam.data.transforms import logits_to_masks
from risam.engine.distributed import init_distributed
from risam.engine.experiment import build_dataset, place_model, split_root
from risam.evaluation.grounding import REFSHAPES_DATASETS, ByType, GroundingGap, cached_sentence_free_baseline
from risam.evaluation.metrics import MetricAccumulator, results_table
from risam.io.files import atomic_write_json, atomic_write_text
from risam.io.hub import is_hub_name, pinned_name
from risam.modeling.compiled import compile_or_eager
from risam.modeling.model import RISAM
from risam.registry.create import create_model
from risam.registry.files import resolve_checkpoint


def predict_masks(batch_logits: torch.Tensor, batch: ReferBatch, img_size: int, threshold: float) -> list[torch.Tensor]:
    """Binary masks at the original resolution for every sentence of ``batch``.

    batch_logits: B x S/4 x S/4. Returns B bool tensors of each image's H x W.
    """
    masks = []
    for row, logits in enumerate(batch_logits):
        image = int(batch.image_index[row])
        mask, _ = logits_to_masks(
            logits[None], img_size, batch.resized_sizes[image], batch.original_sizes[image], threshold
        )
        masks.append(torch.from_numpy(mask[0]))
    return masks


@torch.no_grad()
def evaluate_model(
    model: RISAM,
    dataset: ReferDataset,
    threshold: float,
    images_per_batch: int,
    device: torch.device,
    num_workers: int = 0,
    bf16: bool = False,
    progress: bool = True,
    data_root: str | Path | None = None,
) -> dict[str, Any]:
    """Metrics of ``model`` on ``dataset`` (which must keep original masks), over all ranks.

    Each rank evaluates a disjoint shard of the images; intersections and unions are summed
    across ranks before dividing. On RefShapes (``refshapes``, ``grefshapes``) the results also
    hold ``grounding_gap`` and ``by_type`` (:mod:`risam.evaluation.grounding`), and, when ``data_root`` (the
    root the dataset was read from) is given, ``sentence_free_baseline``, computed once per split.
    """
    if not dataset.keep_original_masks:
        raise ValueError("evaluation needs a ReferDataset built with keep_original_masks=True")
    was_training = model.training
    model.eval()
    sampler = GroupedBatchSampler(dataset.image_ids, images_per_batch, shuffle=False)
    loader = DataLoader(dataset, batch_sampler=sampler, collate_fn=identity_collate, num_workers=num_workers)
    metrics = MetricAccumulator()
    data = dataset.split
    refshapes = data.dataset in REFSHAPES_DATASETS
    reading = [GroundingGap(data), ByType(data)] if refshapes else []
    expressions = {expression.sent_id: expression for expression in data.expressions}
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16 and device.type == "cuda")
    bar = tqdm(loader, desc="evaluate", unit="batch", disable=not progress, dynamic_ncols=True)
    for batch in bar:
        moved = batch.to(device)
        with autocast:
            logits = model(moved.images, moved.tokens, image_index=moved.image_index)
        predictions = predict_masks(logits.float().cpu(), batch, dataset.img_size, threshold)
        for prediction, target, sent_id in zip(predictions, batch.original_masks, batch.sent_ids, strict=True):
            metrics.add(prediction, target)
            for accumulator in reading:
                accumulator.add(prediction, expressions[sent_id])
    metrics.all_reduce()
    model.train(was_training)
    results = metrics.summary()
    for accumulator in reading:
        accumulator.all_reduce()
        results.update(accumulator.summary())
    if refshapes and data_root is not None:
        results["sentence_free_baseline"] = cached_sentence_free_baseline(data_root, data.dataset, data.split)
    return results


def run_evaluation(
    config: ExperimentConfig, checkpoint: str | os.PathLike, split: str, output: str | os.PathLike | None = None
) -> dict[str, Any]:
    """Evaluate the RISAM weights file ``checkpoint`` (or a shipped model's name, or a model on the Hub,
    ``hf-hub:ORG/NAME[@REVISION]``, recorded as ``hf-hub:ORG/NAME@COMMIT``) on ``split`` of the configured
    dataset.

    The architecture comes from the checkpoint, the encoder files and data from ``config``.
    Rank 0 writes ``output`` (JSON, fractions; ``encoder_precision`` says whether the frozen encoders ran
    in fp32 or bf16) and, next to it, the same as a markdown table in percent (``.md``). Returns the results.
    """
    label = checkpoint
    checkpoint = resolve_checkpoint(checkpoint)
    label = pinned_name(label, checkpoint) if is_hub_name(label) else str(checkpoint)
    context = init_distributed()
    model = create_model(
        checkpoint=checkpoint,
        sam_checkpoint=config.model.sam_checkpoint,
        clip_checkpoint=config.model.clip_checkpoint,
    )
    model = place_model(model, config, context.device)
    if config.eval.compile:
        compile_or_eager(model.image_encoder, "image encoder")
    dataset = build_dataset(config, model, split, for_eval=True)
    results = evaluate_model(
        model,
        dataset,
        threshold=config.eval.threshold,
        images_per_batch=config.eval.images_per_batch,
        device=context.device,
        num_workers=config.data.num_workers,
        bf16=config.train.bf16,
        progress=config.train.progress and context.is_main,
        data_root=split_root(config, split),
    )
    results.update(
        model=model.config.name,
        dataset=dataset.split.dataset,
        split=split,
        checkpoint=label,
        encoder_precision=model.encoder_precision,
    )
    if output is not None and context.is_main:
        write_results(results, Path(output))
    return results


def write_results(results: dict[str, Any], path: Path) -> None:
    """``results`` as JSON at ``path`` and as a markdown table at ``path`` with suffix ``.md``, each written
    atomically (:mod:`risam.io.files`)."""
    atomic_write_json(path, results)
    atomic_write_text(path.with_suffix(".md"), results_table(results) + "\n")
