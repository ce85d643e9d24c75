"""Where data files are looked for, in order, and the message when they are nowhere.

1. ``--set data.dir=DIR`` (only there, when given);
2. ``$DEEPATLAS_DATA``;
3. the Debian package's folder (Fashion-MNIST: /usr/share/datasets/fashion-mnist);
4. torchvision's download into ``~/.cache/deepatlas``, only with ``--set data.download=true``.

In each base folder we try the folder itself, ``BASE/<name>`` and torchvision's own layout
``BASE/<TorchvisionName>/raw``, so a folder torchvision downloaded into works as it is.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from deepatlas.errors import UserError

DOWNLOAD_ROOT = Path.home() / ".cache" / "deepatlas" / "data"


def candidate_dirs(name: str, data_dir: str, extra: Sequence[str] = (),
                   subdirs: Sequence[str] = ()) -> list[Path]:
    if data_dir:
        bases = [Path(data_dir).expanduser()]
    else:
        bases = [Path(p).expanduser() for p in (os.environ.get("DEEPATLAS_DATA", ""),) if p]
        bases += [Path(p) for p in extra]
        bases.append(DOWNLOAD_ROOT)
    out: list[Path] = []
    for base in bases:
        out += [base, base / name, *(base / s for s in subdirs)]
    return out


def find_dir(name: str, data_dir: str, has_files: Callable[[Path], bool], *, how_to_get: str,
             extra: Sequence[str] = (), subdirs: Sequence[str] = (),
             download: Callable[[Path], None] | None = None) -> Path:
    """The first candidate folder where ``has_files`` holds, else a UserError that says how to
    get the data. ``download(DOWNLOAD_ROOT)`` is tried last when given."""
    if data_dir and not Path(data_dir).expanduser().is_dir():
        raise UserError(f"data.dir={data_dir} is not a folder. {how_to_get}")
    candidates = candidate_dirs(name, data_dir, extra, subdirs)
    for folder in candidates:
        if folder.is_dir() and has_files(folder):
            return folder
    if download is not None and not data_dir:
        try:
            download(DOWNLOAD_ROOT)
        except Exception as exc:  # torchvision raises many kinds when offline
            raise UserError(f"{name}: download failed ({type(exc).__name__}: {exc}). "
                            f"{how_to_get}") from None
        for folder in candidates:
            if folder.is_dir() and has_files(folder):
                return folder
    looked = ", ".join(str(c) for c in dict.fromkeys(candidates))
    raise UserError(f"{name} not found (looked in {looked}). {how_to_get}")
