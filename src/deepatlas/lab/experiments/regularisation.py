"""MAP 3.3: Dropout, label smoothing and Mixup narrow the train-test gap when data is scarce.

Each method is compared with no regularisation on the same seeds (same initialisation and
batches): the claim holds for a method when the paired 95% interval of its test-accuracy gain
is above 0 (:mod:`deepatlas.lab.stats`), and for the experiment when it holds for all three.
The train-test gap is shown, not judged.
"""

from __future__ import annotations

import statistics

from deepatlas.lab.common import PLAIN_RUN, fit_arms, pyplot, save, train_accuracy
from deepatlas.lab.registry import Context, Result, experiment
from deepatlas.lab.stats import compare, verdict

SUBSET = 200  # training images: few enough that an MLP memorises them
BATCH = 50  # 4 steps an epoch on SUBSET images
# The `digits` recipe's MLP, with its own regularisers off, trained long at a constant rate
# so that without regularisation it memorises its 200 images.
COMMON = [*PLAIN_RUN, f"data.train_examples={SUBSET}", "optim.name=adam", "optim.lr=0.001",
          f"train.batch_size={BATCH}"]
ARMS = {"none": ("digits", []),
        "dropout": ("digits", ["model.dropout=0.5"]),
        "label smoothing": ("digits", ["regularize.label_smoothing=0.1"]),
        "mixup": ("digits", ["regularize.mixup_alpha=0.4"])}


@experiment(name="regularisation", map_id="3.3", title="Dropout, label smoothing, Mixup",
            claim="With little data, Dropout (p = 0.5), label smoothing and Mixup each reduce "
                  "overfitting: a smaller train-test gap and better test accuracy.",
            source=("Dropout:训练时随机屏蔽神经元(默认概率0.5)",
                    "Label Smoothing:将硬标签转为软标签",
                    "\\tilde{y}=(1-\\epsilon)y+\\frac{\\epsilon}{K}",
                    "Mixup:数据线性插值增强泛化能力",
                    "\\tilde{x}=\\lambda x_i+(1-\\lambda)x_j"),
            implements="deepatlas.nn.Dropout, deepatlas.losses.label_smoothing_cross_entropy "
                       "(as nn.CrossEntropyLoss(label_smoothing)), deepatlas.data.mixup")
def run(ctx: Context) -> Result:
    seeds = [ctx.seed + s for s in range(ctx.size(6, 3, smoke=2))]
    steps = ctx.size(1000, 600, smoke=100)
    kinds = tuple(ARMS)
    # Each arm is the recipe on the Trainer; the gap's training side is the last model's
    # accuracy on its own 200 images, unaugmented (the logged train_acc is taken under
    # dropout and Mixup).
    runs = fit_arms(ctx.out, seeds, ARMS,
                    lambda summary, run_dir: (train_accuracy(run_dir), summary["test_acc"]),
                    common=[*COMMON, f"train.epochs={steps * BATCH // SUBSET}"])
    test = {k: [t for _, t in v] for k, v in runs.items()}
    gap = {k: [tr - t for tr, t in v] for k, v in runs.items()}

    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.3))
    for ax, values, label in ((left, test, "test accuracy"), (right, gap, "train - test gap")):
        ax.bar(kinds, [statistics.mean(values[k]) for k in kinds],
               yerr=[statistics.stdev(values[k]) for k in kinds], capsize=4)
        ax.set_ylabel(label)
        ax.tick_params(axis="x", labelsize=7)
    left.set_ylim(min(min(v) for v in test.values()) - 0.02, 1)
    plot = save(fig, ctx.path("plot.png"))

    mean = {k: statistics.mean(v) for k, v in test.items()}
    mgap = {k: statistics.mean(v) for k, v in gap.items()}
    effects = [compare(f"{k} - none, test accuracy", test[k], test["none"]) for k in kinds[1:]]
    helped = [k for k, e in zip(kinds[1:], effects) if e.decision == "supports"]
    metrics = {f"test_acc_{k.replace(' ', '_')}": v for k, v in mean.items()}
    metrics.update({f"test_acc_std_{k.replace(' ', '_')}": statistics.stdev(v)
                    for k, v in test.items()})
    metrics.update({f"gap_{k.replace(' ', '_')}": v for k, v in mgap.items()})
    metrics.update(train_images=SUBSET, seeds=len(seeds), steps=steps)
    result, note = verdict(effects)
    return Result(metrics, result,
                  f"On {SUBSET} training digits, mean over {len(seeds)} seeds: "
                  + ", ".join(f"{k} {mean[k]:.1%} (gap {mgap[k]:.1%})" for k in kinds)
                  + f". Gain beyond the spread over seeds: {', '.join(helped) or 'none'}.",
                  [plot], effects, seeds, note=note)
