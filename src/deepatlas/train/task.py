"""The Task interface: what a recipe learns. The Trainer does everything else.

Writing a new task (see ``deepatlas/tasks/classify_nodes.py`` for the shortest one)::

    class MyTask(Task):
        name = "my-task"
        uses = {"regularize.label_smoothing"}     # config keys beyond the engine's own
        monitor = ("val_acc", "max")              # picks best.pt; never a test metric
        primary = "test_acc"                      # the summary's headline

        def setup(self, ctx):                     # data and models, on ctx.device
            self.models = {"model": ...}
            self.train_loader = ...               # set_epoch(e), iterate(start), len()
        def training_step(self, batch, group):    # one group's loss on one batch
            return StepOutput(loss, {"loss": loss, "acc": acc}, n=len(batch))
        def evaluate(self, models):               # {"val_acc": ..., "test_acc": ...}
            ...

The Trainer supplies, the same for every task: device and precision (bf16/fp16 autocast with a
scaler), channels_last for image tasks, DDP under torchrun, the optimiser and schedule of every
group (``optim.*``, ``schedule.*``), gradient clipping, EMA, the evaluation schedule, early
stopping, best/last checkpoints with bitwise-exact resume, Ctrl-C/SIGTERM save, the NaN stop,
progress, metrics.jsonl, TensorBoard and summary.json.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

import torch
from torch import nn

from deepatlas.config import RunConfig
from deepatlas.train.distributed import DistEnv


class BatchLoader(Protocol):
    """What the Trainer needs of a training loader (InMemoryLoader, StreamLoader,
    TensorBatches): a length, the epoch for shuffling, and batches from a given one on, exactly
    as an unbroken epoch would give them."""

    def __len__(self) -> int: ...
    def set_epoch(self, epoch: int) -> None: ...
    def iterate(self, start: int = 0): ...


@dataclass
class Context:
    """What the Trainer tells a task at set-up."""

    config: RunConfig
    device: torch.device
    dist: DistEnv
    amp_dtype: torch.dtype | None  # None: fp32
    memory_format: torch.memory_format
    out_dir: Path
    is_main: bool = True  # rank 0: the only process that writes files

    def autocast(self) -> torch.autocast:
        return torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32,
                              enabled=self.amp_dtype is not None)


@dataclass
class OptimizerGroup:
    """One optimiser: the parameters of ``models[name]``, stepped on every ``every``-th batch
    (a GAN's generator: every ``gan.critic_steps``-th, after the critic)."""

    name: str
    every: int = 1


@dataclass
class StepOutput:
    """The loss to minimise, and what to log as the epoch's mean: ``logs`` values are batch
    means of ``n`` samples (tensors are fine: the Trainer syncs them only when it logs)."""

    loss: torch.Tensor
    logs: dict[str, torch.Tensor | float] = field(default_factory=dict)
    n: int = 1


class Task:
    name: ClassVar[str] = ""
    uses: ClassVar[set[str]] = set()  # config keys beyond ENGINE_KEYS ("section.*": all)
    monitor: ClassVar[tuple[str, str] | None] = ("val_acc", "max")  # (metric, max | min)
    primary: ClassVar[str] = "test_acc"
    image_task: ClassVar[bool] = False  # train.channels_last applies
    ema_model: ClassVar[str] = "model"  # the model train.ema_decay averages
    max_threads: ClassVar[int | None] = None  # CPU threads; tiny graphs lose time to more

    def __init__(self, config: RunConfig) -> None:
        self.config = config
        self.models: dict[str, nn.Module] = {}
        self.train_models: dict[str, nn.Module] = {}  # the same, DDP-wrapped under torchrun
        self.train_loader: BatchLoader | None = None
        self.step = 0  # batches trained so far in the run, kept up to date by the Trainer

    # ---------------------------------------------------------------- to write

    def setup(self, ctx: Context) -> None:
        """Load the data, build ``self.models`` on ``ctx.device`` and ``self.train_loader``."""
        raise NotImplementedError

    def training_step(self, batch: Any, group: str) -> StepOutput:
        """The loss of optimiser group ``group`` on ``batch`` (already on the device)."""
        raise NotImplementedError

    def evaluate(self, models: dict[str, nn.Module]) -> dict[str, float]:
        """Metrics of ``models`` (EMA weights where kept), named ``split_metric``."""
        raise NotImplementedError

    # ---------------------------------------------------------------- optional

    def optimizer_groups(self) -> list[OptimizerGroup]:
        return [OptimizerGroup("model")]

    def on_train_epoch_start(self, epoch: int) -> dict[str, float]:
        """Before each epoch's batches (progressive resizing); returns metrics to log."""
        return {}

    def on_epoch_end(self, epoch: int, metrics: dict[str, float],
                     models: dict[str, nn.Module]) -> None:
        """After an epoch is logged, on rank 0 (a GAN draws its sample grid)."""

    def describe_data(self) -> dict[str, Any]:
        """Saved in every checkpoint as ``data``: what a model needs to be rebuilt and used."""
        return {}

    def data_summary(self) -> dict[str, Any]:
        """The summary's ``data``: name, source and split sizes (val_fraction included)."""
        return {}

    def finish(self, history: list[dict[str, float]], models: dict[str, nn.Module]
               ) -> dict[str, Any]:
        """At the end, on rank 0: extra summary fields (a GAN's final grid and loss plot)."""
        return {}


# The keys the Trainer itself reads, for every task; a task adds its own in ``Task.uses``.
ENGINE_KEYS = {
    "recipe", "description", "task", "seed", "model.*", "optim.*", "schedule.*",
    "data.name", "data.dir", "data.download",
    "train.epochs", "train.batch_size", "train.limit_train_batches", "train.precision",
    "train.clip_grad_norm", "train.ema_decay", "train.ema_warmup_steps",
    "train.eval_every", "train.early_stopping_patience",
    "train.early_stopping_min_delta", "train.monitor", "train.checkpoint_every_steps", "train.checkpoint_every_epochs",
    "train.deterministic", "train.tensorboard",
}


def rebuild_task(task_class: type[Task], state: dict[str, Any], device: torch.device,
                 overrides: list[str]) -> Task:
    """For ``deepatlas eval`` of a saved run: ``task_class`` set up on the data of the run's
    own config (with ``overrides``), one process, the inference weights in its
    ``ema_model``."""
    from deepatlas.config import apply_overrides, from_dict
    from deepatlas.models.saved import inference_weights, load_weights

    config = from_dict(state["config"])
    apply_overrides(config, overrides)
    task = task_class(config)
    task.setup(Context(config, device, DistEnv(), None, torch.contiguous_format, Path(".")))
    load_weights(task.models[task.ema_model], inference_weights(state), config.model)
    task.train_models = task.models
    return task
