"""scikit-learn's bundled 8x8 handwritten digits: the embedded default, no download (MAP 8)."""

from __future__ import annotations

import torch

from deepatlas.data.source import ImageData, TensorSplit, channel_stats, register_source

TEST_FRACTION = 0.2
SPLIT_SEED = 0  # fixed, so every run of every seed is scored on the same 360 images


@register_source("digits")
def load_digits(**_: object) -> ImageData:
    """1,797 grey 8x8 images with 17 levels (0..16), rescaled to 0..255; 1,437 train / 360 test
    (stratified, fixed split)."""
    # scikit-learn at call time: importing it costs every deepatlas process 2.4 s.
    from sklearn.datasets import load_digits as _sklearn_digits
    from sklearn.model_selection import train_test_split

    bunch = _sklearn_digits()
    images = torch.from_numpy(bunch.images * (255.0 / 16.0)).round().to(torch.uint8)
    images = images.unsqueeze(1)  # (N, 1, 8, 8)
    labels = torch.from_numpy(bunch.target).long()
    train_idx, test_idx = train_test_split(
        torch.arange(len(labels)).numpy(), test_size=TEST_FRACTION, random_state=SPLIT_SEED,
        stratify=bunch.target,
    )
    train = TensorSplit(images[train_idx], labels[train_idx])
    mean, std = channel_stats(train.images)
    return ImageData(
        name="digits", classes=[str(d) for d in range(10)], in_channels=1, image_size=8,
        train=train, test=TensorSplit(images[test_idx], labels[test_idx]), mean=mean, std=std,
        source="sklearn.datasets.load_digits (bundled with scikit-learn)",
    )
