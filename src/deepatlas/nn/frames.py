"""Rigid frames and structure geometry (MAP 6.3; AlphaFold 2, Jumper et al. 2021, Supplementary
Information 1.8, and its Methods).

A frame ``T = (R, t)`` maps local coordinates to global ones, ``T ∘ x = R x + t``; AlphaFold 2
gives every residue one (its backbone frame) and predicts frames rather than coordinates. Here:
building frames (Alg 21), superposition (Kabsch), and the scores AF2 reports and trains on:
r.m.s.d., r.m.s.d.95, lDDT-Cα and FAPE (Alg 28). Lengths are in the input's unit (Å).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Rigid:
    """``T = (R, t)``: rotation (..., 3, 3) and translation (..., 3), ``T ∘ x = R x + t``."""

    rotation: torch.Tensor  # (..., 3, 3)
    translation: torch.Tensor  # (..., 3)

    @classmethod
    def identity(cls, shape: tuple[int, ...] = (), dtype: torch.dtype | None = None,
                 device: torch.device | None = None) -> Rigid:
        rot = torch.eye(3, dtype=dtype, device=device).expand(*shape, 3, 3)
        return cls(rot, torch.zeros(*shape, 3, dtype=dtype, device=device))

    def compose(self, other: Rigid) -> Rigid:
        """``T1 ∘ T2 = (R1 R2, R1 t2 + t1)``: apply ``other`` first, then ``self``."""
        return Rigid(self.rotation @ other.rotation, self.apply(other.translation))

    def apply(self, points: torch.Tensor) -> torch.Tensor:
        """``R x + t`` for points (..., 3) broadcastable against the frames."""
        return (self.rotation @ points[..., None])[..., 0] + self.translation

    def invert_apply(self, points: torch.Tensor) -> torch.Tensor:
        """``T^-1 ∘ x = R^T (x - t)``: global points into the frame's local coordinates."""
        return (self.rotation.transpose(-1, -2) @ (points - self.translation)[..., None])[..., 0]

    def invert(self) -> Rigid:
        """``T^-1 = (R^T, -R^T t)``; a rotation's inverse is its transpose."""
        rot_t = self.rotation.transpose(-1, -2)
        return Rigid(rot_t, -(rot_t @ self.translation[..., None])[..., 0])

    def unsqueeze(self, dim: int) -> Rigid:
        """Insert a batch dimension (``dim`` counts batch dims only), for broadcasting frames
        against several points each."""
        return Rigid(self.rotation.unsqueeze(dim if dim >= 0 else dim - 2),
                     self.translation.unsqueeze(dim if dim >= 0 else dim - 1))


def frames_from_three_points(x1: torch.Tensor, x2: torch.Tensor, x3: torch.Tensor,
                             eps: float = 1e-8) -> Rigid:
    """AF2 Algorithm 21, rigidFrom3Points (Gram-Schmidt), points (..., 3)::

        v1 = x3 - x2,  v2 = x1 - x2
        e1 = v1 / |v1|,  u2 = v2 - e1 (e1 . v2),  e2 = u2 / |u2|,  e3 = e1 x e2
        R = [e1 e2 e3] (columns),  t = x2

    Called with (N, Cα, C) it gives the backbone frame: origin at Cα, C on the +x axis, N in
    the xy plane at y > 0. (AF2's released code, ``r3.rigids_from_3_points``, puts N on the -x
    axis and C in the xy plane instead; only the convention differs.)
    """
    v1, v2 = x3 - x2, x1 - x2  # (..., 3)
    # clamp rather than add eps: exactly unit vectors, yet no division by zero
    e1 = v1 / v1.norm(dim=-1, keepdim=True).clamp(min=eps)
    u2 = v2 - e1 * (e1 * v2).sum(-1, keepdim=True)
    e2 = u2 / u2.norm(dim=-1, keepdim=True).clamp(min=eps)
    e3 = torch.linalg.cross(e1, e2, dim=-1)
    return Rigid(torch.stack([e1, e2, e3], dim=-1), x2)  # (..., 3, 3): e_k is column k


