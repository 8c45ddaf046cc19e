import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from risam.data.dataset import ReferDataset, identity_collate
from risam.data.masks import AnnotationError
from risam.data.readers import load_split
from risam.data.refshapes import generate_refshapes
from risam.data.sampler import GroupedBatchSampler


@pytest.fixture(scope="module")
def refshapes_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("refshapes")
    generate_refshapes(root, num_images=16, seed=3)
    return root


def _dataset(split, model, keep_original_masks=False):
    image = model.image_encoder.config
    return ReferDataset(
        split,
        image.img_size,
        model.text_encoder.tokenize,
        image.pixel_mean,
        image.pixel_std,
        keep_original_masks=keep_original_masks,
    )


def _count_encoded_images(model, loader):
    encoded = []
    hook = model.image_encoder.register_forward_hook(lambda module, args, out: encoded.append(args[0].shape[0]))
    sentences = 0
    with torch.no_grad():
        for batch in loader:
            logits = model(batch.images, batch.tokens, image_index=batch.image_index)
            assert logits.shape[0] == batch.tokens.shape[0] == batch.masks.shape[0]
            sentences += logits.shape[0]
    hook.remove()
    return sum(encoded), sentences


def test_grouped_batches_encode_each_image_once_per_epoch(refshapes_root, tiny_model):
    split = load_split(refshapes_root, "refshapes", "train")
    dataset = _dataset(split, tiny_model)
    num_images = len({e.image_id for e in split.expressions})
    assert len(dataset) > 3 * num_images

    grouped = GroupedBatchSampler(dataset.image_ids, groups_per_batch=3, seed=0)
    loader = DataLoader(dataset, batch_sampler=grouped, collate_fn=identity_collate)
    assert _count_encoded_images(tiny_model.eval(), loader) == (num_images, len(dataset))

    # Per-sentence batches draw sentences of many images: a batch encodes each of its distinct images.
    per_sentence = GroupedBatchSampler(dataset.image_ids, groups_per_batch=8, sentences_per_image=1, seed=0)
    distinct = sum(len({dataset.image_ids[i] for i in batch}) for batch in per_sentence)
    loader = DataLoader(dataset, batch_sampler=per_sentence, collate_fn=identity_collate)
    assert _count_encoded_images(tiny_model, loader) == (distinct, len(dataset))
    assert distinct > 2 * num_images


def test_batch_maps_sentences_to_their_images_and_masks(refshapes_root, tiny_model):
    split = load_split(refshapes_root, "refshapes", "val")
    dataset = _dataset(split, tiny_model, keep_original_masks=True)
    indices = list(range(len(dataset)))
    batch = dataset.__getitems__(indices)
    assert batch.images.shape == (len(batch.image_ids), 3, 128, 128)
    for row, index in enumerate(indices):
        expression = split.expressions[index]
        assert batch.image_ids[int(batch.image_index[row])] == expression.image_id
        np.testing.assert_array_equal(batch.original_masks[row], split.target_mask(expression))
        image = split.images[expression.image_id]
        assert batch.original_sizes[int(batch.image_index[row])] == (image.height, image.width)
        height, width = batch.resized_sizes[int(batch.image_index[row])]
        assert max(height, width) == 128
        assert batch.masks[row, height:].sum() == 0 and batch.masks[row, :, width:].sum() == 0
        assert batch.masks[row].sum() > 0
    expected_tokens = tiny_model.text_encoder.tokenize([split.expressions[i].sentence for i in indices])
    torch.testing.assert_close(batch.tokens, expected_tokens)


def test_image_problems_name_the_file(refshapes_root, tiny_model):
    split = load_split(refshapes_root, "refshapes", "testA")
    dataset = _dataset(split, tiny_model)
    record = split.images[split.expressions[0].image_id]
    original = record.path.read_bytes()
    try:
        record.path.unlink()
        with pytest.raises(FileNotFoundError, match=record.path.name):
            dataset[0]
        from PIL import Image

        Image.new("RGB", (record.width + 1, record.height)).save(record.path)
        with pytest.raises(AnnotationError, match=rf"{record.path.name} is {record.height}x{record.width + 1}"):
            dataset[0]
    finally:
        record.path.write_bytes(original)
