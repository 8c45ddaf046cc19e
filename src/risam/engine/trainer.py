"""Training, readable top to bottom: the paper's recipe, torchrun/DDP, resumable, atomic checkpoints.

Per optimizer step, every rank runs ``accumulation_steps`` micro-batches of image-grouped
sentences; the loss (Eq. 12) is computed on the logits upsampled to the input size. The
frozen encoders stay in eval mode under no_grad. Checkpoints (``checkpoints/last.pt``) hold
the trainable weights, the optimizer, the data position and the RNG states, so ``--resume``
continues exactly where a run stopped; ``best.safetensors`` and ``last.safetensors`` hold
the weights for ``risam evaluate``; ``learning_curve.png`` plots the evaluations so far.
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from risam.config import ConfigError
from risam.config.experiment import ExperimentConfig, OptimSection
from risam.data.dataset import ReferBatch, identity_collate
from risam.data.mixture import Overlap, format_overlaps, overlap_records
from risam.data.sampler import GroupedBatchSampler
from risam.engine.distributed import DistributedContext, all_reduce_sum, barrier, init_distributed
from risam.engine.experiment import build_dataset, build_experiment_model, build_train_dataset, place_model, val_splits
from risam.engine.feature_cache import CachedBatch, FeatureCache
from risam.engine.learning_curve import write_learning_curve
from risam.engine.logger import TrainingLogger
from risam.engine.validation import VAL_RESULTS_FILE, validate
from risam.evaluation.losses import risam_loss
from risam.io.checkpoint import load_training_state, rng_state, save_training_state, set_rng_state
from risam.io.config_files import save_config
from risam.io.files import atomic_write_json, remove_stale_temporaries
from risam.io.weights import save_weights


class TrainingError(RuntimeError):
    """Training cannot go on (for example, the loss is no longer finite)."""


def lr_at_epoch(optim: OptimSection, epoch: int) -> float:
    """The step schedule: ``lr * gamma ** (number of milestones <= epoch)`` (epochs count from 0)."""
    return optim.lr * optim.gamma ** sum(epoch >= milestone for milestone in optim.milestones)


def _groups_per_rank(config: ExperimentConfig, world_size: int) -> int:
    batch = config.batch
    slots = world_size * batch.accumulation_steps
    if batch.global_groups % slots:
        raise ConfigError(
            f"batch.global_groups={batch.global_groups} is not divisible by world size {world_size} x "
            f"batch.accumulation_steps={batch.accumulation_steps}"
        )
    return batch.global_groups // slots


LEAKAGE_FILE = "leakage.json"  # a mixed run's overlap table (risam.data.mixture)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _gather_rng() -> list[dict[str, Any]]:
    states = [rng_state()]
    if dist.is_available() and dist.is_initialized():
        gathered: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(gathered, states[0])
        states = gathered
    return states


class Trainer:
    """One training run of an :class:`ExperimentConfig`."""

    def __init__(self, config: ExperimentConfig, context: DistributedContext | None = None) -> None:
        self.config = config
        self.context = context or init_distributed()
        self.output_dir = Path(config.train.output_dir)
        self.checkpoint_dir = self.output_dir / "checkpoints"
        _seed_everything(config.train.seed)
        self.model = place_model(build_experiment_model(config), config, self.context.device)
        self.model_config = self.model.config
        self.train_set, self.overlaps, weights = build_train_dataset(config, self.model)
        self.val_sets = [
            (split, build_dataset(config, self.model, split, for_eval=True)) for split in val_splits(config)
        ]
        self.sampler = GroupedBatchSampler(
            self.train_set.image_ids,
            _groups_per_rank(config, self.context.world_size),
            sentences_per_image=config.batch.sentences_per_image if config.batch.mode == "grouped" else 1,
            shuffle=True,
            seed=config.train.seed,
            drop_last=True,
            accumulation_steps=config.batch.accumulation_steps,
            sample_weights=weights,
        )
        if self.sampler.steps_per_epoch() == 0:
            raise ConfigError(
                f"{self.train_set.split.dataset} {self.train_set.split.split} has {len(self.sampler.groups)} groups, "
                "fewer than "
                f"one global batch (batch.global_groups={config.batch.global_groups})"
            )
        self.cache: FeatureCache | None = None
        if config.train.cache_features:
            unfrozen = {"image_encoder", "text_encoder"} - set(self.model.frozen_parts)
            if unfrozen:
                raise ConfigError(
                    f"train.cache_features=true needs frozen encoders, but {', '.join(sorted(unfrozen))} trains; "
                    "set train.cache_features=false"
                )
            self.cache = FeatureCache.build(self.model, self.train_set, progress=config.train.progress)
        else:
            self.loader = DataLoader(
                self.train_set,
                batch_sampler=self.sampler,
                collate_fn=identity_collate,
                num_workers=config.data.num_workers,
                persistent_workers=config.data.num_workers > 0,
                pin_memory=self.context.device.type == "cuda",
            )
        self.parameters = [p for p in self.model.parameters() if p.requires_grad]
        # The fused kernel updates every tensor in one pass (CPU and CUDA); on the quickstart's 2 CPU cores a
        # training step is 1.17x faster than with the default per-tensor-list update (benchmarks/training_step.py).
        # The paper says "Adam [29]" and cites AdamW (decoupled weight decay) without a decay value. With
        # optim.weight_decay = 0 (the shipped configs) the two are the same update; a decay > 0 is applied
        # decoupled, as the cited paper does (docs/training.md, decisions).
        optimizer = torch.optim.AdamW if config.optim.weight_decay > 0 else torch.optim.Adam
        self.optimizer = optimizer(
            self.parameters, lr=config.optim.lr, weight_decay=config.optim.weight_decay, fused=True
        )
        self.network: torch.nn.Module = self.model
        if self.context.world_size > 1:
            device_ids = [self.context.local_rank] if self.context.device.type == "cuda" else None
            self.network = DistributedDataParallel(self.model, device_ids=device_ids)
        self.epoch = 0
        self.step_in_epoch = 0
        self.global_step = 0
        self.best_iou = -1.0
        self.logger = TrainingLogger(self.output_dir) if self.context.is_main else None

    def resume(self) -> None:
        """Continue from ``checkpoints/last.pt``: weights, optimizer, data position, RNG states.

        Rank 0 also removes the temporary files of writes a kill interrupted (checkpoint and output folders)
        and drops what was logged after the checkpoint (:meth:`TrainingLogger.truncate_after`).
        """
        path = self.checkpoint_dir / "last.pt"
        if not path.is_file():
            raise FileNotFoundError(f"resume: no training checkpoint at {path}")
        state = load_training_state(path)
        if state["model_config"] != self.model_config.to_dict():
            raise ConfigError(f"{path} was trained with another model architecture than this config describes")
        self.model.load_trainable_state_dict(state["trainable"], source=str(path))
        self.optimizer.load_state_dict(state["optimizer"])
        self.epoch, self.step_in_epoch = state["epoch"], state["step_in_epoch"]
        self.global_step, self.best_iou = state["global_step"], state["best_iou"]
        rng_states = state["rng"]
        set_rng_state(rng_states[self.context.rank % len(rng_states)])
        if self.context.is_main:
            remove_stale_temporaries(self.checkpoint_dir)
            remove_stale_temporaries(self.output_dir)
        if self.logger:
            self.logger.truncate_after(self.global_step, self.epoch)

    def save(self) -> None:
        """Write ``last.pt`` and ``last.safetensors`` (rank 0), atomically."""
        rng_states = _gather_rng()
        if self.context.is_main:
            state = {
                "config": self.config.to_dict(),
                "model_config": self.model_config.to_dict(),
                "trainable": self.model.trainable_state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "epoch": self.epoch,
                "step_in_epoch": self.step_in_epoch,
                "global_step": self.global_step,
                "best_iou": self.best_iou,
                "rng": rng_states,
            }
            save_training_state(state, self.checkpoint_dir / "last.pt")
            save_weights(self.model.trainable_state_dict(), self.model_config, self.checkpoint_dir / "last.safetensors")
        barrier()

    def _autocast(self) -> contextlib.AbstractContextManager:
        device = self.context.device
        return torch.autocast(
            device.type, dtype=torch.bfloat16, enabled=self.config.train.bf16 and device.type == "cuda"
        )

    def _micro_step(self, batch: ReferBatch | CachedBatch, sync: bool) -> torch.Tensor:
        """Forward and backward of one micro-batch; returns its loss (detached)."""
        batch = batch.to(self.context.device)
        syncing = contextlib.nullcontext() if sync or self.network is self.model else self.network.no_sync()
        with syncing:
            with self._autocast():
                if isinstance(batch, CachedBatch):
                    logits = self.network(
                        None, None, image_index=batch.image_index, taps=batch.taps, text=(batch.text, batch.padding)
                    )
                else:
                    logits = self.network(batch.images, batch.tokens, image_index=batch.image_index)
            logits = F.interpolate(logits[:, None].float(), size=batch.masks.shape[-2:], mode="bilinear")[:, 0]
            loss = risam_loss(
                logits,
                batch.masks,
                focal_weight=self.config.loss.focal_weight,
                dice_weight=self.config.loss.dice_weight,
                gamma=self.config.loss.focal_gamma,
            )
            (loss / self.config.batch.accumulation_steps).backward()
        return loss.detach()

    def evaluate(self) -> dict[str, Any]:
        """Validation metrics of the current weights (all ranks take part): :func:`risam.engine.validation.validate`."""
        progress = self.config.train.progress and self.context.is_main
        return validate(self.model, self.val_sets, self.config, self.context.device, progress)

    def train(self) -> dict[str, Any]:
        """Run until the last epoch (or ``train.max_steps``); returns the last validation results."""
        with deterministic_kernels(self.config.train.deterministic):
            return self._train()

    def _train(self) -> dict[str, Any]:
        config = self.config
        if self.context.is_main:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            save_config(config, self.output_dir / "config.yaml")
            if config.data.datasets:
                report_overlaps(self.overlaps, config.data.exclude_eval_images, self.output_dir)
        accumulation = config.batch.accumulation_steps
        steps_per_epoch = self.sampler.steps_per_epoch()
        results: dict[str, Any] = {}
        while self.epoch < config.optim.epochs:
            for group in self.optimizer.param_groups:
                group["lr"] = lr_at_epoch(config.optim, self.epoch)
            self.sampler.set_epoch(self.epoch, start_step=self.step_in_epoch)
            self.model.train()
            bar = tqdm(
                total=steps_per_epoch,
                initial=self.step_in_epoch,
                desc=f"epoch {self.epoch + 1}/{config.optim.epochs}",
                unit="step",
                disable=not (config.train.progress and self.context.is_main),
                dynamic_ncols=True,
            )
            losses, sentences, started = [], 0, time.perf_counter()
            batches = (self.cache.batch(indices) for indices in self.sampler) if self.cache else self.loader
            for micro, batch in enumerate(batches):
                losses.append(self._micro_step(batch, sync=(micro + 1) % accumulation == 0))
                sentences += batch.masks.shape[0]
                if (micro + 1) % accumulation:
                    continue
                step_loss = all_reduce_sum(torch.stack(losses).sum()) / (len(losses) * self.context.world_size)
                losses = []
                if not math.isfinite(step_loss.item()):
                    raise TrainingError(
                        f"the loss is {step_loss.item()} at epoch {self.epoch + 1}, step {self.step_in_epoch + 1}; "
                        f"training stopped before updating the weights. The last good checkpoint is "
                        f"{self.checkpoint_dir / 'last.pt'} (lower optim.lr or check the data)"
                    )
                self.optimizer.step()
                self.optimizer.zero_grad(set_to_none=True)
                self.step_in_epoch += 1
                self.global_step += 1
                rate = sentences * self.context.world_size / (time.perf_counter() - started)
                bar.update(1)
                bar.set_postfix(loss=f"{step_loss.item():.4f}", sent_per_s=f"{rate:.1f}")
                if self.logger and self.global_step % config.train.log_every_steps == 0:
                    lr = self.optimizer.param_groups[0]["lr"]
                    self.logger.log_step(
                        self.global_step, {"epoch": self.epoch, "loss": step_loss.item(), "lr": lr, "sent_per_s": rate}
                    )
                finished = config.train.max_steps is not None and self.global_step >= config.train.max_steps
                if finished or self.global_step % config.train.checkpoint_every_steps == 0:
                    self.save()
                if finished:
                    bar.close()
                    return results
            bar.close()
            self.epoch += 1
            self.step_in_epoch = 0
            if self.epoch % config.train.eval_every_epochs == 0 or self.epoch == config.optim.epochs:
                results = self.evaluate()
                if self.logger:
                    self.logger.log_eval(self.global_step, self.epoch, results)
                    write_learning_curve(self.output_dir, results, title=_curve_title(config))
                    if config.data.datasets:
                        atomic_write_json(self.output_dir / VAL_RESULTS_FILE, {"epoch": self.epoch, **results})
                if results["overall_iou"] > self.best_iou:
                    self.best_iou = results["overall_iou"]
                    if self.context.is_main:
                        save_weights(
                            self.model.trainable_state_dict(),
                            self.model_config,
                            self.checkpoint_dir / "best.safetensors",
                        )
            self.save()
        return results


def _curve_title(config: ExperimentConfig) -> str:
    if config.data.datasets:
        return f"{config.model.name} on {' + '.join(entry.name for entry in config.data.datasets)}: validation"
    return f"{config.model.name} on {config.data.dataset}: validation on {config.data.val_split}"


def report_overlaps(overlaps: list[Overlap], applied: bool, output_dir: Path) -> None:
    """Print what the leakage rule found per dataset and write it to ``output_dir/leakage.json``."""
    print(format_overlaps(overlaps, applied), flush=True)
    atomic_write_json(output_dir / LEAKAGE_FILE, overlap_records(overlaps, applied))


def train(config: ExperimentConfig, resume: bool = False) -> dict[str, Any]:
    """Train ``config`` (resuming from its output folder if asked); returns the last validation results."""
    trainer = Trainer(config)
    if resume:
        trainer.resume()
    try:
        return trainer.train()
    finally:
        if trainer.logger:
            trainer.logger.close()


@contextlib.contextmanager
def deterministic_kernels(enabled: bool) -> Iterator[None]:
    """torch's deterministic kernels inside the block when ``enabled`` (warning where an op has none)."""
    previous, previous_warn = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    if enabled:
        torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous, warn_only=previous_warn)
