"""MAP 8: the curriculum. One CLI and one trainer carry a learner from digits to Fashion-MNIST
(and, on bigger machines, CIFAR and ImageNet); the figures are read from real runs."""

from __future__ import annotations

import json
from pathlib import Path

from deepatlas.lab.common import pyplot, save
from deepatlas.lab.registry import Context, Result, experiment

STEPS = ("digits", "mnist", "fashion-mnist", "cifar10", "imagenet-resnet50")


def latest_runs(root: Path) -> dict[str, dict]:
    """The newest finished run of each curriculum recipe under ``root`` (full runs only)."""
    found: dict[str, tuple[float, dict]] = {}
    for path in root.glob("**/summary.json"):
        try:
            summary = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        recipe = summary.get("recipe")
        if recipe in STEPS and summary.get("test_acc") is not None:
            config = path.with_name("config.toml")
            if config.is_file() and "epochs" in summary:
                mtime = path.stat().st_mtime
                if recipe not in found or mtime > found[recipe][0]:
                    found[recipe] = (mtime, {**summary, "path": str(path.parent)})
    return {k: v for k, (_, v) in found.items()}


@experiment(name="curriculum", map_id="8", title="The curriculum: digits -> Fashion-MNIST -> ...",
            claim="The same CLI and trainer take a learner from a first digits model to harder "
                  "data sets; each step's accuracy and cost is known.",
            source="建议通过PyTorch实践MNIST→CIFAR→ImageNet的渐进式项目实践",
            implements="deepatlas train RECIPE (recipes digits, fashion-mnist, mnist, cifar10, "
                       "imagenet-resnet50), deepatlas.train.Trainer")
def run(ctx: Context) -> Result:
    from deepatlas.cli.main import main as cli

    # The first step always runs here, in seconds; the others are read from runs/.
    cli(["train", "digits", "--out", str(ctx.out / "digits"), "--no-progress",
         "--set", "train.tensorboard=false", "--seed", str(ctx.seed)])
    runs = latest_runs(Path("runs"))
    runs["digits"] = {**json.loads((ctx.out / "digits" / "summary.json").read_text()),
                      "path": str(ctx.out / "digits")}
    steps = [s for s in STEPS if s in runs]

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.3))
    ax.scatter([runs[s]["wall_s"] for s in steps], [runs[s]["test_acc"] for s in steps])
    for s in steps:
        ax.annotate(s, (runs[s]["wall_s"], runs[s]["test_acc"]), fontsize=8,
                    textcoords="offset points", xytext=(5, 3))
    ax.set_xscale("log")
    ax.set_xlabel("training time on this machine (s)")
    ax.set_ylabel("test accuracy")
    plot = save(fig, ctx.path("plot.png"))

    metrics = {}
    for s in steps:
        metrics[f"{s}_test_acc"] = runs[s]["test_acc"]
        metrics[f"{s}_wall_s"] = runs[s]["wall_s"]
        metrics[f"{s}_epochs"] = runs[s]["epochs"]
    missing = [s for s in STEPS if s not in runs]
    fashion_ok = "fashion-mnist" not in runs or runs["fashion-mnist"]["test_acc"] >= 0.9
    holds = runs["digits"]["test_acc"] >= 0.97 and fashion_ok
    return Result(metrics, "holds" if holds else "does not hold at this scale",
                  "; ".join(f"{s}: {runs[s]['test_acc']:.2%} in {runs[s]['wall_s']:.0f} s "
                            f"({runs[s]['epochs']} epochs, {runs[s]['path']})" for s in steps)
                  + (f". Not run on this machine: {', '.join(missing)} (deepatlas train "
                     "RECIPE; see the README's data table)." if missing else "."), [plot])
