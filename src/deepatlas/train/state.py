"""What a Trainer's checkpoint holds, and how a run is restored from it bitwise-exactly.

A checkpoint describes itself: the recipe and resolved config, the task, what the data looked
like (``data``: classes, shapes, normalisation), every model's weights (``models``; ``model``
is the one used for inference, and ``ema`` its average when kept), every optimiser, schedule
and loss scaler by group, the epoch, step and position inside the epoch with the epoch's
running sums, the RNG states, the callbacks' states and the history of metrics.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from deepatlas.errors import UserError
from deepatlas.models.saved import load_weights
from deepatlas.train.checkpoint import load_checkpoint, save_checkpoint
from deepatlas.train.runtime import rng_state, set_rng_state

if TYPE_CHECKING:
    from deepatlas.train.callbacks import EarlyStopping
    from deepatlas.train.trainer import Trainer

__all__ = ["checkpoint_state", "load_checkpoint", "restore", "run_summary", "save_checkpoint"]


def checkpoint_state(trainer: "Trainer") -> dict[str, Any]:
    task = trainer.task
    models = {name: model.state_dict() for name, model in task.models.items()}
    return {
        "recipe": trainer.config.recipe,
        "config": trainer.config.to_dict(),
        "task": task.name,
        "models": models,
        "model": models[task.ema_model],  # the same tensors: torch.save stores them once
        "ema": trainer.ema.state_dict() if trainer.ema is not None else None,
        "optimizers": {g.name: g.optimizer.state_dict() for g in trainer.groups},
        "schedulers": {g.name: g.scheduler.state_dict() for g in trainer.groups},
        "scalers": {g.name: g.scaler.state_dict() for g in trainer.groups},
        "epoch": trainer.epoch,
        "step": trainer.step,
        "position": trainer.position,
        "partial": trainer.partial,
        "elapsed_s": trainer.elapsed_before + time.perf_counter() - trainer.t0,
        "rng": rng_state(trainer.device),
        "callbacks": {type(c).__name__: c.state_dict() for c in trainer.callbacks},
        "history": trainer.history,
        "data": task.describe_data(),
    }


def restore(trainer: "Trainer", state: dict[str, Any]) -> None:
    """Put ``trainer`` back where ``state`` was saved. The config's lr and weight decay win
    over the saved ones, so that a diverged run can resume with ``--set optim.lr=<lower>``."""
    config, saved = trainer.config, state["config"]
    if state.get("task", saved.get("task")) != trainer.task.name:
        raise UserError(f"--resume: the checkpoint is a {state.get('task')} run; this recipe's "
                        f"task is {trainer.task.name}")
    if saved["model"] != config.model:
        raise UserError(f"--resume: the checkpoint's model {saved['model']} differs from the "
                        f"config's {config.model}; resume with the same recipe and model keys")
    if saved["data"]["name"] != config.data.name:
        raise UserError(f"--resume: the run was trained on data.name={saved['data']['name']}, "
                        f"not {config.data.name}")
    if saved["optim"]["name"] != config.optim.name:
        raise UserError(f"--resume: the run used optim.name={saved['optim']['name']}; its "
                        f"saved state does not fit {config.optim.name} (the lr, "
                        "epochs and most other keys may change on resume)")
    for name, model in trainer.task.models.items():
        load_weights(model, state["models"][name], config.model)
    if trainer.ema is not None and state.get("ema"):
        trainer.ema.load_state_dict(state["ema"])
    lr, decays = config.optim.lr, (config.optim.weight_decay, 0.0)
    for group in trainer.groups:
        group.optimizer.load_state_dict(state["optimizers"][group.name])
        group.scheduler.load_state_dict(state["schedulers"][group.name])
        group.scaler.load_state_dict(state["scalers"][group.name])
        scheduler = group.scheduler
        scheduler.base_lrs = [lr] * len(group.optimizer.param_groups)
        for param_group, factor, decay in zip(group.optimizer.param_groups,
                                              scheduler.lr_lambdas, decays):
            param_group["initial_lr"] = lr
            param_group["lr"] = lr * factor(scheduler.last_epoch)
            if "weight_decay" in param_group:
                param_group["weight_decay"] = decay
    trainer.start_epoch, trainer.step = state["epoch"], state["step"]
    trainer.position = state.get("position", 0)
    trainer.partial = dict(state["partial"]) if trainer.position else {}
    trainer.elapsed_before = state["elapsed_s"]
    trainer.history = list(state["history"])
    for callback in trainer.callbacks:
        if type(callback).__name__ in state["callbacks"]:
            callback.load_state_dict(state["callbacks"][type(callback).__name__])
    set_rng_state(state["rng"], trainer.device)


def run_summary(trainer: "Trainer", stopper: "EarlyStopping | None") -> dict[str, Any]:
    """The run's summary.json (before the task's own ``finish`` fields): the last evaluation's
    metrics, the best monitored epoch's, how the run went, the data, hardware and versions."""
    import torch

    from deepatlas.train.runinfo import machine_info

    task = trainer.task
    # The last evaluation (a task may add its primary metric only in finish()).
    evaluated = [m for m in trainer.history
                 if task.primary in m or any(k.startswith(("val_", "test_")) for k in m)]
    final = evaluated[-1] if evaluated else {}
    best_epoch = trainer.checkpointer.best_epoch
    best = next((m for m in trainer.history if m["epoch"] == best_epoch), {})
    skip = ("epoch", "lr", "wall_s")
    return {
        "recipe": trainer.config.recipe,
        "task": task.name,
        "primary": task.primary,
        **{k: v for k, v in final.items() if k not in skip},
        "monitor": trainer.checkpointer.monitor,
        "best_monitored_epoch": best_epoch or trainer.epoch,
        "best": {k: v for k, v in best.items() if k not in skip},
        "epochs": trainer.epoch,
        "stopped_early": bool(stopper is not None and stopper.stopped_epoch),
        "wall_s": trainer.elapsed_before + time.perf_counter() - trainer.t0,
        "num_params": trainer.num_params,
        "precision": str(trainer.amp_dtype or torch.float32).replace("torch.", ""),
        "world_size": trainer.dist.world_size,
        "seed": trainer.config.seed,
        "data": task.data_summary(),
        "out_dir": str(trainer.out_dir),
        **machine_info(trainer.device),
    }
