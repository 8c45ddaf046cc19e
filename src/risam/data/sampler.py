"""Image-grouped batches: the frozen image encoder runs once per image, not once per sentence.

A *group* is one image with its sentences (all of them, or chunks of at most
``sentences_per_image``). Every sentence belongs to exactly one group, so an epoch visits
every sentence once (less what ``drop_last`` drops). ``sentences_per_image=1`` makes every
sentence its own group: plain per-sentence batches.

One optimizer step consumes a *global batch* of ``groups_per_batch x num_replicas x
accumulation_steps`` consecutive groups of the epoch's shuffled order. Its groups are dealt
to slots ``slot = micro_step * num_replicas + rank`` (slot k takes every
(num_replicas * accumulation_steps)-th group from the k-th), so a rank's micro-batches are
disjoint from every other rank's, and one process with ``accumulation_steps = n`` sees exactly
the micro-batches that ``n`` DDP ranks would: the same global batch gives the same gradient.
The order is deterministic by ``seed`` and the epoch set with :meth:`set_epoch`.

With ``sample_weights`` (a mixed experiment whose datasets are given weights: :mod:`risam.data.mixture`)
an epoch is as many groups drawn with replacement, each with probability proportional to the mean weight
of its sentences, so that a dataset's share of the sentences follows its weight; without them, or with
all weights equal, an epoch is a permutation of the groups.

With ``drop_last`` (training) only whole global batches are used, so every rank runs the same
number of steps; without it (evaluation) every sentence is visited exactly once across ranks.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
import torch.distributed as dist
from torch.utils.data import Sampler


class GroupedBatchSampler(Sampler[list[int]]):
    """Micro-batches of sample indices for this rank, grouped by image.

    image_ids: the image of every sample (sentence), indexed like the dataset.
    groups_per_batch: groups in one micro-batch of one rank.
    num_replicas, rank: the DDP world size and this process's rank; by default those of the
    initialized default process group (1 and 0 without one).
    accumulation_steps: micro-batches per optimizer step on each rank.
    sample_weights: the sampling weight of every sample (module docstring); None: every group once per epoch.
    """

    def __init__(
        self,
        image_ids: Sequence[int],
        groups_per_batch: int,
        sentences_per_image: int | None = None,
        shuffle: bool = True,
        seed: int = 0,
        num_replicas: int | None = None,
        rank: int | None = None,
        drop_last: bool = False,
        accumulation_steps: int = 1,
        sample_weights: Sequence[float] | None = None,
    ) -> None:
        distributed = dist.is_available() and dist.is_initialized()
        num_replicas = num_replicas if num_replicas is not None else (dist.get_world_size() if distributed else 1)
        rank = rank if rank is not None else (dist.get_rank() if distributed else 0)
        if groups_per_batch < 1:
            raise ValueError(f"groups_per_batch={groups_per_batch}: must be at least 1")
        if sentences_per_image is not None and sentences_per_image < 1:
            raise ValueError(f"sentences_per_image={sentences_per_image}: must be at least 1 or None (all)")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank={rank} is not in [0, num_replicas={num_replicas})")
        if accumulation_steps < 1:
            raise ValueError(f"accumulation_steps={accumulation_steps}: must be at least 1")
        self.slots = num_replicas * accumulation_steps
        self.global_groups = groups_per_batch * self.slots
        self.shuffle = shuffle
        self.seed = seed
        self.rank = rank
        self.num_replicas = num_replicas
        self.accumulation_steps = accumulation_steps
        self.drop_last = drop_last
        self.epoch = 0
        self.start_step = 0
        by_image: dict[int, list[int]] = {}
        for index, image_id in enumerate(image_ids):
            by_image.setdefault(int(image_id), []).append(index)
        chunk = sentences_per_image or max((len(v) for v in by_image.values()), default=1)
        self.groups = [
            indices[start : start + chunk] for indices in by_image.values() for start in range(0, len(indices), chunk)
        ]
        self.group_weights: torch.Tensor | None = None
        if sample_weights is not None and len(set(sample_weights)) > 1:
            if len(sample_weights) != len(image_ids):
                raise ValueError(f"{len(sample_weights)} sample weights for {len(image_ids)} samples")
            self.group_weights = torch.tensor(
                [sum(sample_weights[i] for i in group) / len(group) for group in self.groups], dtype=torch.float64
            )

    def set_epoch(self, epoch: int, start_step: int = 0) -> None:
        """Use the order of ``epoch``, starting at optimizer step ``start_step`` (to resume mid-epoch)."""
        self.epoch = epoch
        self.start_step = start_step

    def steps_per_epoch(self) -> int:
        """Optimizer steps (global batches) in one epoch."""
        if self.drop_last:
            return len(self.groups) // self.global_groups
        return -(-len(self.groups) // self.global_groups)

    def __iter__(self) -> Iterator[list[int]]:
        order = list(range(len(self.groups)))
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        if self.group_weights is not None:
            order = torch.multinomial(self.group_weights, len(order), replacement=True, generator=generator).tolist()
        elif self.shuffle:
            order = torch.randperm(len(order), generator=generator).tolist()
        for step in range(self.start_step, self.steps_per_epoch()):
            global_batch = order[step * self.global_groups : (step + 1) * self.global_groups]
            for micro_step in range(self.accumulation_steps):
                slot = micro_step * self.num_replicas + self.rank
                batch = [index for g in global_batch[slot :: self.slots] for index in self.groups[g]]
                if batch:
                    yield batch

    def __len__(self) -> int:
        return sum(1 for _ in self)
