"""MAP 7.3 Trustworthy AI: explanations, each from its formula.

An explanation says how much each *feature* of one input moved the model's output f(x) (a
class probability, say) away from its value at a baseline x' (a black image). For images the
features are patches: ``segments`` (H, W) gives each pixel its patch id 0..M-1, and a
*coalition* z in {0, 1}^M keeps the patches with z_j = 1 and puts the baseline in the others::

    h_x(z) = z[segments] * x + (1 - z[segments]) * x'          v(z) = f(h_x(z))

- **Exact Shapley values** (Shapley 1953), by enumerating all 2^M coalitions::

      phi_i = sum_{S ⊆ N \\ {i}} |S|! (M - |S| - 1)! / M!  [v(S ∪ {i}) - v(S)]

- **Kernel SHAP** (Lundberg and Lee 2017): the weighted linear regression
  v(z) ≈ phi_0 + z . phi with the Shapley kernel pi(z) = (M - 1) / (C(M, |z|) |z| (M - |z|)),
  under phi_0 = v(0) and sum(phi) = v(1) - v(0) (efficiency). Over all coalitions it equals
  the exact Shapley values; with fewer samples it draws |z| from the kernel's marginal and
  weights each sample 1, as captum does (shap enumerates the smallest and largest sizes
  first and pairs samples with their complements: the same estimator, less variance).
- **LIME** (Ribeiro et al. 2016): a ridge regression v(z) ≈ b + z . w on random coalitions
  (each patch kept with probability 1/2, as ``lime_image`` draws them), weighted by
  proximity to x: pi(z) = sqrt(exp(-d(z, 1)^2 / sigma^2)) with d the cosine
  distance and sigma = 0.25, as ``lime_image`` does. It answers "which patches matter near x",
  not a fair split of f(x) - f(x'): its weights need not sum to anything.
- **Integrated Gradients** (Sundararajan et al. 2017), per pixel::

      IG_i = (x_i - x'_i) * int_0^1 df/dx_i (x' + a (x - x')) da

  by the trapezoid rule over ``steps`` points; completeness says sum(IG) = f(x) - f(x').
  (captum's ``riemann_trapezoid`` weighs its n points by 1/n, not 1/(n - 1), so its
  attributions sum to (n - 1)/n of f(x) - f(x'): ours equal theirs times n/(n - 1).)

Patches equal to the baseline cannot change f; SHAP and LIME leave them out of the regression
(their Shapley value is exactly 0), as shap's KernelExplainer does. Sampling noise would
otherwise give the black background of a Fashion-MNIST image visible, meaningless weights.

Tested against shap's ``KernelExplainer`` and captum's ``KernelShap``, ``Lime`` and
``IntegratedGradients`` (tests/test_explain.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

Model = Callable[[torch.Tensor], torch.Tensor]  # (S, C, H, W) -> (S,): the explained output
MAX_EXACT_FEATURES = 16  # 2^16 coalitions: exact Shapley beyond that is the wrong tool


def patch_segments(height: int, width: int, patch: int) -> torch.Tensor:
    """Square patches of side ``patch`` (the last row and column may be narrower), numbered
    row by row: (H, W) of ids 0..M-1."""
    rows = torch.arange(height) // patch
    cols = torch.arange(width) // patch
    return rows[:, None] * math.ceil(width / patch) + cols[None, :]


def compose(x: torch.Tensor, baseline: torch.Tensor, segments: torch.Tensor,
            z: torch.Tensor) -> torch.Tensor:
    """h_x(z): x (C, H, W) where the coalition z (S, M) keeps a patch, the baseline elsewhere;
    returns (S, C, H, W)."""
    keep = z.to(x.device, x.dtype)[:, segments.to(x.device)].unsqueeze(1)  # (S, 1, H, W)
    return keep * x + (1 - keep) * baseline


def batch_for(x: torch.Tensor, most: int) -> int:
    """How many copies of x to evaluate at once: ``most``, fewer for big images, so that a
    batch holds about 4 M input values (a 224 px RGB image: 26; 28 px grey: ``most``)."""
    return max(1, min(most, (1 << 22) // x.numel()))


@torch.no_grad()
def coalition_values(f: Model, x: torch.Tensor, baseline: torch.Tensor,
                     segments: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """v(z) for each coalition row of z (S, M), in batches; float64 (S,) on the CPU (x and
    the model may be on any device)."""
    return torch.cat([f(compose(x, baseline, segments, chunk)).double().cpu()
                      for chunk in z.split(batch_for(x, 512))])


def all_coalitions(m: int) -> torch.Tensor:
    """Every z in {0, 1}^m, (2^m, m), ordered as binary numbers (row k has bits of k)."""
    k = torch.arange(2 ** m)
    return ((k[:, None] >> torch.arange(m)) & 1).to(torch.float64)


def exact_shapley(f: Model, x: torch.Tensor, baseline: torch.Tensor, segments: torch.Tensor
                  ) -> torch.Tensor:
    """phi (M,) by enumeration: 2^M evaluations of f."""
    m = int(segments.max()) + 1
    if m > MAX_EXACT_FEATURES:
        raise ValueError(f"exact Shapley values enumerate 2^M coalitions; M = {m} is more than "
                         f"{MAX_EXACT_FEATURES}: use kernel_shap")
    z = all_coalitions(m)
    v = coalition_values(f, x, baseline, segments, z)  # (2^M,), v[k] = v(bits of k)
    size = z.sum(1)
    phi = torch.zeros(m, dtype=torch.float64)
    for i in range(m):
        without = z[:, i] == 0  # the coalitions S not holding i; S ∪ {i} is k + 2^i
        s = size[without]
        weight = torch.tensor([math.factorial(int(n)) * math.factorial(m - int(n) - 1)
                               for n in s], dtype=torch.float64) / math.factorial(m)
        index = torch.nonzero(without).squeeze(1)
        phi[i] = (weight * (v[index + 2 ** i] - v[index])).sum()
    return phi


def shapley_kernel(m: int, size: torch.Tensor) -> torch.Tensor:
    """pi(z) = (M - 1) / (C(M, |z|) |z| (M - |z|)) for coalitions of ``size`` 1..M-1."""
    size = size.to(torch.float64)
    comb = torch.tensor([math.comb(m, int(k)) for k in size], dtype=torch.float64)
    return (m - 1) / (comb * size * (m - size))


def kernel_shap_coalitions(m: int, n_samples: int, generator: torch.Generator
                           ) -> tuple[torch.Tensor, torch.Tensor]:
    """(z, weight) for Kernel SHAP: every proper coalition with its kernel weight when
    2^M - 2 <= ``n_samples``; else ``n_samples`` draws with |z| ~ (M - 1) / (|z| (M - |z|))
    and a uniform subset of that size, each of weight 1."""
    if 2 ** m - 2 <= n_samples:
        z = all_coalitions(m)[1:-1]  # all but the empty and the full coalition
        return z, shapley_kernel(m, z.sum(1))
    sizes = torch.arange(1, m)
    p = (m - 1) / (sizes * (m - sizes)).double()
    drawn = sizes[torch.multinomial(p / p.sum(), n_samples, True, generator=generator)]
    order = torch.rand(n_samples, m, generator=generator).argsort(1)
    z = (order < drawn[:, None]).to(torch.float64)  # the first |z| of a random order
    return z, torch.ones(n_samples, dtype=torch.float64)


def constrained_shap_regression(z: torch.Tensor, v: torch.Tensor, weight: torch.Tensor,
                                v_empty: float, v_full: float) -> torch.Tensor:
    """argmin_phi sum w (v - v_empty - z . phi)^2 with sum(phi) = v_full - v_empty, solved by
    eliminating phi_M = total - sum(phi_1..M-1), as shap's KernelExplainer does."""
    total = v_full - v_empty
    y = v - v_empty - z[:, -1] * total  # (S,)
    a = z[:, :-1] - z[:, -1:]  # (S, M-1)
    aw = a * weight[:, None]
    head = torch.linalg.lstsq(a.T @ aw, aw.T @ y).solution  # the normal equations
    return torch.cat([head, (total - head.sum()).reshape(1)])


