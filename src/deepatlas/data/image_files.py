"""Image files as pixels, the way torchvision and timm users expect any PIL image to read:
palette, 1-bit, 16-bit, 32-bit integer and float images, with or without alpha, grey or
colour. Shared by ``predict`` of every image task."""

from __future__ import annotations

from typing import TYPE_CHECKING

from deepatlas.errors import UserError

if TYPE_CHECKING:
    import numpy as np


def unit_range(pixels: "np.ndarray") -> "np.ndarray":
    """Pixels of any PIL sample type as float32 in [0, 1]: 8-bit / 255, 16-bit / 65535;
    32-bit integer and float images by the range their values use (0..1, 0..255, 0..65535),
    else stretched from their minimum to their maximum."""
    import numpy as np

    x = pixels.astype(np.float32)
    if pixels.dtype == np.uint8:
        return x / 255
    if pixels.dtype == np.uint16 or pixels.dtype.str.endswith("u2"):
        return x / 65535
    low, high = float(x.min(initial=0.0)), float(x.max(initial=0.0))
    for top in (1.0, 255.0, 65535.0):
        if low >= 0 and high <= top:
            return x / top
    return (x - low) / max(high - low, 1e-12)


def to_channels(x: "np.ndarray", want: int) -> "np.ndarray":
    """(H, W, C) to ``want`` channels the way torchvision/timm users expect: alpha dropped,
    colour to grey by ITU-R 601-2 luma (PIL's "L"), grey repeated into RGB."""
    import numpy as np

    if x.ndim == 2:
        x = x[:, :, None]
    if x.shape[2] in (2, 4):  # LA, RGBA: the alpha channel carries no colour
        x = x[:, :, :-1]
    if want == 1 and x.shape[2] == 3:
        x = x @ np.array([0.299, 0.587, 0.114], dtype=np.float32)[:, None]
    elif want == 3 and x.shape[2] == 1:
        x = np.repeat(x, 3, axis=2)
    if x.shape[2] != want:
        raise UserError(f"has {x.shape[2]} channels; this model reads {want}")
    return x


def read_pixels(path: str, channels: int) -> "np.ndarray":
    """The image at ``path`` as float32 (H, W, ``channels``) in [0, 1] (see :func:`unit_range`
    and :func:`to_channels`); a UserError saying why when it cannot be read."""
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            if img.mode in ("P", "PA", "1"):  # palette and 1-bit: to the colours they stand for
                img = img.convert("RGBA" if "transparency" in img.info or img.mode == "PA"
                                  else "RGB" if img.mode != "1" else "L")
            pixels = np.asarray(img)
            if img.mode.startswith("I;16"):  # PIL reads 16-bit samples as uint16
                pixels = pixels.astype(np.uint16)
    except FileNotFoundError:
        raise UserError(f"{path}: no such image file") from None
    except Image.DecompressionBombError as exc:
        raise UserError(f"{path} was refused: {exc}") from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise UserError(f"{path} is not an image PIL can read ({exc})") from None
    try:
        return to_channels(unit_range(pixels), channels)
    except UserError as exc:
        raise UserError(f"{path} {exc}") from None
