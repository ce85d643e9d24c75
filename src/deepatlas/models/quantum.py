"""MAP 7.5: a variational quantum classifier, and the classical model it is measured against.

Both read an image through the same fixed front end, :class:`PCAFeatures`: the image's
projection on the first ``k`` principal components of the training images, standardised
(z = (P (x - mu)) / sigma). The quantum model then encodes feature i as the angle of qubit i,
theta_i = pi sigmoid(z_i) in (0, pi) (angle encoding, RY(theta_i) |0>: one-to-one on the
Bloch sphere's meridian, where RY(z_i) would wrap around), and runs ``layers`` layers of
trainable rotations, RY(a) then RZ(b) on every qubit, followed by a ring of CNOTs (the
hardware-efficient ansatz of Kandala et al. 2017). Class k reads out <Z_k>:
logit_k = s <Z_k> + c_k, with one learned scale s, because an expectation lies in [-1, 1] and
cross-entropy needs logits of either sign and any size.

Its trainable rotations start near zero (N(0, 0.1^2)), so the untrained circuit is close to
the identity: Grant et al. (2019) start so to keep away from the barren plateaus that random
deep circuits fall on (measured in ``deepatlas lab run quantum-circuits``).
"""

from __future__ import annotations

import torch
from torch import nn

from deepatlas.errors import UserError
from deepatlas.models.registry import register_model
from deepatlas.nn import quantum as q


class PCAFeatures(nn.Module):
    """x (B, C, H, W) -> z (B, k): the first ``k`` principal components, standardised.

    ``fit_to_data`` fits it once, before training, to a batch of training images (the
    Trainer's first batch); the components are buffers, saved in every checkpoint, never
    trained. The components are the right singular vectors of the centred batch, as
    scikit-learn's PCA computes them (its sign convention included: the entry of largest
    magnitude of each component is positive)."""

    def __init__(self, in_features: int, components: int) -> None:
        super().__init__()
        if components > in_features:
            raise UserError(f"{components} principal components of {in_features} features: "
                            f"use at most {in_features}")
        self.register_buffer("mean", torch.zeros(in_features))
        self.register_buffer("components", torch.eye(components, in_features))
        self.register_buffer("scale", torch.ones(components))

    @torch.no_grad()
    def fit_to_data(self, x: torch.Tensor) -> None:
        flat = x.flatten(1).to(self.mean.dtype)  # (N, D)
        if len(flat) <= len(self.scale):
            raise UserError(f"PCA of {len(self.scale)} components needs more than "
                            f"{len(self.scale)} training images in a batch, got {len(flat)}")
        mean = flat.mean(0)
        _, _, vh = torch.linalg.svd(flat - mean, full_matrices=False)  # rows: components
        vh = vh[: len(self.scale)]
        signs = torch.sign(vh.gather(1, vh.abs().argmax(1, keepdim=True)))  # svd_flip
        vh = vh * signs
        projected = (flat - mean) @ vh.T  # (N, k)
        self.mean.copy_(mean)
        self.components.copy_(vh)
        self.scale.copy_(projected.std(0).clamp_min(1e-6))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        centred = x.flatten(1).to(self.mean.dtype) - self.mean  # (B, D)
        return (centred @ self.components.T) / self.scale  # (B, k)


class VariationalClassifier(nn.Module):
    """Angle encoding, ``layers`` x [RY RZ on every qubit, CNOT ring], readout <Z_k>."""

    def __init__(self, in_features: int, num_classes: int, qubits: int = 8,
                 layers: int = 4) -> None:
        super().__init__()
        if num_classes > qubits:
            raise UserError(f"{num_classes} classes need at least {num_classes} qubits (one "
                            f"<Z> readout each); set model.qubits={num_classes} or more")
        q.check_register(qubits)
        self.qubits = qubits
        self.features = PCAFeatures(in_features, qubits)
        self.weights = nn.Parameter(0.1 * torch.randn(layers, qubits, 2))  # (L, n, [a, b])
        self.scale = nn.Parameter(torch.tensor(3.0))
        self.bias = nn.Parameter(torch.zeros(num_classes))
        self.num_classes = num_classes

    def fit_to_data(self, x: torch.Tensor) -> None:
        self.features.fit_to_data(x)

    def expectations(self, angles: torch.Tensor, weights: torch.Tensor | None = None,
                     dtype: torch.dtype = torch.complex64) -> torch.Tensor:
        """<Z_k> for k < num_classes after encoding ``angles`` (B, n): (B, K)."""
        weights = self.weights if weights is None else weights
        n = self.qubits
        gates = n + len(weights) * 2 * n  # encodings, rotations, CNOTs: autograd keeps each
        states = gates + 2 if torch.is_grad_enabled() else q.STATE_COPIES
        state = q.zero_state(len(angles), n, dtype, angles.device, states)
        for wire in range(n):
            state = q.apply_gate(state, q.ry(angles[:, wire], dtype), wire)  # RY(z_i) |0>
        for layer in weights:  # (n, 2)
            rotations = q.rz(layer[:, 1], dtype) @ q.ry(layer[:, 0], dtype)  # (n, 2, 2)
            for wire in range(n):  # RY(a), then RZ(b): one matrix RZ RY, one pass
                state = q.apply_gate(state, rotations[wire], wire)
            for wire in range(n if n > 2 else n - 1):  # the ring: 0->1, ..., (n-1)->0
                state = q.cnot(state, wire, (wire + 1) % n)
        return torch.stack([q.expval_z(state, k) for k in range(self.num_classes)], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        angles = torch.pi * torch.sigmoid(self.features(x))  # (B, n), in (0, pi)
        return self.scale * self.expectations(angles) + self.bias  # (B, K)


class PCAClassifier(nn.Module):
    """The classical peer: the same PCA front end, then Linear -> tanh -> Linear."""

    def __init__(self, in_features: int, num_classes: int, components: int = 8,
                 hidden: int = 6) -> None:
        super().__init__()
        self.features = PCAFeatures(in_features, components)
        self.head = nn.Sequential(nn.Linear(components, hidden), nn.Tanh(),
                                  nn.Linear(hidden, num_classes))

    def fit_to_data(self, x: torch.Tensor) -> None:
        self.features.fit_to_data(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))  # (B, K)


@register_model
def vqc(*, in_channels: int = 1, image_size: int = 28, num_classes: int = 2, qubits: int = 8,
        layers: int = 4) -> nn.Module:
    """A variational quantum classifier on ``qubits`` PCA features, simulated exactly
    (MAP 7.5); 2 n L + 1 + K trainable parameters."""
    return VariationalClassifier(in_channels * image_size * image_size, num_classes, qubits,
                                 layers)


@register_model
def pca_mlp(*, in_channels: int = 1, image_size: int = 28, num_classes: int = 2,
            components: int = 8, hidden: int = 6) -> nn.Module:
    """The classical peer of ``vqc``: its PCA features, one tanh layer of ``hidden`` units;
    (k + 1) h + (h + 1) K parameters (k = 8, h = 6, K = 2: 68, against vqc's 67)."""
    return PCAClassifier(in_channels * image_size * image_size, num_classes, components, hidden)