def varying_features(x: torch.Tensor, baseline: torch.Tensor, segments: torch.Tensor
                     ) -> torch.Tensor:
    """The ids of the patches where x differs from the baseline. The others cannot change
    f, so their Shapley value is 0 (the dummy axiom); shap leaves them out of the regression
    too, and so do we, for both SHAP and LIME."""
    m = int(segments.max()) + 1
    differs = (x != baseline).any(0).flatten().to(torch.float64).cpu()
    per_patch = torch.zeros(m, dtype=torch.float64).index_add_(0, segments.cpu().flatten(),
                                                                differs)
    return torch.nonzero(per_patch).squeeze(1)


def _on_varying(solve: Callable[[Model, int], torch.Tensor], f: Model, x: torch.Tensor,
                baseline: torch.Tensor, segments: torch.Tensor) -> torch.Tensor:
    """Run ``solve(g, k)`` on the k varying patches only, where g takes coalitions over them;
    the other patches get 0."""
    m = int(segments.max()) + 1
    varying = varying_features(x, baseline, segments)
    phi = torch.zeros(m, dtype=torch.float64)
    if len(varying) == 0:
        return phi

    def values(z: torch.Tensor) -> torch.Tensor:  # (S, k) -> v (S,)
        full = torch.ones(len(z), m, dtype=torch.float64)
        full[:, varying] = z
        return coalition_values(f, x, baseline, segments, full)

    phi[varying] = solve(values, len(varying))
    return phi


