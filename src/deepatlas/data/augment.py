"""Batched augmentation for in-memory image sets, done as tensor ops on the batch's device.

A DataLoader that builds a PIL image per sample spends most of a small model's step on Python;
here a whole batch is cropped and flipped at once. ``crop`` is the standard "pad by p and take
a random H x W window" (p = H/8: 4 px at 32, 3 px at 28), ``flip`` a horizontal flip with
probability 1/2.
"""

from __future__ import annotations

import torch

AUGMENTATIONS = ("none", "flip", "crop", "crop-flip", "source")


def source_pipeline():
    """The source's augmentation (MAP 5.2), exactly: RandomHorizontalFlip,
    ColorJitter(0.2, 0.2, 0.2), RandomAffine(15), from torchvision.transforms.v2."""
    from torchvision.transforms import v2

    return v2.Compose([v2.RandomHorizontalFlip(), v2.ColorJitter(0.2, 0.2, 0.2),
                       v2.RandomAffine(degrees=15)])


def random_crop(x: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Per-sample random crop of a zero-padded batch (B, C, H, W) back to (B, C, H, W)."""
    b, c, h, w = x.shape
    padded = torch.nn.functional.pad(x, (padding,) * 4)  # (B, C, H+2p, W+2p)
    dy = torch.randint(0, 2 * padding + 1, (b,), device=x.device, generator=generator)
    dx = torch.randint(0, 2 * padding + 1, (b,), device=x.device, generator=generator)
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]  # (B, 1, H, 1)
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]  # (B, 1, 1, W)
    batch = torch.arange(b, device=x.device)[:, None, None, None]
    channel = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[batch, channel, rows, cols]


def random_flip(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Mirror each image (B, C, H, W) left-right with probability 1/2."""
    flip = torch.rand(x.shape[0], device=x.device, generator=generator) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(3), x)


def augment_batch(x: torch.Tensor, mode: str, generator: torch.Generator) -> torch.Tensor:
    """Apply augmentation ``mode`` (one of :data:`AUGMENTATIONS`) to a uint8 batch.

    ``source`` runs torchvision's per-image pipeline on each image (each draws its own
    parameters, from torch's global RNG); the others are batched tensor ops drawing from
    ``generator``.
    """
    if mode == "source":
        pipeline = source_pipeline()
        return torch.stack([pipeline(image) for image in x])
    if mode in ("crop", "crop-flip"):
        x = random_crop(x, max(1, x.shape[-1] // 8), generator)
    if mode in ("flip", "crop-flip"):
        x = random_flip(x, generator)
    return x
