"""Image classification (MAP 3, 5, 8): ``task = "classify-images"``, the default task.

One step is cross-entropy on a batch, with the map's regularisers where the recipe asks:
label smoothing ``y~ = (1 - eps) y + eps / K`` and Mixup ``x~ = lam x_i + (1 - lam) x_j``
(MAP 3.3), and knowledge distillation from a teacher (MAP 5.3)::

    L = alpha * CE(y, z_s) + (1 - alpha) * T^2 * KL(softmax(z_t / T) || softmax(z_s / T))

Model selection uses a validation split carved from the training set (``data.val_fraction``,
seeded); the test set is evaluated for reporting only.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from deepatlas.config import RunConfig, apply_overrides, from_dict
from deepatlas.data import ImageData, load_data, make_loader
from deepatlas.data.mixup import mixup
from deepatlas.data.progressive import progressive_size
from deepatlas.errors import UserError
from deepatlas.losses import soft_distillation_loss, soft_target_cross_entropy
from deepatlas.models import create_model
from deepatlas.models.saved import model_from_checkpoint
from deepatlas.train import Context, StepOutput, Task
from deepatlas.train.checkpoint import find_checkpoint, load_checkpoint
from deepatlas.train.runtime import evaluate_model


class ClassifyImages(Task):
    name = "classify-images"
    uses = {"data.augment", "data.image_size", "data.train_size_start", "data.train_size_end",
            "data.val_fraction", "data.train_examples", "data.num_workers", "train.eval_batch_size",
            "train.channels_last", "train.tta", "regularize.*", "distill.*"}
    monitor = ("val_acc", "max")
    primary = "test_acc"
    image_task = True

    def setup(self, ctx: Context) -> None:
        cfg, self.ctx = self.config, ctx
        self.data: ImageData = load_data(cfg.data.name, data_dir=cfg.data.dir,
                                         download=cfg.data.download,
                                         image_size=cfg.data.image_size,
                                         val_fraction=cfg.data.val_fraction,
                                         augment=cfg.data.augment,
                                         train_examples=cfg.data.train_examples)
        if self.data.val is None:
            self.monitor = None  # no validation split: best.pt is not chosen, last.pt is all
        per_rank = cfg.train.batch_size // ctx.dist.world_size
        common = dict(device=ctx.device, seed=cfg.seed, rank=ctx.dist.rank,
                      world_size=ctx.dist.world_size, num_workers=cfg.data.num_workers)
        self.train_loader = make_loader(self.data, "train", per_rank, augment=cfg.data.augment,
                                        **common)
        if len(self.train_loader) == 0:
            raise UserError(f"train.batch_size={cfg.train.batch_size} is larger than the "
                            f"{len(self.data.train)} training images; lower it")
        self.eval_loaders = {split: make_loader(self.data, split, cfg.train.eval_batch_size,
                                                **common)
                             for split in ("val", "test") if getattr(self.data, split) is not None}
        options = {k: v for k, v in cfg.model.items() if k != "name"}
        model = create_model(cfg.model["name"], in_channels=self.data.in_channels,
                             image_size=self.data.image_size, num_classes=self.data.num_classes,
                             **options).to(ctx.device)
        if hasattr(model, "fit_to_data"):  # data-dependent init (airbench's whitening)
            x, _ = next(iter(self.train_loader))
            model.fit_to_data(x.to(ctx.device))
        self.models = {"model": model}
        self.criterion = nn.CrossEntropyLoss(label_smoothing=cfg.regularize.label_smoothing)
        self.teacher = None
        if cfg.distill.teacher:
            self.teacher = load_teacher(cfg.distill.teacher, self.data, ctx.device,
                                        ctx.memory_format)

    def on_train_epoch_start(self, epoch: int) -> dict[str, float]:
        cfg = self.config
        if not cfg.data.train_size_start:
            return {}
        size = progressive_size(epoch, cfg.train.epochs, cfg.data.train_size_start,
                                cfg.data.train_size_end)  # FFCV's progressive resizing
        self.train_loader.set_image_size(size)
        return {"train_size": size}

    def training_step(self, batch: Any, group: str) -> StepOutput:
        x, y = batch  # (B, C, H, W), (B,)
        cfg, k = self.config, self.data.num_classes
        model = self.train_models["model"]
        if cfg.regularize.mixup_alpha > 0:
            smoothing = cfg.regularize.label_smoothing
            x, target = mixup(x, y, cfg.regularize.mixup_alpha, k)
            logits = model(x)  # (B, K)
            loss = soft_target_cross_entropy(logits.float(),
                                             target * (1 - smoothing) + smoothing / k)
        else:
            logits = model(x)  # (B, K)
            loss = self.criterion(logits, y)
        if self.teacher is not None:  # MAP 5.3: alpha * hard + (1 - alpha) * soft
            with torch.no_grad():
                teacher_logits = self.teacher(x)  # (B, K), the same (mixed) input
            alpha = cfg.distill.alpha
            loss = alpha * loss + (1 - alpha) * soft_distillation_loss(
                logits.float(), teacher_logits.float(), cfg.distill.temperature)
        correct = (logits.argmax(1) == y).float().mean()
        return StepOutput(loss, {"loss": loss.detach(), "acc": correct}, n=len(y))

    def evaluate(self, models: dict[str, nn.Module]) -> dict[str, float]:
        ctx, out = self.ctx, {}
        for split, loader in self.eval_loaders.items():
            out[f"{split}_loss"], out[f"{split}_acc"] = evaluate_model(
                models["model"], loader, ctx.device, ctx.amp_dtype, ctx.memory_format,
                ctx.dist, tta=self.config.train.tta)
        return out

    def describe_data(self) -> dict[str, Any]:
        d = self.data
        return {"name": d.name, "classes": d.classes, "in_channels": d.in_channels,
                "image_size": d.image_size, "mean": list(d.mean), "std": list(d.std)}

    def data_summary(self) -> dict[str, Any]:
        d = self.data
        return {"name": d.name, "source": d.source, "train": len(d.train), "test": len(d.test),
                "val": len(d.val) if d.val is not None else 0,
                "val_fraction": self.config.data.val_fraction}


def load_teacher(run_or_file: str, data: ImageData, device: torch.device,
                 memory_format: torch.memory_format = torch.contiguous_format) -> nn.Module:
    """The teacher's inference model, frozen, after checking it speaks the student's data."""
    path = find_checkpoint(run_or_file)
    state = load_checkpoint(path)
    meta = state["data"]
    if state["config"].get("task", "classify-images") != "classify-images":
        raise UserError(f"the teacher {path} is a {state['config']['task']} run; a teacher "
                        "must be an image classifier")
    if meta["classes"] != data.classes:
        raise UserError(f"the teacher {path} was trained on {meta['name']} "
                        f"({len(meta['classes'])} classes), the student on {data.name} "
                        f"({data.num_classes}); distillation needs the same classes")
    if (meta["in_channels"], meta["image_size"]) != (data.in_channels, data.image_size):
        raise UserError(f"the teacher {path} reads {meta['in_channels']}x{meta['image_size']}"
                        f"x{meta['image_size']} images, the student's data is "
                        f"{data.in_channels}x{data.image_size}x{data.image_size}")
    # Both see the same normalised batch, so the teacher must have been normalised alike.
    if not (torch.allclose(torch.tensor(meta["mean"]), torch.tensor(data.mean), atol=1e-3)
            and torch.allclose(torch.tensor(meta["std"]), torch.tensor(data.std), atol=1e-3)):
        raise UserError(f"the teacher {path} was trained with mean/std {meta['mean']}/"
                        f"{meta['std']}, the student's data has {list(data.mean)}/"
                        f"{list(data.std)}; train both on the same data set")
    with torch.random.fork_rng(devices=[]):  # building it must not shift the student's draws
        model = model_from_checkpoint(state)
    model = model.to(device, memory_format=memory_format).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def data_for(meta: dict[str, Any], overrides: list[str] | None = None) -> ImageData:
    """The data set a saved image classifier was trained on, normalised with its saved
    statistics (``meta``: a checkpoint's or exported file's description)."""
    config: RunConfig = from_dict(meta["config"])
    for item in overrides or []:
        if not item.startswith("data."):
            raise UserError(f"eval --set takes data.* keys only (data.dir=FOLDER), got {item!r}")
    apply_overrides(config, overrides or [])
    data = load_data(config.data.name, data_dir=config.data.dir, download=config.data.download,
                     image_size=config.data.image_size)
    if data.classes != meta["data"]["classes"]:
        raise UserError(f"{data.source} has classes {data.classes[:5]}..., the model was "
                        f"trained on {meta['data']['classes'][:5]}...")
    data.mean, data.std = tuple(meta["data"]["mean"]), tuple(meta["data"]["std"])
    return data
