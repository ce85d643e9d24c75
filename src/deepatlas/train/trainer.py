"""The one Trainer (MAP 3, 5, 8): every recipe is a :class:`~deepatlas.train.task.Task` on it.

``Trainer(task, out_dir).fit()`` trains ``task`` and writes the run directory:

    config.toml    the fully resolved config
    metrics.jsonl  one JSON object per epoch
    summary.json   the result, with hardware and versions
    last.pt        everything needed to resume exactly (best.pt: the best validated epoch's)
    tb/            TensorBoard event files

Under ``torchrun`` the same code runs DistributedDataParallel; only rank 0 writes.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import tomli_w
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from deepatlas.errors import TrainingDiverged, TrainingInterrupted, UserError
from deepatlas.train import faults
from deepatlas.train import state as run_state
from deepatlas.train.callbacks import Callback, EarlyStopping, ModelCheckpoint
from deepatlas.train.distributed import (DistEnv, all_reduce_sum, init_distributed,
                                         resolve_device, shutdown)
from deepatlas.train.ema import create_ema
from deepatlas.train.optim import OptimizerGroupState
from deepatlas.train.progress import EpochProgress, format_metrics
from deepatlas.train.rundir import (clear_stopped, mark_stopped, prepare_out_dir,
                                    remove_if_unused)
from deepatlas.train.runtime import autocast_dtype, seed_everything, to_device
from deepatlas.train.task import Context, Task

PROGRESS_EVERY = 10  # steps between progress-bar and NaN checks (each one syncs the device)


class Trainer:
    def __init__(self, task: Task, out_dir: str | Path, *, device: str = "auto",
                 resume: bool = False, progress: bool = True,
                 callbacks: list[Callback] | None = None) -> None:
        self.task, self.config = task, task.config
        self.out_dir = Path(out_dir)
        self.resume = resume
        self.progress = progress
        self.extra_callbacks = callbacks or []
        self.device_preference = device
        self.should_stop = False
        self.interrupted: int | None = None  # the signal that asked us to stop
        self.history: list[dict[str, float]] = []
        self.position = 0  # batches done in the current epoch
        self.partial: dict[str, list[float]] = {}  # this epoch's log sums and counts so far

    # ------------------------------------------------------------------ set-up

    def _setup(self) -> None:
        cfg = self.config
        self.device = resolve_device(self.device_preference,
                                     int(os.environ.get("LOCAL_RANK", "0")))
        self.dist: DistEnv = init_distributed(self.device)
        if (int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")) > 0
                and (self.out_dir / "last.pt").is_file()):
            self.resume = True  # torchrun restarted the group after a failure: carry on
        if self.dist.is_main:
            self._lock = prepare_out_dir(self.out_dir, self.resume)
        if cfg.train.batch_size % self.dist.world_size:
            raise UserError(f"train.batch_size={cfg.train.batch_size} is the global batch and "
                            f"must divide by the {self.dist.world_size} processes")
        seed_everything(cfg.seed)
        if cfg.train.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=False)
            torch.backends.cudnn.benchmark = False
        elif self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        self.amp_dtype = autocast_dtype(cfg.train.precision, self.device)
        self.memory_format = (torch.channels_last if self.task.image_task
                              and cfg.train.channels_last else torch.contiguous_format)
        self.ctx = Context(cfg, self.device, self.dist, self.amp_dtype, self.memory_format,
                           self.out_dir, self.dist.is_main)
        task = self.task
        task.setup(self.ctx)
        if len(task.train_loader) == 0:
            raise UserError(f"train.batch_size={cfg.train.batch_size} is larger than the "
                            "training set; lower it")
        for name, model in task.models.items():
            task.models[name] = model.to(self.device, memory_format=self.memory_format)
        self.steps_per_epoch = len(task.train_loader)
        if cfg.train.limit_train_batches:  # Lightning's limit_train_batches: a short epoch
            self.steps_per_epoch = min(self.steps_per_epoch, cfg.train.limit_train_batches)
        steps = self.steps_per_epoch
        self.groups = [OptimizerGroupState(g.name, g.every, task.models[g.name], cfg, steps,
                                           self.device, self.amp_dtype)
                       for g in task.optimizer_groups()]
        self.num_params = sum(p.numel() for m in task.models.values() for p in m.parameters())
        self.ema = None
        if cfg.train.ema_decay > 0:
            self.ema = create_ema(task.models[task.ema_model], cfg.train.ema_decay,
                                  cfg.train.ema_warmup_steps)
        self._setup_callbacks()
        self.start_epoch, self.step, self.elapsed_before = 0, 0, 0.0
        if self.resume:
            run_state.restore(self, run_state.load_checkpoint(self.out_dir / "last.pt"))
            task.step = self.step
        task.train_models = dict(task.models)
        if self.dist.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            for group in self.groups:
                task.train_models[group.name] = DistributedDataParallel(group.model,
                                                                        device_ids=ids)

    def _setup_callbacks(self) -> None:
        cfg, task = self.config.train, self.task
        monitor, mode = task.monitor or (None, "max")
        if cfg.monitor != "auto":
            monitor, mode = cfg.monitor, "min" if cfg.monitor.endswith("loss") else "max"
        if monitor is not None and monitor.startswith("test"):
            raise UserError(f"train.monitor={monitor} would choose the model on the test set; "
                            "monitor a validation metric (val_acc, val_loss)")
        self.callbacks: list[Callback] = list(self.extra_callbacks)
        if cfg.early_stopping_patience > 0:
            if monitor is None:
                raise UserError(f"early stopping needs a validation split to watch; task "
                                f"{task.name} has none here (set data.val_fraction > 0)")
            self.callbacks.append(EarlyStopping(monitor, cfg.early_stopping_patience,
                                                cfg.early_stopping_min_delta, mode))
        self.checkpointer = ModelCheckpoint(monitor, mode)
        self.callbacks.append(self.checkpointer)  # last: it saves the others' updated state

    # ------------------------------------------------------------------ checkpoints

    def save_checkpoint(self, name: str) -> None:
        """Write ``name`` atomically (rank 0), after checking that every weight is finite:
        a diverged run never replaces a good checkpoint."""
        if not self.dist.is_main:
            return
        for model in self.task.models.values():
            if not all(torch.isfinite(p).all() for p in model.parameters()):
                raise TrainingDiverged(
                    f"weights became NaN/Inf in epoch {self.epoch + 1} by step {self.step}; "
                    f"{self._kept()} Try a lower optim.lr, --set train.clip_grad_norm=1.0, or "
                    "--set train.precision=fp32")
        try:
            run_state.save_checkpoint(run_state.checkpoint_state(self), self.out_dir / name)
        except OSError as exc:
            raise UserError(f"could not write {self.out_dir / name}: {exc.strerror or exc}; the "
                            "previous checkpoint is intact. Free some space (or pick another "
                            "--out and copy last.pt there) and run again with --resume") from None

    def _kept(self) -> str:
        if (self.out_dir / "last.pt").is_file():
            return f"{self.out_dir / 'last.pt'} keeps the last good state."
        return "no checkpoint had been written yet."

    # ------------------------------------------------------------------ one epoch

    def _train_epoch(self, epoch: int) -> dict[str, float]:
        cfg, task = self.config, self.task
        for model in task.models.values():
            model.train()
        loader = task.train_loader
        loader.set_epoch(epoch)
        extra = task.on_train_epoch_start(epoch)
        start, self.position = self.position, 0  # > 0 when resuming mid-epoch
        # Rank 0 carries a resumed epoch's sums (already summed over ranks); the others start
        # from zero, so the epoch-end all-reduce totals them right.
        carried = self.partial if (start and self.dist.is_main) else {}
        self.sums = {k: torch.tensor(s, device=self.device, dtype=torch.float64)
                     for k, (s, _) in carried.items()}
        self.counts = {k: torch.tensor(c, device=self.device, dtype=torch.float64)
                       for k, (_, c) in carried.items()}
        self.bad = torch.zeros((), dtype=torch.bool, device=self.device)
        every = cfg.train.checkpoint_every_steps
        delay = faults.step_delay()
        steps = self.steps_per_epoch
        with EpochProgress(epoch + 1, cfg.train.epochs, steps,
                           self.progress and self.dist.is_main) as bar:
            bar.advance(start)
            for i, batch in enumerate(loader.iterate(start), start):
                if i >= steps:
                    break
                batch = to_device(batch, self.device, self.memory_format)
                task.step = self.step
                for group in self.groups:
                    if (self.step + 1) % group.every == 0:
                        self._optimizer_step(group, batch)
                self.step += 1
                self.position = i + 1
                if self.position % PROGRESS_EVERY == 0 or self.position == steps:
                    self._check_finite(epoch)
                    bar.advance(self.position - bar.done, self._mean(next(iter(self.sums), "")))
                if delay:
                    time.sleep(delay)
                faults.after_step(self.step, self.dist)
                mid_epoch = self.position < steps
                if mid_epoch and (self.interrupted or (every and self.step % every == 0)):
                    self.partial = self._reduced_sums()
                    self._check_finite(epoch)
                    self.save_checkpoint("last.pt")
                if self.interrupted and mid_epoch:
                    self._stop_for_signal(epoch)
        self._check_finite(epoch)
        task.step = self.step
        totals = self._reduced_sums()
        self.position, self.partial = 0, {}
        return {**{f"train_{k}": s / max(c, 1e-12) for k, (s, c) in totals.items()}, **extra}

    def _optimizer_step(self, group: OptimizerGroupState, batch: Any) -> None:
        with self.ctx.autocast():
            out = self.task.training_step(batch, group.name)
        loss = out.loss
        if faults.nan_at(self.step):
            loss = loss * float("nan")
        self.bad |= ~torch.isfinite(loss.detach())
        group.optimizer.zero_grad(set_to_none=True)
        group.scaler.scale(loss).backward()
        clip = self.config.train.clip_grad_norm
        if clip > 0:
            group.scaler.unscale_(group.optimizer)  # clip true gradients, not scaled ones
            nn.utils.clip_grad_norm_(group.model.parameters(), clip)
        group.scaler.step(group.optimizer)
        group.scaler.update()
        group.scheduler.step()
        if self.ema is not None and group.name == self.task.ema_model:
            self.ema.update_parameters(group.model)
        for key, value in out.logs.items():
            value = torch.as_tensor(value, device=self.device).detach().double()
            zero = torch.zeros((), device=self.device, dtype=torch.float64)
            self.sums[key] = self.sums.get(key, zero) + value * out.n
            self.counts[key] = self.counts.get(key, zero) + out.n

    def _reduced_sums(self) -> dict[str, list[float]]:
        keys = list(self.sums)  # the order the task logs them in: the same on every rank
        if not keys:
            return {}
        stacked = torch.stack([self.sums[k] for k in keys] + [self.counts[k] for k in keys])
        values = all_reduce_sum(stacked, self.dist).tolist()
        return {k: [values[i], values[len(keys) + i]] for i, k in enumerate(keys)}

    def _mean(self, key: str) -> float | None:
        if key not in self.sums:
            return None
        return (self.sums[key] / self.counts[key].clamp_min(1e-12)).item()

    def _check_finite(self, epoch: int) -> None:
        bad = bool(self.bad.item()) or any(not torch.isfinite(s) for s in self.sums.values())
        if bad:
            raise TrainingDiverged(
                f"the training loss became NaN/Inf in epoch {epoch + 1} by step {self.step}; "
                f"{self._kept()} Try a lower optim.lr, --set train.clip_grad_norm=1.0, or "
                "--set train.precision=fp32")

    def _stop_for_signal(self, epoch: int) -> None:
        name = signal.Signals(self.interrupted).name
        raise TrainingInterrupted(
            f"stopped by {name} in epoch {epoch + 1} after step {self.step}; saved "
            f"{self.out_dir / 'last.pt'}. Resume with: deepatlas train {self.config.recipe} "
            f"--out {self.out_dir} --resume")

    def inference_models(self) -> dict[str, nn.Module]:
        """The task's models, with the EMA's weights in place of the averaged one's."""
        models = dict(self.task.models)
        if self.ema is not None:
            models[self.task.ema_model] = self.ema.module
        return models

    # ------------------------------------------------------------------ the run

    def fit(self) -> dict[str, Any]:
        """Train for ``train.epochs`` (or until early stopping); return the summary."""
        was_deterministic = torch.are_deterministic_algorithms_enabled()
        threads = torch.get_num_threads()
        if self.task.max_threads:
            torch.set_num_threads(min(threads, self.task.max_threads))
        previous = faults.catch_signals(self._on_signal, lambda: self.interrupted is not None)
        new_folder, set_up = not self.out_dir.exists(), False
        try:
            self._setup()
            set_up = True
            if self.dist.is_main:
                clear_stopped(self.out_dir)  # resumed: no longer stopped
            return self._fit()
        except (TrainingDiverged, TrainingInterrupted) as exc:
            if getattr(self, "dist", None) is not None and self.dist.is_main:
                mark_stopped(self.out_dir, "diverged" if isinstance(exc, TrainingDiverged)
                             else "interrupted", str(exc), getattr(self, "epoch", 0),
                             getattr(self, "step", 0))
            raise
        finally:
            faults.restore_signals(previous)
            torch.use_deterministic_algorithms(was_deterministic)
            torch.set_num_threads(threads)
            if getattr(self, "writer", None) is not None:
                self.writer.close()
            if hasattr(self, "dist"):
                shutdown(self.dist)
            if getattr(self, "_lock", None) is not None:
                if new_folder and not set_up:  # a config the task refused leaves no folder
                    remove_if_unused(self.out_dir)  # (while locked: no one else is in it)
                os.close(self._lock)  # the run folder is free for the next process
                self._lock = None

    def _on_signal(self, signum: int) -> None:
        """Ctrl-C / SIGTERM: finish the step, save, exit with how to resume (a second one
        stops at once: :func:`~deepatlas.train.faults.catch_signals`)."""
        self.interrupted = signum
        if not hasattr(self, "dist") or self.dist.is_main:
            print(f"\n{signal.Signals(signum).name}: saving a checkpoint after this step "
                  "(again to quit at once)", flush=True)

    def _fit(self) -> dict[str, Any]:
        cfg = self.config
        self.t0 = time.perf_counter()
        self.writer = None
        if self.dist.is_main:
            (self.out_dir / "config.toml").write_text(tomli_w.dumps(cfg.to_dict()))
            if cfg.train.tensorboard:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(str(self.out_dir / "tb"))
        if self.resume and self.dist.is_main:
            where = f", step {self.position} of epoch {self.start_epoch + 1}" if self.position else ""
            print(f"resuming {self.out_dir} after epoch {self.start_epoch}{where}", flush=True)
        self.epoch = self.start_epoch
        stopper = next((c for c in self.callbacks if isinstance(c, EarlyStopping)), None)
        if stopper is not None and stopper.stopped_epoch:
            self.should_stop = True  # the run being resumed had already stopped early
        for epoch in range(self.start_epoch, cfg.train.epochs):
            if self.should_stop:
                break
            metrics: dict[str, float] = {"epoch": epoch + 1}
            metrics.update(self._train_epoch(epoch))
            every = cfg.train.eval_every
            if epoch + 1 == cfg.train.epochs or (every > 0 and (epoch + 1) % every == 0):
                models = self.inference_models()
                for model in models.values():
                    model.eval()
                metrics.update(self.task.evaluate(models))
                self._check_monitor(metrics)
            metrics["lr"] = self.groups[0].optimizer.param_groups[0]["lr"]
            metrics["wall_s"] = self.elapsed_before + time.perf_counter() - self.t0
            self.epoch = epoch + 1
            self.history.append(metrics)
            for callback in self.callbacks:
                callback.on_epoch_end(self, metrics)
            self._log(metrics)
            if self.dist.is_main:
                self.task.on_epoch_end(epoch, metrics, self.inference_models())
            if self.interrupted:
                self._stop_for_signal(epoch)
        return self._finish(stopper)

    def _check_monitor(self, metrics: dict[str, float]) -> None:
        monitor = self.checkpointer.monitor
        if monitor is not None and monitor not in metrics:
            raise UserError(f"train.monitor={monitor} is not a metric of task {self.task.name}; "
                            f"it reports {', '.join(k for k in metrics if k != 'epoch')}")

    def _log(self, m: dict[str, float]) -> None:
        if not self.dist.is_main:
            return
        with (self.out_dir / "metrics.jsonl").open("a") as f:
            f.write(json.dumps(m) + "\n")
        if self.writer is not None:
            for key, value in m.items():
                if key != "epoch":
                    self.writer.add_scalar(key.replace("_", "/", 1), value, int(m["epoch"]))
        shown = {k: v for k, v in m.items() if k not in ("epoch", "wall_s")}
        print(f"epoch {int(m['epoch']):>3}/{self.config.train.epochs}  "
              f"{format_metrics(shown)}  {m['wall_s']:.1f}s", flush=True)

    def _finish(self, stopper: EarlyStopping | None) -> dict[str, Any]:
        summary = run_state.run_summary(self, stopper)
        if self.dist.is_main:
            summary.update(self.task.finish(self.history, self.inference_models()))
            (self.out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        return summary
