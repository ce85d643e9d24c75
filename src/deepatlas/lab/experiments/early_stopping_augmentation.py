"""MAP 5.2: early stopping on validation accuracy, and data augmentation when data is scarce.

- Early stopping (one run each way; it is a rule applied to one run's curve): it must stop
  before the full budget, and the model it keeps must be within 1 point of the fully trained
  one on the 360 test digits (4 images: the kept epoch is chosen on validation, so its test
  accuracy differs from the last epoch's by test-set noise of about that size).
- Augmentation, judged over seeds with :mod:`deepatlas.lab.stats`: random crop minus none,
  paired by seed, above 0. The source's own pipeline (flip, colour jitter, affine) is measured
  the same way and shown, but not judged: flipping digits left-right changes what they mean,
  so on digits it tests the wrong augmentation, not the claim.
"""

from __future__ import annotations

import json
import statistics

import torch
from torch.nn import functional as F

from deepatlas.data import load_data
from deepatlas.data.augment import augment_batch
from deepatlas.lab.common import pyplot, save
from deepatlas.lab.registry import Context, Result, experiment
from deepatlas.lab.stats import compare, verdict
from deepatlas.models import create_model

SUBSET = 300  # training digits for the augmentation comparison


def train_augmented(mode: str, seed: int, steps: int) -> float:
    """A small CNN on SUBSET digits with augmentation ``mode``; returns test accuracy."""
    data = load_data("digits")
    mean, std = data.mean[0], data.std[0]
    pick = torch.randperm(len(data.train), generator=torch.Generator().manual_seed(0))[:SUBSET]
    images, labels = data.train.images[pick], data.train.labels[pick].long()
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = create_model("cnn", in_channels=1, image_size=8, num_classes=10, width=16)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, SUBSET, (64,), generator=g)
        x = augment_batch(images[idx], mode, g)  # uint8 (B, 1, 8, 8)
        loss = F.cross_entropy(model((x.float() / 255 - mean) / std), labels[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        x = (data.test.images.float() / 255 - mean) / std
        return (model(x).argmax(1) == data.test.labels).float().mean().item()


@experiment(name="early-stopping-augmentation", map_id="5.2",
            title="Early stopping and data augmentation",
            claim="Early stopping on validation accuracy keeps the best model and saves the "
                  "rest of the training; augmentation improves accuracy when data is scarce.",
            source=("早停法:监控验证集准确率", "数据增强:",
                    "transforms.RandomHorizontalFlip(),transforms.ColorJitter(0.2,0.2,0.2),"
                    "transforms.RandomAffine(15)"),
            implements="deepatlas.train.EarlyStopping (train.early_stopping_patience), "
                       "deepatlas.data.augment (data.augment = crop | source)")
def run(ctx: Context) -> Result:
    from deepatlas.config import load_recipe
    from deepatlas.tasks import fit

    epochs = ctx.size(60, 15, smoke=3)
    common = [f"train.epochs={epochs}", "data.val_fraction=0.2", "model.dropout=0.0",
              "regularize.label_smoothing=0.0", "schedule.name=constant", "train.monitor=val_acc",
              "train.tensorboard=false", f"seed={ctx.seed}"]
    full = fit(load_recipe("digits", common), ctx.out / "no-stopping", progress=False)
    stopped = fit(load_recipe("digits", [*common, "train.early_stopping_patience=8"]),
                  ctx.out / "early-stopping", progress=False)
    from deepatlas.compress.evaluate import evaluate_checkpoint

    kept = evaluate_checkpoint(str(ctx.out / "early-stopping" / "best.pt"))["test_acc"]
    history = [json.loads(line) for line in
               (ctx.out / "no-stopping" / "metrics.jsonl").read_text().splitlines()]

    seeds = [ctx.seed + s for s in range(ctx.size(5, 2, smoke=2))]
    steps = ctx.size(600, 150, smoke=10)
    modes = ("none", "crop", "source")
    aug = {m: [train_augmented(m, s, steps) for s in seeds] for m in modes}
    mean = {m: statistics.mean(v) for m, v in aug.items()}

    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.4))
    left.plot([r["epoch"] for r in history], [r["val_acc"] for r in history], label="validation")
    left.plot([r["epoch"] for r in history], [r["test_acc"] for r in history], label="test")
    left.axvline(stopped["epochs"], color="k", ls="--", label="early stop")
    left.axvline(stopped["best_monitored_epoch"], color="C2", ls=":", label="best val (kept)")
    left.set_xlabel("epoch")
    left.set_ylabel("accuracy")
    left.set_ylim(0.9, 1)
    left.legend(fontsize=7)
    right.bar(modes, [mean[m] for m in modes],
              yerr=[statistics.stdev(aug[m]) for m in modes], capsize=4)
    right.set_ylim(min(min(v) for v in aug.values()) - 0.03, 1)
    right.set_ylabel(f"test accuracy, {SUBSET} training digits")
    plot = save(fig, ctx.path("plot.png"))

    metrics = {"epochs_without_stopping": full["epochs"], "epochs_with_stopping": stopped["epochs"],
               "test_acc_trained_on": full["test_acc"], "test_acc_kept_by_early_stopping": kept,
               "best_val_epoch": stopped["best_monitored_epoch"]}
    metrics.update({f"aug_test_acc_{m}": v for m, v in mean.items()})
    metrics.update({f"aug_test_acc_std_{m}": statistics.stdev(v) for m, v in aug.items()})
    stop_ok = stopped["epochs"] < full["epochs"] and kept >= full["test_acc"] - 0.01
    effects = [compare("random crop - none, test accuracy", aug["crop"], aug["none"]),
               compare("the source's pipeline - none, test accuracy", aug["source"],
                       aug["none"], judged=False)]
    result, note = verdict(effects, also=stop_ok,
                           unmet="early stopping did not stop, or kept a worse model")
    return Result(metrics, result,
                  f"Early stopping (patience 8 on validation accuracy) ended at epoch "
                  f"{stopped['epochs']} of {full['epochs']} and kept epoch "
                  f"{stopped['best_monitored_epoch']}: {kept:.1%} test accuracy against "
                  f"{full['test_acc']:.1%} after all {full['epochs']} epochs. On {SUBSET} "
                  f"training digits, mean over {len(seeds)} seeds: no augmentation "
                  f"{mean['none']:.1%}, random crop {mean['crop']:.1%}, the source's pipeline "
                  f"{mean['source']:.1%} (it flips digits left-right, which changes what they "
                  "mean).", [plot], effects, seeds, note=note)

