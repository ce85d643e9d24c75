"""Small shared pieces of the experiments: recipes fitted per seed and arm on the one Trainer,
the models those runs ended with, digits as tensors, and plots."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn


T = TypeVar("T")

# A recipe made a plain run for a controlled comparison: its own regularisers off, a constant
# rate without warm-up, one evaluation after the last epoch, no TensorBoard, last.pt written
# once. Listed first, so an experiment's own overrides (a new model.name) come after.
PLAIN_RUN = ("model.dropout=0.0", "regularize.label_smoothing=0.0", "optim.weight_decay=0.0",
             "schedule.name=constant", "schedule.warmup_epochs=0", "train.eval_every=0",
             "train.tensorboard=false", "train.checkpoint_every_epochs=100000")


def fit_arms(out: Path, seeds: Sequence[int], arms: Mapping[str, tuple[str, Sequence[str]]],
             read: Callable[[dict[str, Any], Path], T], common: Sequence[str] = ()
             ) -> dict[str, list[T]]:
    """Every arm of an experiment at every seed, each a recipe fitted on the Trainer: ``arms``
    maps a name to (recipe, its overrides); the run of arm ``a`` at seed ``s`` is
    ``out/<a>-seed<s>`` (spaces as hyphens), configured ``common + overrides + seed=s``.
    ``read(summary, run_dir)`` picks what the experiment keeps of each run; the result is one
    list per arm in seed order, so paired statistics pair runs of the same seed."""
    from deepatlas.config import load_recipe
    from deepatlas.tasks import fit

    kept: dict[str, list[T]] = {arm: [] for arm in arms}
    for seed in seeds:
        for arm, (recipe, sets) in arms.items():
            run_dir = out / f"{arm.replace(' ', '-')}-seed{seed}"
            summary = fit(load_recipe(recipe, [*common, *sets, f"seed={seed}"]), run_dir,
                          progress=False)
            kept[arm].append(read(summary, run_dir))
    return kept


def epoch_losses(run_dir: Path) -> list[float]:
    """A run's mean training loss of every epoch, from its metrics.jsonl."""
    import json

    return [json.loads(line)["train_loss"] for line in (run_dir / "metrics.jsonl").open()]


def last_model(run_dir: Path) -> nn.Module:
    """The image classifier a run ended with (its last.pt), in eval mode."""
    from deepatlas.models.saved import model_from_checkpoint
    from deepatlas.train.checkpoint import load_checkpoint

    return model_from_checkpoint(load_checkpoint(run_dir / "last.pt"), "lab")


def train_accuracy(run_dir: Path) -> float:
    """Accuracy of a classify-images run's last model on the images it trained on, without
    augmentation: the training side of a train-test gap (the train_acc a run logs is taken
    under its dropout, Mixup or augmentation, while it learns)."""
    from deepatlas.config import from_dict
    from deepatlas.data import load_data
    from deepatlas.data.loaders import InMemoryLoader
    from deepatlas.models.saved import model_from_checkpoint
    from deepatlas.train.checkpoint import load_checkpoint
    from deepatlas.train.runtime import evaluate_model

    state = load_checkpoint(run_dir / "last.pt")
    cfg = from_dict(state["config"])
    data = load_data(cfg.data.name, data_dir=cfg.data.dir, val_fraction=cfg.data.val_fraction,
                     train_examples=cfg.data.train_examples)
    cpu = torch.device("cpu")
    loader = InMemoryLoader(data.train, cfg.train.eval_batch_size, train=False, augment="none",
                            mean=state["data"]["mean"], std=state["data"]["std"], device=cpu)
    return evaluate_model(model_from_checkpoint(state, "lab"), loader, cpu)[1]


def digits_tensors(flat: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor,
                                                  torch.Tensor]:
    """scikit-learn's digits as normalised floats: (x_train, y_train, x_test, y_test);
    images (N, 64) when ``flat``, else (N, 1, 8, 8)."""
    from deepatlas.data import load_data

    data = load_data("digits")
    mean, std = data.mean[0], data.std[0]

    def prep(split):
        x = (split.images.float() / 255 - mean) / std
        return (x.flatten(1) if flat else x), split.labels.long()

    return (*prep(data.train), *prep(data.test))


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    return (model(x).argmax(1) == y).float().mean().item()


