"""What every training loop needs around the model: seeds and RNG states, the autocast dtype,
and evaluation summed over DDP ranks."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch
from torch import nn

from deepatlas.train.distributed import DistEnv, all_reduce_sum


def synchronize(device: torch.device | str | None) -> None:
    """Wait for the work queued on a GPU ``device``, so that a wall-clock interval covers it
    (a no-op on a CPU, where every op has finished when it returns)."""
    if device is not None and torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device``; None means plain fp32.

    ``auto`` is bf16 on CUDA GPUs that support it (else fp16) and on CPUs with native bf16
    instructions (AVX512-BF16/AMX: measured 1.6-2x faster for conv nets), fp32 elsewhere.
    """
    if precision == "auto":
        if device.type == "cuda":
            precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        elif device.type == "cpu" and torch.ops.mkldnn._is_mkldnn_bf16_supported():
            precision = "bf16"
        else:
            precision = "fp32"
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def rng_state(device: torch.device) -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(tuple(s if not isinstance(s, list) else tuple(s) for s in state["python"]))
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def to_device(batch: Any, device: torch.device,
              memory_format: torch.memory_format = torch.contiguous_format) -> Any:
    """A batch (a tensor, or a tuple or list of them) on ``device``; images (4-d tensors) in
    ``memory_format``."""
    if isinstance(batch, torch.Tensor):
        if batch.ndim == 4:
            return batch.to(device, non_blocking=True, memory_format=memory_format)
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (tuple, list)):
        return type(batch)(to_device(b, device, memory_format) for b in batch)
    return batch


@torch.inference_mode()
def evaluate_model(model: nn.Module, loader, device: torch.device,
                   amp_dtype: torch.dtype | None = None,
                   memory_format: torch.memory_format = torch.contiguous_format,
                   dist_env: DistEnv = DistEnv(), tta: str = "none") -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of ``model`` over ``loader``, summed over DDP ranks.

    ``tta="flip"``: test-time augmentation, the logits are the mean of the model's on x and on
    x mirrored left-right (for data where a mirror image keeps its class). ``flip-translate``
    (airbench): half that, plus a quarter each for x shifted by one pixel up-left and
    down-right (reflect padding), each also averaged with its mirror image.
    """
    model.eval()
    totals = torch.zeros(3, device=device)
    for x, y in loader:
        x = x.to(device, non_blocking=True, memory_format=memory_format)
        y = y.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=amp_dtype or torch.float32,
                            enabled=amp_dtype is not None):
            logits = _logits(model, x, tta)  # (B, K)
        totals[0] += nn.functional.cross_entropy(logits.float(), y, reduction="sum")
        totals[1] += (logits.argmax(1) == y).sum()
        totals[2] += len(y)
    loss_sum, correct, count = all_reduce_sum(totals, dist_env).tolist()
    return loss_sum / count, correct / count


def _mirror_mean(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return (model(x).float() + model(x.flip(3)).float()) / 2


def _shift(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """x moved by (dy, dx) pixels, |d| <= 1, the edge reflected into the gap."""
    h, w = x.shape[-2:]
    padded = nn.functional.pad(x, (1, 1, 1, 1), mode="reflect")
    return padded[..., 1 + dy:1 + dy + h, 1 + dx:1 + dx + w]


def _logits(model: nn.Module, x: torch.Tensor, tta: str) -> torch.Tensor:
    if tta == "none":
        return model(x)
    if tta == "flip":
        return _mirror_mean(model, x)
    return (0.5 * _mirror_mean(model, x) + 0.25 * _mirror_mean(model, _shift(x, -1, -1))
            + 0.25 * _mirror_mean(model, _shift(x, 1, 1)))