def kabsch(mobile: torch.Tensor, target: torch.Tensor,
           weights: torch.Tensor | None = None) -> Rigid:
    """The rigid ``T`` minimising ``sum_n w_n |T ∘ mobile_n - target_n|^2`` (Kabsch 1976), for
    point sets (..., N, 3) and optional weights (..., N)::

        H = sum_n w_n (p_n - p̄)(q_n - q̄)^T = U S V^T
        R = V diag(1, 1, d) U^T,  d = sign det(V U^T),  t = q̄ - R p̄

    (p̄, q̄ the weighted centroids). ``d`` keeps ``R`` a proper rotation: without it the best
    orthogonal fit to a mirrored set would be a reflection, which no rigid motion can do.
    """
    if weights is None:
        weights = torch.ones(mobile.shape[:-1], dtype=mobile.dtype, device=mobile.device)
    w = (weights / weights.sum(-1, keepdim=True))[..., None]  # (..., N, 1)
    p_bar, q_bar = (w * mobile).sum(-2), (w * target).sum(-2)  # (..., 3)
    p, q = mobile - p_bar[..., None, :], target - q_bar[..., None, :]  # (..., N, 3)
    h = (w * p).transpose(-1, -2) @ q  # (..., 3, 3)
    u, _, vh = torch.linalg.svd(h)
    v = vh.transpose(-1, -2)
    d = torch.linalg.det(v @ u.transpose(-1, -2))  # (...,): +1 or -1
    diag = torch.ones(*d.shape, 3, dtype=d.dtype, device=d.device)
    diag[..., 2] = torch.where(d < 0, -1.0, 1.0)
    rot = v @ (diag[..., None] * u.transpose(-1, -2))  # V diag(1, 1, d) U^T
    return Rigid(rot, q_bar - (rot @ p_bar[..., None])[..., 0])


def rmsd(pred: torch.Tensor, true: torch.Tensor, superpose: bool = True) -> torch.Tensor:
    """``sqrt(mean_n |T ∘ pred_n - true_n|^2)`` for (..., N, 3), with T the Kabsch fit of
    ``pred`` onto ``true`` (identity when ``superpose`` is False). Returns (...)."""
    if superpose:
        pred = kabsch(pred, true).unsqueeze(-1).apply(pred)  # one fit for all N points
    return ((pred - true) ** 2).sum(-1).mean(-1).sqrt()


def rmsd95(pred: torch.Tensor, true: torch.Tensor, coverage: float = 0.95,
           iterations: int = 5) -> torch.Tensor:
    """AlphaFold 2's r.m.s.d.95, Cα r.m.s.d. at 95% coverage, for Cα sets (..., N, 3).

    Jumper et al. 2021, Methods ("Metrics"): "We perform five iterations of (1) a least-squares
    alignment of the predicted structure and the PDB structure on the currently chosen Cα atoms
    (using all Cα atoms in the first iteration); (2) selecting the 95% of Cα atoms with the
    lowest alignment error. The r.m.s.d. of the atoms chosen for the final iterations is the
    r.m.s.d.95."

    Here the kept set has ``ceil(0.95 N)`` atoms, and its r.m.s.d. is taken after one last
    least-squares fit on that set. Iterating stops early once the set no longer changes (a fixed
    point: further iterations would repeat it). Each step can only lower the kept set's r.m.s.d.,
    so ``rmsd95 <= rmsd``. Returns (...).
    """
    n = pred.shape[-2]
    keep = max(1, math.ceil(round(coverage * n, 9)))  # round: 0.95 * n can land just above k
    chosen = torch.ones(pred.shape[:-1], dtype=pred.dtype, device=pred.device)  # (..., N)
    for _ in range(iterations):
        moved = kabsch(pred, true, chosen).unsqueeze(-1).apply(pred)
        error = ((moved - true) ** 2).sum(-1)  # (..., N)
        best = error.topk(keep, dim=-1, largest=False).indices
        new = torch.zeros_like(chosen).scatter(-1, best, 1.0)
        if torch.equal(new, chosen):
            break
        chosen = new
    moved = kabsch(pred, true, chosen).unsqueeze(-1).apply(pred)
    return ((chosen * ((moved - true) ** 2).sum(-1)).sum(-1) / keep).sqrt()


