"""One Trainer for supervised image classification (MAP 3, 5, 8).

``Trainer(config, out_dir).fit()`` loads the data, builds the model from the registry, trains
with the configured optimizer, schedule, precision and regularisation, evaluates every epoch,
and writes the run directory:

    config.toml    the fully resolved config
    metrics.jsonl  one JSON object per epoch
    summary.json   the result, with hardware and versions
    last.pt        everything needed to resume exactly (best.pt: the best epoch's)
    tb/            TensorBoard event files

Under ``torchrun`` the same code runs DistributedDataParallel; only rank 0 writes.
"""

from __future__ import annotations

import json
import math
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import tomli_w
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from deepatlas.config import RunConfig
from deepatlas.data import ImageData, load_data, make_loader
from deepatlas.data.mixup import mixup
from deepatlas.data.progressive import progressive_size
from deepatlas.errors import TrainingDiverged, TrainingInterrupted, UserError
from deepatlas.losses import soft_distillation_loss, soft_target_cross_entropy
from deepatlas.models import create_model
from deepatlas.train.callbacks import Callback, EarlyStopping, ModelCheckpoint
from deepatlas.train.checkpoint import load_checkpoint, save_checkpoint
from deepatlas.train.distributed import (DistEnv, all_reduce_sum, init_distributed,
                                         resolve_device, shutdown)
from deepatlas.train.optim import build_optimizer, build_schedule
from deepatlas.train.progress import EpochProgress
from deepatlas.train.rundir import prepare_out_dir
from deepatlas.train.runinfo import machine_info
from deepatlas.train.runtime import (autocast_dtype, evaluate_model, rng_state, seed_everything,
                                     set_rng_state)

PROGRESS_EVERY = 10  # steps between progress-bar loss updates (each one syncs the device)

# Fault injection for the tests of never-lose-a-run (tests/test_faults.py); unset in real runs.
TEST_STEP_DELAY = "DEEPATLAS_TEST_STEP_DELAY"  # seconds to sleep after every step
TEST_CRASH_AT_STEP = "DEEPATLAS_TEST_CRASH_AT_STEP"  # the last rank dies there, first attempt


