"""torchrun/DDP set-up: one process per device, gloo on CPU, nccl on GPU."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistributedContext:
    """This process's place in the run."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """True on rank 0, which writes checkpoints, logs and results."""
        return self.rank == 0


def init_distributed(device: str | None = None) -> DistributedContext:
    """Join the process group that ``torchrun`` describes in the environment (RANK, WORLD_SIZE, ...).

    Without those variables this is a single process. The device is ``cuda:LOCAL_RANK`` when
    CUDA is available (backend nccl), the CPU otherwise (backend gloo); ``device`` forces one.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() if device is None else device.startswith("cuda")
    target = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(target)
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo", rank=rank, world_size=world_size)
    return DistributedContext(rank=rank, world_size=world_size, local_rank=local_rank, device=target)


def all_reduce_sum(value: torch.Tensor) -> torch.Tensor:
    """The sum of ``value`` over all ranks (``value`` itself in a single process)."""
    if dist.is_available() and dist.is_initialized():
        value = value.clone()
        dist.all_reduce(value)
    return value


def barrier() -> None:
    """Wait for every rank (no-op in a single process)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
