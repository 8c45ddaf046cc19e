import os
import socket
from collections import Counter

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from risam.data.sampler import GroupedBatchSampler

# 10 images with 1..7 sentences each, sentences of an image not contiguous in the dataset.
IMAGE_IDS = [image for repeat in range(7) for image in range(10) if repeat < 1 + image % 7]


def _epoch(sampler):
    return [batch for batch in sampler]


def test_every_sentence_once_and_images_never_split():
    sampler = GroupedBatchSampler(IMAGE_IDS, groups_per_batch=3, seed=1)
    batches = _epoch(sampler)
    assert sorted(i for batch in batches for i in batch) == list(range(len(IMAGE_IDS)))
    assert len(batches) == len(sampler) == 4
    seen_images = [image for batch in batches for image in {IMAGE_IDS[i] for i in batch}]
    assert len(seen_images) == len(set(seen_images)) == 10  # each image in exactly one batch
    assert [len({IMAGE_IDS[i] for i in batch}) for batch in batches] == [3, 3, 3, 1]


def test_sentences_per_image_chunks_and_per_sentence_mode():
    chunked = _epoch(GroupedBatchSampler(IMAGE_IDS, groups_per_batch=1, sentences_per_image=2, shuffle=False))
    assert all(len(batch) <= 2 and len({IMAGE_IDS[i] for i in batch}) == 1 for batch in chunked)
    assert sorted(i for batch in chunked for i in batch) == list(range(len(IMAGE_IDS)))
    counts = Counter(IMAGE_IDS)
    assert len(chunked) == sum(-(-n // 2) for n in counts.values())

    per_sentence = _epoch(GroupedBatchSampler(IMAGE_IDS, groups_per_batch=8, sentences_per_image=1, seed=0))
    assert [len(batch) for batch in per_sentence] == [8] * 4 + [len(IMAGE_IDS) - 32]


def test_order_is_deterministic_by_seed_and_epoch():
    first = GroupedBatchSampler(IMAGE_IDS, groups_per_batch=2, seed=5)
    again = GroupedBatchSampler(IMAGE_IDS, groups_per_batch=2, seed=5)
    assert _epoch(first) == _epoch(again)
    other_seed = GroupedBatchSampler(IMAGE_IDS, groups_per_batch=2, seed=6)
    assert _epoch(first) != _epoch(other_seed)
    first.set_epoch(1)
    assert _epoch(first) != _epoch(again)
    again.set_epoch(1)
    assert _epoch(first) == _epoch(again)


@pytest.mark.parametrize("drop_last", [False, True])
def test_ranks_take_disjoint_shards(drop_last):
    shards = [
        [
            i
            for batch in GroupedBatchSampler(IMAGE_IDS, 2, seed=3, num_replicas=3, rank=r, drop_last=drop_last)
            for i in batch
        ]
        for r in range(3)
    ]
    union = [i for shard in shards for i in shard]
    assert len(union) == len(set(union))
    if drop_last:
        lengths = [
            len(GroupedBatchSampler(IMAGE_IDS, 2, seed=3, num_replicas=3, rank=r, drop_last=True)) for r in range(3)
        ]
        assert len(set(lengths)) == 1 and lengths[0] == 1  # one global batch of 6 groups: 2 per rank
    else:
        assert sorted(union) == list(range(len(IMAGE_IDS)))


def test_accumulation_deals_micro_batches_like_ranks():
    single = _epoch(GroupedBatchSampler(IMAGE_IDS, 2, seed=4, accumulation_steps=2, drop_last=True))
    ranks = [_epoch(GroupedBatchSampler(IMAGE_IDS, 2, seed=4, num_replicas=2, rank=r, drop_last=True)) for r in (0, 1)]
    assert len(single) == 4 and len(ranks[0]) == len(ranks[1]) == 2
    assert single[0::2] == ranks[0] and single[1::2] == ranks[1]


def test_resuming_mid_epoch_skips_the_steps_done():
    sampler = GroupedBatchSampler(IMAGE_IDS, 1, seed=2)
    sampler.set_epoch(3)
    full = _epoch(sampler)
    sampler.set_epoch(3, start_step=4)
    assert _epoch(sampler) == full[4:]
    assert sampler.steps_per_epoch() == 10


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="groups_per_batch"):
        GroupedBatchSampler(IMAGE_IDS, 0)
    with pytest.raises(ValueError, match="sentences_per_image"):
        GroupedBatchSampler(IMAGE_IDS, 1, sentences_per_image=0)
    with pytest.raises(ValueError, match="rank=2"):
        GroupedBatchSampler(IMAGE_IDS, 1, num_replicas=2, rank=2)


def _ddp_worker(rank: int, world: int, port: int, queue) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    sampler = GroupedBatchSampler(IMAGE_IDS, groups_per_batch=2, seed=11)
    sampler.set_epoch(4)
    mine = [i for batch in sampler for i in batch]
    gathered = [None] * world
    dist.all_gather_object(gathered, mine)
    if rank == 0:
        queue.put(gathered)
    dist.destroy_process_group()


def test_two_ddp_processes_cover_every_sentence_exactly_once():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    context = mp.get_context("spawn")
    queue = context.Queue()
    mp.start_processes(_ddp_worker, args=(2, port, queue), nprocs=2, start_method="spawn", join=True)
    shards = queue.get(timeout=30)
    assert all(shards)
    union = shards[0] + shards[1]
    assert sorted(union) == list(range(len(IMAGE_IDS)))
    assert torch.tensor(union).unique().numel() == len(IMAGE_IDS)
