"""Fair classification (MAP 7.3): ``task = "debias"``, a predictor trained against an
adversary that tries to recover the protected attribute (``deepatlas.trust.debias``).

Two optimiser groups on the one Trainer, each batch: the adversary first (on the predictor's
current output, detached), then the predictor with Zhang et al.'s projected update. The
Trainer only knows how to step a loss, so the predictor's step returns the surrogate
``sum(W * g)`` whose gradient is the projected update g itself. With
``fairness.adversary = false`` the same predictor trains alone: the baseline.

The run trains a fixed budget (no model is chosen: choosing by validation accuracy would undo
the fairness the adversary buys); validation and test report accuracy and the fairness gaps.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from deepatlas.data.adult import UNPRIVILEGED, fairness_splits
from deepatlas.data.loaders import TensorBatches
from deepatlas.errors import UserError
from deepatlas.models import create_model
from deepatlas.train import Context, OptimizerGroup, StepOutput, Task
from deepatlas.trust.debias import Adversary, fairness_metrics, projected_update


class Debias(Task):
    name = "debias"
    uses = {"fairness.*", "data.val_fraction"}
    monitor = None  # a fixed budget: see the module docstring
    primary = "test_acc"
    ema_model = "predictor"

    def setup(self, ctx: Context) -> None:
        from deepatlas.data.packages import get_set, set_folder

        cfg = self.config
        if ctx.dist.world_size > 1:  # autograd.grad bypasses DDP's gradient averaging
            raise UserError("task debias runs in one process: the projection needs the whole "
                            "batch's gradients, which torch.autograd.grad does not average "
                            "across DDP ranks; run it without torchrun")
        folder = set_folder(cfg.data.dir, cfg.data.name, cfg.data.download)
        tables = get_set(cfg.data.name).load(folder)
        self.splits, self.feature_names = fairness_splits(
            tables, cfg.fairness.protected, cfg.data.val_fraction)
        self.source = str(folder)
        for split in self.splits.values():
            for name in ("x", "y", "s"):
                setattr(split, name, getattr(split, name).to(ctx.device))
        options = {k: v for k, v in cfg.model.items() if k != "name"}
        train = self.splits["train"]
        self.models = {"predictor": create_model(cfg.model["name"], in_channels=train.x.shape[1],
                                                 image_size=1, num_classes=1,
                                                 **options).to(ctx.device)}
        if cfg.fairness.adversary:
            self.models["adversary"] = Adversary(cfg.fairness.constraint,
                                                  cfg.fairness.adversary_hidden).to(ctx.device)
        self.train_loader = TensorBatches(train.x, train.y, train.s,
                                          batch_size=cfg.train.batch_size // ctx.dist.world_size,
                                          seed=cfg.seed, device=ctx.device, rank=ctx.dist.rank,
                                          world_size=ctx.dist.world_size)

    def optimizer_groups(self) -> list[OptimizerGroup]:
        if self.config.fairness.adversary:
            return [OptimizerGroup("adversary"), OptimizerGroup("predictor")]
        return [OptimizerGroup("predictor")]

    def training_step(self, batch: Any, group: str) -> StepOutput:
        x, y, s = batch  # (B, F), (B,), (B,)
        predictor = self.train_models["predictor"]
        if group == "adversary":
            with torch.no_grad():
                logit = predictor(x).squeeze(1)  # (B,)
            loss_a = F.binary_cross_entropy_with_logits(self.train_models["adversary"](logit, y),
                                                        s)
            return StepOutput(loss_a, {"adversary_loss": loss_a.detach()}, n=len(y))
        logit = predictor(x).squeeze(1)  # (B,)
        loss_p = F.binary_cross_entropy_with_logits(logit, y)
        logs = {"loss": loss_p.detach(), "acc": ((logit > 0).float() == y).float().mean()}
        if not self.config.fairness.adversary:
            return StepOutput(loss_p, logs, n=len(y))
        loss_a = F.binary_cross_entropy_with_logits(self.train_models["adversary"](logit, y), s)
        params = [p for p in predictor.parameters() if p.requires_grad]
        grad_p = torch.autograd.grad(loss_p, params, retain_graph=True)
        grad_a = torch.autograd.grad(loss_a, params)
        update = projected_update(grad_p, grad_a, self.config.fairness.alpha)
        surrogate = sum((p * g.detach()).sum() for p, g in zip(params, update))  # grad = g
        return StepOutput(surrogate, logs, n=len(y))

    @torch.no_grad()
    def evaluate(self, models: dict[str, nn.Module]) -> dict[str, float]:
        out = {}
        for split in ("val", "test"):
            if split not in self.splits:
                continue
            data = self.splits[split]
            predicted = (models["predictor"](data.x).squeeze(1) > 0).float()
            metrics = fairness_metrics(data.y.cpu().numpy(), predicted.cpu().numpy(),
                                       data.s.cpu().numpy())
            out.update({f"{split}_{k}": v for k, v in metrics.items()})
        return out

    def describe_data(self) -> dict[str, Any]:
        return {"name": self.config.data.name, "features": self.feature_names,
                "protected": self.config.fairness.protected,
                "unprivileged": UNPRIVILEGED[self.config.fairness.protected]}

    def data_summary(self) -> dict[str, Any]:
        return {"name": self.config.data.name, "source": self.source,
                **{split: len(data) for split, data in self.splits.items()},
                "val_fraction": self.config.data.val_fraction}
