"""Re-evaluate and predict from a saved model (``deepatlas eval``, ``deepatlas predict``): a
checkpoint, an INT8 file or an exported model (see :mod:`deepatlas.compress.modelfile`)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from deepatlas.config import RunConfig, apply_overrides, from_dict
from deepatlas.data import ImageData, load_data, make_loader
from deepatlas.errors import UserError
from deepatlas.models import create_model
from deepatlas.train.checkpoint import inference_weights
from deepatlas.train.distributed import resolve_device
from deepatlas.train.runtime import autocast_dtype, evaluate_model


def build_model(state: dict[str, Any]) -> tuple[nn.Module, RunConfig]:
    """The untrained image classifier a saved state's config and data shape describe."""
    config = from_dict(state["config"])
    if config.task != "classify-images":
        raise UserError(f"eval and predict work on image classifiers; this is a {config.task} "
                        "run, whose summary.json and metrics.jsonl hold its results")
    meta = state["data"]
    options = {k: v for k, v in config.model.items() if k != "name"}
    model = create_model(config.model["name"], in_channels=meta["in_channels"],
                         image_size=meta["image_size"], num_classes=len(meta["classes"]),
                         **options)
    return model, config


def model_from_checkpoint(state: dict[str, Any]) -> tuple[nn.Module, RunConfig]:
    """The model a checkpoint describes, with its inference weights loaded."""
    model, config = build_model(state)
    try:
        model.load_state_dict(inference_weights(state))
    except RuntimeError as exc:
        raise UserError(f"the checkpoint's weights do not fit model {config.model}: "
                        f"{str(exc).splitlines()[0]}") from None
    return model.eval(), config


def data_for(meta: dict[str, Any], overrides: list[str] | None = None) -> ImageData:
    """The data set a saved model was trained on, normalised with its saved statistics."""
    config = from_dict(meta["config"])
    for item in overrides or []:
        if not item.startswith("data."):
            raise UserError(f"eval --set takes data.* keys only (data.dir=FOLDER), got {item!r}")
    apply_overrides(config, overrides or [])
    data = load_data(config.data.name, data_dir=config.data.dir, download=config.data.download,
                     image_size=config.data.image_size)
    if data.classes != meta["data"]["classes"]:
        raise UserError(f"{data.source} has classes {data.classes[:5]}..., the model was "
                        f"trained on {meta['data']['classes'][:5]}...")
    data.mean, data.std = tuple(meta["data"]["mean"]), tuple(meta["data"]["std"])
    return data


def evaluate_checkpoint(run_or_file: str, overrides: list[str] | None = None,
                        device: str = "auto") -> dict[str, Any]:
    """Test loss and accuracy of a run, a checkpoint, an INT8 file or an exported model."""
    from deepatlas.compress.modelfile import load_model_file

    loaded = load_model_file(run_or_file)
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
    from deepatlas.compress.modelfile import load_model_file

    loaded = load_model_file(run_or_file)
    meta, model = loaded.meta["data"], loaded.module.eval()
    classes = meta["classes"]
    out = []
    for path in images:
        probs = model(load_image(path, meta)).softmax(1)[0]  # (K,)
        top = probs.topk(min(k, len(classes)))
        out.append((path, [(classes[i], float(p)) for p, i in zip(top.values, top.indices)]))
    return out
