"""Super-resolution pairs (MAP 6.1, ESRGAN) from the ``photos`` set: high-resolution (HR)
images and the low-resolution (LR) inputs made from them.

- **HR.** Each photograph is shrunk once, with Lanczos (antialiased), to ``photo_side`` px on
  its longest side, then cut to a multiple of the scale. The originals are 2560 px JPEGs;
  shrinking them removes the JPEG blocks and leaves detail at the pixel level, as the
  benchmark sets (Set5, Set14, DIV2K) have.
- **LR.** HR shrunk by the scale with PIL's bicubic, which, like MATLAB's ``imresize`` that
  the super-resolution papers use, widens the kernel by the scale factor (an antialiased
  reduction): the "BI" degradation of the benchmarks.
- **Splits by photograph** (:func:`deepatlas.data.photos.split_by_photograph`): 15 for
  training, 4 for validation (choosing the model) and 4 for test, in the role of Set5/Set14.
  Validation and test images are scored whole.
- **Training patches.** A fixed bank of ``patches`` HR crops of ``patch`` px and the same
  windows of the LR images, at random positions of the training photographs, each pair
  flipped and rotated by a random multiple of 90 degrees (the 8 symmetries of the square,
  ESRGAN's augmentation). The bank
  is a function of the seed, so a resumed run sees the same batches.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from deepatlas.data import photos
from deepatlas.data.packages import set_folder
from deepatlas.errors import UserError


@dataclass
class SRImages:
    """Whole images: ``hr[i]`` (3, H, W) and ``lr[i]`` (3, H/s, W/s), uint8."""

    names: list[str]
    hr: list[torch.Tensor]
    lr: list[torch.Tensor]

    def __len__(self) -> int:
        return len(self.hr)


@dataclass
class SRData:
    """Training patches ``train_hr`` (N, 3, P, P) and ``train_lr`` (N, 3, P/s, P/s), uint8; the
    validation and test photographs whole."""

    name: str
    scale: int
    train_hr: torch.Tensor
    train_lr: torch.Tensor
    val: SRImages
    test: SRImages
    train_photos: list[str]
    source: str


def downscale(hr: np.ndarray, scale: int) -> np.ndarray:
    """(H, W, 3) uint8 -> (H/s, W/s, 3) uint8, PIL bicubic (antialiased). H, W divisible by s."""
    h, w = hr.shape[:2]
    return np.array(Image.fromarray(hr).resize((w // scale, h // scale), Image.BICUBIC))


def bicubic_upscale(lr: np.ndarray, scale: int) -> np.ndarray:
    """(h, w, 3) uint8 -> (h*s, w*s, 3) uint8: the baseline every SR result is reported beside."""
    h, w = lr.shape[:2]
    return np.array(Image.fromarray(lr).resize((w * scale, h * scale), Image.BICUBIC))


def read_hr(path: Path, side: int, scale: int) -> np.ndarray:
    """A photograph shrunk to ``side`` px on its longest side (never enlarged), cut to a
    multiple of ``scale``: (H, W, 3) uint8."""
    with Image.open(path) as img:
        img = img.convert("RGB")
        img.thumbnail((side, side), Image.LANCZOS)
        pixels = np.array(img)  # a writable copy: torch shares its memory
    h, w = pixels.shape[:2]
    return np.ascontiguousarray(pixels[:h - h % scale, :w - w % scale])


def patch_bank(images: list[np.ndarray], n: int, patch: int, scale: int, seed: int
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` random HR crops of ``patch`` px from ``images`` and the matching crops of each
    image's LR (the whole image shrunk once, as the test images are: shrinking a crop alone
    would cut the bicubic kernel at its edges), each pair in the same one of the square's 8
    symmetries: (n, 3, P, P) and (n, 3, P/s, P/s) uint8."""
    small = [im.shape[:2] for im in images if min(im.shape[:2]) < patch]
    if small:
        raise UserError(f"upscale.patch={patch} is larger than a training photograph "
                        f"({small[0][1]}x{small[0][0]} px); lower it")
    rng = np.random.default_rng(seed)
    smaller = [downscale(im, scale) for im in images]
    p = patch // scale
    hr = np.empty((n, patch, patch, 3), np.uint8)
    lr = np.empty((n, p, p, 3), np.uint8)
    for i in range(n):
        k = int(rng.integers(len(images)))
        image, small_image = images[k], smaller[k]
        y = int(rng.integers(0, (image.shape[0] - patch) // scale + 1))  # in LR pixels
        x = int(rng.integers(0, (image.shape[1] - patch) // scale + 1))
        turns, flip = int(rng.integers(4)), bool(rng.integers(2))
        for out, source, side, at in ((hr, image, patch, scale), (lr, small_image, p, 1)):
            crop = np.rot90(source[y * at:y * at + side, x * at:x * at + side], turns)
            out[i] = crop[:, ::-1] if flip else crop
    return (torch.from_numpy(hr).permute(0, 3, 1, 2).contiguous(),
            torch.from_numpy(lr).permute(0, 3, 1, 2).contiguous())


def _whole(names: list[str], hr: list[np.ndarray], scale: int) -> SRImages:
    return SRImages(names, [torch.from_numpy(h).permute(2, 0, 1).contiguous() for h in hr],
                    [torch.from_numpy(downscale(h, scale)).permute(2, 0, 1).contiguous()
                     for h in hr])


@functools.lru_cache(maxsize=2)
def _photographs(folder: Path, side: int, scale: int
                 ) -> dict[str, tuple[list[str], list[np.ndarray]]]:
    """Per split, the names and HR pixels of its photographs. Decoding the 2560 px originals
    takes most of a second each, so a process (the lab trains several runs) does it once."""
    by_split = photos.split_by_photograph([p.path for p in photos.load(folder)])
    return {split: ([p.stem for p in paths], [read_hr(p, side, scale) for p in paths])
            for split, paths in by_split.items()}


def load_superres(data_dir: str = "", download: bool = True, *, scale: int = 4,
                  photo_side: int = 512, patch: int = 64, patches: int = 8000, seed: int = 0,
                  eval_images: int = 0) -> SRData:
    """The SR pairs of ``photos`` (fetched on first use unless ``download`` is False;
    ``data_dir`` may hold it as a subfolder). ``eval_images`` > 0 keeps only that many
    validation and test photographs (a quick run)."""
    if patch % scale:
        raise UserError(f"upscale.patch={patch} must be a multiple of the scale, {scale}")
    folder = set_folder(data_dir, "photos", download)
    return _load(folder, scale, photo_side, patch, patches, seed, eval_images)


def _load(folder: Path, scale: int, side: int, patch: int, patches: int, seed: int,
          eval_images: int) -> SRData:
    split = _photographs(folder, side, scale)
    hr, lr = patch_bank(split["train"][1], patches, patch, scale, seed)
    keep = slice(None, eval_images or None)
    val, test = ((split[s][0][keep], split[s][1][keep]) for s in ("val", "test"))
    for names, images in (val, test):
        for name, image in zip(names, images):
            if min(image.shape[:2]) - 2 * scale < 11:
                raise UserError(f"photograph {name} is {image.shape[1]}x{image.shape[0]} px: "
                                f"after the {scale} px border, SSIM's 11 px window does not "
                                "fit; raise upscale.photo_side")
    return SRData("photos", scale, hr, lr, _whole(*val, scale), _whole(*test, scale),
                  split["train"][0], str(folder))
