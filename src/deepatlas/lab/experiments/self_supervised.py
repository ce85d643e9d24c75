"""MAP 7.4: self-supervised learning. Does SimCLR learn features without labels?

Three encoders of one architecture (the recipe's ResNet-8), evaluated the same way on
Fashion-MNIST's test set:

1. **SimCLR** (recipe ``simclr-fashion``): pre-trained on the 54,000 training images without
   their labels, then frozen; a logistic regression on its features (the linear probe) learns
   from every training label, or from 1% (600) or 10% (6,000) of them;
2. **random init**: the same encoder never trained, probed the same way: the floor;
3. **supervised from scratch**: the ``fashion-mnist`` recipe's ResNet-8 at the same width,
   trained end to end on the same 600 or 6,000 labelled images (``data.train_examples``),
   for a fixed budget (its last epoch is reported: no labelled validation images are used to
   choose it, as the probe uses none).

The claim holds when the SimCLR probe is above 85% and at least 10 points above the random
encoder's, and with 1% of the labels SimCLR + probe beats the supervised network, each beyond
the spread over seeds. The 10% comparison is reported, not judged.
"""

from __future__ import annotations

import numpy as np

from deepatlas.lab.common import pyplot, save, without_fashion_mnist
from deepatlas.lab.registry import Context, Result, experiment
from deepatlas.lab.stats import against, compare, verdict

TARGET = 0.85
MARGIN = 0.10  # over the random-init encoder's probe
LABELS = {0.01: 600, 0.1: 6000}  # 1% and 10% of Fashion-MNIST's 60,000 training labels


def supervised_budget(labels: int) -> list[str]:
    """The supervised twin's budget: about 300 (600 labels) or 700 (6,000) steps."""
    if labels <= 1000:
        return ["train.epochs=30", "train.batch_size=64"]
    return ["train.epochs=15", "train.batch_size=128"]


@experiment(name="self-supervised", map_id="7.4", title="Self-supervised learning: SimCLR",
            claim="SimCLR learns features from unlabelled images: a linear probe on them "
                  "reaches 85% on Fashion-MNIST, 10 points above a random encoder's, and with "
                  "1% of the labels it beats the same network trained supervised.",
            source="自监督学习:SimCLR对比学习框架",
            implements="deepatlas.losses.nt_xent (equals pytorch-metric-learning's "
                        "NTXentLoss), deepatlas.data.augment.simclr_views, model "
                        "simclr-resnet, task simclr, recipe simclr-fashion")
def run(ctx: Context) -> Result:
    from deepatlas.config import load_recipe
    from deepatlas.tasks import fit
    from deepatlas.tasks.simclr import evaluate_untrained

    absent = without_fashion_mnist("SimCLR pre-trains on Fashion-MNIST")
    if absent is not None:
        return absent
    seeds = [ctx.seed + s for s in range(ctx.size(3, 1, smoke=1))]
    budget = ctx.size([], ["train.epochs=1", "data.train_examples=2000"],
                      smoke=["train.epochs=1", "data.train_examples=600",
                             "train.limit_train_batches=2"])
    fractions = ctx.size([0.01, 0.1], [0.01], smoke=[0.01])
    simclr: dict[str, list[float]] = {}
    untrained: dict[str, list[float]] = {}
    supervised: dict[float, list[float]] = {f: [] for f in fractions}
    metrics: dict[str, float] = {}
    width = load_recipe("simclr-fashion").model["width"]  # the supervised twin's too
    for seed in seeds:
        sets = ["train.tensorboard=false", f"seed={seed}", *budget]
        summary = fit(load_recipe("simclr-fashion", sets), ctx.out / f"simclr-seed{seed}",
                      progress=False)
        metrics[f"simclr_wall_s_seed{seed}"] = float(summary["wall_s"])
        floor = evaluate_untrained(load_recipe("simclr-fashion", sets))
        for key in ("test_probe_acc", "test_knn_acc", *[f"test_probe_acc_{f:g}"
                                                        for f in fractions]):
            simclr.setdefault(key, []).append(float(summary[key]))
            untrained.setdefault(key, []).append(float(floor[key]))
        for fraction in fractions:
            twin = ["train.tensorboard=false", f"seed={seed}", f"model.width={width}",
                    "train.eval_every=0", f"data.train_examples={LABELS[fraction]}",
                    *supervised_budget(LABELS[fraction]),
                    *ctx.size([], ["train.epochs=5"], smoke=["train.epochs=1"])]
            result = fit(load_recipe("fashion-mnist", twin),
                         ctx.out / f"supervised-{LABELS[fraction]}-seed{seed}", progress=False)
            supervised[fraction].append(float(result["test_acc"]))
            metrics[f"supervised_{LABELS[fraction]}_wall_s_seed{seed}"] = float(result["wall_s"])
    for key, values in simclr.items():
        metrics[f"simclr_{key}_mean"] = float(np.mean(values))
        metrics[f"random_init_{key}_mean"] = float(np.mean(untrained[key]))
    for fraction, values in supervised.items():
        metrics[f"supervised_{LABELS[fraction]}_test_acc_mean"] = float(np.mean(values))

    probe, floor = simclr["test_probe_acc"], untrained["test_probe_acc"]
    effects = [
        against(f"SimCLR linear probe - {TARGET:.0%}", probe, TARGET),
        against(f"SimCLR probe - random-init probe - {MARGIN * 100:.0f} points",
                [p - f - MARGIN for p, f in zip(probe, floor)], 0.0),
    ]
    for fraction in fractions:
        # Welch, not paired: the two runs of a seed share no initialisation or batch order.
        effects.append(compare(f"SimCLR + probe - supervised, {LABELS[fraction]} labels",
                               simclr[f"test_probe_acc_{fraction:g}"], supervised[fraction],
                               paired=False, judged=fraction == 0.01))

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.4))
    groups = ["all labels", *[f"{LABELS[f]:,} labels" for f in fractions]]
    keys = ["test_probe_acc", *[f"test_probe_acc_{f:g}" for f in fractions]]
    x = np.arange(len(groups))
    bars = [("SimCLR + linear probe", [simclr[k] for k in keys]),
            ("random encoder + linear probe", [untrained[k] for k in keys]),
            ("supervised from scratch", [[np.nan]] + [supervised[f] for f in fractions])]
    for i, (name, values) in enumerate(bars):
        ax.bar(x + (i - 1) * 0.27, [np.mean(v) for v in values], 0.27, label=name,
               yerr=[np.std(v) if len(v) > 1 else 0 for v in values], capsize=3)
    ax.axhline(TARGET, color="k", ls="--", lw=1, label="85% target")
    ax.set_xticks(x, groups)
    ax.set_ylim(0.4, 1)
    ax.set_ylabel("Fashion-MNIST test accuracy")
    ax.legend(fontsize=7, loc="lower right")
    plot = save(fig, ctx.path("plot.png"))

    status, note = verdict(effects)
    details = (f"SimCLR's linear probe: {np.mean(probe):.2%} (kNN "
               f"{np.mean(simclr['test_knn_acc']):.2%}); the random encoder's: "
               f"{np.mean(floor):.2%}. With {LABELS[0.01]} labels: SimCLR + probe "
               f"{np.mean(simclr['test_probe_acc_0.01']):.2%}, supervised from scratch "
               f"{np.mean(supervised[0.01]):.2%} (mean of {len(seeds)} seeds).")
    return Result(metrics, status, details, [plot], effects, seeds, note=note)
