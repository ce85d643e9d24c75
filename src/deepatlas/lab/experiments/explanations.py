"""MAP 7.3 explanations: do LIME, Kernel SHAP and Integrated Gradients point at what the
model uses?

The model is deepatlas's shipped Fashion-MNIST classifier (a ResNet-8, the ``fashion-mnist``
recipe, ``assets/fashion-mnist-classifier.safetensors``); the explained output is the
probability of its predicted class on test images; the baseline is the black image; the
features are 49 patches of 4 x 4 pixels. Two measures:

1. **Deletion and insertion** (Petsiuk et al. 2018): remove the patches from the image in
   the method's order, most important first, and follow the probability (a faithful order
   makes it fall at once: small area under the curve); or add them to the black image (it
   rises at once: large area). Each method's areas are compared with a random order's on
   the same images (the mean of several random orders per image).
2. **Model randomisation** (Adebayo et al. 2018): re-initialise every weight of the network
   and explain the same images again. An explanation that depends on the model must change:
   the Spearman rank correlation of |attribution| between the trained and the random model,
   over the patches that differ from the baseline (the others are 0 for both by
   construction), should be low. An image where the random network's map is constant (its
   output saturated) ranks nothing and is left out, and counted in the metrics.

The claim holds when, for every method, deletion beats the random order (lower area),
insertion beats it (higher area), and the mean rank correlation with the randomised model
is below 0.5, each beyond the spread over test images (paired t intervals; the model is
fixed, so the noise is that of the images, not of training seeds).
"""

from __future__ import annotations

import copy
import time

import numpy as np
import torch

from deepatlas.lab.common import pyplot, save, without_fashion_mnist
from deepatlas.lab.registry import Context, Result, experiment
from deepatlas.lab.stats import against, compare, verdict
from deepatlas.trust import explain as ex

PATCH = 4
RANDOM_ORDERS = 5
CORRELATION_LIMIT = 0.5
LABELS = {"shap": "Kernel SHAP", "lime": "LIME", "ig": "Integrated Gradients"}


