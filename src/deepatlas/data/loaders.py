"""Batches for training and evaluation, sharded over DDP ranks the DistributedSampler way.

Training shuffles with ``DistributedSampler(seed, epoch)`` and drops the last partial batch, so
that under DDP the union of the ranks' batch ``b`` is exactly the single-process batch ``b`` of
the global size. Evaluation gives rank ``r`` the samples ``r, r + W, r + 2W, ...`` (no padding,
so no sample is counted twice) and the trainer sums the counts over ranks.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset

from deepatlas.data.augment import augment_batch
from deepatlas.data.source import ImageData, TensorSplit


class InMemoryLoader:
    """Yields normalised float batches (B, C, H, W) of a :class:`TensorSplit` kept on ``device``
    as uint8; augmentation runs on the whole batch there."""

    def __init__(self, split: TensorSplit, batch_size: int, *, train: bool, augment: str,
                 mean: tuple[float, ...], std: tuple[float, ...], device: torch.device,
                 seed: int = 0, rank: int = 0, world_size: int = 1) -> None:
        self.images = split.images.to(device)
        self.labels = split.labels.to(device)
        self.batch_size, self.train, self.augment = batch_size, train, augment
        self.seed, self.rank, self.world_size, self.epoch = seed, rank, world_size, 0
        self.mean = torch.tensor(mean, device=device).view(1, -1, 1, 1)
        self.std = torch.tensor(std, device=device).view(1, -1, 1, 1)
        self.sampler = DistributedSampler(range(len(split)), num_replicas=world_size, rank=rank,
                                          shuffle=True, seed=seed) if train else None
        self.size = split.images.shape[-1]

    def set_image_size(self, size: int) -> None:
        """Resize the batches to ``size`` x ``size`` from now on (progressive resizing)."""
        self.size = size

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if self.sampler is not None:
            self.sampler.set_epoch(epoch)

    def _indices(self) -> torch.Tensor:
        if self.sampler is None:
            return torch.arange(self.rank, len(self.labels), self.world_size)
        return torch.tensor(list(self.sampler))

    def __len__(self) -> int:
        if self.sampler is not None:  # training: the last partial batch is dropped
            return self.sampler.num_samples // self.batch_size
        n = len(range(self.rank, len(self.labels), self.world_size))
        return -(-n // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self.iterate(0)

    def iterate(self, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The epoch's batches from batch ``start`` on, exactly as an uninterrupted epoch
        would give them (for resuming mid-epoch)."""
        index = self._indices().to(self.labels.device)
        generator = torch.Generator(device=self.labels.device)
        # One stream per (seed, epoch, rank): a resumed epoch sees the same crops and flips.
        generator.manual_seed(hash((self.seed, self.epoch, self.rank)) & 0x7FFF_FFFF_FFFF)
        for b in range(len(self)):
            batch = index[b * self.batch_size:(b + 1) * self.batch_size]
            x = self.images[batch]  # (B, C, H, W) uint8
            if self.train and self.augment != "none":
                # Skipped batches are augmented too (cheap), so the stream stays in step.
                x = augment_batch(x, self.augment, generator)
            if b >= start:
                x = (x.float().div_(255) - self.mean) / self.std  # (B, C, H, W)
                if self.size != x.shape[-1]:
                    x = F.interpolate(x, size=self.size, mode="bilinear", antialias=True)
                yield x, self.labels[batch]


class TensorBatches:
    """Shuffled batches of in-memory tensors that share their first dimension (token ids, a
    GAN's images): each epoch's order is ``randperm(n)`` seeded by (seed, epoch), so a resumed
    epoch sees the same batches. Under DDP rank ``r`` takes every ``W``-th sample of that order,
    cut first to a multiple of W so that every rank takes the same number of steps (a rank
    with one more would wait for the others' gradients forever). Yields a tuple of tensors (a
    single tensor when given one); the last partial batch is dropped."""

    def __init__(self, *tensors: torch.Tensor, batch_size: int, seed: int = 0,
                 device: torch.device = torch.device("cpu"), rank: int = 0,
                 world_size: int = 1) -> None:
        self.tensors = tuple(t.to(device) for t in tensors)
        self.batch_size, self.seed, self.epoch = batch_size, seed, 0
        self.rank, self.world_size = rank, world_size

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.tensors[0]) // self.world_size // self.batch_size

    def __iter__(self):
        return self.iterate(0)

    def iterate(self, start: int = 0):
        n = len(self.tensors[0])
        order = torch.randperm(n, generator=torch.Generator().manual_seed(
            self.seed * 1000 + self.epoch))
        order = order[:n - n % self.world_size][self.rank::self.world_size]
        order = order.to(self.tensors[0].device)
        for b in range(start, len(self)):
            index = order[b * self.batch_size:(b + 1) * self.batch_size]
            batch = tuple(t[index] for t in self.tensors)
            yield batch if len(batch) > 1 else batch[0]


