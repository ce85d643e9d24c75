"""Optimizer and learning-rate schedule from the config (MAP 3.2).

Weight decay goes on weights only: norms' scales and all biases (the 1-d parameters) are left
undecayed, since shrinking them does not regularise and hurts BatchNorm nets.

Layer-wise learning-rate decay (``optim.layer_decay``; Howard & Ruder 2018's discriminative
fine-tuning, as ELECTRA and BEiT fine-tune): a parameter at depth ``k`` of a model whose top is
``K`` trains at ``lr * layer_decay ** (K - k)``, so that a pretrained encoder's lower layers,
whose features are the most general, move least. The model says where each parameter sits
(``layer_depth(name)``, as :class:`deepatlas.models.bert.Bert` does).
"""

from __future__ import annotations

import functools
import math

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR, LRScheduler

from deepatlas import optim as map_optim
from deepatlas.config import OptimConfig, ScheduleConfig
from deepatlas.errors import UserError


def param_groups(model: nn.Module, weight_decay: float, lr: float | None = None,
                 layer_decay: float = 1.0) -> list[dict]:
    """Weights (decayed) and 1-d parameters (not); with ``layer_decay`` < 1, one such pair per
    depth of ``model.layer_depth``, each with its own ``lr`` (see the module's docstring)."""
    if layer_decay == 1.0:
        decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
        no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
        return [{"params": decay, "weight_decay": weight_decay},
                {"params": no_decay, "weight_decay": 0.0}]
    if not hasattr(model, "layer_depth") or lr is None:
        raise UserError(f"optim.layer_decay={layer_decay} needs a model that says how deep each "
                        f"parameter is (model.name=bert); set optim.layer_decay=1.0")
    named = [(model.layer_depth(n), p) for n, p in model.named_parameters() if p.requires_grad]
    top = max(depth for depth, _ in named)
    groups = []
    for depth in range(top + 1):
        for decayed in (True, False):
            params = [p for d, p in named if d == depth and (p.ndim > 1) == decayed]
            if params:
                groups.append({"params": params, "weight_decay": weight_decay if decayed else 0.0,
                               "lr": lr * layer_decay ** (top - depth)})
    return groups


def build_optimizer(model: nn.Module, cfg: OptimConfig) -> torch.optim.Optimizer:
    """torch's SGD and AdamW take their multi-tensor (``foreach``) path on every device: torch
    picks it by itself only on CUDA, and on a CPU the per-parameter loop cost 6.7 ms of a
    detect-scenes step (1.0 M parameters in 144 tensors) against 4.9. It computes the same
    bits as the loop (tested), so runs made before it are reproduced exactly; ``fused``
    AdamW (1.2 ms) would not be."""
    if not 0 < cfg.layer_decay <= 1:
        raise UserError(f"optim.layer_decay must be in (0, 1], got {cfg.layer_decay}")
    if cfg.layer_decay != 1.0 and cfg.name not in ("sgd", "adamw"):
        raise UserError(f"optim.layer_decay needs optim.name=sgd or adamw, not {cfg.name!r}")
    groups = param_groups(model, cfg.weight_decay, cfg.lr, cfg.layer_decay)
    if cfg.name == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum,
                               nesterov=cfg.nesterov and cfg.momentum > 0, foreach=True)
    if cfg.name == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), foreach=True)
    # The map's own optimisers (MAP 3.2): they take no decoupled decay, so it is left out.
    if cfg.name == "sgd-plain":
        return map_optim.SGD(model.parameters(), lr=cfg.lr)
    if cfg.name == "momentum":
        return map_optim.Momentum(model.parameters(), lr=cfg.lr, gamma=cfg.momentum)
    return map_optim.Adam(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))


def lr_factor(step: int, cfg: ScheduleConfig, steps_per_epoch: int, epochs: int) -> float:
    """The learning rate at ``step`` as a fraction of the peak ``optim.lr``.

    cosine/constant: linear warmup over ``warmup_epochs``, then
    ``f + (1 - f) * (1 + cos(pi * progress)) / 2`` (cosine, ending at ``f``) or 1 (constant).
    onecycle (Smith 2018): from peak/25 up to the peak over the first 25% of steps, then a
    cosine down to zero (torch's OneCycleLR shape, without its momentum cycling, and defined
    for runs of any length).
    """
    total = max(1, steps_per_epoch * epochs)
    if cfg.name == "onecycle":
        warmup, start, floor = max(1, round(0.25 * total)), 1 / 25, 0.0
    else:
        warmup, start, floor = round(cfg.warmup_epochs * steps_per_epoch), 0.0, cfg.final_lr_fraction
    if step < warmup:
        return start + (1 - start) * (step + 1) / warmup
    if cfg.name == "constant":
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def build_schedule(optimizer: torch.optim.Optimizer, cfg: ScheduleConfig,
                   steps_per_epoch: int, epochs: int) -> LRScheduler:
    """A per-step schedule (see :func:`lr_factor`), stepped after every optimizer step."""
    return LambdaLR(optimizer, functools.partial(lr_factor, cfg=cfg,
                                                 steps_per_epoch=steps_per_epoch, epochs=epochs))


class OptimizerGroupState:
    """One optimiser group at run time (see ``deepatlas.train.task.OptimizerGroup``): its
    model, optimiser, per-step schedule and AMP loss scaler."""

    def __init__(self, name: str, every: int, model: nn.Module, cfg, steps_per_epoch: int,
                 device: torch.device, amp_dtype: torch.dtype | None) -> None:
        self.name, self.every, self.model = name, every, model
        self.optimizer = build_optimizer(model, cfg.optim)
        self.scheduler = build_schedule(self.optimizer, cfg.schedule,
                                        max(1, steps_per_epoch // every), cfg.train.epochs)
        self.scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
