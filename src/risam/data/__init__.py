"""Referring-segmentation data: the dataset readers, RefShapes, masks, transforms, the dataset and sampler."""
