"""MAP 7.3 explanations: exact Shapley, Kernel SHAP, LIME and Integrated Gradients against
their definitions, shap's KernelExplainer and captum, on the same model, baseline and
coalitions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from deepatlas.trust import explain as ex


def tiny_model() -> tuple[nn.Module, ex.Model]:
    """A random conv net on (1, 6, 6) images in float64; f = the probability of class 0."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.Tanh(), nn.Flatten(),
                        nn.Linear(144, 3)).double()

    def f(images: torch.Tensor) -> torch.Tensor:  # (S, 1, 6, 6) -> (S,)
        return net(images).softmax(1)[:, 0]

    return net, f


@pytest.fixture
def case():
    _, f = tiny_model()
    x = torch.randn(1, 6, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    baseline = torch.zeros_like(x)
    segments = ex.patch_segments(6, 6, 2)  # 9 patches: exact Shapley is 512 evaluations
    return f, x, baseline, segments


def test_patches_cover_the_image():
    seg = ex.patch_segments(7, 5, 3)  # ragged edges
    assert seg.shape == (7, 5) and seg.max() == 3 * 2 - 1
    assert torch.equal(seg[0], torch.tensor([0, 0, 0, 1, 1]))
    assert torch.equal(seg[:, 0], torch.tensor([0, 0, 0, 2, 2, 2, 4]))


def test_exact_shapley_is_efficient_and_kernel_shap_equals_it(case):
    f, x, baseline, segments = case
    phi = ex.exact_shapley(f, x, baseline, segments)
    gap = (f(x[None]) - f(baseline[None])).item()
    assert phi.sum().item() == pytest.approx(gap, abs=1e-12)  # efficiency
    # All 510 proper coalitions with the Shapley kernel: the regression is exact.
    kernel = ex.kernel_shap(f, x, baseline, segments, n_samples=510)
    torch.testing.assert_close(kernel, phi, atol=1e-10, rtol=0)


def test_exact_shapley_of_a_linear_model_is_each_patch_share():
    w = torch.randn(1, 4, 4, dtype=torch.float64)
    x, baseline = torch.randn(1, 4, 4, dtype=torch.float64), torch.zeros(1, 4, 4).double()
    segments = ex.patch_segments(4, 4, 2)
    phi = ex.exact_shapley(lambda b: (b * w).sum((1, 2, 3)), x, baseline, segments)
    torch.testing.assert_close(phi, ex.per_segment(w * x, segments))


def test_sampled_kernel_shap_converges_to_the_exact_values():
    """12 patches (4,094 proper coalitions), 3,000 sampled ones: close to exact, and closer
    than with 300 (the sampler's size distribution is the kernel's marginal)."""
    _, f = tiny_model()
    x = torch.randn(1, 6, 6, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    baseline = torch.zeros_like(x)
    segments = torch.arange(36).view(6, 6) // 3  # 12 features of 3 pixels each
    exact = ex.exact_shapley(f, x, baseline, segments)
    errors = [(ex.kernel_shap(f, x, baseline, segments, n, torch.Generator().manual_seed(0))
               - exact).abs().max().item() for n in (300, 3000)]
    assert errors[1] < errors[0] and errors[1] < 0.05 * exact.abs().max().item()


def test_kernel_shap_equals_shaps_kernel_explainer(case):
    shap = pytest.importorskip("shap")
    f, x, baseline, segments = case

    def on_coalitions(z: np.ndarray) -> np.ndarray:  # shap masks z with the all-0 background
        return ex.coalition_values(f, x, baseline, segments, torch.from_numpy(z)).numpy()

    explainer = shap.KernelExplainer(on_coalitions, np.zeros((1, 9)))
    theirs = explainer.shap_values(np.ones((1, 9)), nsamples=2 ** 9, l1_reg=False,
                                   silent=True)
    ours = ex.kernel_shap(f, x, baseline, segments, n_samples=2 ** 9)
    np.testing.assert_allclose(ours.numpy(), np.asarray(theirs).reshape(-1), atol=1e-8)


def _replay(rows: torch.Tensor):
    """A captum perturbation function that hands out our coalitions, in order."""
    def perturb(original, **kwargs):
        for row in rows:
            yield row[None].long()
    return perturb


def test_kernel_shap_equals_captums_on_the_same_coalitions(case):
    captum_attr = pytest.importorskip("captum.attr")
    f, x, baseline, segments = case
    z, weight = ex.kernel_shap_coalitions(9, 200, torch.Generator().manual_seed(3))
    assert torch.all(weight == 1)  # sampled from the kernel, so equally weighted
    ends = torch.stack([torch.ones(9), torch.zeros(9)]).double()
    explainer = captum_attr.KernelShap(f)
    explainer.perturb_func = _replay(torch.cat([ends, z]))  # captum's own order: 1, 0, samples
    theirs = explainer.attribute(x[None], baselines=baseline[None],
                                 feature_mask=segments[None, None], n_samples=len(z) + 2,
                                 return_input_shape=False)
    ours = ex.constrained_shap_regression(
        z, ex.coalition_values(f, x, baseline, segments, z), weight,
        f(baseline[None]).item(), f(x[None]).item())
    # captum enforces phi_0 = v(0) and efficiency by weighting the ends 1e6, not exactly.
    torch.testing.assert_close(theirs.double().flatten(), ours, atol=2e-5, rtol=1e-3)


def test_lime_equals_captums_lime_with_lime_images_kernel(case):
    captum_attr = pytest.importorskip("captum.attr")
    from captum._utils.models.linear_model import SkLearnRidge

    f, x, baseline, segments = case
    z = ex.lime_coalitions(9, 300, torch.Generator().manual_seed(4))

    def similarity(original, perturbed, interpretable, **kwargs):
        return ex.lime_kernel(interpretable.double()).item()

    explainer = captum_attr.Lime(f, interpretable_model=SkLearnRidge(alpha=1.0),
                                 similarity_func=similarity, perturb_func=_replay(z))
    theirs = explainer.attribute(x[None], baselines=baseline[None],
                                 feature_mask=segments[None, None], n_samples=len(z),
                                 return_input_shape=False)
    ours = ex.weighted_ridge(z, ex.coalition_values(f, x, baseline, segments, z),
                             ex.lime_kernel(z), alpha=1.0)
    torch.testing.assert_close(theirs.double().flatten(), ours, atol=1e-6, rtol=1e-4)


def test_lime_recovers_a_linear_model():
    w = torch.randn(1, 4, 4, dtype=torch.float64)
    x, baseline = torch.randn(1, 4, 4, dtype=torch.float64), torch.zeros(1, 4, 4).double()
    segments = ex.patch_segments(4, 4, 2)
    weights = ex.lime(lambda b: (b * w).sum((1, 2, 3)), x, baseline, segments,
                      n_samples=200, alpha=1e-9)
    torch.testing.assert_close(weights, ex.per_segment(w * x, segments))


def test_integrated_gradients_is_complete_and_equals_captum(case):
    captum_attr = pytest.importorskip("captum.attr")
    f, x, baseline, segments = case
    gap = (f(x[None]) - f(baseline[None])).item()
    errors = [abs(ex.integrated_gradients(f, x, baseline, steps).sum().item() - gap)
              for steps in (8, 64)]
    assert errors[1] < errors[0] / 10 and errors[1] < 1e-4  # trapezoid: error ~ 1/steps^2
    ours = ex.integrated_gradients(f, x, baseline, steps=32, batch_size=10)  # several batches
    theirs = captum_attr.IntegratedGradients(f).attribute(
        x[None], baselines=baseline[None], n_steps=32, method="riemann_trapezoid")
    # captum's trapezoid steps are 1/n, not 1/(n - 1): its weights sum to 1 - 1/n.
    torch.testing.assert_close(theirs[0].double() * 32 / 31, ours, atol=1e-10, rtol=1e-8)


def test_deletion_and_insertion_curves_by_hand():
    x, baseline = torch.tensor([[[2.0, 1.0]]]).double(), torch.zeros(1, 1, 2).double()
    segments = torch.tensor([[0, 1]])

    def total(b: torch.Tensor) -> torch.Tensor:
        return b.sum((1, 2, 3))

    # Deleting patch 0 then 1: f = 3, 1, 0; inserting: 0, 2, 3 (trapezoid, dx = 1/2).
    deleted, inserted = ex.deletion_insertion(total, x, baseline, segments, torch.tensor([0, 1]))
    assert deleted.tolist() == [3, 1, 0] and inserted.tolist() == [0, 2, 3]
    assert (ex.curve_auc(deleted), ex.curve_auc(inserted)) == (1.25, 1.75)
    deleted, inserted = ex.deletion_insertion(total, x, baseline, segments, torch.tensor([1, 0]))
    assert (ex.curve_auc(deleted), ex.curve_auc(inserted)) == (1.75, 1.25)


def test_rank_correlation_ignores_sign_and_scale():
    a = torch.tensor([0.1, -3.0, 2.0, 0.5])
    assert ex.rank_correlation(a, -2 * a) == pytest.approx(1.0)
    assert ex.rank_correlation(a, torch.tensor([3.0, 0.1, 0.2, 1.0])) == pytest.approx(-1.0)
    assert ex.rank_correlation(a, torch.zeros(4)) == 0.0  # a constant map ranks nothing


def test_exact_shapley_refuses_too_many_features():
    segments = ex.patch_segments(8, 8, 1)  # 64 features
    with pytest.raises(ValueError, match="2\\^M coalitions; M = 64.*use kernel_shap"):
        ex.exact_shapley(lambda b: b.sum((1, 2, 3)), torch.zeros(1, 8, 8),
                         torch.zeros(1, 8, 8), segments)


def test_explain_dispatches_and_names_the_methods(case):
    f, x, baseline, segments = case
    for method in ex.METHODS:
        phi = ex.explain(method, f, x, baseline, segments, n_samples=64, steps=8)
        assert phi.shape == (9,) and torch.isfinite(phi).all()
    with pytest.raises(ValueError, match="valid: shap, lime, ig"):
        ex.explain("gradcam", f, x, baseline, segments)


def test_patches_equal_to_the_baseline_get_nothing(case):
    f, x, baseline, segments = case
    x = x.clone()
    x[:, :2, :2] = 0  # patch 0 is now the baseline's: a dummy player
    assert ex.varying_features(x, baseline, segments).tolist() == list(range(1, 9))
    exact = ex.exact_shapley(f, x, baseline, segments)
    assert exact[0].item() == 0
    torch.testing.assert_close(ex.kernel_shap(f, x, baseline, segments, n_samples=510), exact,
                               atol=1e-10, rtol=0)
    assert ex.lime(f, x, baseline, segments, n_samples=100)[0].item() == 0


@pytest.mark.parametrize("method", ["shap", "lime", "ig"])
def test_explain_command_writes_a_heat_map(cli, tmp_path, method):
    """The shipped Fashion-MNIST classifier on a 28 px picture: a PNG 8x the image's size;
    IG's attributions add up to f(x) - f(black) (SHAP's do by construction; LIME's need not,
    and the line does not claim they do)."""
    import re

    from PIL import Image

    from deepatlas.tasks.gan_quality import bundled_classifier

    picture = np.zeros((28, 28), np.uint8)
    picture[6:22, 9:19] = 200  # a bright block: something like a garment
    Image.fromarray(picture).save(tmp_path / "thing.png")
    out = tmp_path / "heat.png"
    code, stdout, err = cli("explain", bundled_classifier(), tmp_path / "thing.png", "--method",
                            method, "--out", out, "--samples", "64", "--steps", "32")
    assert code == 0, err
    assert Image.open(out).size == (224, 224)
    found = re.search(r"sum to ([-+.\d]+) against f\(x\) - f\(black\) = ([-+.\d]+)", stdout)
    assert (found is None) == (method == "lime"), stdout
    if found:
        total, gap = map(float, found.groups())
        assert total == pytest.approx(gap, abs=0.01 if method == "ig" else 1e-3)
    code, _, err = cli("explain", bundled_classifier(), tmp_path / "thing.png", "--out", out)
    assert code == 2 and "exists; pass --force" in err  # never written over unasked
