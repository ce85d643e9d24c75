"""``deepatlas eval`` and ``deepatlas predict``: any saved image classifier, whether a
checkpoint, an INT8 file or an exported model (see :mod:`deepatlas.compress.modelfile`)."""

from __future__ import annotations

from typing import Any

import torch

from deepatlas.compress.modelfile import load_model_file
from deepatlas.config import from_dict
from deepatlas.data import make_loader
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
    """One image file as the model's normalised input (1, C, H, W)."""
    from PIL import Image, UnidentifiedImageError

    want = meta["in_channels"]
    try:
        with Image.open(path) as img:
            if img.mode in ("P", "1", "LA", "RGBA"):  # palette, 1-bit, alpha: no colour lost
                img = img.convert("L" if img.mode in ("1", "LA") else "RGB")
            if len(img.getbands()) != want:
                kind = {1: "greyscale (1 channel)", 3: "colour (3 channels, RGB)"}
                raise UserError(
                    f"{path} has {len(img.getbands())} channel(s) ({img.mode}); this model reads "
                    f"{kind.get(want, f'{want}-channel')} images. Convert it first, e.g. "
                    f"python -c \"from PIL import Image; Image.open('{path}').convert("
                    f"'{'L' if want == 1 else 'RGB'}').save('converted.png')\"")
            size = meta["image_size"]
            img = img.resize((size, size), Image.Resampling.BILINEAR)
            x = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8)
    except FileNotFoundError:
        raise UserError(f"{path}: no such image file") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise UserError(f"{path} is not an image PIL can read ({exc})") from None
    x = x.view(size, size, meta["in_channels"]).permute(2, 0, 1).float().div(255)
    mean = torch.tensor(meta["mean"]).view(-1, 1, 1)
    std = torch.tensor(meta["std"]).view(-1, 1, 1)
    return ((x - mean) / std).unsqueeze(0)


@torch.inference_mode()
def predict_images(run_or_file: str, images: list[str], k: int = 3
                   ) -> list[tuple[str, list[tuple[str, float]]]]:
    loaded = load_model_file(run_or_file, "predict")
    meta, model = loaded.meta["data"], loaded.module.eval()
    classes = meta["classes"]
    out = []
    for path in images:
        probs = model(load_image(path, meta)).softmax(1)[0]  # (K,)
        top = probs.topk(min(k, len(classes)))
        out.append((path, [(classes[i], float(p)) for p, i in zip(top.values, top.indices)]))
    return out
