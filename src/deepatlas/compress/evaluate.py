"""``deepatlas eval`` and ``deepatlas predict``: any saved image classifier, whether a
checkpoint, an INT8 file or an exported model (see :mod:`deepatlas.compress.modelfile`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from deepatlas.compress.modelfile import load_model_file
from deepatlas.config import from_dict
from deepatlas.data import make_loader
from deepatlas.errors import UserError
from deepatlas.tasks.classify_images import data_for
from deepatlas.train.distributed import resolve_device
from deepatlas.train.runtime import autocast_dtype, evaluate_model

if TYPE_CHECKING:
    import numpy as np


def evaluate_checkpoint(run_or_file: str, overrides: list[str] | None = None,
                        device: str = "auto") -> dict[str, Any]:
    """Test loss and accuracy of a run, a checkpoint, an INT8 file or an exported model."""
    loaded = load_model_file(run_or_file, "eval")
    config = from_dict(loaded.meta["config"])
    data = data_for(loaded.meta, overrides)
    if loaded.cpu_only:  # INT8 kernels and exported programs run as written, on the CPU
        dev, amp, memory_format = torch.device("cpu"), None, torch.contiguous_format
    else:
        dev = resolve_device(device)
        amp = autocast_dtype(config.train.precision, dev)
        memory_format = (torch.channels_last if config.train.channels_last
                         else torch.contiguous_format)
    loader = make_loader(data, "test", config.train.eval_batch_size, device=dev,
                         num_workers=config.data.num_workers)
    model = loaded.module
    if not loaded.cpu_only:
        model = model.to(dev, memory_format=memory_format)
    # The run's own test-time augmentation, so `eval` reproduces the accuracy it reported.
    loss, acc = evaluate_model(model, loader, dev, amp, memory_format, tta=config.train.tta)
    return {"checkpoint": str(loaded.path), "kind": loaded.kind, "recipe": loaded.meta["recipe"],
            "data": data.name, "test_images": len(data.test), "test_loss": loss,
            "test_acc": acc, "epoch": loaded.meta.get("epoch")}


def _unit_range(pixels: "np.ndarray") -> "np.ndarray":
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


def _channels(x: "np.ndarray", want: int) -> "np.ndarray":
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


def load_image(path: str, meta: dict[str, Any]) -> torch.Tensor:
    """One image file as the model's normalised input (1, C, H, W). Any PIL image converts:
    palette, 1-bit, 16-bit, 32-bit integer and float images, with or without alpha, grey or
    colour (see :func:`_unit_range` and :func:`_channels`)."""
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    size = meta["image_size"]
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
        x = _channels(_unit_range(pixels), meta["in_channels"])
    except UserError as exc:
        raise UserError(f"{path} {exc}") from None
    t = torch.from_numpy(np.ascontiguousarray(x)).permute(2, 0, 1)[None]  # (1, C, H, W)
    t = torch.nn.functional.interpolate(t, size=(size, size), mode="bilinear",
                                        antialias=True, align_corners=False)
    mean = torch.tensor(meta["mean"]).view(-1, 1, 1)
    std = torch.tensor(meta["std"]).view(-1, 1, 1)
    return (t - mean) / std


@torch.inference_mode()
def predict_images(run_or_file: str, images: list[str], k: int = 3, device: str = "auto"
                   ) -> list[tuple[str, list[tuple[str, float]] | str]]:
    """Per image: its top ``k`` (class, probability), or the message saying why it could
    not be read."""
    loaded = load_model_file(run_or_file, "predict")
    dev = torch.device("cpu") if loaded.cpu_only else resolve_device(device)
    meta, model = loaded.meta["data"], loaded.module.eval()
    if not loaded.cpu_only:
        model = model.to(dev)
    classes = meta["classes"]
    out: list[tuple[str, list[tuple[str, float]] | str]] = []
    for path in images:  # a bad file is reported on its own; the others are still answered
        try:
            x = load_image(path, meta)
        except UserError as exc:
            out.append((path, str(exc)))
            continue
        probs = model(x.to(dev)).softmax(1)[0].float().cpu()  # (K,)
        top = probs.topk(min(k, len(classes)))
        out.append((path, [(classes[i], float(p)) for p, i in zip(top.values, top.indices)]))
    return out
