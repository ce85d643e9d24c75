"""MAP 4.1: dilated, depthwise separable and deformable convolutions, each measured.

- Receptive fields: the theory must equal the field measured from input gradients, exactly
  (both are integers of pixels), and dilation must widen it.
- Separable cost: the FLOP ratio counted by torch.utils.flop_counter must equal 1/N + 1/k²
  within 1e-3 (the counts are exact; 1e-3 is far below the 0.11 being checked), and the
  separable conv must also run faster (median of 20 timings each; the two are timed back to
  back in one process, so a tour that runs another experiment beside this one slows both
  alike, and the experiment is not marked ``timed``).
- Deformable: on warped digits, test accuracy with a deformable conv minus the same net with
  a plain conv, paired by seed, with the 95% interval above 0 (:mod:`deepatlas.lab.stats`).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.flop_counter import FlopCounterMode

from deepatlas.compress.quantize import latency_ms
from deepatlas.lab.common import accuracy, pyplot, save
from deepatlas.lab.registry import Context, Result, experiment
from deepatlas.lab.stats import compare, verdict
from deepatlas.nn import (DeformableConv2d, DepthwiseSeparableConv2d, empirical_receptive_field,
                          receptive_field)


def dilated_stack(dilations) -> nn.Sequential:
    return nn.Sequential(*(nn.Conv2d(1, 1, 3, padding=d, dilation=d) for d in dilations))


def flops(module: nn.Module, x: torch.Tensor) -> int:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        module(x)
    return counter.get_total_flops()


def deformed_digits(seed: int, n_train: int):
    """Digits upsampled to 16 px and warped by random rotation, scale and shear: the
    geometric variation deformable convolution is meant to absorb."""
    from torchvision.transforms import v2

    from deepatlas.lab.common import digits_tensors

    xtr, ytr, xte, yte = digits_tensors(flat=False)
    torch.manual_seed(seed)
    warp = v2.RandomAffine(degrees=35, scale=(0.7, 1.2), shear=20)

    def prep(x):
        x = F.interpolate(x, size=16, mode="bilinear", align_corners=False)
        return torch.stack([warp(img) for img in x])

    return prep(xtr[:n_train]), ytr[:n_train], prep(xte), yte


def small_net(deformable: bool) -> nn.Module:
    conv = DeformableConv2d(16, 32, 3, padding=1) if deformable else nn.Conv2d(16, 32, 3,
                                                                              padding=1)
    return nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), conv,
                         nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))


@experiment(name="convolutions", map_id="4.1", title="Dilated, separable and deformable convs",
            claim="Dilation widens the receptive field at no extra cost; a depthwise separable "
                  "conv costs 1/N + 1/k² of a full one; deformable convs adapt their sampling "
                  "to geometric deformation.",
            source=("空洞卷积:扩大感受野(dilation rate>1)", "可变形卷积:自适应调整采样位置",
                    "深度可分离卷积:减少计算量(MobileNet基础)"),
            implements="deepatlas.nn.receptive_field, empirical_receptive_field, "
                       "DepthwiseSeparableConv2d, DeformableConv2d")
def run(ctx: Context) -> Result:
    torch.manual_seed(ctx.seed)
    m: dict[str, float] = {}
    # 1. Receptive field of three 3x3 convs, theory and input gradients.
    rf = {}
    for name, dil in (("1,1,1", (1, 1, 1)), ("1,2,4", (1, 2, 4)), ("1,2,4,8", (1, 2, 4, 8))):
        stack = dilated_stack(dil)
        rf[name] = (receptive_field(stack), empirical_receptive_field(stack, 41)[0])
        m[f"receptive_field_theory_{name}"], m[f"receptive_field_measured_{name}"] = rf[name]
    # 2. Separable vs full conv: parameters, FLOPs, CPU latency (C = N = 128, k = 3).
    c, n, k = 128, 128, 3
    full = nn.Conv2d(c, n, k, padding=1, bias=False)
    sep = DepthwiseSeparableConv2d(c, n, k, padding=1)
    x = torch.randn(32, c, 28, 28)
    m["separable_param_ratio"] = sum(p.numel() for p in sep.parameters()) / full.weight.numel()
    m["separable_flop_ratio"] = flops(sep, x) / flops(full, x)
    m["separable_formula_1/N+1/k2"] = 1 / n + 1 / k**2
    m["full_conv_ms"], m["separable_conv_ms"] = latency_ms(full, x, 20), latency_ms(sep, x, 20)
    # 3. Deformable vs plain conv on warped digits, over seeds (each seed warps afresh).
    seeds = [ctx.seed + i for i in range(ctx.size(5, 2, smoke=2))]
    runs: dict[str, list[float]] = {"plain": [], "deformable": []}
    for seed in seeds:
        xtr, ytr, xte, yte = deformed_digits(seed, 1437)
        for name in runs:
            torch.manual_seed(seed)
            net = small_net(name == "deformable")
            opt = torch.optim.Adam(net.parameters(), lr=3e-3)
            g = torch.Generator().manual_seed(seed)
            for _ in range(ctx.size(600, 80, smoke=10)):  # quick: the tour stays in minutes
                idx = torch.randint(0, len(xtr), (64,), generator=g)
                loss = F.cross_entropy(net(xtr[idx]), ytr[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
            runs[name].append(accuracy(net, xte, yte))
    accs = {k: sum(v) / len(v) for k, v in runs.items()}
    for name, value in accs.items():
        m[f"warped_digits_test_acc_{name}"] = value
    effects = [compare("deformable - plain conv, warped digits test accuracy",
                       runs["deformable"], runs["plain"])]

    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.3))
    names = list(rf)
    axes[0].bar([f"d={s}" for s in names], [rf[s][0] for s in names], alpha=0.5, label="theory")
    axes[0].plot([f"d={s}" for s in names], [rf[s][1] for s in names], "ko", label="gradients")
    axes[0].set_ylabel("receptive field (px)")
    axes[0].legend(fontsize=7)
    axes[1].bar(["full 3x3", "separable"], [m["full_conv_ms"], m["separable_conv_ms"]])
    axes[1].set_ylabel("CPU latency, batch 32, 128 ch, 28 px (ms)")
    axes[2].bar(list(accs), list(accs.values()))
    axes[2].set_ylim(min(accs.values()) - 0.1, 1)
    axes[2].set_ylabel(f"test accuracy, warped digits ({len(seeds)} seeds)")
    plot = save(fig, ctx.path("plot.png"))

    rf_ok = all(t == e for t, e in rf.values()) and rf["1,2,4"][0] > rf["1,1,1"][0]
    ratio_ok = abs(m["separable_flop_ratio"] - m["separable_formula_1/N+1/k2"]) < 1e-3
    faster = m["separable_conv_ms"] < m["full_conv_ms"]
    deform_ok = effects[0].decision == "supports"
    result, note = verdict(effects, also=rf_ok and ratio_ok and faster, unmet="; ".join(
        t for ok, t in ((rf_ok, "receptive fields"), (ratio_ok, "separable FLOP ratio"),
                        (faster, "separable conv not faster")) if not ok))
    return Result(m, result,
                  "Receptive fields (theory = measured): "
                  + ", ".join(f"dilations {s}: {rf[s][0]} px" for s in names)
                  + f". Separable conv: {m['separable_flop_ratio']:.4f} of the FLOPs "
                  f"(formula {m['separable_formula_1/N+1/k2']:.4f}), {m['separable_conv_ms']:.1f} "
                  f"vs {m['full_conv_ms']:.1f} ms. Warped digits: plain {accs['plain']:.1%}, "
                  f"deformable {accs['deformable']:.1%}"
                  + f" (means over seeds {seeds})"
                  + ("" if deform_ok else "; no gain beyond the spread over seeds") + ".",
                  [plot], effects, seeds, note=note)
