"""MAP 7.2: in-memory computing on simulated PCM crossbars, and how its accuracy drifts.

Recipe ``analog-mnist`` trains a LeNet-5 in the shape of aihwkit's analog LeNet (the anchor;
every convolution and linear layer a crossbar) on ``mnist-10k`` twice per seed: plainly
(``model.train_noise=0``) and hardware-aware (weight noise 0.1 max|w|). Each trained network
is then programmed onto crossbars (``deepatlas.nn.crossbar``: 32 conductance levels, IBM's
statistical PCM model with aihwkit's constants: conductance-dependent programming noise,
drift exponent and accumulated 1/f read noise; 8-bit DAC and ADC with bound management, and
the periphery's output noise, aihwkit's default sigma 0.06) in
several independent draws, and read on the test digits from 1 s to 1 year after
programming, without and with global drift compensation.

IBM's ``aihwkit`` is the reference library. Its 1.2.0 release is on PyPI only as a source
distribution that compiles C++ against the installed torch, which pip's build isolation does
not see, so it is no dependency; built by hand (``benchmarks/aihwkit_peer.py`` says how) it
imports against torch 2.14.1. The layer implements its ``PCMLikeNoiseModel`` and is tested
against analytic expectations, and, where aihwkit is installed, against that model draw for
draw (tests/test_crossbar.py); ``benchmarks/aihwkit_peer.py`` reads the same trained LeNets
in aihwkit's own inference tiles.

The claim holds when, beyond the spread over seeds, drift to one day costs the plainly
trained network at least 3 points without compensation, and costs the hardware-aware one
with compensation at most 1 point (the issue's targets; the cost is against the same
network's accuracy 1 s after programming). The plainly trained network with compensation is
reported beside them, not judged: it tells compensation's share from the training's. The
anchor: aihwkit's analog LeNet reaches 98.7% on MNIST.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from deepatlas.lab.common import fit_arms, pyplot, save, without_data
from deepatlas.lab.registry import Context, Result, experiment
from deepatlas.lab.stats import against, verdict

TIMES = {"1 s": 1.0, "1 h": 3600.0, "1 day": 86400.0, "1 month": 30 * 86400.0,
         "1 year": 365 * 86400.0}


def trained_model_and_digits(run_dir: Path, images: int
                             ) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    """``run_dir``'s trained network (digital until programmed) and its first ``images``
    test digits, normalised, with their labels: what every read of the drift curve sees."""
    from deepatlas.data import make_loader
    from deepatlas.models.saved import model_from_checkpoint
    from deepatlas.tasks.classify_images import data_for
    from deepatlas.train.checkpoint import find_checkpoint, load_checkpoint

    state = load_checkpoint(find_checkpoint(str(run_dir)))
    x, y = next(iter(make_loader(data_for(state), "test", images, num_workers=0)))
    return model_from_checkpoint(state), x.float(), y


@torch.no_grad()
def drift_curve(run_dir: Path, draws: int, images: int) -> dict[str, list[float]]:
    """Test accuracy at each of TIMES, without and with compensation, averaged over
    ``draws`` programmings; plus the digital accuracy."""
    from deepatlas.nn.crossbar import program_model, set_inference_time

    model, x, y = trained_model_and_digits(run_dir, images)
    curves = {"digital": [(model(x).argmax(1) == y).float().mean().item()]}
    for compensate in (False, True):
        rows = []
        for draw in range(draws):
            program_model(model, 1000 + draw)
            row = []
            for seconds in TIMES.values():
                set_inference_time(model, seconds, compensate)
                row.append((model(x).argmax(1) == y).float().mean().item())
            rows.append(row)
        curves["compensated" if compensate else "raw"] = np.mean(rows, 0).tolist()
    return curves


@experiment(name="in-memory-computing", map_id="7.2", title="In-memory computing (memristors)",
            claim="A network computed in memristor crossbars loses accuracy as the devices "
                  "drift (at least 3 points after a day when trained plainly); hardware-aware "
                  "training with global drift compensation keeps it within 1 point.",
            source="能量效率优化:存算一体芯片(如忆阻器)",
            implements="deepatlas.nn.crossbar (AnalogLinear, AnalogConv2d: conductance pairs "
                       "on levels; IBM's PCM model: programming noise, drift and 1/f read noise "
                       "by conductance; DAC/ADC with bound management; output noise; drift "
                       "compensation), "
                       "model analog-lenet, recipe analog-mnist")
def run(ctx: Context) -> Result:
    missing = without_data("mnist-10k")
    if missing is not None:
        return missing
    seeds = [ctx.seed + s for s in range(ctx.size(3, 1, smoke=1))]
    budget = ctx.size([], ["train.epochs=1"], smoke=["train.epochs=1",
                                                      "train.limit_train_batches=4"])
    draws, images = ctx.size(5, 2, smoke=1), ctx.size(2000, 500, smoke=200)
    arms = {"plain": ("analog-mnist", ["model.train_noise=0"]),
            "hardware-aware": ("analog-mnist", [])}
    curves = fit_arms(ctx.out, seeds, arms, lambda _, run: drift_curve(run, draws, images),
                      ["train.tensorboard=false", *budget])

    day = list(TIMES).index("1 day")

    def day_cost(arm: str, mode: str) -> list[float]:
        """Accuracy lost from 1 s to 1 day, per seed, of ``arm`` read ``mode``."""
        return [c[mode][0] - c[mode][day] for c in curves[arm]]

    plain_cost, aware_cost = day_cost("plain", "raw"), day_cost("hardware-aware", "compensated")
    # Reported, not judged: is it compensation or the training that keeps the accuracy?
    plain_compensated_cost = day_cost("plain", "compensated")
    effects = [against("plain, no compensation: accuracy lost from 1 s to 1 day - 3 points",
                       plain_cost, 0.03),
               against("hardware-aware + compensation: accuracy lost from 1 s to 1 day - "
                       "1 point", aware_cost, 0.01, direction="less")]
    status, note = verdict(effects)

    metrics: dict[str, float] = {"draws": draws}
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 3.5))
    for arm, runs in curves.items():
        metrics[f"{arm}_digital_acc_mean"] = float(np.mean([c["digital"][0] for c in runs]))
        for mode, style in (("raw", "--"), ("compensated", "-")):
            mean = np.mean([c[mode] for c in runs], 0)
            for label, value in zip(TIMES, mean):
                metrics[f"{arm}_{mode}_acc_{label.replace(' ', '')}"] = float(value)
            ax.semilogx(list(TIMES.values()), mean, style, marker="o",
                        label=f"{arm}, {'compensated' if mode == 'compensated' else 'raw'}")
    ax.set_xticks(list(TIMES.values()), list(TIMES), fontsize=7)
    ax.set_xlabel("time since programming")
    ax.set_ylabel("test accuracy (mnist-10k)")
    ax.legend(fontsize=7)
    plot = save(fig, ctx.path("plot.png"))
    metrics.update(plain_cost_1day_mean=float(np.mean(plain_cost)),
                   aware_compensated_cost_1day_mean=float(np.mean(aware_cost)),
                   plain_compensated_cost_1day_mean=float(np.mean(plain_compensated_cost)))
    details = (f"Digital accuracy: plain {metrics['plain_digital_acc_mean']:.2%}, "
               f"hardware-aware {metrics['hardware-aware_digital_acc_mean']:.2%}. From 1 s to "
               f"1 day the plain network loses {np.mean(plain_cost) * 100:.2f} points "
               f"uncompensated; the hardware-aware one with compensation "
               f"{np.mean(aware_cost) * 100:.2f} (at 1 year: "
               f"{metrics['hardware-aware_compensated_acc_1year']:.2%}), and the plain one "
               f"with compensation {np.mean(plain_compensated_cost) * 100:.2f} (means of "
               f"{len(seeds)} seeds x {draws} programmings).")
    return Result(metrics, status, details, [plot], effects, seeds, note=note)
