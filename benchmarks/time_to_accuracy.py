"""Time to 90/91/92/93% on Fashion-MNIST: deepatlas's recipe against the PyTorch MNIST example.

    python benchmarks/time_to_accuracy.py [--seeds 0 1 2] [--recipe fashion-mnist-fast]

(a) ``deepatlas``: the recipe through the Trainer, tested after every epoch so that its curve
    exists (the shipped recipe tests after the last epoch only; its whole-command time is
    measured too, as a subprocess: ``deepatlas train RECIPE``).
(b) ``baseline``: written the way github.com/pytorch/examples mnist/main.py does it: its
    two-conv net with dropout, Adadelta lr 1.0, StepLR(step 1, gamma 0.7), batch 64,
    14 epochs, a DataLoader over PIL images with ToTensor and Normalize, fp32, tested after
    every epoch with batch 1000.

Both read the same files on the same cores; the clock starts after the data are loaded and
includes every test pass. Run by hand (about 45 minutes on 2 CPU cores), never by the tests;
the result goes to ``results/benchmarks/time-to-accuracy-<host>.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image
from torch import nn
from torch.nn import functional as F
from torch.optim.lr_scheduler import StepLR
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from deepatlas.config import load_recipe
from deepatlas.data import load_data
from deepatlas.lab import stats
from deepatlas.train.runinfo import write_result
from deepatlas.tasks import create_task
from deepatlas.train.trainer import Trainer

THRESHOLDS = (0.90, 0.91, 0.92, 0.93)


# --------------------------------------------------------------------------- (b) the baseline


class ExampleNet(nn.Module):
    """pytorch/examples mnist/main.py's Net."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv1(x))  # (B, 32, 26, 26)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)  # (B, 64, 12, 12)
        x = torch.flatten(self.dropout1(x), 1)  # (B, 9216)
        x = self.dropout2(F.relu(self.fc1(x)))  # (B, 128)
        return F.log_softmax(self.fc2(x), dim=1)  # (B, 10)


class PILImages(Dataset):
    """What torchvision's MNIST dataset does per sample: a PIL image, then the transform."""

    def __init__(self, split, transform) -> None:
        self.images, self.labels, self.transform = split.images[:, 0].numpy(), split.labels, \
            transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return self.transform(Image.fromarray(self.images[i])), int(self.labels[i])


def run_baseline(data, seed: int, epochs: int = 14) -> list[dict]:
    torch.manual_seed(seed)
    transform = transforms.Compose([transforms.ToTensor(),
                                    transforms.Normalize(data.mean, data.std)])
    train = DataLoader(PILImages(data.train, transform), batch_size=64, shuffle=True)
    test = DataLoader(PILImages(data.test, transform), batch_size=1000)
    model = ExampleNet()
    optimizer = torch.optim.Adadelta(model.parameters(), lr=1.0)
    scheduler = StepLR(optimizer, step_size=1, gamma=0.7)
    history, t0 = [], time.perf_counter()
    for epoch in range(1, epochs + 1):
        model.train()
        for x, y in train:
            optimizer.zero_grad()
            loss = F.nll_loss(model(x), y)
            loss.backward()
            optimizer.step()
        model.eval()
        correct = 0
        with torch.no_grad():
            for x, y in test:
                correct += (model(x).argmax(1) == y).sum().item()
        scheduler.step()
        history.append({"epoch": epoch, "test_acc": correct / len(data.test),
                        "wall_s": time.perf_counter() - t0})
        print(f"  baseline seed {seed} epoch {epoch:>2}: {correct / len(data.test):.2%} "
              f"at {history[-1]['wall_s']:.0f} s", flush=True)
    return history


# --------------------------------------------------------------------------- (a) deepatlas


def run_recipe(recipe: str, seed: int) -> list[dict]:
    config = load_recipe(recipe, [f"seed={seed}", "train.eval_every=1",
                                  "train.tensorboard=false"])
    with tempfile.TemporaryDirectory() as out:
        trainer = Trainer(create_task(config), out, progress=False)
        trainer.fit()
    return [{"epoch": m["epoch"], "test_acc": m["test_acc"], "wall_s": m["wall_s"]}
            for m in trainer.history]


