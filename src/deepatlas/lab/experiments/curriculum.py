"""MAP 8: the curriculum. One library entry point (``deepatlas.tasks.fit``, what ``deepatlas
train`` runs) carries a learner from digits to Fashion-MNIST, MNIST, CIFAR-10 and ImageNet.

Every step whose data is on this machine is trained here, in this run (at quick size with
``--quick``: one epoch, of Fashion-MNIST 60 batches); the others are "not measurable here"
with their reason (no data; for ImageNet on a machine without a GPU, no GPU). Nothing is read from earlier runs.

A step holds when its test accuracy is closer to perfect than to chance: the lower end of its
95% Wilson interval over the test images is above (1 + chance) / 2, i.e. 55% for 10 classes.
That floor says "it learned the data set", not "it reached the recipe's target" (one quick
epoch does not). The curriculum holds when at least two steps were measured (a curriculum is
a step up from the first model) and each of them holds; with digits alone it is "not
measurable here" (no data).
"""

from __future__ import annotations

from deepatlas.lab.common import pyplot, save
from deepatlas.lab.registry import Context, Result, experiment
from deepatlas.lab.stats import proportion

# (step, data set, recipe, overrides at quick size); in the order of the curriculum.
STEPS = (
    ("digits", "digits", "digits", ["train.epochs=10"]),
    ("fashion-mnist", "fashion-mnist", "fashion-mnist-fast",
     ["train.epochs=1", "train.limit_train_batches=60"]),  # 60 of 235 batches: 15 s
    ("mnist", "mnist-10k", "mnist", ["train.epochs=1"]),  # real digits: deepatlas data get
    ("cifar10", "cifar10", "cifar10-fast", ["train.epochs=1"]),
    ("imagenet", "imagenet", "imagenet-resnet50", ["train.epochs=1"]),
)
NEEDS_GPU = {"imagenet"}  # 88 epochs of ResNet-50 on 1.28M images: not a CPU job


def number_of_classes(name: str) -> int | None:
    """``name``'s number of classes when its files are where deepatlas looks (no download);
    None when they are not."""
    from deepatlas.data import load_data
    from deepatlas.errors import UserError

    try:
        return len(load_data(name).classes)
    except UserError:
        return None


@experiment(name="curriculum", map_id="8", title="The curriculum: digits -> Fashion-MNIST -> ...",
            claim="The same CLI and trainer take a learner from a first digits model to harder "
                  "data sets; each step's accuracy and cost is measured.",
            source="建议通过PyTorch实践MNIST→CIFAR→ImageNet的渐进式项目实践",
            timed=True,
            implements="deepatlas.tasks.fit (deepatlas train RECIPE; recipes digits, "
                       "fashion-mnist-fast, mnist, cifar10-fast, imagenet-resnet50)")
def run(ctx: Context) -> Result:
    import torch

    from deepatlas.config import load_recipe
    from deepatlas.tasks import fit

    measured, parts, effects = {}, [], []
    for step, data, recipe, quick_overrides in STEPS:
        classes = number_of_classes(data)
        if classes is None:
            parts.append({"name": step, "recipe": recipe, "verdict": "not measurable here",
                          "reason": "no data", "details": f"{data} is not on this machine"})
            continue
        if step in NEEDS_GPU and not torch.cuda.is_available():
            parts.append({"name": step, "recipe": recipe, "verdict": "not measurable here",
                          "reason": "no GPU", "details": f"{recipe} needs a GPU"})
            continue
        overrides = ["train.tensorboard=false", f"seed={ctx.seed}",
                     *(quick_overrides if ctx.quick else [])]
        if ctx.smoke and step != "digits":  # the suite's size: the code path, 10 batches
            overrides.append("train.limit_train_batches=10")
        config = load_recipe(recipe, overrides)
        summary = fit(config, ctx.out / step, progress=False)
        acc = float(summary[summary["primary"]])
        n_test = int(summary["data"]["test"])
        chance = 1 / classes
        floor = (1 + chance) / 2
        effect = proportion(f"{step}: test accuracy - {floor:.3f} (halfway from chance "
                            "to 100%)", round(acc * n_test), n_test, floor)
        effects.append(effect)
        measured[step] = {"acc": acc, "wall_s": float(summary["wall_s"]),
                          "epochs": summary.get("epochs"), "recipe": recipe}
        parts.append({"name": step, "recipe": recipe, "overrides": overrides,
                      "verdict": "holds" if effect.decision == "supports"
                      else "does not hold at this scale", "reason": "",
                      "details": f"{acc:.2%} test accuracy in {summary['wall_s']:.0f} s "
                                 f"({summary.get('epochs')} epochs)"})

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.3))
    for step, m in measured.items():
        ax.scatter([m["wall_s"]], [m["acc"]])
        ax.annotate(step, (m["wall_s"], m["acc"]), fontsize=8, textcoords="offset points",
                    xytext=(5, 3))
    ax.set_xscale("log")
    ax.set_xlabel("training time on this machine (s)")
    ax.set_ylabel("test accuracy")
    plot = save(fig, ctx.path("plot.png"))

    metrics = {}
    for step, m in measured.items():
        metrics[f"{step}_test_acc"] = m["acc"]
        metrics[f"{step}_wall_s"] = m["wall_s"]
        metrics[f"{step}_epochs"] = m["epochs"]
    missing = [f"{p['name']} ({p['reason']})" for p in parts
               if p["verdict"] == "not measurable here"]
    details = ("; ".join(f"{s}: {m['acc']:.2%} in {m['wall_s']:.0f} s ({m['epochs']} epochs, "
                         f"recipe {m['recipe']})" for s, m in measured.items())
               + (f". Not measurable here: {', '.join(missing)}." if missing else "."))
    all_hold = all(e.decision == "supports" for e in effects)
    if len(measured) < 2:
        return Result(metrics, "not measurable here", details + " One step is not a "
                      "curriculum: install Fashion-MNIST (sudo apt-get install "
                      "dataset-fashion-mnist) to measure the next.", [plot], effects,
                      [ctx.seed], reason="no data", parts=parts)
    return Result(metrics, "holds" if all_hold else "does not hold at this scale", details,
                  [plot], effects, [ctx.seed], parts=parts)
