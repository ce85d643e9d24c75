"""deepatlas's PCM crossbars against IBM's aihwkit, on the same trained networks (MAP 7.2,
issue 20): does a day of drift cost a plainly trained LeNet 3 points in aihwkit?

    python benchmarks/aihwkit_peer.py [--seeds 0 1 2] [--draws 5] [--images 2000]
                                      [--omega 0] [--name aihwkit-peer]
                                      [--out results/benchmarks]

For each seed this trains the ``in-memory-computing`` experiment's two arms through
deepatlas's one Trainer (recipe ``analog-mnist``: plainly, ``model.train_noise=0``, and
hardware-aware, weight noise 0.1), then reads each trained LeNet's weights on the same test
digits, at 1 s, 1 h, 1 day, 1 month and 1 year after programming, without and with global
drift compensation, averaged over ``--draws`` programmings, in two simulators:

- deepatlas: ``deepatlas.nn.crossbar``, as the experiment reads it (its ``drift_curve``);
- aihwkit: the same weights and biases in aihwkit's ``AnalogConv2d`` and ``AnalogLinear``
  with its ``InferenceRPUConfig`` as it comes (``PCMLikeNoiseModel``, 7-bit DAC, 9-bit ADC,
  out_bound 12, output noise 0.06, iterative bound management, digital bias), with
  ``drift_compensation`` set to None for the uncompensated reads. aihwkit's own defaults,
  not tuned to deepatlas's: what a user of the field's library would measure. Two of them
  differ from deepatlas's model: no weight scaling (``mapping.weight_scaling_omega`` = 0,
  so its output noise, ADC step and bound act in the weights' own units, where deepatlas
  maps each layer's max|w| to a full-scale device: ``--omega 1`` does the same), and its
  global drift compensation reads one-hot inputs through the noisy periphery (mean
  |output|), where deepatlas's reads an all-ones input exactly.

aihwkit programs its devices from torch's generator (seeded per programming here), but its
C++ tiles draw the output noise from their own generator, so its figures vary slightly from
run to run.

aihwkit 1.2.0 is on PyPI as a source distribution that compiles C++ against the installed
torch. It builds against torch 2.14.1 on 2 cores in about 10 minutes, outside pip's build
isolation (which would not see torch)::

    apt-get install -y libopenblas-dev
    pip install "scikit-build>=0.18.1" "pybind11>=3.0.1" ninja "cmake>=4.2.1" mypy
    PATH="$VIRTUAL_ENV/bin:$PATH" pip install --no-build-isolation --no-deps aihwkit==1.2.0

Needs the mnist-10k set. Run by hand, never by the tests; the result goes to
``--out``/``--name``-<host>.json.
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from deepatlas.config import load_recipe
from deepatlas.lab.stats import mean_std
from deepatlas.lab.experiments.in_memory import TIMES, drift_curve, trained_model_and_digits
from deepatlas.nn.crossbar import AnalogConv2d, AnalogLinear
from deepatlas.tasks import fit
from deepatlas.train.runinfo import write_result

ARMS = {"plain": ["model.train_noise=0"], "hardware-aware": []}
DAY_COLUMN = list(TIMES).index("1 day")  # where 1 day sits in each curve


def aihwkit_twin(model: nn.Module, rpu_config: Any) -> nn.Module:
    """``model`` (an analog-lenet) with each crossbar an aihwkit layer holding its weights
    and biases (checked by reading them back)."""
    from aihwkit.nn import AnalogConv2d as AihwConv2d
    from aihwkit.nn import AnalogLinear as AihwLinear
    from aihwkit.nn import AnalogSequential

    layers = []
    for layer in model:
        if isinstance(layer, AnalogConv2d):
            twin = AihwConv2d(layer.in_channels, layer.out_channels, layer.kernel_size,
                              stride=layer.stride, padding=layer.padding, bias=True,
                              rpu_config=copy.deepcopy(rpu_config))
        elif isinstance(layer, AnalogLinear):
            twin = AihwLinear(layer.in_features, layer.out_features, bias=True,
                              rpu_config=copy.deepcopy(rpu_config))
        else:
            layers.append(copy.deepcopy(layer))
            continue
        twin.set_weights(layer.weight.detach().clone(), layer.bias.detach().clone())
        weight, bias = twin.get_weights()
        torch.testing.assert_close(weight, layer.weight.detach().reshape(weight.shape))
        torch.testing.assert_close(bias, layer.bias.detach())
        layers.append(twin)
    return AnalogSequential(*layers).eval()


@torch.no_grad()
def aihwkit_curve(run: Path, draws: int, images: int, omega: float = 0.0
                  ) -> dict[str, list[float]]:
    """drift_curve's figures for ``run``'s weights read by aihwkit's inference tiles
    (``omega``: its ``mapping.weight_scaling_omega``, 0 as it comes)."""
    from aihwkit.simulator.configs import InferenceRPUConfig

    model, x, y = trained_model_and_digits(run, images)
    curves = {"digital": [(model(x).argmax(1) == y).float().mean().item()]}
    for compensate in (False, True):
        config = InferenceRPUConfig()
        config.mapping.weight_scaling_omega = omega
        if not compensate:
            config.drift_compensation = None
        twin = aihwkit_twin(model, config)
        rows = []
        for draw in range(draws):
            torch.manual_seed(1000 + draw)  # aihwkit draws its devices from torch's generator
            twin.program_analog_weights()
            row = []
            for seconds in TIMES.values():
                twin.drift_analog_weights(seconds)
                row.append((twin(x).argmax(1) == y).float().mean().item())
            rows.append(row)
        curves["compensated" if compensate else "raw"] = np.mean(rows, 0).tolist()
    return curves


def day_costs(curve: dict[str, list[float]]) -> dict[str, float]:
    """Accuracy lost from 1 s to 1 day, uncompensated and compensated."""
    return {mode: curve[mode][0] - curve[mode][DAY_COLUMN] for mode in ("raw", "compensated")}


def main() -> None:
    import aihwkit

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--draws", type=int, default=5, help="programmings per network")
    parser.add_argument("--images", type=int, default=2000, help="test digits read")
    parser.add_argument("--omega", type=float, default=0.0,
                        help="aihwkit's mapping.weight_scaling_omega (0: its default, no "
                             "scaling; 1: max|w| to a full-scale device, as deepatlas)")
    parser.add_argument("--name", default="aihwkit-peer")
    parser.add_argument("--out", default="results/benchmarks")
    args = parser.parse_args()
    rows, start = [], time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            for arm, overrides in ARMS.items():
                run = Path(tmp) / f"{arm}-seed{seed}"
                fit(load_recipe("analog-mnist", [*overrides, f"seed={seed}",
                                                 "train.tensorboard=false"]), run,
                    progress=False)
                for simulator in ("deepatlas", "aihwkit"):
                    curve = (drift_curve(run, args.draws, args.images) if simulator ==
                             "deepatlas" else aihwkit_curve(run, args.draws, args.images,
                                                            args.omega))
                    row = {"seed": seed, "arm": arm, "simulator": simulator,
                           "curve": curve, "cost_1day": day_costs(curve)}
                    print({k: v for k, v in row.items() if k != "curve"}, flush=True)
                    rows.append(row)

    def costs(arm: str, simulator: str, mode: str) -> list[float]:
        return [r["cost_1day"][mode] for r in rows
                if r["arm"] == arm and r["simulator"] == simulator]

    summary = {f"{arm}, {simulator}, {mode}": mean_std(costs(arm, simulator, mode))
               for arm in ARMS for simulator in ("deepatlas", "aihwkit")
               for mode in ("raw", "compensated")}
    path = write_result(args.out, args.name, {
        "question": "accuracy lost from 1 s to 1 day after programming, deepatlas's "
                    "crossbars against aihwkit's inference tiles on the same weights",
        "times": TIMES, "draws": args.draws, "images": args.images, "aihwkit":
        aihwkit.__version__, "weight_scaling_omega": args.omega, "rows": rows,
        "cost_1day": summary, "wall_s": time.perf_counter() - start})
    for key, value in summary.items():
        print(f"{key}: {value['mean'] * 100:+.2f} ± {value['std'] * 100:.2f} points")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