class _SkippingSampler(torch.utils.data.Sampler):
    """A DistributedSampler whose next pass starts ``skip`` indices in (mid-epoch resume). It
    yields ``(epoch, index)`` keys, so that :class:`_SeededSamples` can give each sample its
    own random stream wherever and whenever a worker loads it."""

    def __init__(self, sampler: DistributedSampler) -> None:
        self.sampler, self.skip = sampler, 0

    def __iter__(self):
        indices = list(self.sampler)[self.skip:]
        self.skip = 0
        return iter([(self.sampler.epoch, i) for i in indices])

    def __len__(self) -> int:
        return len(self.sampler) - self.skip


class _SeededSamples(Dataset):
    """Training samples whose random transforms draw from a stream seeded by (seed, epoch,
    index): the same crop and flip for a sample in an unbroken epoch and in a resumed one,
    whichever worker loads it."""

    def __init__(self, dataset: Dataset, seed: int) -> None:
        self.dataset, self.seed = dataset, seed

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]):
        epoch, index = key
        with torch.random.fork_rng(devices=[]):  # the loading process's own stream is untouched
            torch.manual_seed(hash((self.seed, epoch, index)) & 0x7FFF_FFFF_FFFF)
            return self.dataset[index]


class StreamLoader:
    """A DataLoader over a torch Dataset with a DistributedSampler, for sets too large for
    memory; its transforms normalise, so batches arrive ready on the CPU."""

    def __init__(self, dataset: Dataset, batch_size: int, *, train: bool, num_workers: int,
                 seed: int = 0, rank: int = 0, world_size: int = 1, pin_memory: bool = False):
        self.sampler = None
        self.batch_size, self.seed = batch_size, seed
        self.dataset = dataset
        self.size: int | None = None  # the crop set by set_image_size; None: the dataset's own
        if train:
            self.sampler = DistributedSampler(dataset, num_replicas=world_size, rank=rank,
                                              shuffle=True, seed=seed)
            self.skipping = _SkippingSampler(self.sampler)
            dataset = _SeededSamples(dataset, seed)
        else:
            dataset = Subset(dataset, range(rank, len(dataset), world_size))
        self.options = dict(batch_size=batch_size, sampler=self.skipping if train else None,
                            num_workers=num_workers, pin_memory=pin_memory, drop_last=train,
                            persistent_workers=num_workers > 0)
        self.loader = DataLoader(dataset, **self.options)

    def set_image_size(self, size: int) -> None:
        """Crop training images to ``size`` from now on (progressive resizing)."""
        from deepatlas.data.imagenet import resize_training_crops

        if size == self.size:  # called every epoch: keep the workers while the size holds
            return
        self.size = size
        resize_training_crops(self.dataset, size)
        # Persistent workers hold copies of the old transform: start new ones.
        self.loader = DataLoader(_SeededSamples(self.dataset, self.seed), **self.options)

    def set_epoch(self, epoch: int) -> None:
        if self.sampler is not None:
            self.sampler.set_epoch(epoch)

    def __len__(self) -> int:
        if self.sampler is not None:
            return len(self.sampler) // self.batch_size  # drop_last
        return len(self.loader)

    def __iter__(self):
        return iter(self.loader)

    def iterate(self, start: int = 0):
        """Batches from ``start`` on: the same samples, with the same random transforms, as
        an uninterrupted epoch."""
        if start:
            self.skipping.skip = start * self.batch_size
        return iter(self.loader)


def make_loader(data: ImageData, split: str, batch_size: int, *, augment: str = "none",
                device: torch.device = torch.device("cpu"), seed: int = 0, rank: int = 0,
                world_size: int = 1, num_workers: int = 2) -> InMemoryLoader | StreamLoader:
    """The loader for ``split`` ("train", "val" or "test") of ``data``; ``batch_size`` is per
    process."""
    dataset = getattr(data, split)
    train = split == "train"
    if isinstance(dataset, TensorSplit):
        return InMemoryLoader(dataset, batch_size, train=train, augment=augment, mean=data.mean,
                              std=data.std, device=device, seed=seed, rank=rank,
                              world_size=world_size)
    return StreamLoader(dataset, batch_size, train=train, num_workers=num_workers, seed=seed,
                        rank=rank, world_size=world_size, pin_memory=device.type == "cuda")
