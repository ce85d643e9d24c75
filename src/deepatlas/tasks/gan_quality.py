"""How good are a GAN's samples (MAP 4.3)? A Frechet distance and a mode-collapse check, both in
the feature space of deepatlas's own classifier.

Frechet distance between Gaussians fitted to two sets of features (Heusel et al. 2017)::

    FD = ||mu_r - mu_g||^2 + Tr(S_r + S_g - 2 (S_r S_g)^(1/2))

This is *not* the Inception FID that papers report: the features are the 128-d pooled
features of a ResNet-8 trained on Fashion-MNIST (``assets/fashion-mnist-classifier
.safetensors``), not Inception-v3's 2048-d ImageNet features, which would need a download
and upsampling 28 px clothes to 299 px. The numbers are comparable between deepatlas runs
and only between them. The class check: the classifier labels every sample; a generator that
collapses onto a few modes gives a peaked class histogram (low entropy, few classes covered).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from deepatlas.errors import UserError

FASHION_CLASSIFIER = "fashion-mnist-classifier.safetensors"


def frechet_distance(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor) -> float:
    """FD between Gaussians fitted to feature sets ``a`` (N, D) and ``b`` (M, D)."""
    a, b = (np.asarray(t, dtype=np.float64) for t in (a, b))
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    # Tr((S_a S_b)^(1/2)) = Tr((S_a^(1/2) S_b S_a^(1/2))^(1/2)): the right side is a symmetric
    # PSD matrix, so eigh gives it stably even when the features have dead (zero) directions,
    # where the general matrix square root of S_a S_b warns and loses precision.
    w, v = np.linalg.eigh(cov_a)
    root_a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    inner = np.linalg.eigvalsh(root_a @ cov_b @ root_a)
    trace_root = np.sqrt(np.clip(inner, 0, None)).sum()
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_root)


def class_coverage(probs: torch.Tensor) -> dict[str, float]:
    """Mode-collapse indicators from predicted class probabilities (N, K): the entropy of the
    predicted-class histogram over log K (1 = every class equally often), and how many classes
    receive at least half their fair share (N / 2K) of the samples."""
    n, k = probs.shape
    counts = torch.bincount(probs.argmax(1), minlength=k).double()
    share = counts / n
    entropy = -(share[share > 0] * share[share > 0].log()).sum().item()
    return {"class_entropy": float(entropy / np.log(k)),
            "classes_covered": int((counts >= n / (2 * k)).sum()), "num_classes": k}


class FeatureJudge:
    """A trained classifier used as a ruler: pooled features and class probabilities for
    images in [-1, 1], resized to what the classifier was trained on."""

    def __init__(self, model: nn.Module, meta: dict[str, Any], device: torch.device) -> None:
        self.model = model.to(device).eval()
        self.device = device
        self.size = meta["image_size"]
        self.mean = torch.tensor(meta["mean"], device=device).view(1, -1, 1, 1)
        self.std = torch.tensor(meta["std"], device=device).view(1, -1, 1, 1)
        heads = [m for m in self.model.modules() if isinstance(m, nn.Linear)]
        if not heads:
            raise UserError("the judging classifier needs a final nn.Linear layer")
        self._features: torch.Tensor | None = None
        heads[-1].register_forward_hook(self._keep_input)

    def _keep_input(self, module, inputs, output) -> None:
        self._features = inputs[0].detach()

    @torch.inference_mode()
    def __call__(self, images: torch.Tensor, batch: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
        """(features (N, D), probabilities (N, K)) for images (N, C, H, W) in [-1, 1]."""
        feats, probs = [], []
        for chunk in images.split(batch):
            x = (chunk.to(self.device).float() + 1) / 2  # back to 0..1
            x = fit_size(x, self.size)
            logits = self.model((x - self.mean) / self.std)  # (B, K)
            feats.append(self._features.float().cpu())
            probs.append(logits.float().softmax(1).cpu())
        return torch.cat(feats), torch.cat(probs)


def fit_size(x: torch.Tensor, size: int) -> torch.Tensor:
    """Centre-crop padding away (32 -> 28) or resize (32 -> 8) to ``size`` px."""
    h = x.shape[-1]
    if h == size:
        return x
    if h > size and h - size <= 4:
        top = (h - size) // 2
        return x[..., top:top + size, top:top + size]
    return F.interpolate(x, size=(size, size), mode="area" if h > size else "bilinear")


def bundled_classifier() -> Path:
    path = Path(str(resources.files("deepatlas.assets").joinpath(FASHION_CLASSIFIER)))
    if not path.is_file():
        raise UserError(f"{path} is missing; rebuild it with: deepatlas train fashion-mnist "
                        f"--out runs/fd-classifier && deepatlas export runs/fd-classifier "
                        f"--format safetensors --out {path}")
    return path


def load_judge(classifier: str, device: torch.device) -> FeatureJudge:
    """The classifier that judges samples: a run directory, a checkpoint or a
    ``deepatlas export --format safetensors`` file of an image classifier."""
    from deepatlas.models.saved import model_from_checkpoint, read_safetensors
    from deepatlas.train.checkpoint import find_checkpoint, load_checkpoint

    path = find_checkpoint(classifier)
    if path.suffix == ".safetensors":
        meta, model = read_safetensors(path)
    else:
        meta = load_checkpoint(path)
        model = model_from_checkpoint(meta, "train gan-* (gan.classifier)")
    return FeatureJudge(model, meta["data"], device)