def pyplot():
    """matplotlib with the file-only Agg backend: plots never need a display or notebook."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"figure.dpi": 100, "font.size": 9, "axes.grid": True,
                         "grid.alpha": 0.3})
    return plt


def save(fig, path: Path) -> str:
    """Write the figure through a temporary file (never a 0-byte plot) and close it."""
    from deepatlas.outputs import write_via_temp

    fig.tight_layout()
    try:
        write_via_temp(path, lambda tmp: fig.savefig(tmp, format=path.suffix.lstrip(".")))
    finally:
        pyplot().close(fig)
    return path.name


def without_data(*names: str):
    """A "not measurable here" Result that names the command fetching whichever of the package
    sets ``names`` is not installed; None when all are."""
    from deepatlas.data.fetch import installed
    from deepatlas.data.packages import get_set
    from deepatlas.lab.registry import Result

    missing = [n for n in names if not installed(get_set(n).folder())]
    if not missing:
        return None
    return Result({}, "not measurable here", f"{', '.join(missing)} not installed: deepatlas "
                  f"data get {' and '.join(missing)}", [], reason="no data")


def without_fashion_mnist(why: str = "Fashion-MNIST is not installed"):
    """A "not measurable here" Result saying ``why`` and the command that installs
    Fashion-MNIST (Debian's package), when it is not where deepatlas looks; None when it is."""
    from deepatlas.lab.experiments import curriculum  # at call time: the suite patches it
    from deepatlas.lab.registry import Result

    if curriculum.number_of_classes("fashion-mnist") is not None:
        return None
    return Result({}, "not measurable here", f"{why}: sudo apt-get install -y "
                  "dataset-fashion-mnist", [], reason="no data")


def power_law(sizes: list[int], errors: list[float]) -> tuple[float, float, float]:
    """(a, b, R^2) of the least-squares line log err = log a - b log N."""
    import math

    import numpy as np

    x, y = np.log(np.array(sizes, float)), np.log(np.array(errors))
    slope, intercept = np.polyfit(x, y, 1)
    residual = y - (slope * x + intercept)
    return float(math.exp(intercept)), float(-slope), float(1 - residual.var() / y.var())


def scaling_verdict(sizes: list[int], per_size: dict[int, list[float]], effect_name: str,
                    digits: int = 2):
    """A scaling experiment's judgement: the smallest size's values against the largest's,
    paired over seeds, and the power law a N^-b fitted to the means, which must fall (b > 0)
    and fit (R^2 >= 0.9). Returns (means, (a, b, R^2), effects, status, note); ``digits``
    are b's in the note."""
    import numpy as np

    from deepatlas.lab.stats import compare, verdict

    means = [float(np.mean(per_size[n])) for n in sizes]
    a, b, r2 = power_law(sizes, means)
    effects = [compare(effect_name, per_size[sizes[0]], per_size[sizes[-1]])]
    status, note = verdict(effects, also=b > 0 and r2 >= 0.9,
                           unmet=f"the power-law fit is poor (b {b:.{digits}f}, R² {r2:.2f})")
    return means, (a, b, r2), effects, status, note


def plot_power_law(sizes: list[int], per_seed: dict[int, list[float]],
                   fit: tuple[float, float, float], digits: int = 2):
    """Each seed's value at each size and the fitted a N^-b, in log-log axes: (figure, axes)."""
    import numpy as np

    a, b, r2 = fit
    fig, ax = pyplot().subplots(figsize=(6, 3.5))
    for i in range(len(per_seed[sizes[0]])):
        ax.loglog(sizes, [per_seed[n][i] for n in sizes], "o", color="C0", alpha=0.4)
    grid = np.geomspace(sizes[0], sizes[-1], 50)
    ax.loglog(grid, a * grid ** -b, "k--", lw=1,
              label=f"fit: {a:.2f} N^-{b:.{digits}f} (R² {r2:.2f})")
    return fig, ax