def kernel_shap(f: Model, x: torch.Tensor, baseline: torch.Tensor, segments: torch.Tensor,
                n_samples: int = 2048, generator: torch.Generator | None = None
                ) -> torch.Tensor:
    """phi (M,) by Kernel SHAP (see the module docstring)."""
    generator = generator or torch.Generator().manual_seed(0)

    def solve(values: Callable[[torch.Tensor], torch.Tensor], k: int) -> torch.Tensor:
        if k == 1:  # efficiency alone decides
            ends = values(torch.tensor([[0.0], [1.0]], dtype=torch.float64))
            return (ends[1] - ends[0]).reshape(1)
        if n_samples <= k and 2 ** k - 2 > n_samples:
            raise ValueError(f"Kernel SHAP with {n_samples} coalitions cannot fit {k} "
                             f"patches: use more than {k} samples (or bigger patches)")
        z, weight = kernel_shap_coalitions(k, n_samples, generator)
        ends = values(torch.stack([torch.zeros(k), torch.ones(k)]).double())
        return constrained_shap_regression(z, values(z), weight, float(ends[0]),
                                           float(ends[1]))

    return _on_varying(solve, f, x, baseline, segments)


def lime_coalitions(m: int, n_samples: int, generator: torch.Generator) -> torch.Tensor:
    """LIME's perturbations, as ``lime_image`` draws them: the full coalition first, then
    each patch kept or switched off with probability 1/2, independently."""
    z = torch.randint(0, 2, (n_samples - 1, m), generator=generator).to(torch.float64)
    return torch.cat([torch.ones(1, m, dtype=torch.float64), z])


def lime_kernel(z: torch.Tensor, width: float = 0.25) -> torch.Tensor:
    """pi(z) = sqrt(exp(-d^2 / width^2)), d = 1 - cos(z, 1): LIME's image kernel."""
    cosine = z.sum(1) / (z.norm(dim=1).clamp_min(1e-12) * math.sqrt(z.shape[1]))
    return torch.exp(-((1 - cosine) ** 2) / width ** 2).sqrt()


def weighted_ridge(z: torch.Tensor, v: torch.Tensor, weight: torch.Tensor, alpha: float
                   ) -> torch.Tensor:
    """w of argmin sum pi (v - b - z . w)^2 + alpha |w|^2 (b unpenalised): scikit-learn's
    ``Ridge(alpha).fit(z, v, sample_weight=pi)``."""
    mean_z = (weight[:, None] * z).sum(0) / weight.sum()
    mean_v = (weight * v).sum() / weight.sum()
    zc, vc = z - mean_z, v - mean_v
    gram = (zc * weight[:, None]).T @ zc + alpha * torch.eye(z.shape[1], dtype=z.dtype)
    return torch.linalg.solve(gram, (zc * weight[:, None]).T @ vc)


def lime(f: Model, x: torch.Tensor, baseline: torch.Tensor, segments: torch.Tensor,
         n_samples: int = 1000, kernel_width: float = 0.25, alpha: float = 1.0,
         generator: torch.Generator | None = None) -> torch.Tensor:
    """LIME's weights w (M,) for the patches of ``segments`` (see the module docstring)."""
    generator = generator or torch.Generator().manual_seed(0)

    def solve(values: Callable[[torch.Tensor], torch.Tensor], k: int) -> torch.Tensor:
        if n_samples <= k:
            raise ValueError(f"LIME with {n_samples} coalitions cannot fit {k} patches: use "
                             f"more than {k} samples (or bigger patches)")
        z = lime_coalitions(k, n_samples, generator)
        return weighted_ridge(z, values(z), lime_kernel(z, kernel_width), alpha)

    return _on_varying(solve, f, x, baseline, segments)