def randomised(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """A copy of ``model`` with every layer re-initialised (Adebayo's full randomisation)."""
    twin = copy.deepcopy(model)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        for module in twin.modules():
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
            if hasattr(module, "reset_running_stats"):
                module.reset_running_stats()
    return twin.eval()


def probability_of(model: torch.nn.Module, target: int) -> ex.Model:
    def f(images: torch.Tensor) -> torch.Tensor:  # (S, C, H, W) -> (S,)
        return model(images).softmax(1)[:, target]
    return f


@experiment(name="explanations", map_id="7.3", title="Trustworthy AI: explanations",
            claim="LIME, Kernel SHAP and Integrated Gradients find the evidence a classifier "
                  "uses: deleting the patches they rank first lowers its confidence faster "
                  "than a random order, inserting them raises it faster, and their maps "
                  "change when the model's weights are randomised.",
            source="可解释性(LIME、SHAP)",
            implements="deepatlas.trust.explain (exact Shapley, Kernel SHAP, LIME, Integrated "
                       "Gradients; tested against shap and captum), deepatlas explain")
def run(ctx: Context) -> Result:
    from deepatlas.data import load_data
    from deepatlas.models.saved import read_safetensors
    from deepatlas.tasks.gan_quality import bundled_classifier

    absent = without_fashion_mnist("The explained images are Fashion-MNIST's")
    if absent is not None:
        return absent
    data = load_data("fashion-mnist")
    meta, model = read_safetensors(bundled_classifier())
    model = model.float().eval()
    mean = torch.tensor(meta["data"]["mean"]).view(-1, 1, 1)
    std = torch.tensor(meta["data"]["std"]).view(-1, 1, 1)
    count = ctx.size(50, 6, smoke=3)
    checked = ctx.size(20, 3, smoke=3)  # images for the randomisation check (3 at least)
    samples = ctx.size(1000, 200, smoke=64)
    images = (data.test.images[:count].float() / 255 - mean) / std  # (N, 1, 28, 28)
    baseline = (torch.zeros_like(images[0]) - mean) / std
    segments = ex.patch_segments(28, 28, PATCH)
    m = int(segments.max()) + 1
    random_twin = randomised(model, ctx.seed + 1)
    g = torch.Generator().manual_seed(ctx.seed)

    methods = list(LABELS)
    deletion = {k: [] for k in [*methods, "random"]}
    insertion = {k: [] for k in [*methods, "random"]}
    curves = {k: [] for k in [*methods, "random"]}
    correlation = {k: [] for k in methods}
    seconds = {k: 0.0 for k in methods}
    flat = {k: 0 for k in methods}  # images where the randomised network's map is constant
    maps = {}
    with torch.no_grad():
        targets = model(images).argmax(1)
    for i, x in enumerate(images):
        f = probability_of(model, int(targets[i]))
        orders = [torch.randperm(m, generator=g) for _ in range(RANDOM_ORDERS)]
        runs = [ex.deletion_insertion(f, x, baseline, segments, o) for o in orders]
        deletion["random"].append(np.mean([ex.curve_auc(d) for d, _ in runs]))
        insertion["random"].append(np.mean([ex.curve_auc(s) for _, s in runs]))
        curves["random"].append(torch.stack([d for d, _ in runs]).mean(0))
        varying = ex.varying_features(x, baseline, segments)
        for method in methods:
            start = time.perf_counter()
            phi = ex.explain(method, f, x, baseline, segments, samples, generator=g)
            seconds[method] += time.perf_counter() - start
            deleted, inserted = ex.deletion_insertion(f, x, baseline, segments,
                                                      phi.argsort(descending=True))
            deletion[method].append(ex.curve_auc(deleted))
            insertion[method].append(ex.curve_auc(inserted))
            curves[method].append(deleted)
            if i == 0:  # the plotted example
                maps[method] = phi[segments]
            if i < checked:
                f_random = probability_of(random_twin, int(targets[i]))
                phi_random = ex.explain(method, f_random, x, baseline, segments, samples,
                                        generator=g)
                if bool((phi_random[varying] == phi_random[varying][0]).all()):
                    flat[method] += 1  # the random network's map ranks nothing: left out
                    continue
                correlation[method].append(ex.rank_correlation(phi[varying],
                                                               phi_random[varying]))

    metrics: dict[str, float] = {"images": count, "randomisation_images": checked,
                                 "coalitions": samples, "patches": m}
    effects = []
    for method in methods:
        name = LABELS[method]
        effects.append(compare(f"{name} - random order, deletion AUC", deletion[method],
                               deletion["random"], direction="less", unit="images"))
        effects.append(compare(f"{name} - random order, insertion AUC", insertion[method],
                               insertion["random"], unit="images"))
        effects.append(against(f"{name}: rank correlation with a randomised model - "
                               f"{CORRELATION_LIMIT}", correlation[method] or [float("nan")],
                               CORRELATION_LIMIT, direction="less", unit="images"))
        metrics.update({f"{method}_deletion_auc": float(np.mean(deletion[method])),
                        f"{method}_insertion_auc": float(np.mean(insertion[method])),
                        f"{method}_randomised_rank_correlation":
                            float(np.mean(correlation[method])),
                        f"{method}_seconds_per_image": seconds[method] / count,
                        f"{method}_randomised_constant_maps": flat[method]})
    metrics.update(random_deletion_auc=float(np.mean(deletion["random"])),
                   random_insertion_auc=float(np.mean(insertion["random"])))

    plt = pyplot()
    fig, axes = plt.subplots(2, 4, figsize=(10, 5))
    for col, method in enumerate(["image", *methods]):
        ax = axes[0, col]
        picture = (images[0] * std + mean)[0]
        ax.imshow(picture, cmap="gray")
        if method != "image":
            heat = maps[method]
            peak = float(heat.abs().max()) or 1.0
            ax.imshow(heat, cmap="bwr", vmin=-peak, vmax=peak, alpha=0.6)
        ax.set_title(LABELS.get(method, data.classes[int(targets[0])]), fontsize=8)
        ax.axis("off")
    for empty in axes[1]:
        empty.remove()
    ax = fig.add_subplot(2, 1, 2)
    fraction = np.linspace(0, 1, m + 1)
    for method in [*methods, "random"]:
        ax.plot(fraction, torch.stack(curves[method]).mean(0).numpy(),
                label=f"{LABELS.get(method, 'random order')} "
                      f"(AUC {np.mean(deletion[method]):.3f})")
    ax.set_xlabel("fraction of patches deleted (most important first)")
    ax.set_ylabel("probability of the predicted class")
    ax.legend(fontsize=7)
    plot = save(fig, ctx.path("plot.png"))

    status, note = verdict(effects)
    details = (f"On {count} Fashion-MNIST test images (49 patches, {samples} coalitions for "
               "SHAP and LIME), deleting patches in each method's order lowers the predicted "
               "class's probability with an area of " + ", ".join(
                   f"{np.mean(deletion[k]):.3f} ({LABELS[k]})" for k in methods)
               + f" against {np.mean(deletion['random']):.3f} for a random order; rank "
               f"correlation with a randomised network ({checked} images): " + ", ".join(
                   f"{np.mean(correlation[k]):+.2f} ({LABELS[k]})" for k in methods) + ".")
    return Result(metrics, status, details, [plot], effects, [ctx.seed], note=note)
