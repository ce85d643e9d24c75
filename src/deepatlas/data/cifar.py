"""CIFAR-10 and CIFAR-100 in torchvision's on-disk format (the "python version" pickles).

The batches are pickled dicts with ``data`` (N, 3072) uint8 rows (R, G, B planes of 32x32) and
``labels`` / ``fine_labels``. They are unpickled with an allow-list, so a file that tries to
run code is refused instead of executed.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from deepatlas.data.locate import find_dir
from deepatlas.data.source import ImageData, TensorSplit, channel_stats, register_source
from deepatlas.errors import UserError

LAYOUT = {
    "cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"],
                "batches.meta", "label_names", "labels"),
    "cifar100": ("cifar-100-python", ["train"], ["test"], "meta", "fine_label_names",
                 "fine_labels"),
}
_ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
            ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
            ("numpy._core.multiarray", "scalar")}


class _ArraysOnly(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def _unpickle(path: Path) -> dict:
    try:
        with path.open("rb") as f:
            table = _ArraysOnly(f, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, OSError) as exc:
        raise UserError(f"cannot read {path} as a CIFAR batch: {exc}") from None
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in table.items()}


def _read(folder: Path, names: list[str], label_key: str) -> TensorSplit:
    data, labels = [], []
    for name in names:
        batch = _unpickle(folder / name)
        data.append(np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        labels += list(batch[label_key])
    return TensorSplit(torch.from_numpy(np.concatenate(data)), torch.tensor(labels).long())


def _load(name: str, data_dir: str, download: bool) -> ImageData:
    import torchvision

    subdir, train_files, test_files, meta_file, names_key, label_key = LAYOUT[name]
    dataset_cls = torchvision.datasets.CIFAR10 if name == "cifar10" else torchvision.datasets.CIFAR100

    def has_files(folder: Path) -> bool:
        return all((folder / f).is_file() for f in [*train_files, *test_files, meta_file])

    def fetch(root: Path) -> None:
        dataset_cls(root=str(root / name), download=True)

    base = find_dir(
        name, data_dir, lambda p: has_files(p / subdir), download=fetch if download else None,
        how_to_get=f"Unpack the CIFAR python archive so that FOLDER/{subdir}/ holds "
                   f"{', '.join(train_files[:1])}..., then pass --set data.dir=FOLDER; or add "
                   "--set data.download=true when online.",
    )
    folder = base / subdir
    classes = [str(c) for c in _unpickle(folder / meta_file)[names_key]]
    train = _read(folder, train_files, label_key)
    mean, std = channel_stats(train.images)
    return ImageData(name=name, classes=classes, in_channels=3, image_size=32, train=train,
                     test=_read(folder, test_files, label_key), mean=mean, std=std,
                     source=str(folder))


@register_source("cifar10")
def load_cifar10(data_dir: str = "", download: bool = False, **_: object) -> ImageData:
    """CIFAR-10: 50,000 / 10,000 colour 32x32 images of 10 classes."""
    return _load("cifar10", data_dir, download)


@register_source("cifar100")
def load_cifar100(data_dir: str = "", download: bool = False, **_: object) -> ImageData:
    """CIFAR-100: 50,000 / 10,000 colour 32x32 images of 100 classes."""
    return _load("cifar100", data_dir, download)