def integrated_gradients(f: Model, x: torch.Tensor, baseline: torch.Tensor, steps: int = 64,
                         batch_size: int | None = None) -> torch.Tensor:
    """IG (C, H, W) by the trapezoid rule over ``steps`` >= 2 points of the straight path, on
    x's device; ``batch_size`` path points at once (default: :func:`batch_for`, at most 64,
    since each keeps its activations for the backward pass)."""
    if steps < 2:
        raise ValueError(f"steps must be >= 2 for the trapezoid rule, got {steps}")
    batch_size = batch_size or batch_for(x, 64)
    alphas = torch.linspace(0, 1, steps, dtype=x.dtype, device=x.device)
    quadrature = torch.full((steps,), 1 / (steps - 1), dtype=torch.float64, device=x.device)
    quadrature[[0, -1]] /= 2
    total = torch.zeros_like(x, dtype=torch.float64)
    for a, w in zip(alphas.split(batch_size), quadrature.split(batch_size)):
        path = (baseline + a.view(-1, 1, 1, 1) * (x - baseline)).requires_grad_(True)
        grads, = torch.autograd.grad(f(path).sum(), path)  # (S, C, H, W)
        total += (w.view(-1, 1, 1, 1) * grads.double()).sum(0)
    return ((x - baseline).double() * total).cpu()


def per_segment(pixels: torch.Tensor, segments: torch.Tensor) -> torch.Tensor:
    """Sum a pixel map (C, H, W) over each patch: (M,)."""
    m = int(segments.max()) + 1
    flat = pixels.double().cpu().sum(0).flatten()
    return torch.zeros(m, dtype=torch.float64).index_add_(0, segments.cpu().flatten(), flat)


@torch.no_grad()
def deletion_insertion(f: Model, x: torch.Tensor, baseline: torch.Tensor,
                       segments: torch.Tensor, order: torch.Tensor
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """The deletion and insertion curves of Petsiuk et al. 2018 over patches, (M + 1,) each:
    f as the patches of ``order`` are removed one by one from x (a good order makes f fall at
    once), or added one by one to the baseline (f rises at once)."""
    m = len(order)
    steps = torch.tril(torch.ones(m + 1, m, dtype=torch.float64), -1)  # row k: first k on
    z = torch.zeros(m + 1, m, dtype=torch.float64)
    z[:, order] = steps
    inserted = coalition_values(f, x, baseline, segments, z)
    deleted = coalition_values(f, x, baseline, segments, 1 - z)
    return deleted, inserted


def curve_auc(curve: torch.Tensor) -> float:
    """The area under a deletion or insertion curve over [0, 1] (trapezoid rule): small is
    good for deletion, large for insertion."""
    return float(torch.trapezoid(curve, dx=1 / (len(curve) - 1)))


def rank_correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    """Spearman's rho of |a| and |b|: the similarity measure of Adebayo et al.'s model-
    randomisation check (absolute values, since a sign flip is not a different explanation)."""
    from scipy.stats import spearmanr

    a, b = a.abs().flatten(), b.abs().flatten()
    if bool((a == a[0]).all()) or bool((b == b[0]).all()):
        return 0.0  # a constant map ranks nothing (say, a random network saturated at 0 or 1)
    return float(spearmanr(a.numpy(), b.numpy()).statistic)


METHODS = ("shap", "lime", "ig")


def explain(method: str, f: Model, x: torch.Tensor, baseline: torch.Tensor,
            segments: torch.Tensor, n_samples: int = 1000, steps: int = 64,
            generator: torch.Generator | None = None) -> torch.Tensor:
    """One method's attributions per patch (M,): shap, lime or ig (IG's pixels summed per
    patch), so that all three can be ranked and deleted alike."""
    if method == "shap":
        return kernel_shap(f, x, baseline, segments, n_samples, generator)
    if method == "lime":
        return lime(f, x, baseline, segments, n_samples, generator=generator)
    if method == "ig":
        return per_segment(integrated_gradients(f, x, baseline, steps), segments)
    raise ValueError(f"unknown method {method!r}; valid: {', '.join(METHODS)}")
