"""Invariant Point Attention (MAP 6.3; AlphaFold 2, Jumper et al. 2021, Supplementary
Information 1.8.2, Algorithm 22).

Attention over residues that also sees their 3-D frames ``T_i = (R_i, t_i)``: each residue
emits query, key and value *points* in its local frame; they are compared and averaged in the
global frame, and the averaged value points are brought back into the residue's own frame.
Moving every frame by one global rigid motion leaves the output unchanged, so the structure
module never has to learn where the protein sits or how it is turned.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from deepatlas.nn.frames import Rigid


class InvariantPointAttention(nn.Module):
    """AF2 Algorithm 22, for single representation s (..., L, c_s), pair representation
    z (..., L, L, c_z) and frames T (rotation (..., L, 3, 3), translation (..., L, 3))::

        q_i^h, k_i^h, v_i^h = LinearNoBias(s_i)              (c_hidden each)
        q_i^hp, k_i^hp      = LinearNoBias(s_i)              (query_points of R^3 each)
        v_i^hp              = LinearNoBias(s_i)              (value_points of R^3)
        b_ij^h              = LinearNoBias(z_ij)
        a_ij^h = softmax_j( w_L ( q_i^h . k_j^h / sqrt(c_hidden) + b_ij^h
                   - γ^h w_C / 2 sum_p |T_i ∘ q_i^hp - T_j ∘ k_j^hp|^2 ) )
        õ_i^h  = sum_j a_ij^h z_ij,       o_i^h = sum_j a_ij^h v_j^h
        o_i^hp = T_i^-1 ∘ sum_j a_ij^h (T_j ∘ v_j^hp)
        s̃_i    = Linear(concat_h,p(õ_i^h, o_i^h, o_i^hp, |o_i^hp|))

    with ``w_L = sqrt(1/3)`` (three logit terms of about unit variance each),
    ``w_C = sqrt(2 / (9 query_points))`` (the point term's variance, for unit-variance points, is
    then about 1), and ``γ^h = softplus(θ^h)`` a learned per-head weight, kept positive so the
    point term can only penalise distant points; θ starts where γ = 1.
    """

    def __init__(self, c_s: int, c_z: int, heads: int = 4, c_hidden: int = 16,
                 query_points: int = 4, value_points: int = 8, eps: float = 1e-8) -> None:
        super().__init__()
        self.heads, self.c_hidden = heads, c_hidden
        self.query_points, self.value_points, self.eps = query_points, value_points, eps
        self.to_qkv = nn.Linear(c_s, 3 * heads * c_hidden, bias=False)
        self.to_qk_points = nn.Linear(c_s, 2 * heads * query_points * 3, bias=False)
        self.to_v_points = nn.Linear(c_s, heads * value_points * 3, bias=False)
        self.to_bias = nn.Linear(c_z, heads, bias=False)
        # softplus^-1(1) = log(e - 1): γ^h = 1 at the start
        self.head_weights = nn.Parameter(torch.full((heads,), math.log(math.e - 1)))
        self.w_l = math.sqrt(1 / 3)
        self.w_c = math.sqrt(2 / (9 * query_points))
        # per head: the pair output (c_z), scalar values, value points (3 each) and their norms
        self.out = nn.Linear(heads * (c_z + c_hidden + value_points * 4), c_s)

    def forward(self, s: torch.Tensor, z: torch.Tensor, rotation: torch.Tensor,
                translation: torch.Tensor) -> torch.Tensor:
        """s (..., L, c_s), z (..., L, L, c_z), rotation (..., L, 3, 3), translation (..., L, 3)
        -> (..., L, c_s). No masks: every residue attends to every residue."""
        h, c, pq, pv = self.heads, self.c_hidden, self.query_points, self.value_points
        lead = s.shape[:-1]  # (..., L)
        q, k, v = self.to_qkv(s).view(*lead, h, 3 * c).split(c, dim=-1)  # (..., L, H, C)
        q_pts, k_pts = self.to_qk_points(s).view(*lead, h, 2 * pq, 3).split(pq, dim=-2)
        v_pts = self.to_v_points(s).view(*lead, h, pv, 3)  # (..., L, H, Pv, 3)

        # each residue's frame, broadcast over its heads and points
        frames = Rigid(rotation, translation).unsqueeze(-1).unsqueeze(-1)  # (..., L, 1, 1)
        q_glob, k_glob = frames.apply(q_pts), frames.apply(k_pts)  # (..., L, H, Pq, 3)
        v_glob = frames.apply(v_pts)  # (..., L, H, Pv, 3)

        scalar = torch.einsum("...ihc,...jhc->...hij", q, k) / math.sqrt(c)  # (..., H, L, L)
        bias = self.to_bias(z).movedim(-1, -3)  # (..., H, L, L)
        # differences rather than |q|^2 + |k|^2 - 2 q.k: exact cancellation of the shared
        # translation, so the invariance holds to rounding
        sq = ((q_glob[..., :, None, :, :, :] - k_glob[..., None, :, :, :, :]) ** 2).sum((-2, -1))
        sq = sq.movedim(-1, -3)  # (..., L_i, L_j, H) -> (..., H, L_i, L_j)
        gamma = F.softplus(self.head_weights)[:, None, None]  # (H, 1, 1)
        logits = self.w_l * (scalar + bias - gamma * self.w_c / 2 * sq)
        a = logits.softmax(dim=-1)  # (..., H, L_i, L_j)

        o_pair = torch.einsum("...hij,...ijc->...ihc", a, z)  # (..., L, H, c_z)
        o = torch.einsum("...hij,...jhc->...ihc", a, v)  # (..., L, H, C)
        o_pts = frames.invert_apply(
            torch.einsum("...hij,...jhpx->...ihpx", a, v_glob))  # (..., L, H, Pv, 3)
        # eps: the norm's gradient is undefined at a zero vector
        o_norm = ((o_pts ** 2).sum(-1) + self.eps).sqrt()  # (..., L, H, Pv)
        features = torch.cat([o_pair.flatten(-2), o.flatten(-2), o_pts.flatten(-3),
                              o_norm.flatten(-2)], dim=-1)
        return self.out(features)
