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

from deepatlas.lab.common import PLAIN_RUN, fit_arms, pyplot, save
from deepatlas.lab.registry import Context, Result, experiment
from deepatlas.lab.stats import compare, verdict

SUBSET = 300  # training digits for the augmentation comparison
BATCH = 60  # 5 steps an epoch on SUBSET digits
# A small CNN on the `digits` recipe's data, at a constant rate, its regularisers off: only
# data.augment differs between the arms.
AUGMENT_COMMON = [*PLAIN_RUN, f"data.train_examples={SUBSET}", "model.name=cnn",
                  "model.width=16", "optim.name=adam", "optim.lr=0.002",
                  f"train.batch_size={BATCH}"]
MODES = ("none", "crop", "source")


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
    aug = fit_arms(ctx.out / "augment", seeds,
                   {m: ("digits", [f"data.augment={m}"]) for m in MODES},
                   lambda summary, _: summary["test_acc"],
                   common=[*AUGMENT_COMMON, f"train.epochs={max(1, steps * BATCH // SUBSET)}"])
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
    right.bar(MODES, [mean[m] for m in MODES],
              yerr=[statistics.stdev(aug[m]) for m in MODES], capsize=4)
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

