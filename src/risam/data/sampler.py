"""Image-grouped batches: the frozen image encoder runs once per image, not once per sentence.

A *group* is one image with its sentences (all of them, or chunks of at most
``sentences_per_image``). A batch is ``images_per_batch`` groups. Every sentence belongs to
exactly one group, so an epoch visits every sentence once (less what ``drop_last`` drops).
``sentences_per_image=1`` makes every sentence its own group: plain per-sentence batches.

Under DDP each rank takes a disjoint shard of the groups (every ``num_replicas``-th group
from ``rank`` of one shuffled order), deterministic by ``seed`` and the epoch set with
:meth:`set_epoch`. With ``drop_last`` (training), the groups that do not fill an equal share
per rank and the last incomplete batch are dropped, so every rank runs the same number of
steps; without it (evaluation) every sentence is visited exactly once across ranks.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
import torch.distributed as dist
from torch.utils.data import Sampler


class GroupedBatchSampler(Sampler[list[int]]):
    """Batches of sample indices, grouped by image.

    image_ids: the image of every sample (sentence), indexed like the dataset.
    num_replicas, rank: the DDP world size and this process's rank; by default those of the
    initialized default process group (1 and 0 without one).
    """

    def __init__(
        self,
        image_ids: Sequence[int],
        images_per_batch: int,
        sentences_per_image: int | None = None,
        shuffle: bool = True,
        seed: int = 0,
        num_replicas: int | None = None,
        rank: int | None = None,
        drop_last: bool = False,
    ) -> None:
        distributed = dist.is_available() and dist.is_initialized()
        num_replicas = num_replicas if num_replicas is not None else (dist.get_world_size() if distributed else 1)
        rank = rank if rank is not None else (dist.get_rank() if distributed else 0)
        if images_per_batch < 1:
            raise ValueError(f"images_per_batch={images_per_batch}: must be at least 1")
        if sentences_per_image is not None and sentences_per_image < 1:
            raise ValueError(f"sentences_per_image={sentences_per_image}: must be at least 1 or None (all)")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank={rank} is not in [0, num_replicas={num_replicas})")
        self.images_per_batch = images_per_batch
        self.shuffle = shuffle
        self.seed = seed
        self.num_replicas = num_replicas
        self.rank = rank
        self.drop_last = drop_last
        self.epoch = 0
        by_image: dict[int, list[int]] = {}
        for index, image_id in enumerate(image_ids):
            by_image.setdefault(int(image_id), []).append(index)
        chunk = sentences_per_image or max((len(v) for v in by_image.values()), default=1)
        self.groups = [
            indices[start : start + chunk] for indices in by_image.values() for start in range(0, len(indices), chunk)
        ]

    def set_epoch(self, epoch: int) -> None:
        """Use the shuffled order of ``epoch`` (call before each epoch, as with DistributedSampler)."""
        self.epoch = epoch

    def _rank_groups(self) -> list[list[int]]:
        order = list(range(len(self.groups)))
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(len(order), generator=generator).tolist()
        if self.drop_last:
            order = order[: len(order) - len(order) % self.num_replicas]
        return [self.groups[i] for i in order[self.rank :: self.num_replicas]]

    def __iter__(self) -> Iterator[list[int]]:
        groups = self._rank_groups()
        stop = len(groups) - len(groups) % self.images_per_batch if self.drop_last else len(groups)
        for start in range(0, stop, self.images_per_batch):
            yield [index for group in groups[start : start + self.images_per_batch] for index in group]

    def __len__(self) -> int:
        groups = len(self._rank_groups())
        if self.drop_last:
            return groups // self.images_per_batch
        return -(-groups // self.images_per_batch)
