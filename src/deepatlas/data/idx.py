"""MNIST and Fashion-MNIST, read straight from their IDX files (gzip-compressed or not).

IDX: a 4-byte big-endian magic ``0x00000803`` (uint8, 3 dims) for images or ``0x00000801``
for labels, then each dimension as a big-endian uint32, then the bytes.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import torch

from deepatlas.data.locate import find_dir
from deepatlas.data.source import ImageData, TensorSplit, channel_stats, register_source
from deepatlas.errors import UserError

FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
MAGIC = {3: 0x00000803, 1: 0x00000801}  # ndim -> magic, uint8 data
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot"]
DEBIAN_FASHION = "/usr/share/datasets/fashion-mnist"


def _file(folder: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        if (folder / name).is_file():
            return folder / name
    return None


def read_idx(path: Path, ndim: int) -> torch.Tensor:
    """An IDX file of unsigned bytes with ``ndim`` dimensions, as a uint8 tensor."""
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except PermissionError:
        raise  # not damage: the command says whose access is missing (cli/main.py)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise UserError(f"cannot read {path}: {exc} (a damaged download? fetch it again)") from None
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise UserError(f"{path} is truncated: {len(raw)} bytes, shorter than an IDX header")
    (magic,) = struct.unpack(">I", raw[:4])
    if magic != MAGIC[ndim]:
        raise UserError(f"{path} is not an IDX file of {ndim}-d uint8 data: magic "
                        f"0x{magic:08x}, expected 0x{MAGIC[ndim]:08x}")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    size = int(np.prod(shape))
    if len(raw) - header != size:
        raise UserError(f"{path} is truncated or padded: the header says shape {shape} "
                        f"({size} bytes), the file holds {len(raw) - header}")
    return torch.from_numpy(np.frombuffer(raw, np.uint8, size, header).reshape(shape).copy())


def _has_idx(folder: Path) -> bool:
    return all(_file(folder, stem) for pair in FILES.values() for stem in pair)


def _read_split(folder: Path, split: str) -> TensorSplit:
    images_stem, labels_stem = FILES[split]
    images = read_idx(_file(folder, images_stem), 3).unsqueeze(1)  # (N, 1, 28, 28)
    labels = read_idx(_file(folder, labels_stem), 1).long()
    if len(images) != len(labels):
        raise UserError(f"{folder}: {len(images)} {split} images but {len(labels)} labels")
    return TensorSplit(images, labels)


def _load(name: str, classes: list[str], folder: Path) -> ImageData:
    train = _read_split(folder, "train")
    mean, std = channel_stats(train.images)
    return ImageData(name=name, classes=classes, in_channels=1, image_size=train.images.shape[-1],
                     train=train, test=_read_split(folder, "test"), mean=mean, std=std,
                     source=str(folder))


def _downloader(dataset_cls):
    def download(root: Path) -> None:
        for train in (True, False):
            dataset_cls(root=str(root), train=train, download=True)

    return download


@register_source("fashion-mnist")
def load_fashion_mnist(data_dir: str = "", download: bool = False, **_: object) -> ImageData:
    """Zalando's Fashion-MNIST: 60,000 / 10,000 grey 28x28 images of 10 clothing classes."""
    import torchvision

    folder = find_dir(
        "fashion-mnist", data_dir, _has_idx, extra=[DEBIAN_FASHION],
        subdirs=["FashionMNIST/raw"],
        download=_downloader(torchvision.datasets.FashionMNIST) if download else None,
        how_to_get="Install it with: sudo apt-get install -y dataset-fashion-mnist "
                   f"(files land in {DEBIAN_FASHION}); or put the four IDX .gz files in a folder "
                   "and pass --set data.dir=FOLDER; or add --set data.download=true when online.",
    )
    return _load("fashion-mnist", FASHION_CLASSES, folder)


@register_source("mnist")
def load_mnist(data_dir: str = "", download: bool = False, **_: object) -> ImageData:
    """LeCun's MNIST: 60,000 / 10,000 grey 28x28 handwritten digits."""
    import torchvision

    folder = find_dir(
        "mnist", data_dir, _has_idx, subdirs=["MNIST/raw"],
        download=_downloader(torchvision.datasets.MNIST) if download else None,
        how_to_get="Put train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
                   "t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz in a folder and pass "
                   "--set data.dir=FOLDER (or set DEEPATLAS_DATA); or add --set data.download=true "
                   "when online.",
    )
    return _load("mnist", [str(d) for d in range(10)], folder)


@register_source("fashion-mnist-binary")
def load_fashion_mnist_binary(data_dir: str = "", download: bool = False,
                              **_: object) -> ImageData:
    """Fashion-MNIST's first two classes, T-shirt/top (0) against Trouser (1): 12,000 / 2,000
    images, the pair variational quantum classifiers are usually shown on (MAP 7.5)."""
    full = load_fashion_mnist(data_dir=data_dir, download=download)

    def pair(split: TensorSplit) -> TensorSplit:
        return split.subset(torch.nonzero(split.labels <= 1).squeeze(1))

    train = pair(full.train)
    mean, std = channel_stats(train.images)
    return ImageData(name="fashion-mnist-binary", classes=full.classes[:2], in_channels=1,
                     image_size=full.image_size, train=train, test=pair(full.test), mean=mean,
                     std=std, source=full.source)
