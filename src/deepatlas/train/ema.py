"""An exponential moving average of the weights (MAP 5: training techniques), kept by the Trainer.

After each optimiser step ``t`` the average moves toward the model's weights ``W_t``:

    W̄_t = d_t · W̄_{t-1} + (1 − d_t) · W_t,    W̄_0 = W_0

with a fixed ``d_t = decay`` (``train.ema_warmup_steps = 0``, torch's ``get_ema_multi_avg_fn``),
or, as Ultralytics' ``ModelEMA`` ramps it, ``d_t = decay · (1 − exp(−t / τ))``
(``train.ema_warmup_steps = τ``). Why the ramp: with a fixed decay of 0.999 the random
initialisation still holds a weight of 0.999^1000 ≈ 0.37 after 1,000 steps, so a short run's
early evaluations score a blend of a trained and an untrained network. With the ramp the
average follows the model closely at first and lengthens its memory as training settles.

The average is a ``torch.optim.swa_utils.AveragedModel`` with ``use_buffers=True``, so
BatchNorm's running statistics are averaged with the weights; its ``n_averaged`` counts the
updates, is saved with it, and so carries the ramp across a resume.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn


def ema_decay_at(update: int, decay: float, warmup_steps: int) -> float:
    """``d_t`` of update ``t`` (1 for the first after the copy): ``decay · (1 − e^{−t/τ})``."""
    if warmup_steps <= 0:
        return decay
    return decay * (1.0 - math.exp(-update / warmup_steps))


def ramped_ema_multi_avg_fn(decay: float, warmup_steps: int) -> Callable[..., None]:
    """An ``AveragedModel`` ``multi_avg_fn`` whose decay ramps up over ``warmup_steps``."""

    @torch.no_grad()
    def update(averaged: list[torch.Tensor], current: list[torch.Tensor],
               num_averaged: torch.Tensor) -> None:
        # num_averaged counts earlier updates, the copy of W_0 included: it is t here. This is
        # 1 - ema_decay_at(t) on the tensor, so that no step waits to read t from the device.
        weight = 1.0 - decay * (1.0 - torch.exp(-num_averaged.double() / warmup_steps))
        if torch.is_floating_point(averaged[0]):
            torch._foreach_lerp_(averaged, current, weight.to(averaged[0].dtype))
        else:  # integer buffers (BatchNorm's num_batches_tracked), as torch's own EMA
            for a, c in zip(averaged, current, strict=True):
                a.copy_((a * (1 - weight) + c * weight).to(a.dtype))

    return update


def create_ema(model: nn.Module, decay: float, warmup_steps: int = 0) -> AveragedModel:
    """The moving average of ``model``'s weights and buffers (see the module docstring)."""
    if warmup_steps > 0:
        average = ramped_ema_multi_avg_fn(decay, warmup_steps)
    else:
        average = get_ema_multi_avg_fn(decay)
    return AveragedModel(model, use_buffers=True, multi_avg_fn=average)
