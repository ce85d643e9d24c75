"""MAP 7.5: quantum neural networks, simulated exactly on this machine.

Two measurements:

1. **A variational quantum classifier on real images** (recipe ``quantum-fashion``): 8 qubits,
   T-shirt/top against Trouser from 8 PCA features, 67 parameters, trained on the Trainer
   beside its classical peer ``pca-mlp`` with the same front end and 68 parameters, same
   data, same budget. The claim holds when the circuit's test accuracy is above 95% beyond the
   spread over seeds; the peer is reported beside it, not judged (the claim is that a circuit
   can learn, not that it beats a classical model).
2. **Barren plateaus** (McClean et al. 2018): random circuits of RY(pi/4) on every qubit,
   then ``depth`` layers of a random rotation (RX, RY or RZ, angle uniform in [0, 2 pi)) on
   each qubit and CZs between neighbours; cost <Z_0 Z_1>. The variance of dC/d(theta_1) over
   random circuits is fitted to Var = A exp(-b n). It holds when b > 0, the fit explains at
   least 90% of the variance of log Var (R^2 >= 0.9), and the widest register's variance is
   below a tenth of the narrowest's. Shallow circuits (2 layers) are drawn beside them: with a
   local cost their gradients do not vanish as fast (Cerezo et al. 2021).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from deepatlas.lab.common import fit_arms, pyplot, save
from deepatlas.lab.registry import Context, Result, experiment
from deepatlas.lab.stats import against, verdict
from deepatlas.nn import quantum as q

TARGET = 0.95


def random_circuit_cost(angles: torch.Tensor, kinds: torch.Tensor) -> torch.Tensor:
    """<Z_0 Z_1> of each random circuit: RY(pi/4) on every qubit, then per layer a rotation
    of kind ``kinds`` (0 RX, 1 RY, 2 RZ) by ``angles`` on each qubit and a ladder of CZs.
    ``angles`` and ``kinds``: (depth, qubits, circuits); returns (circuits,)."""
    depth, qubits, circuits = angles.shape
    dtype = torch.complex128
    state = q.zero_state(circuits, qubits, dtype)
    start = q.ry(torch.tensor(math.pi / 4, dtype=torch.float64), dtype)
    for wire in range(qubits):
        state = q.apply_gate(state, start, wire)
    rows = torch.arange(circuits)
    for layer in range(depth):
        for wire in range(qubits):
            theta = angles[layer, wire]  # (circuits,)
            gates = torch.stack([q.rx(theta, dtype), q.ry(theta, dtype), q.rz(theta, dtype)])
            state = q.apply_gate(state, gates[kinds[layer, wire], rows], wire)  # (B, 2, 2)
        for wire in range(qubits - 1):
            state = q.cz(state, wire, wire + 1)
    return q.expval_z(state, 0, 1)


@torch.no_grad()
def gradient_variance(qubits: int, depth: int, circuits: int, seed: int) -> float:
    """Var over ``circuits`` random circuits of dC/d theta_1 (the first rotation), each
    gradient by the parameter-shift rule: two evaluations, no autograd graph to keep."""
    g = torch.Generator().manual_seed(seed * 1000 + qubits * 10 + depth)
    angles = torch.rand(depth, qubits, circuits, generator=g, dtype=torch.float64) * 2 * math.pi
    kinds = torch.randint(0, 3, (depth, qubits, circuits), generator=g)
    shift = torch.zeros_like(angles)
    shift[0, 0] = math.pi / 2
    grad = (random_circuit_cost(angles + shift, kinds)
            - random_circuit_cost(angles - shift, kinds)) / 2  # (circuits,)
    return grad.var().item()


def plateau_fit(widths: list[int], variances: list[float]) -> tuple[float, float]:
    """(b, R^2) of log Var = log A - b n."""
    x, y = np.array(widths, float), np.log(np.array(variances))
    slope, intercept = np.polyfit(x, y, 1)
    residual = y - (slope * x + intercept)
    r2 = 1 - residual.var() / y.var()
    return float(-slope), float(r2)


@experiment(name="quantum-circuits", map_id="7.5", title="Quantum neural networks",
            claim="A variational quantum circuit learns to classify real images (above 95% on "
                  "two Fashion-MNIST classes from 8 PCA features); the gradients of random "
                  "deep circuits vanish exponentially with the number of qubits (barren "
                  "plateaus).",
            source="量子机器学习:量子神经网络(QNN)探索",
            implements="deepatlas.nn.quantum (statevector simulator, tested against "
                       "PennyLane's default.qubit), models vqc and pca-mlp, recipe "
                       "quantum-fashion")
def run(ctx: Context) -> Result:
    from deepatlas.lab.experiments.curriculum import number_of_classes

    metrics: dict[str, float] = {}
    # 1. The barren plateau: no data needed.
    widths = list(range(2, ctx.size(11, 9, smoke=5), 1 if ctx.smoke else 2 if ctx.quick else 1))
    circuits = ctx.size(400, 200, smoke=20)
    deep, shallow = ctx.size(60, 40, smoke=4), 2
    variance = {name: [gradient_variance(n, d, circuits, ctx.seed) for n in widths]
                for name, d in (("deep", deep), ("shallow", shallow))}
    decay, r2 = plateau_fit(widths, variance["deep"])
    shallow_decay, _ = plateau_fit(widths, variance["shallow"])
    ratio = variance["deep"][-1] / variance["deep"][0]
    plateau = decay > 0 and r2 >= 0.9 and ratio < 0.1
    metrics.update(plateau_decay_per_qubit=decay, plateau_r2=r2, plateau_ratio=ratio,
                   shallow_decay_per_qubit=shallow_decay, plateau_circuits=circuits,
                   plateau_depth=deep)
    for n, v in zip(widths, variance["deep"]):
        metrics[f"grad_var_{n}_qubits"] = v

    # 2. The classifier and its classical peer, on the Trainer.
    runs: dict[str, list[float]] = {"vqc": [], "pca-mlp": []}
    seeds = [ctx.seed + s for s in range(ctx.size(3, 1, smoke=1))]
    effects, has_data = [], number_of_classes("fashion-mnist-binary") is not None
    if has_data:
        budget = ctx.size([], ["train.epochs=2"],
                          smoke=["train.epochs=1", "train.limit_train_batches=1",
                                 "train.batch_size=64", "model.layers=1"])
        # the classical peer: same front end and budget, its own learning rate
        arms = {"vqc": ("quantum-fashion", []),
                "pca-mlp": ("quantum-fashion", ["model.name=pca-mlp", "optim.lr=0.03"])}
        fitted = fit_arms(ctx.out, seeds, arms, lambda summary, _: (
            float(summary["test_acc"]), float(summary["wall_s"])),
            ["train.tensorboard=false", *budget])
        for model, pairs in fitted.items():
            runs[model] = [acc for acc, _ in pairs]
            metrics |= {f"{model}_wall_s_seed{seed}": wall
                        for seed, (_, wall) in zip(seeds, pairs)}
        for model, accs in runs.items():
            metrics[f"{model}_test_acc_mean"] = float(np.mean(accs))
        effects.append(against(f"vqc test accuracy - {TARGET:.0%}", runs["vqc"], TARGET))

    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.3))
    for name, values in variance.items():
        left.semilogy(widths, values, "o-", label=f"{name} ({deep if name == 'deep' else 2} "
                                                  "layers)")
    fitted = np.exp(np.polyval(np.polyfit(widths, np.log(variance["deep"]), 1), widths))
    left.semilogy(widths, fitted, "k--", lw=1, label=f"fit: exp(-{decay:.2f} n)")
    left.set_xlabel("qubits n")
    left.set_ylabel("Var[dC/dθ₁] over random circuits")
    left.legend(fontsize=7)
    if has_data:
        right.bar(list(runs), [np.mean(v) for v in runs.values()],
                  yerr=[np.std(v) if len(v) > 1 else 0 for v in runs.values()], capsize=4)
        right.axhline(TARGET, color="k", ls="--", lw=1, label="95% target")
        right.set_ylim(0.5, 1)
        right.set_ylabel("test accuracy (T-shirt/top vs Trouser)")
        right.legend(fontsize=7)
    plot = save(fig, ctx.path("plot.png"))

    plateau_text = (f"Random circuits of depth {deep}: the gradient variance falls by a factor "
                    f"e^{decay:.2f} = {math.exp(decay):.2f} per qubit (R² {r2:.2f}; "
                    f"{ratio:.1e} from {widths[0]} to {widths[-1]} qubits); 2-layer circuits: "
                    f"e^{shallow_decay:.2f} per qubit.")
    if not has_data:
        return Result(metrics, "not measurable here", plateau_text + " The classifier needs "
                      "Fashion-MNIST: sudo apt-get install -y dataset-fashion-mnist.", [plot],
                      seeds=[ctx.seed], reason="no data")
    status, note = verdict(effects, also=plateau,
                           unmet="the barren-plateau fit is not exponential enough")
    details = (f"The 67-parameter circuit reached {np.mean(runs['vqc']):.2%} test accuracy "
               f"(mean of {len(seeds)} seeds), its 68-parameter classical peer "
               f"{np.mean(runs['pca-mlp']):.2%}. " + plateau_text)
    return Result(metrics, status, details, [plot], effects, seeds, note=note)
