"""MAP 3.2: SGD oscillates across a narrow valley; Momentum adds inertia; Adam adapts the
step per parameter. Measured on an ill-conditioned quadratic, Rosenbrock and a real task."""

from __future__ import annotations

import torch

from deepatlas.lab.common import digits_tensors, fit, pyplot, save
from deepatlas.lab.registry import Context, Result, experiment
from deepatlas.models import create_model
from deepatlas.optim import SGD, Adam, Momentum


def quadratic(p: torch.Tensor) -> torch.Tensor:
    return 0.5 * (p[0] ** 2 + 25 * p[1] ** 2)  # condition number 25


def rosenbrock(p: torch.Tensor) -> torch.Tensor:
    return (1 - p[0]) ** 2 + 100 * (p[1] - p[0] ** 2) ** 2


def trajectory(make, f, start, steps: int) -> torch.Tensor:
    p = torch.tensor(start, dtype=torch.float64, requires_grad=True)
    opt = make([p])
    path = [p.detach().clone()]
    for _ in range(steps):
        opt.zero_grad()
        f(p).backward()
        opt.step()
        path.append(p.detach().clone())
    return torch.stack(path)  # (steps + 1, 2)


def sign_flips(values: torch.Tensor) -> int:
    return int((values[1:].sign() * values[:-1].sign() < 0).sum())


@experiment(name="optimisers", map_id="3.2", title="SGD, Momentum, Adam",
            claim="Plain SGD oscillates across steep directions; Momentum's inertia and Adam's "
                  "per-parameter steps reach the minimum faster.",
            source="SGD | W_{t+1} = W_t − η∇L | 基础版本,易震荡 ; Momentum | 增加惯性项 ; "
                   "Adam | 自适应学习率",
            implements="deepatlas.optim.SGD, Momentum, Adam")
def run(ctx: Context) -> Result:
    lr = 0.075  # close to 2 / L = 0.08 on the quadratic's steep axis: SGD zig-zags
    makers = {"SGD": lambda p: SGD(p, lr=lr), "Momentum": lambda p: Momentum(p, lr=0.02,
                                                                            gamma=0.8),
              "Adam": lambda p: Adam(p, lr=0.1)}
    quad = {n: trajectory(m, quadratic, [-4.0, 1.0], 60) for n, m in makers.items()}
    rosen_makers = {"SGD": lambda p: SGD(p, lr=1e-3),
                    "Momentum": lambda p: Momentum(p, lr=1e-3, gamma=0.9),
                    "Adam": lambda p: Adam(p, lr=0.02)}
    steps = 2000 if ctx.quick else 10000
    rosen = {n: trajectory(m, rosenbrock, [-1.5, 2.0], steps) for n, m in rosen_makers.items()}

    xtr, ytr, _, _ = digits_tensors()
    real_makers = {"SGD": lambda p: SGD(p, lr=0.05), "Momentum": lambda p: Momentum(
        p, lr=0.05, gamma=0.9), "Adam": lambda p: Adam(p, lr=1e-3)}
    curves = {}
    for name, make in real_makers.items():
        torch.manual_seed(ctx.seed)
        model = create_model("mlp", in_channels=1, image_size=8, num_classes=10, depth=3,
                             width=128)
        curves[name] = fit(model, xtr, ytr, 300 if ctx.quick else 1500,
                           make(list(model.parameters())), seed=ctx.seed)

    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.5))
    g = torch.linspace(-4.5, 4.5, 200)
    xx, yy = torch.meshgrid(g, g / 3, indexing="xy")
    axes[0].contour(xx.numpy(), yy.numpy(), (0.5 * (xx**2 + 25 * yy**2)).numpy(), levels=15,
                    colors="0.8")
    for name, path in quad.items():
        axes[0].plot(path[:, 0].numpy(), path[:, 1].numpy(), ".-", ms=3, label=name)
    axes[0].set_title("0.5 (x² + 25 y²), 60 steps")
    axes[0].legend(fontsize=7)
    for name, path in rosen.items():
        axes[1].semilogy([rosenbrock(p).item() + 1e-12 for p in path[::10]], label=name)
    axes[1].set_title("Rosenbrock")
    axes[1].set_xlabel("step / 10")
    axes[1].legend(fontsize=7)
    for name, losses in curves.items():
        smooth = torch.tensor(losses).unfold(0, 20, 1).mean(1)
        axes[2].plot(smooth.numpy(), label=name)
    axes[2].set_title("MLP on digits: training loss")
    axes[2].set_xlabel("step")
    axes[2].legend(fontsize=7)
    plot = save(fig, ctx.path("plot.png"))

    flips = {n: sign_flips(p[:, 1]) for n, p in quad.items()}
    final_quad = {n: quadratic(p[-1]).item() for n, p in quad.items()}
    rosen_dist = {n: (p[-1] - torch.tensor([1.0, 1.0], dtype=torch.float64)).norm().item()
                  for n, p in rosen.items()}
    real_final = {n: sum(c[-50:]) / 50 for n, c in curves.items()}
    holds = (flips["SGD"] >= 20 and flips["SGD"] > flips["Adam"]
             and min(rosen_dist["Momentum"], rosen_dist["Adam"]) < rosen_dist["SGD"]
             and max(real_final["Momentum"], real_final["Adam"]) < real_final["SGD"])
    metrics = {f"steep_axis_sign_flips_{n}": v for n, v in flips.items()}
    metrics.update({f"quadratic_after_60_{n}": v for n, v in final_quad.items()})
    metrics.update({f"rosenbrock_distance_to_min_{n}": v for n, v in rosen_dist.items()})
    metrics.update({f"digits_train_loss_{n}": v for n, v in real_final.items()})
    return Result(metrics, "holds" if holds else "does not hold at this scale",
                  f"On the quadratic SGD's steep coordinate changed sign {flips['SGD']} times in "
                  f"60 steps (Momentum {flips['Momentum']}, Adam {flips['Adam']}). Distance to "
                  f"Rosenbrock's minimum after {steps} steps: "
                  + ", ".join(f"{n} {d:.3f}" for n, d in rosen_dist.items())
                  + ". Final digits training loss: "
                  + ", ".join(f"{n} {v:.3f}" for n, v in real_final.items()) + ".", [plot])
