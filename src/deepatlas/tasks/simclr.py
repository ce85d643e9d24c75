"""Self-supervised learning (MAP 7.4): ``task = "simclr"``, SimCLR (Chen et al. 2020).

Each batch of images, labels unused, becomes two views (random resized crop, flip,
brightness and contrast: :func:`deepatlas.data.augment.simclr_views`); the encoder and its
projection head map both to z, and NT-Xent pulls each image's two views together against
the other 2N - 2 (:func:`deepatlas.losses.nt_xent`)::

    L = mean over the 2N anchors of -log softmax_k(sim(z_i, z_k) / tau)[positive of i]

The labels come in only to evaluate the frozen representation h = f(x):

- **kNN** (k = ``simclr.knn_k``, cosine): validation images against the training images;
  monitored, so best.pt is the epoch with the best validation kNN accuracy;
- **linear probe** (scikit-learn ``LogisticRegression`` on standardised h, C = 1, fixed
  rather than tuned): trained on every training label, and on the first 1% and 10% of them
  (the same images ``data.train_examples`` gives a supervised run), tested on the test set.

Under torchrun the projections of every process are gathered
(:func:`deepatlas.train.distributed.all_gather_with_grad`), so each anchor has the paper's
2B - 2 negatives of the global batch B; BatchNorm still normalises each process's own views,
where the paper synchronises it across devices.

Evaluation costs a pass over every image and three probe fits: recipes evaluate at the end
only (``train.eval_every = 0``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from deepatlas.data import ImageData, load_data, make_loader
from deepatlas.data.augment import simclr_views
from deepatlas.data.load import keep_train_examples, labelled_subset
from deepatlas.data.loaders import InMemoryLoader
from deepatlas.data.source import TensorSplit
from deepatlas.errors import UserError
from deepatlas.losses import nt_xent
from deepatlas.models import create_model
from deepatlas.train import Context, StepOutput, Task
from deepatlas.train.distributed import DistEnv, all_gather_with_grad

LABEL_FRACTIONS = (0.01, 0.1)  # the label-efficiency probes: 1% and 10% of the labels


@torch.no_grad()
def encode(model: nn.Module, loader, device: torch.device) -> tuple[np.ndarray, np.ndarray]:
    """The representation h = f(x) of every image a loader gives: (N, D) and labels (N,)."""
    model.eval()
    features, labels = [], []
    for x, y in loader:
        features.append(model.features(x.to(device)).float().cpu())
        labels.append(y.cpu())
    return torch.cat(features).numpy(), torch.cat(labels).numpy()


def knn_accuracy(bank: np.ndarray, bank_labels: np.ndarray, query: np.ndarray,
                 query_labels: np.ndarray, k: int = 20) -> float:
    """Accuracy of a k-nearest-neighbour vote (cosine distance) of ``query`` in ``bank``."""
    from sklearn.neighbors import KNeighborsClassifier

    knn = KNeighborsClassifier(n_neighbors=min(k, len(bank)), metric="cosine")
    return float(knn.fit(bank, bank_labels).score(query, query_labels))


def fit_probe(train: np.ndarray, train_labels: np.ndarray):
    """A logistic regression (C = 1) on standardised frozen features, fitted."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    probe = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
    return probe.fit(train, train_labels)


def linear_probe(train: np.ndarray, train_labels: np.ndarray, test: np.ndarray,
                 test_labels: np.ndarray) -> float:
    """Test accuracy of :func:`fit_probe`'s logistic regression."""
    return float(fit_probe(train, train_labels).score(test, test_labels))


def probe_fractions(features: dict[str, tuple[np.ndarray, np.ndarray]],
                    label_order: np.ndarray, full_train: int) -> dict[str, float]:
    """Linear-probe test accuracy with every training label, and with the first ``label_order``
    images making up 1% and 10% of ``full_train`` (a share the training split cannot hold,
    or with one class only, is left out)."""
    train_x, train_y = features["train"]
    test_x, test_y = features["test"]
    out = {"test_probe_acc": linear_probe(train_x, train_y, test_x, test_y)}
    for fraction in LABEL_FRACTIONS:
        index = label_order[:round(fraction * full_train)]
        if round(fraction * full_train) > len(label_order) or len(set(train_y[index])) < 2:
            continue
        out[f"test_probe_acc_{fraction:g}"] = linear_probe(train_x[index], train_y[index],
                                                           test_x, test_y)
    return out


def gathered_nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float,
                     env: DistEnv) -> torch.Tensor:
    """NT-Xent of this process's views (B, P) against every process's: under torchrun the
    mean over processes is the loss of the whole global batch; on one process, nt_xent."""
    if not env.enabled:
        return nt_xent(z1, z2, temperature)
    return nt_xent(z1, z2, temperature, all_gather_with_grad(z1, env),
                   all_gather_with_grad(z2, env), env.rank)


