"""ImageNet (or any ImageFolder with ``train/`` and ``val/``), streamed through DataLoader
workers with torchvision's reference transforms: RandomResizedCrop + flip for training,
resize to size/0.875 + centre crop for evaluation.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch.utils.data import Subset

if TYPE_CHECKING:  # torchvision is imported when ImageNet is used: it costs every process 3 s
    from torchvision import datasets
    from torchvision.transforms import v2

from deepatlas.data.locate import find_dir
from deepatlas.data.source import ImageData, register_source
from deepatlas.errors import UserError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def imagenet_transforms(size: int, train: bool, augment: str = "crop-flip") -> v2.Compose:
    from torchvision.transforms import v2

    """torchvision's reference: RandomResizedCrop + flip (``augment`` crop-flip), or the
    source's pipeline (``source``) after the crop, or no augmentation (``none``)."""
    tail = [v2.ToImage(), v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    if train and augment != "none":
        from deepatlas.data.augment import source_pipeline

        extra = [source_pipeline()] if augment == "source" else [v2.RandomHorizontalFlip()]
        return v2.Compose([v2.RandomResizedCrop(size, antialias=True), *extra, *tail])
    if train:
        return v2.Compose([v2.Resize(size, antialias=True), v2.CenterCrop(size), *tail])
    return v2.Compose([v2.Resize(round(size / 0.875), antialias=True), v2.CenterCrop(size), *tail])


def resize_training_crops(dataset: datasets.ImageFolder | Subset, size: int) -> None:
    """Make a training set from :func:`load_imagenet` crop to ``size`` from now on
    (progressive resizing); its DataLoader's workers must be restarted to see it."""
    base = dataset.dataset if isinstance(dataset, Subset) else dataset
    base.transform = imagenet_transforms(size, True, getattr(base, "augment", "crop-flip"))


def _has_split_folders(folder: Path) -> bool:
    return (folder / "train").is_dir() and (folder / "val").is_dir()


@register_source("imagenet")
def load_imagenet(data_dir: str = "", image_size: int = 224, augment: str = "crop-flip",
                  **_: object) -> ImageData:
    """ILSVRC-2012 laid out as ``DIR/train/<class>/*.JPEG`` and ``DIR/val/<class>/*.JPEG``."""
    folder = find_dir(
        "imagenet", data_dir, _has_split_folders,
        how_to_get="Lay the images out as FOLDER/train/<class>/*.JPEG and FOLDER/val/<class>/"
                   "*.JPEG (the val images sorted into class folders, as torchvision's reference "
                   "scripts expect) and pass --set data.dir=FOLDER.",
    )
    from torchvision import datasets

    try:
        train = datasets.ImageFolder(str(folder / "train"), imagenet_transforms(image_size, True, augment))
        test = datasets.ImageFolder(str(folder / "val"), imagenet_transforms(image_size, False))
    except (FileNotFoundError, OSError) as exc:
        raise UserError(f"{folder}: {exc}") from None
    train.augment = augment  # for resize_training_crops
    if train.classes != test.classes:
        raise UserError(f"{folder}: train/ has {len(train.classes)} class folders and val/ has "
                        f"{len(test.classes)}; they must match")
    return ImageData(name="imagenet", classes=train.classes, in_channels=3, image_size=image_size,
                     train=train, test=test, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                     source=str(folder))
