"""MAP 1.2: representation learning. The hidden layers turn pixels into features that separate
the classes better at every layer.

Holds when the silhouette score of the test digits' classes rises at every layer, from the
pixels to the last hidden layer (an ordering, so no threshold); one trained model, as the claim
is about what a model learns, not about a difference between two methods.
"""

from __future__ import annotations

import torch
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import silhouette_score

from deepatlas.lab.common import PLAIN_RUN, digits_tensors, fit_arms, last_model, pyplot, save
from deepatlas.lab.registry import Context, Result, experiment

# The `digits` recipe's MLP, narrower (64 units), with Adam at a constant rate and the
# recipe's regularisers off: about 1,500 steps of 64 images (600 in the quick tour).
SETTINGS = [*PLAIN_RUN, "model.width=64", "optim.name=adam", "optim.lr=0.002",
            "train.batch_size=64"]


@experiment(name="learned-features", map_id="1.2", title="What the hidden layers learn",
            claim="Trained end to end from raw pixels, each hidden layer gives a representation "
                  "in which the classes are easier to separate.",
            source="表征学习:自动发现数据的内在规律,无需人工设计特征",
            implements="deepatlas.models mlp; scikit-learn PCA, silhouette_score, "
                       "LogisticRegression")
def run(ctx: Context) -> Result:
    _, _, xte, yte = digits_tensors()
    epochs = ctx.size(75, 30, smoke=2)  # 20 steps an epoch
    (test_acc, run_dir), = fit_arms(ctx.out, [ctx.seed], {"mlp": ("digits", [])},
                                    lambda summary, run_dir: (summary["test_acc"], run_dir),
                                    common=[*SETTINGS, f"train.epochs={epochs}"])["mlp"]
    model = last_model(run_dir)

    # Representations of the test images: the pixels, then the output of every hidden layer.
    layers, h = {"pixels": xte}, xte
    with torch.no_grad():
        for module in model.eval().layers[:-1]:  # Flatten, (Linear, activation) x depth-1
            h = module(h)
            if not isinstance(module, (torch.nn.Linear, torch.nn.Flatten)):
                layers[f"hidden {len(layers)}"] = h.clone()
    half = len(xte) // 2
    scores, probes = {}, {}
    for name, feats in layers.items():
        f = feats.numpy()
        scores[name] = float(silhouette_score(f, yte.numpy()))
        probe = LogisticRegression(max_iter=2000).fit(f[:half], yte[:half].numpy())
        probes[name] = float(probe.score(f[half:], yte[half:].numpy()))

    plt = pyplot()
    names = list(layers)
    fig = plt.figure(figsize=(3 * (len(names) + 1), 3))
    outer = fig.add_gridspec(1, len(names) + 1)
    weights = next(m for m in model.modules() if isinstance(m, torch.nn.Linear)).weight
    grid = weights[:16].detach().view(16, 8, 8)
    tiles = outer[0].subgridspec(4, 4, wspace=0.15, hspace=0.15)
    for i in range(16):  # each filter its own tile, on its own symmetric colour scale
        ax = fig.add_subplot(tiles[i // 4, i % 4])
        w = grid[i].numpy()
        ax.imshow(w, cmap="RdBu", vmin=-abs(w).max(), vmax=abs(w).max())
        ax.set_xticks([])
        ax.set_yticks([])
        if i == 1:
            ax.set_title("16 first-layer filters", loc="left", fontsize=9)
    axes = [None] + [fig.add_subplot(outer[i + 1]) for i in range(len(names))]
    for ax, name in zip(axes[1:], names):
        xy = PCA(2, random_state=0).fit_transform(layers[name].numpy())
        ax.scatter(xy[:, 0], xy[:, 1], c=yte.numpy(), cmap="tab10", s=5)
        ax.set_title(f"{name}: silhouette {scores[name]:.2f}")
        ax.set_xticks([])
        ax.set_yticks([])
    plot = save(fig, ctx.path("plot.png"))

    rising = all(scores[b] > scores[a] for a, b in zip(names, names[1:]))
    metrics = {f"silhouette_{n.replace(' ', '_')}": s for n, s in scores.items()}
    metrics.update({f"linear_probe_{n.replace(' ', '_')}": p for n, p in probes.items()})
    metrics["test_acc"] = test_acc
    return Result(metrics, "holds" if rising else "does not hold at this scale",
                  "Silhouette score of the test digits' classes: "
                  + ", ".join(f"{n} {s:.3f}" for n, s in scores.items())
                  + f"; a linear probe reads {probes[names[0]]:.1%} from the pixels and "
                  f"{probes[names[-1]]:.1%} from the last hidden layer.", [plot])