def run_command(recipe: str, seed: int) -> dict:
    """The shipped recipe as a user runs it: the whole ``deepatlas train`` process."""
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "deepatlas", "train", recipe, "--out", out,
                        "--set", f"seed={seed}", "--no-progress"], check=True,
                       stdout=subprocess.DEVNULL)
        seconds = time.perf_counter() - t0
        summary = json.loads((Path(out) / "summary.json").read_text())
    return {"command_s": seconds, "test_acc": summary["test_acc"]}


# --------------------------------------------------------------------------- the table


def time_to(history: list[dict], threshold: float) -> float | None:
    return next((m["wall_s"] for m in history if m["test_acc"] >= threshold), None)


def mean_std(values: list[float | None]) -> dict:
    reached = [v for v in values if v is not None]
    if len(reached) < len(values):
        return {"mean": None, "std": None, "reached": f"{len(reached)}/{len(values)}"}
    return {**stats.mean_std(reached), "reached": f"{len(reached)}/{len(values)}"}


def fmt(stat: dict, unit: str = " s", scale: float = 1.0, digits: int = 0) -> str:
    if stat["mean"] is None:
        return f"not reached ({stat['reached']})"
    return f"{stat['mean'] * scale:.{digits}f} ± {stat['std'] * scale:.{digits}f}{unit}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="fashion-mnist-fast")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--baseline-epochs", type=int, default=14)
    parser.add_argument("--no-command", action="store_true",
                        help="skip timing the whole `deepatlas train` command per seed")
    parser.add_argument("--out", default="results/benchmarks")
    args = parser.parse_args()
    data = load_data("fashion-mnist")
    runs: dict[str, list] = {"deepatlas": [], "baseline": [], "command": []}
    for seed in args.seeds:
        if not args.no_command:
            runs["command"].append(run_command(args.recipe, seed))
            print(f"deepatlas train {args.recipe} seed {seed}: {runs['command'][-1]}",
                  flush=True)
        runs["deepatlas"].append(run_recipe(args.recipe, seed))
        runs["baseline"].append(run_baseline(data, seed, args.baseline_epochs))
    table = {}
    for name in ("deepatlas", "baseline"):
        histories = runs[name]
        table[name] = {f"{t:.0%}": mean_std([time_to(h, t) for h in histories])
                       for t in THRESHOLDS}
        table[name]["final_acc"] = mean_std([h[-1]["test_acc"] for h in histories])
        table[name]["total_s"] = mean_std([h[-1]["wall_s"] for h in histories])
    if runs["command"]:
        table["command"] = {"command_s": mean_std([r["command_s"] for r in runs["command"]]),
                            "test_acc": mean_std([r["test_acc"] for r in runs["command"]])}
    print(f"\n| threshold | deepatlas {args.recipe} | PyTorch MNIST example | speed-up |")
    print("| --- | --- | --- | --- |")
    for t in THRESHOLDS:
        ours, base = table["deepatlas"][f"{t:.0%}"], table["baseline"][f"{t:.0%}"]
        ratio = (f"{base['mean'] / ours['mean']:.1f}x" if ours["mean"] and base["mean"]
                 else "-")
        print(f"| {t:.0%} | {fmt(ours)} | {fmt(base)} | {ratio} |")
    for key, label in (("final_acc", "final test accuracy"), ("total_s", "training time")):
        scale, unit, digits = (100, "%", 2) if key == "final_acc" else (1, " s", 0)
        print(f"| {label} | {fmt(table['deepatlas'][key], unit, scale, digits)} | "
              f"{fmt(table['baseline'][key], unit, scale, digits)} | |")
    if runs["command"]:
        cmd = table["command"]
        print(f"\n`deepatlas train {args.recipe}` as shipped: {fmt(cmd['command_s'], ' s', 1, 1)} "
              f"for {fmt(cmd['test_acc'], '%', 100, 2)} (seeds {args.seeds})")
    path = write_result(args.out, "time-to-accuracy", {"recipe": args.recipe,
                                                        "seeds": args.seeds, "table": table,
                                                        "runs": runs})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