def lddt_ca(pred: torch.Tensor, true: torch.Tensor, cutoff: float = 15.0,
            thresholds: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0),
            per_residue: bool = False) -> torch.Tensor:
    """lDDT on Cα atoms (Mariani et al. 2013) for (..., N, 3); superposition-free.

    Scored pairs: ``i != j`` with ``d_true(i, j) < cutoff`` (in the true structure only). Each
    scores ``s_ij = mean_k [|d_pred(i, j) - d_true(i, j)| < threshold_k]``. Per residue,
    ``lDDT_i = sum_j s_ij / #{j}`` (..., N); globally, pooled over all scored pairs,
    ``lDDT = sum_ij s_ij / #{ij}`` (...), as AF2's ``lddt.py`` (and openfold's ``lddt``) does: not
    the mean of the per-residue scores, which weighs residues with few neighbours up. Like there,
    the physical-plausibility terms of the original lDDT are left out, and a residue with no
    scored pair gets 1.
    """
    def distances(x: torch.Tensor) -> torch.Tensor:  # (..., N, 3) -> (..., N, N)
        return (x[..., :, None, :] - x[..., None, :, :]).norm(dim=-1)

    d_true, d_pred = distances(true), distances(pred)
    n = true.shape[-2]
    scored = (d_true < cutoff) & ~torch.eye(n, dtype=torch.bool, device=true.device)
    error = (d_pred - d_true).abs()[..., None]  # (..., N, N, 1)
    limits = torch.tensor(thresholds, dtype=error.dtype, device=error.device)
    score = (error < limits).to(true.dtype).mean(-1) * scored  # (..., N, N)
    axes = (-1,) if per_residue else (-2, -1)
    total, count = score.sum(axes), scored.to(true.dtype).sum(axes)
    return torch.where(count > 0, total / count.clamp(min=1), torch.ones_like(total))


def fape(pred_frames: Rigid, pred_points: torch.Tensor, true_frames: Rigid,
         true_points: torch.Tensor, clamp: float | None = 10.0, length_scale: float = 10.0,
         eps: float = 1e-4) -> torch.Tensor:
    """AF2 Algorithm 28, Frame Aligned Point Error, for frames (..., F) and points (..., P, 3)::

        x_ij = T_i^-1 ∘ x_j  (each point seen from each frame, in both structures)
        d_ij = sqrt(|x_ij(pred) - x_ij(true)|^2 + eps)
        FAPE = mean_ij min(d_ij, clamp) / length_scale

    Invariant to any global rigid motion of either structure, since ``(G T)^-1 ∘ (G x) = T^-1 ∘
    x``; but not to a mirror image, whose frames (right-handed by Alg 21) see the mirrored
    points with z flipped. ``eps`` (Å²) keeps the gradient finite at d = 0; ``clamp`` None
    leaves it unclamped. Returns (...).
    """
    def local(frames: Rigid, points: torch.Tensor) -> torch.Tensor:  # (..., F, P, 3)
        return frames.unsqueeze(-1).invert_apply(points[..., None, :, :])

    diff = local(pred_frames, pred_points) - local(true_frames, true_points)
    d = ((diff ** 2).sum(-1) + eps).sqrt()  # (..., F, P)
    if clamp is not None:
        d = d.clamp(max=clamp)
    return d.mean((-2, -1)) / length_scale
