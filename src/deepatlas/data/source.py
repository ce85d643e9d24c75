"""What every data source returns, and the registry of sources by name."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch.utils.data import Dataset

from deepatlas.errors import unknown_name


@dataclass
class TensorSplit:
    """A split held in memory: ``images`` (N, C, H, W) uint8 and ``labels`` (N,) int64."""

    images: torch.Tensor
    labels: torch.Tensor

    def __post_init__(self) -> None:
        assert self.images.dtype == torch.uint8 and self.images.ndim == 4, self.images.shape
        assert len(self.images) == len(self.labels)

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: torch.Tensor) -> "TensorSplit":
        return TensorSplit(self.images[index], self.labels[index])


@dataclass
class ImageData:
    """A classification data set: its splits and what a model needs to know about it.

    Small sets (``in_memory``) are :class:`TensorSplit` and are augmented per batch as tensors;
    large ones are torch Datasets that stream through DataLoader workers.
    """

    name: str
    classes: list[str]
    in_channels: int
    image_size: int
    train: TensorSplit | Dataset
    test: TensorSplit | Dataset
    mean: tuple[float, ...]  # per channel, on the 0..1 scale
    std: tuple[float, ...]
    val: TensorSplit | Dataset | None = None
    source: str = ""  # where the files were read from
    notes: list[str] = field(default_factory=list)

    @property
    def in_memory(self) -> bool:
        return isinstance(self.train, TensorSplit)

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of uint8 images (N, C, H, W), on the 0..1 scale."""
    x = images.float().div_(255).transpose(0, 1).flatten(1)  # (C, N*H*W)
    return tuple(x.mean(1).tolist()), tuple(x.std(1).clamp_min(1e-3).tolist())


Loader = Callable[..., ImageData]
_SOURCES: dict[str, Loader] = {}


def register_source(name: str) -> Callable[[Loader], Loader]:
    def wrap(fn: Loader) -> Loader:
        _SOURCES[name] = fn
        return fn

    return wrap


def list_sources() -> list[str]:
    return sorted(_SOURCES)


def get_source(name: str) -> Loader:
    if name not in _SOURCES:
        raise unknown_name("data set", name, _SOURCES)
    return _SOURCES[name]