class Trainer:
    def __init__(self, config: RunConfig, out_dir: str | Path, *, device: str = "auto",
                 resume: bool = False, progress: bool = True,
                 callbacks: list[Callback] | None = None) -> None:
        self.config = config
        self.out_dir = Path(out_dir)
        self.resume = resume
        self.progress = progress
        self.extra_callbacks = callbacks or []
        self.device_preference = device
        self.should_stop = False
        self.interrupted: int | None = None  # the signal that asked us to stop
        self.history: list[dict[str, float]] = []
        self.position = 0  # batches done in the current epoch
        self.partial: list[float] = [0.0, 0.0, 0.0]  # loss sum, correct, seen in this epoch

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
            prepare_out_dir(self.out_dir, self.resume)
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

        self.data: ImageData = load_data(cfg.data.name, data_dir=cfg.data.dir,
                                         download=cfg.data.download,
                                         image_size=cfg.data.image_size,
                                         val_fraction=cfg.data.val_fraction,
                                         augment=cfg.data.augment)
        per_rank = cfg.train.batch_size // self.dist.world_size
        common = dict(device=self.device, seed=cfg.seed, rank=self.dist.rank,
                      world_size=self.dist.world_size, num_workers=cfg.data.num_workers)
        self.train_loader = make_loader(self.data, "train", per_rank, augment=cfg.data.augment,
                                        **common)
        if len(self.train_loader) == 0:
            raise UserError(f"train.batch_size={cfg.train.batch_size} is larger than the "
                            f"{len(self.data.train)} training images; lower it")
        self.eval_loaders = {split: make_loader(self.data, split, cfg.train.eval_batch_size,
                                                **common)
                             for split in ("val", "test") if getattr(self.data, split) is not None}

        options = {k: v for k, v in cfg.model.items() if k != "name"}
        self.model = create_model(cfg.model["name"], in_channels=self.data.in_channels,
                                  image_size=self.data.image_size,
                                  num_classes=self.data.num_classes, **options).to(self.device)
        if hasattr(self.model, "fit_to_data"):  # data-dependent init (airbench's whitening)
            x, _ = next(iter(self.train_loader))
            self.model.fit_to_data(x.to(self.device))
        self.memory_format = (torch.channels_last if cfg.train.channels_last
                              else torch.contiguous_format)
        self.model = self.model.to(memory_format=self.memory_format)
        self.num_params = sum(p.numel() for p in self.model.parameters())
        self.optimizer = build_optimizer(self.model, cfg.optim)
        self.scheduler = build_schedule(self.optimizer, cfg.schedule,
                                        len(self.train_loader), cfg.train.epochs)
        self.scaler = torch.amp.GradScaler(self.device.type,
                                           enabled=self.amp_dtype == torch.float16)
        self.ema = None
        if cfg.train.ema_decay > 0:
            self.ema = AveragedModel(self.model, multi_avg_fn=get_ema_multi_avg_fn(
                cfg.train.ema_decay), use_buffers=True)
        self.criterion = nn.CrossEntropyLoss(label_smoothing=cfg.regularize.label_smoothing)
        self.teacher = None
        if cfg.distill.teacher:
            from deepatlas.compress.distill import load_teacher

            self.teacher = load_teacher(cfg.distill.teacher, self.data, self.device,
                                        self.memory_format)

        monitor = cfg.train.monitor
        if monitor == "auto":
            monitor = "val_acc" if self.data.val is not None else "test_acc"
        mode = "min" if monitor.endswith("loss") else "max"
        self.callbacks: list[Callback] = list(self.extra_callbacks)
        if cfg.train.early_stopping_patience > 0:
            self.callbacks.append(EarlyStopping(monitor, cfg.train.early_stopping_patience,
                                                cfg.train.early_stopping_min_delta, mode))
        self.checkpointer = ModelCheckpoint(monitor, mode)
        self.callbacks.append(self.checkpointer)  # last: it saves the others' updated state

        self.start_epoch, self.step, self.elapsed_before = 0, 0, 0.0
        if self.resume:
            self._restore(load_checkpoint(self.out_dir / "last.pt"))
        self.train_model: nn.Module = self.model
        if self.dist.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.train_model = DistributedDataParallel(self.model, device_ids=ids)

    # ------------------------------------------------------------------ checkpoints

    def checkpoint_state(self) -> dict[str, Any]:
        return {
            "recipe": self.config.recipe,
            "config": self.config.to_dict(),
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "epoch": self.epoch,
            "step": self.step,
            "position": self.position,
            "partial": self.partial,
            "elapsed_s": self.elapsed_before + time.perf_counter() - self.t0,
            "rng": rng_state(self.device),
            "callbacks": {type(c).__name__: c.state_dict() for c in self.callbacks},
            "history": self.history,
            "data": {"name": self.data.name, "classes": self.data.classes,
                     "in_channels": self.data.in_channels, "image_size": self.data.image_size,
                     "mean": list(self.data.mean), "std": list(self.data.std)},
        }

    def save_checkpoint(self, name: str) -> None:
        """Write ``name`` atomically (rank 0), after checking that every weight is finite:
        a diverged run never replaces a good checkpoint."""
        if not self.dist.is_main:
            return
        if not all(torch.isfinite(p).all() for p in self.model.parameters()):
            raise TrainingDiverged(
                f"weights became NaN/Inf in epoch {self.epoch + 1} by step {self.step}; "
                f"{self.out_dir / 'last.pt'} keeps the last good state. Try a lower optim.lr, "
                "--set train.clip_grad_norm=1.0, or --set train.precision=fp32")
        try:
            save_checkpoint(self.checkpoint_state(), self.out_dir / name)
        except OSError as exc:
            raise UserError(f"could not write {self.out_dir / name}: {exc.strerror or exc}; the "
                            "previous checkpoint is intact. Free some space (or pick another "
                            "--out and copy last.pt there) and run again with --resume") from None

    def _restore(self, state: dict[str, Any]) -> None:
        saved = state["config"]
        if saved["model"] != self.config.model:
            raise UserError(f"--resume: the checkpoint's model {saved['model']} differs from the "
                            f"config's {self.config.model}; resume with the same recipe and "
                            "model keys")
        if saved["data"]["name"] != self.config.data.name:
            raise UserError(f"--resume: the run was trained on data.name={saved['data']['name']}, "
                            f"not {self.config.data.name}")
        if saved["optim"]["name"] != self.config.optim.name:
            raise UserError(f"--resume: the run used optim.name={saved['optim']['name']}; its "
                            f"saved state does not fit {self.config.optim.name} (the lr, "
                            "epochs and most other keys may change on resume)")
        self.model.load_state_dict(state["model"])
        if self.ema is not None and state.get("ema"):
            self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        # The config wins over the saved hyperparameters, so that a diverged run can resume
        # with --set optim.lr=<lower> (the saved moments and step counts are kept).
        decays = (self.config.optim.weight_decay, 0.0)
        self.scheduler.base_lrs = [self.config.optim.lr] * len(self.optimizer.param_groups)
        for group, factor, decay in zip(self.optimizer.param_groups, self.scheduler.lr_lambdas,
                                        decays):
            group["initial_lr"] = self.config.optim.lr
            group["lr"] = self.config.optim.lr * factor(self.scheduler.last_epoch)
            if "weight_decay" in group:
                group["weight_decay"] = decay
        self.scaler.load_state_dict(state["scaler"])
        self.start_epoch, self.step = state["epoch"], state["step"]
        self.position = state.get("position", 0)
        # Rank 0 carries the epoch's running sums (already summed over ranks); the others
        # start from zero, so the epoch-end all-reduce totals them right.
        if self.position and self.dist.is_main:
            self.partial = list(state["partial"])
        self.elapsed_before = state["elapsed_s"]
        self.history = list(state["history"])
        for callback in self.callbacks:
            if type(callback).__name__ in state["callbacks"]:
                callback.load_state_dict(state["callbacks"][type(callback).__name__])
        set_rng_state(state["rng"], self.device)

    # ------------------------------------------------------------------ loops

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32,
                              enabled=self.amp_dtype is not None)

    def _train_epoch(self, epoch: int) -> dict[str, float]:
        self.train_model.train()
        self.train_loader.set_epoch(epoch)
        cfg = self.config
        if cfg.data.train_size_start:  # progressive resizing (FFCV)
            self.train_size = progressive_size(epoch, cfg.train.epochs, cfg.data.train_size_start,
                                               cfg.data.train_size_end)
            self.train_loader.set_image_size(self.train_size)
        start, self.position = self.position, 0  # > 0 when resuming mid-epoch
        loss_sum, correct, seen = (torch.tensor(v, device=self.device, dtype=torch.float64)
                                   for v in self.partial)
        clip, every = cfg.train.clip_grad_norm, cfg.train.checkpoint_every_steps
        mixup_alpha = cfg.regularize.mixup_alpha
        smoothing, k = cfg.regularize.label_smoothing, self.data.num_classes
        delay = float(os.environ.get(TEST_STEP_DELAY, "0"))
        steps = len(self.train_loader)
        with EpochProgress(epoch + 1, cfg.train.epochs, steps,
                           self.progress and self.dist.is_main) as bar:
            bar.advance(start)
            for i, (x, y) in enumerate(self.train_loader.iterate(start), start):
                x = x.to(self.device, non_blocking=True, memory_format=self.memory_format)
                y = y.to(self.device, non_blocking=True)
                with self._autocast():
                    if mixup_alpha > 0:
                        x, target = mixup(x, y, mixup_alpha, k)
                        logits = self.train_model(x)  # (B, K)
                        loss = soft_target_cross_entropy(logits.float(),
                                                         target * (1 - smoothing) + smoothing / k)
                    else:
                        logits = self.train_model(x)  # (B, K)
                        loss = self.criterion(logits, y)
                    if self.teacher is not None:  # MAP 5.3: alpha * hard + (1 - alpha) * soft
                        with torch.no_grad():
                            teacher_logits = self.teacher(x)  # (B, K), the same (mixed) input
                        alpha = cfg.distill.alpha
                        loss = alpha * loss + (1 - alpha) * soft_distillation_loss(
                            logits.float(), teacher_logits.float(), cfg.distill.temperature)
                self.optimizer.zero_grad(set_to_none=True)
                self.scaler.scale(loss).backward()
                if clip > 0:
                    self.scaler.unscale_(self.optimizer)  # clip true gradients, not scaled ones
                    nn.utils.clip_grad_norm_(self.model.parameters(), clip)
                self.scaler.step(self.optimizer)
                self.scaler.update()
                self.scheduler.step()
                if self.ema is not None:
                    self.ema.update_parameters(self.model)
                self.step += 1
                self.position = i + 1
                loss_sum += loss.detach() * len(y)
                correct += (logits.argmax(1) == y).sum()
                seen += len(y)
                if self.position % PROGRESS_EVERY == 0 or self.position == steps:
                    mean_loss = loss_sum.item() / seen.item()
                    self._check_finite(mean_loss, epoch, self.position)
                    bar.advance(self.position - bar.done, mean_loss)
                if delay:
                    time.sleep(delay)
                self._maybe_crash_for_test()
                mid_epoch = self.position < steps
                if mid_epoch and (self.interrupted or (every and self.step % every == 0)):
                    self._save_mid_epoch(loss_sum, correct, seen, epoch)
                if self.interrupted and mid_epoch:
                    self._stop_for_signal(epoch)
        self.position, self.partial = 0, [0.0, 0.0, 0.0]
        totals = all_reduce_sum(torch.stack([loss_sum, correct, seen]), self.dist).tolist()
        metrics = {"train_loss": totals[0] / totals[2], "train_acc": totals[1] / totals[2]}
        if cfg.data.train_size_start:
            metrics["train_size"] = self.train_size
        return metrics

    def _save_mid_epoch(self, loss_sum, correct, seen, epoch: int) -> None:
        totals = all_reduce_sum(torch.stack([loss_sum, correct, seen]), self.dist)
        self._check_finite(totals[0].item() / totals[2].item(), epoch, self.position)
        self.partial = totals.tolist()
        self.save_checkpoint("last.pt")

    def _stop_for_signal(self, epoch: int) -> None:
        name = signal.Signals(self.interrupted).name
        raise TrainingInterrupted(
            f"stopped by {name} in epoch {epoch + 1} after step {self.step}; saved "
            f"{self.out_dir / 'last.pt'}. Resume with: deepatlas train {self.config.recipe} "
            f"--out {self.out_dir} --resume")

    def _maybe_crash_for_test(self) -> None:
        crash_at = os.environ.get(TEST_CRASH_AT_STEP)
        if (crash_at and self.step == int(crash_at)
                and self.dist.rank == self.dist.world_size - 1
                and os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") == "0"):
            os._exit(17)  # a rank dies as a killed process would: no clean-up

    def _check_finite(self, loss: float, epoch: int, step: int) -> None:
        if not math.isfinite(loss):
            raise TrainingDiverged(
                f"the training loss became {loss} in epoch {epoch + 1} by step {step}; the last "
                "good checkpoint is kept. Try a lower optim.lr, --set train.clip_grad_norm=1.0, "
                "or --set train.precision=fp32")

    def evaluate(self, loader) -> tuple[float, float]:
        """(mean loss, accuracy) of the EMA weights when kept, else of the model."""
        model = self.ema.module if self.ema is not None else self.model
        return evaluate_model(model, loader, self.device, self.amp_dtype, self.memory_format,
                              self.dist, tta=self.config.train.tta)

    # ------------------------------------------------------------------ the run

    def fit(self) -> dict[str, Any]:
        """Train for ``train.epochs`` (or until early stopping); return the summary."""
        was_deterministic = torch.are_deterministic_algorithms_enabled()
        previous = self._catch_signals()
        try:
            self._setup()
            return self._fit()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            torch.use_deterministic_algorithms(was_deterministic)
            if getattr(self, "writer", None) is not None:
                self.writer.close()
            if hasattr(self, "dist"):
                shutdown(self.dist)

    def _catch_signals(self) -> dict[int, Any]:
        """Ctrl-C / SIGTERM: finish the step, save, exit with how to resume. A second one
        stops at once."""
        if threading.current_thread() is not threading.main_thread():
            return {}

        def handler(signum, frame):
            if self.interrupted is not None:
                raise KeyboardInterrupt
            self.interrupted = signum
            if self._is_main():
                print(f"\n{signal.Signals(signum).name}: saving a checkpoint after this step "
                      "(again to quit at once)", flush=True)

        return {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}

    def _is_main(self) -> bool:
        return not hasattr(self, "dist") or self.dist.is_main

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
                for split, loader in self.eval_loaders.items():
                    metrics[f"{split}_loss"], metrics[f"{split}_acc"] = self.evaluate(loader)
            metrics["lr"] = self.optimizer.param_groups[0]["lr"]
            metrics["wall_s"] = self.elapsed_before + time.perf_counter() - self.t0
            self.epoch = epoch + 1
            self.history.append(metrics)
            for callback in self.callbacks:
                callback.on_epoch_end(self, metrics)
            self._log(metrics)
            if self.interrupted:
                self._stop_for_signal(epoch)
        return self._finish(stopper)

    def _log(self, m: dict[str, float]) -> None:
        if not self.dist.is_main:
            return
        with (self.out_dir / "metrics.jsonl").open("a") as f:
            f.write(json.dumps(m) + "\n")
        if self.writer is not None:
            for key, value in m.items():
                if key != "epoch":
                    self.writer.add_scalar(key.replace("_", "/", 1), value, int(m["epoch"]))
        test = (f"  test_loss {m['test_loss']:.4f}  test_acc {m['test_acc']:.2%}"
                if "test_acc" in m else "")
        val = f" val_acc {m['val_acc']:.2%}" if "val_acc" in m else ""
        print(f"epoch {int(m['epoch']):>3}/{self.config.train.epochs}  train_loss "
              f"{m['train_loss']:.4f}{test}{val}  lr {m['lr']:.3g}  {m['wall_s']:.1f}s",
              flush=True)

    def _finish(self, stopper: EarlyStopping | None) -> dict[str, Any]:
        evaluated = [m for m in self.history if "test_acc" in m]
        last = evaluated[-1] if evaluated else {}
        best = max(evaluated, key=lambda m: m["test_acc"]) if evaluated else {}
        summary = {
            "recipe": self.config.recipe,
            "test_acc": last.get("test_acc"),
            "best_test_acc": best.get("test_acc"),
            "best_test_epoch": best.get("epoch"),
            "monitor": self.checkpointer.monitor,
            "best_monitored_epoch": self.checkpointer.best_epoch,
            "epochs": self.epoch,
            "stopped_early": bool(stopper is not None and stopper.stopped_epoch),
            "wall_s": self.elapsed_before + time.perf_counter() - self.t0,
            "num_params": self.num_params,
            "precision": str(self.amp_dtype or torch.float32).replace("torch.", ""),
            "world_size": self.dist.world_size,
            "seed": self.config.seed,
            "data": {"name": self.data.name, "source": self.data.source,
                     "train": len(self.data.train), "test": len(self.data.test),
                     "val": len(self.data.val) if self.data.val is not None else 0},
            "out_dir": str(self.out_dir),
            **machine_info(self.device),
        }
        if self.dist.is_main:
            (self.out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        return summary
