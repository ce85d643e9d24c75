"""Small training hooks with their own saved state, the Lightning way (MAP 5.2).

The trainer calls ``on_epoch_end(trainer, metrics)`` on each callback in order after every
epoch, and stores each callback's ``state_dict()`` in the checkpoint, so a resumed run keeps
counting patience where it stopped.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from deepatlas.train.trainer import Trainer


class Callback:
    def on_epoch_end(self, trainer: "Trainer", metrics: dict[str, float]) -> None:
        """Called after each epoch with that epoch's metrics."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""


class MonitorMixin:
    """Tracks the best value of one metric; ``mode`` is ``max`` (accuracy) or ``min`` (loss)."""

    def __init__(self, monitor: str | None, mode: str, min_delta: float = 0.0) -> None:
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
        self.monitor, self.mode, self.min_delta = monitor, mode, abs(min_delta)
        self.best = -math.inf if mode == "max" else math.inf

    def improves(self, value: float) -> bool:
        """True when ``value`` beats the best so far by more than ``min_delta``."""
        if self.mode == "max":
            return value > self.best + self.min_delta
        return value < self.best - self.min_delta


class EarlyStopping(MonitorMixin, Callback):
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience``
    consecutive epochs."""

    def __init__(self, monitor: str = "val_acc", patience: int = 5, min_delta: float = 0.0,
                 mode: str = "max") -> None:
        super().__init__(monitor, mode, min_delta)
        self.patience = patience
        self.wait = 0
        self.stopped_epoch = 0

    def step(self, value: float, epoch: int) -> bool:
        """Record one epoch's value; True when training should stop."""
        if self.improves(value):
            self.best, self.wait = value, 0
            return False
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            return True
        return False

    def on_epoch_end(self, trainer: "Trainer", metrics: dict[str, float]) -> None:
        if self.monitor not in metrics:  # not an evaluated epoch (train.eval_every)
            return
        if self.step(metrics[self.monitor], int(metrics["epoch"])):
            trainer.should_stop = True

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "wait": self.wait, "stopped_epoch": self.stopped_epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.wait = state["best"], state["wait"]
        self.stopped_epoch = state["stopped_epoch"]


class ModelCheckpoint(MonitorMixin, Callback):
    """Write ``last.pt`` after every epoch and ``best.pt`` when ``monitor`` (a validation
    metric, never a test one) improves."""

    def __init__(self, monitor: str | None = "val_acc", mode: str = "max") -> None:
        super().__init__(monitor, mode)
        self.best_epoch = 0

    def on_epoch_end(self, trainer: "Trainer", metrics: dict[str, float]) -> None:
        # No monitor (a task or recipe without a validation split): no best.pt, and
        # everything that reads a run falls back to last.pt.
        improved = (self.monitor is not None and self.monitor in metrics
                    and self.improves(metrics[self.monitor]))
        if improved:
            self.best, self.best_epoch = metrics[self.monitor], int(metrics["epoch"])
        # `last` is written with this callback's updated state, then copied to `best`. Runs of
        # many tiny epochs (a graph: one step each) save every train.checkpoint_every_epochs.
        epoch, cfg = int(metrics["epoch"]), trainer.config.train
        if (epoch % cfg.checkpoint_every_epochs == 0 or epoch == cfg.epochs
                or trainer.should_stop or trainer.interrupted):
            trainer.save_checkpoint("last.pt")
        if improved:
            trainer.save_checkpoint("best.pt")

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.best_epoch = state["best"], state["best_epoch"]
