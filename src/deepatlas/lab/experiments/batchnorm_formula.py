"""MAP 5.1, the formula itself: the source divides by sqrt(mu_B^2 + eps); BatchNorm divides by
sqrt(sigma_B^2 + eps). Both are computed here on real activations and compared.

"The text is wrong" when the corrected formula gives every feature a standard deviation of 1
within 1e-3 (float32 rounding and eps = 1e-5 leave about 1e-5) while the printed one leaves
standard deviations spread over more than a factor 10 (normalising means a common scale; a
factor 10 is far from it). Deterministic: no seeds to average.
"""

from __future__ import annotations

import torch

from deepatlas.lab.common import digits_tensors, pyplot, save
from deepatlas.lab.registry import Context, Result, experiment
from deepatlas.nn import BatchNorm2d

EPS = 1e-5


@experiment(name="batchnorm-formula", map_id="5.1", title="The BatchNorm formula as printed",
            claim="BatchNorm normalises each feature over the batch: x̂ = (x − μ_B)/√(σ_B² + ε) "
                  "has mean 0 and variance 1. The source prints √(μ_B² + ε), which does not.",
            source=("BatchNorm公式:", "\\hat{x}=\\frac{x-μ_B}{\\sqrt{μ^2_B+\\epsilon}}",
                    "y=\\gamma\\hat{x}+\\beta"),
            correction="The denominator is √(σ_B² + ε), the batch variance; the printed μ_B² "
                       "is the squared batch mean.",
            implements="deepatlas.nn.BatchNorm2d (the corrected formula), against the source's "
                       "formula computed literally")
def run(ctx: Context) -> Result:
    torch.manual_seed(ctx.seed)
    xtr, _, _, _ = digits_tensors()
    layer = torch.nn.Linear(64, 32)
    h = layer(xtr[:256]).detach()  # (B, 32) pre-activations of a real layer
    h = h - h.mean(0) + torch.linspace(-0.5, 3.0, 32)  # feature means from -0.5 to 3.0
    mu, var = h.mean(0), h.var(0, unbiased=False)
    printed = (h - mu) / torch.sqrt(mu**2 + EPS)  # the source, literally
    corrected = (h - mu) / torch.sqrt(var + EPS)
    ours = BatchNorm2d(32).train()(h[:, :, None, None])[:, :, 0, 0].detach()
    std_printed, std_corrected = printed.std(0, unbiased=False), corrected.std(0, unbiased=False)

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 3.3))
    ax.semilogy(mu.numpy(), std_printed.numpy(), "o", label="√(μ_B² + ε) (printed)")
    ax.semilogy(mu.numpy(), std_corrected.numpy(), "s", label="√(σ_B² + ε) (BatchNorm)")
    ax.set_xlabel("the feature's batch mean μ_B")
    ax.set_ylabel("std of the normalised feature")
    ax.legend(fontsize=8)
    plot = save(fig, ctx.path("plot.png"))

    metrics = {"printed_std_min": std_printed.min().item(),
               "printed_std_max": std_printed.max().item(),
               "corrected_std_max_error": (std_corrected - 1).abs().max().item(),
               "deepatlas_vs_corrected_max_error": (ours - corrected).abs().max().item()}
    wrong = (metrics["corrected_std_max_error"] < 1e-3
             and metrics["printed_std_max"] / metrics["printed_std_min"] > 10)
    return Result(metrics, "the text is wrong" if wrong else "holds",
                  f"Over 32 features of a real layer, the printed formula leaves standard "
                  f"deviations from {metrics['printed_std_min']:.2g} to "
                  f"{metrics['printed_std_max']:.2g} (it scales by the mean, not the spread, "
                  f"and divides by √ε when the mean is 0); the corrected one gives 1 within "
                  f"{metrics['corrected_std_max_error']:.0e}, and deepatlas's BatchNorm2d "
                  f"matches it to {metrics['deepatlas_vs_corrected_max_error']:.0e}.", [plot])