class SimCLR(Task):
    name = "simclr"
    uses = {"data.image_size", "data.val_fraction", "data.train_examples",
            "train.eval_batch_size", "train.channels_last", "simclr.*"}
    monitor = ("val_knn_acc", "max")
    primary = "test_probe_acc"
    image_task = True

    def setup(self, ctx: Context) -> None:
        cfg, self.ctx = self.config, ctx
        self.data: ImageData = load_data(cfg.data.name, data_dir=cfg.data.dir,
                                         download=cfg.data.download,
                                         image_size=cfg.data.image_size,
                                         val_fraction=cfg.data.val_fraction)
        if not isinstance(self.data.train, TensorSplit):
            raise UserError(f"task simclr needs an in-memory data set (MNIST, Fashion-MNIST, "
                            f"CIFAR, digits), not the streamed {cfg.data.name}")
        if self.data.val is None:
            self.monitor = None
        # The probes' labelled images are those a supervised run with data.train_examples
        # trains on: the beginning of one fixed order of the training split.
        self.full_train = len(self.data.train) + (len(self.data.val) if self.data.val else 0)
        if cfg.data.train_examples:  # pre-train on the beginning of that order only
            keep_train_examples(self.data, cfg.data.train_examples, cfg.data.name)
            self.label_order = np.arange(cfg.data.train_examples)
        else:
            self.label_order = labelled_subset(len(self.data.train),
                                               len(self.data.train)).numpy()
        per_rank = cfg.train.batch_size // ctx.dist.world_size
        self.train_loader = make_loader(self.data, "train", per_rank, device=ctx.device,
                                        seed=cfg.seed, rank=ctx.dist.rank,
                                        world_size=ctx.dist.world_size)
        if len(self.train_loader) == 0:
            raise UserError(f"train.batch_size={cfg.train.batch_size} is larger than the "
                            f"{len(self.data.train)} training images; lower it")
        options = {k: v for k, v in cfg.model.items() if k != "name"}
        model = create_model(cfg.model["name"], in_channels=self.data.in_channels,
                             image_size=self.data.image_size,
                             num_classes=len(self.data.classes), **options)
        if not hasattr(model, "features"):
            raise UserError(f"task simclr needs a model with an encoder and a projection "
                            f"head (simclr-resnet), not {cfg.model['name']!r}")
        self.models = {"model": model.to(ctx.device, memory_format=ctx.memory_format)}
        self.mean = torch.tensor(self.data.mean, device=ctx.device).view(1, -1, 1, 1)
        self.std = torch.tensor(self.data.std, device=ctx.device).view(1, -1, 1, 1)

    def _views(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # Seeded by the step, so a resumed run draws the views an unbroken one would.
        g = torch.Generator(x.device).manual_seed(
            self.config.seed * 1_000_003 + self.step * 101 + self.ctx.dist.rank)
        cfg = self.config.simclr
        return (simclr_views(x, self.mean, self.std, g, cfg.min_scale),
                simclr_views(x, self.mean, self.std, g, cfg.min_scale))

    def training_step(self, batch: Any, group: str) -> StepOutput:
        x, _ = batch  # (B, C, H, W); the labels are not used
        v1, v2 = self._views(x)
        if self.ctx.memory_format == torch.channels_last:
            v1, v2 = (v.contiguous(memory_format=torch.channels_last) for v in (v1, v2))
        with self.ctx.autocast():
            z = self.train_models["model"](torch.cat([v1, v2]))  # (2B, P): one BN batch
        z1, z2 = z.float().chunk(2)
        loss = gathered_nt_xent(z1, z2, self.config.simclr.temperature, self.ctx.dist)
        with torch.no_grad():  # is each view's nearest other view its twin?
            zn = nn.functional.normalize(z.float(), dim=1)
            sim = (zn @ zn.T).fill_diagonal_(-2)
            n = len(z1)
            twin = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)
            acc = (sim.argmax(1) == twin).float().mean()
        return StepOutput(loss, {"loss": loss.detach(), "pair_acc": acc}, n=len(x))

    def _loader(self, split: str):
        if split == "train":  # in order and unaugmented: the kNN bank and the probe's data
            return InMemoryLoader(self.data.train, self.config.train.eval_batch_size,
                                  train=False, augment="none", mean=self.data.mean,
                                  std=self.data.std, device=self.ctx.device)
        return make_loader(self.data, split, self.config.train.eval_batch_size,
                           device=self.ctx.device)

    def evaluate(self, models: dict[str, nn.Module]) -> dict[str, float]:
        model, cfg = models["model"], self.config.simclr
        splits = ["train", "test"] + (["val"] if self.data.val is not None else [])
        features = {s: encode(model, self._loader(s), self.ctx.device) for s in splits}
        bank = features["train"]
        out = {f"{s}_knn_acc": knn_accuracy(*bank, *features[s], k=cfg.knn_k)
               for s in splits if s != "train"}
        out.update(probe_fractions(features, self.label_order, self.full_train))
        return out

    def describe_data(self) -> dict[str, Any]:
        return {"name": self.data.name, "classes": self.data.classes,
                "in_channels": self.data.in_channels, "image_size": self.data.image_size,
                "mean": list(self.data.mean), "std": list(self.data.std)}

    def data_summary(self) -> dict[str, Any]:
        return {"name": self.data.name, "source": self.data.source,
                "train": len(self.data.train), "test": len(self.data.test),
                "val": len(self.data.val) if self.data.val is not None else 0,
                "val_fraction": self.config.data.val_fraction}


def evaluate_untrained(config, device: str = "auto") -> dict[str, float]:
    """The evaluation of a run of ``config`` that never trained: a random-init encoder's kNN
    and probe accuracies, the floor a pre-trained one is measured against."""
    from pathlib import Path

    from deepatlas.train.distributed import DistEnv, resolve_device

    dev = resolve_device(device)
    torch.manual_seed(config.seed)  # one fixed draw of random weights per seed
    task = SimCLR(config)
    task.setup(Context(config, dev, DistEnv(), None, torch.contiguous_format, Path(".")))
    return task.evaluate(task.models)
