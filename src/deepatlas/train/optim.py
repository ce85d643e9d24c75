"""Optimizer and learning-rate schedule from the config (MAP 3.2).

Weight decay goes on weights only: norms' scales and all biases (the 1-d parameters) are left
undecayed, since shrinking them does not regularise and hurts BatchNorm nets.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR, LRScheduler, OneCycleLR

from deepatlas.config import OptimConfig, ScheduleConfig


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


def build_optimizer(model: nn.Module, cfg: OptimConfig) -> torch.optim.Optimizer:
    groups = param_groups(model, cfg.weight_decay)
    if cfg.name == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum,
                               nesterov=cfg.nesterov and cfg.momentum > 0)
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))


def build_schedule(optimizer: torch.optim.Optimizer, cfg: ScheduleConfig, peak_lr: float,
                   steps_per_epoch: int, epochs: int) -> LRScheduler:
    """A per-step schedule: linear warmup then cosine to ``final_lr_fraction * lr``, constant,
    or one-cycle (Smith 2018)."""
    total = max(1, steps_per_epoch * epochs)
    if cfg.name == "onecycle":
        return OneCycleLR(optimizer, max_lr=peak_lr, total_steps=total, pct_start=0.25)
    warmup = round(cfg.warmup_epochs * steps_per_epoch)
    floor = cfg.final_lr_fraction

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if cfg.name == "constant":
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    return LambdaLR(optimizer, factor)
