"""``deepatlas eval`` and ``deepatlas predict``: any saved image classifier, whether a
checkpoint, an INT8 file or an exported model (see :mod:`deepatlas.compress.modelfile`)."""

from __future__ import annotations

from typing import Any

import torch

from deepatlas.compress.modelfile import load_model_file
from deepatlas.config import from_dict
from deepatlas.data import make_loader
from deepatlas.data.image_files import read_pixels
from deepatlas.errors import UserError
from deepatlas.tasks.classify_images import data_for
from deepatlas.train.distributed import resolve_device
from deepatlas.train.runtime import autocast_dtype, evaluate_model


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


def load_image(path: str, meta: dict[str, Any]) -> torch.Tensor:
    """One image file as the model's normalised input (1, C, H, W); any PIL image converts
    (see :func:`deepatlas.data.image_files.read_pixels`)."""
    import numpy as np

    size = meta["image_size"]
    x = read_pixels(path, meta["in_channels"])
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
