"""``load_data``: a data source by name, with a fixed validation split held out."""

from __future__ import annotations

import torch

from deepatlas.data.source import ImageData, TensorSplit, get_source
from deepatlas.errors import UserError

VAL_SPLIT_SEED = 0  # the validation split never moves with the run's seed


def load_data(name: str, *, data_dir: str = "", download: bool = False, image_size: int = 224,
              val_fraction: float = 0.0, augment: str = "none",
              train_examples: int = 0) -> ImageData:
    """Load data set ``name``; with ``val_fraction`` > 0, hold that share of the training set
    out as ``data.val`` (a fixed random subset); with ``train_examples`` > 0, train on that
    many of the rest only: the first ones of a fixed order, so a smaller subset is always part
    of a larger one (data-scaling curves)."""
    data = get_source(name)(data_dir=data_dir, download=download, image_size=image_size,
                            augment=augment)
    if val_fraction > 0:
        n = len(data.train)
        order = torch.randperm(n, generator=torch.Generator().manual_seed(VAL_SPLIT_SEED))
        n_val = max(1, round(n * val_fraction))
        if isinstance(data.train, TensorSplit):
            train = data.train
            data.val, data.train = train.subset(order[:n_val]), train.subset(order[n_val:])
        else:
            # Streamed sets: validation reads the training folder with the evaluation transform.
            from torch.utils.data import Subset

            from deepatlas.data.imagenet import imagenet_transforms

            base = data.train
            evaluated = type(base)(base.root, imagenet_transforms(image_size, train=False))
            data.val = Subset(evaluated, order[:n_val].tolist())
            data.train = Subset(base, order[n_val:].tolist())
    if train_examples > 0:
        keep_train_examples(data, train_examples, name)
    return data


def keep_train_examples(data: ImageData, train_examples: int, name: str) -> None:
    """Train on the first ``train_examples`` of :func:`labelled_subset`'s fixed order only
    (``name``: the data set, for the message)."""
    if not isinstance(data.train, TensorSplit):
        raise UserError("data.train_examples needs an in-memory data set (MNIST, "
                        "Fashion-MNIST, CIFAR, digits), not a streamed one")
    n = len(data.train)
    if train_examples > n:
        raise UserError(f"data.train_examples={train_examples} is more than the {n} "
                        f"training images of {name}; use at most {n} (0 = all)")
    data.train = data.train.subset(labelled_subset(n, train_examples))


def labelled_subset(n: int, count: int) -> torch.Tensor:
    """The indices of the ``count`` training examples (of ``n``) that ``data.train_examples``
    keeps: the first of a fixed order, so that a smaller subset is part of a larger one, and
    a probe on 1% of the labels sees the images a supervised run on 1% trains on."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(VAL_SPLIT_SEED + 1))
    return order[:count]
