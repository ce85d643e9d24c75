"""AlphaFold 2's Evoformer (MAP 6.3; Jumper et al. 2021, Supplementary Information 1.6,
Algorithms 6-15).

Two representations flow through a stack of identical blocks: the MSA representation
m (B, S, L, c_m), S aligned sequences of L residues, and the pair representation
z (B, L, L, c_z), one vector per residue pair. A block lets the MSA rows attend with a bias from
z, lets the MSA columns attend, sends the MSA back into z through an outer product mean, and
then updates z with "triangle" operations: the edge ij is updated from the edges ik and jk
(or ki and kj), which is where the triangle inequality of 3-D distances can be learned.

Each sub-module returns its *update*; :class:`EvoformerBlock` adds the residuals in the order of
Algorithm 6. No masks: every sequence of a batch has the same S and L.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def _final_init(linear: nn.Linear) -> nn.Linear:
    """Zero weights (and bias): the paper's "final" init of the layer producing an update."""
    nn.init.zeros_(linear.weight)
    if linear.bias is not None:
        nn.init.zeros_(linear.bias)
    return linear


def _gating_init(linear: nn.Linear) -> nn.Linear:
    """Weights 0, bias 1: the paper's "gating" init; every gate starts at sigmoid(1) = 0.73."""
    nn.init.zeros_(linear.weight)
    nn.init.ones_(linear.bias)
    return linear


# Both inits together make each update exactly zero at initialisation, so a fresh block is the
# identity: a 48-block stack starts as a clean residual path that trains stably, and each block
# learns to depart from it (1.11.4). The gates start mostly open, so gradient still flows.


def shared_dropout(x: torch.Tensor, p: float, shared_dim: int, training: bool) -> torch.Tensor:
    """Dropout whose mask is the same at every index of ``shared_dim`` (1.11.6).

    DropoutRowwise is ``shared_dim=-3``: on m (B, S, L, c) one mask for all S rows, on
    z (B, L, L, c) one mask for all rows i. DropoutColumnwise is ``shared_dim=-2``. Kept entries
    are scaled by 1 / (1 - p), as in ordinary (inverted) dropout.
    """
    if not training or p == 0:
        return x
    shape = list(x.shape)
    shape[shared_dim] = 1
    keep = torch.empty(shape, dtype=x.dtype, device=x.device).bernoulli_(1 - p)
    return x * keep / (1 - p)


class GatedAttention(nn.Module):
    """The gated multi-head attention shared by Algorithms 7, 8, 13 and 14 (their lines after
    the LayerNorm), over the second-to-last axis of x (..., T, c_in):

        a^h_st = softmax_t(q^h_s . k^h_t / sqrt(c) + b^h_st),
        o^h_s = sigmoid(W_g x_s + b_g)^h * sum_t a^h_st v^h_t,   out_s = W_o concat_h o^h_s.

    q, k, v have no bias; the gate is per head and per channel."""

    def __init__(self, c_in: int, heads: int, c_hidden: int) -> None:
        super().__init__()
        self.heads, self.c_hidden = heads, c_hidden
        self.q = nn.Linear(c_in, heads * c_hidden, bias=False)
        self.k = nn.Linear(c_in, heads * c_hidden, bias=False)
        self.v = nn.Linear(c_in, heads * c_hidden, bias=False)
        self.gate = _gating_init(nn.Linear(c_in, heads * c_hidden))
        self.out = _final_init(nn.Linear(heads * c_hidden, c_in))

    def split(self, x: torch.Tensor) -> torch.Tensor:
        """(..., T, h*c) -> (..., h, T, c)."""
        return x.unflatten(-1, (self.heads, self.c_hidden)).transpose(-3, -2)

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        """x (..., T, c_in); ``bias`` broadcastable to (..., h, T, T). Returns (..., T, c_in)."""
        q, k, v = self.split(self.q(x)), self.split(self.k(x)), self.split(self.v(x))
        scores = q @ k.transpose(-2, -1) / math.sqrt(self.c_hidden)  # (..., h, T, T)
        if bias is not None:
            scores = scores + bias
        o = (scores.softmax(dim=-1) @ v).transpose(-3, -2).flatten(-2)  # (..., T, h*c)
        return self.out(torch.sigmoid(self.gate(x)) * o)


class MSARowAttentionWithPairBias(nn.Module):
    """Algorithm 7: within each MSA row s, residue i attends over residues j,

        softmax_j(q_si . k_sj / sqrt(c) + b_ij),   b^h_ij = W_b LayerNorm(z_ij),

    so the pair representation steers which residues exchange information; the same bias
    serves every row."""

    def __init__(self, c_m: int, c_z: int, heads: int = 4, c_hidden: int = 16) -> None:
        super().__init__()
        self.norm_m, self.norm_z = nn.LayerNorm(c_m), nn.LayerNorm(c_z)
        self.pair_bias = nn.Linear(c_z, heads, bias=False)
        self.attention = GatedAttention(c_m, heads, c_hidden)

    def forward(self, m: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """m (B, S, L, c_m), z (B, L, L, c_z) -> update of m (B, S, L, c_m)."""
        bias = self.pair_bias(self.norm_z(z)).permute(0, 3, 1, 2)  # (B, h, L, L)
        return self.attention(self.norm_m(m), bias.unsqueeze(1))  # bias shared over S


class MSAColumnAttention(nn.Module):
    """Algorithm 8: within each column (residue) i, sequence s attends over sequences t,
    softmax_t(q_si . k_ti / sqrt(c)), gated; no pair bias."""

    def __init__(self, c_m: int, heads: int = 4, c_hidden: int = 16) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(c_m)
        self.attention = GatedAttention(c_m, heads, c_hidden)

    def forward(self, m: torch.Tensor) -> torch.Tensor:
        """m (B, S, L, c_m) -> update (B, S, L, c_m)."""
        columns = self.norm(m).transpose(1, 2)  # (B, L, S, c_m): attend over S
        return self.attention(columns).transpose(1, 2)


class Transition(nn.Module):
    """Algorithms 9 (MSA) and 15 (pair): a position-wise MLP,
    x -> W_2 relu(W_1 LayerNorm(x)), hidden width n * c."""

    def __init__(self, c: int, n: int = 4) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(c)
        self.up = nn.Linear(c, n * c)
        self.down = _final_init(nn.Linear(n * c, c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (..., c) -> update (..., c)."""
        return self.down(torch.relu(self.up(self.norm(x))))


class OuterProductMean(nn.Module):
    """Algorithm 10: the MSA's channel to the pair representation,

        o_ij = flatten(mean_s a_si (x) b_sj),   z_ij = W o_ij + b,

    a and b linear projections (c_hidden each) of LayerNorm(m); the outer product is flattened
    row-major, a's channel first. Averaging over s makes the update invariant to the order of
    the sequences."""

    def __init__(self, c_m: int, c_z: int, c_hidden: int = 32) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(c_m)
        self.a, self.b = nn.Linear(c_m, c_hidden), nn.Linear(c_m, c_hidden)
        self.out = _final_init(nn.Linear(c_hidden * c_hidden, c_z))

    def forward(self, m: torch.Tensor) -> torch.Tensor:
        """m (B, S, L, c_m) -> update of z (B, L, L, c_z)."""
        m = self.norm(m)
        a, b = self.a(m), self.b(m)  # (B, S, L, c)
        o = torch.einsum("bsic,bsjd->bijcd", a, b) / m.shape[1]  # (B, L, L, c, c)
        return self.out(o.flatten(-2))


class TriangleMultiplication(nn.Module):
    """Algorithms 11 (outgoing edges) and 12 (incoming edges):

        a_ij = sigmoid(W_ag z_ij) * W_a z_ij,   b_ij likewise,   g_ij = sigmoid(W_g z_ij),
        outgoing: z_ij = g_ij * W_o LayerNorm(sum_k a_ik * b_jk),
        incoming: z_ij = g_ij * W_o LayerNorm(sum_k a_ki * b_kj),

    z being LayerNorm(z) first. The edge ij is updated from the two other edges of each
    triangle ijk. (AlphaFold's released code writes incoming as sum_k a_kj * b_ki, the paper's
    formula with a and b exchanged; we follow the paper.)"""

    def __init__(self, c_z: int, c_hidden: int = 64, outgoing: bool = True) -> None:
        super().__init__()
        self.outgoing = outgoing
        self.norm_in, self.norm_out = nn.LayerNorm(c_z), nn.LayerNorm(c_hidden)
        self.a, self.a_gate = nn.Linear(c_z, c_hidden), _gating_init(nn.Linear(c_z, c_hidden))
        self.b, self.b_gate = nn.Linear(c_z, c_hidden), _gating_init(nn.Linear(c_z, c_hidden))
        self.gate = _gating_init(nn.Linear(c_z, c_z))
        self.out = _final_init(nn.Linear(c_hidden, c_z))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, L, L, c_z) -> update (B, L, L, c_z)."""
        z = self.norm_in(z)
        a = torch.sigmoid(self.a_gate(z)) * self.a(z)  # (B, L, L, c)
        b = torch.sigmoid(self.b_gate(z)) * self.b(z)
        if self.outgoing:
            x = torch.einsum("bikc,bjkc->bijc", a, b)
        else:
            x = torch.einsum("bkic,bkjc->bijc", a, b)
        return torch.sigmoid(self.gate(z)) * self.out(self.norm_out(x))


class TriangleAttention(nn.Module):
    """Algorithms 13 (around the starting node) and 14 (around the ending node).

    Starting node: the edge ij attends over the edges ik that share its start i, biased by the
    third edge of the triangle, jk:

        a_ijk = softmax_k(q_ij . k_ik / sqrt(c) + b_jk),   o_ij = g_ij * sum_k a_ijk v_ik.

    That is :class:`MSARowAttentionWithPairBias` with z as both the "MSA" (rows i) and the pair
    bias. Ending node: a_ijk = softmax_k(q_ij . k_kj / sqrt(c) + b_ki), o_ij = g_ij sum_k a_ijk
    v_kj. Renaming z'_ij = z_ji turns this into the starting-node formula on z', so Algorithm
    14 is exactly Algorithm 13 applied to z transposed, with the result transposed back; that
    is how it is computed here."""

    def __init__(self, c_z: int, heads: int = 4, c_hidden: int = 16,
                 starting: bool = True) -> None:
        super().__init__()
        self.starting = starting
        self.norm = nn.LayerNorm(c_z)
        self.pair_bias = nn.Linear(c_z, heads, bias=False)
        self.attention = GatedAttention(c_z, heads, c_hidden)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, L, L, c_z) -> update (B, L, L, c_z)."""
        if not self.starting:
            z = z.transpose(1, 2)
        z = self.norm(z)
        bias = self.pair_bias(z).permute(0, 3, 1, 2).unsqueeze(1)  # (B, 1, h, L_j, L_k)
        update = self.attention(z, bias)  # row i: query j over keys k
        return update if self.starting else update.transpose(1, 2)


class EvoformerBlock(nn.Module):
    """Algorithm 6, the body of its loop (residuals added in this order):

        m += DropoutRowwise(MSARowAttentionWithPairBias(m, z));  m += MSAColumnAttention(m)
        m += MSATransition(m);  z += OuterProductMean(m)
        z += DropoutRowwise(TriangleMultiplicationOutgoing(z))
        z += DropoutRowwise(TriangleMultiplicationIncoming(z))
        z += DropoutRowwise(TriangleAttentionStartingNode(z))
        z += DropoutColumnwise(TriangleAttentionEndingNode(z));  z += PairTransition(z)

    ``c_hidden`` is the per-head width of every attention and the outer product mean's width;
    the triangle multiplications use c_z, as the paper does (c = 128 = c_z). One ``dropout``
    rate serves everywhere (the paper: 0.15 on the MSA, 0.25 on the pair)."""

    def __init__(self, c_m: int, c_z: int, heads_msa: int = 4, heads_pair: int = 4,
                 c_hidden: int = 16, dropout: float = 0.0) -> None:
        super().__init__()
        self.dropout = dropout
        self.row_attention = MSARowAttentionWithPairBias(c_m, c_z, heads_msa, c_hidden)
        self.column_attention = MSAColumnAttention(c_m, heads_msa, c_hidden)
        self.msa_transition = Transition(c_m)
        self.outer_product_mean = OuterProductMean(c_m, c_z, c_hidden)
        self.tri_mul_out = TriangleMultiplication(c_z, c_z, outgoing=True)
        self.tri_mul_in = TriangleMultiplication(c_z, c_z, outgoing=False)
        self.tri_att_start = TriangleAttention(c_z, heads_pair, c_hidden, starting=True)
        self.tri_att_end = TriangleAttention(c_z, heads_pair, c_hidden, starting=False)
        self.pair_transition = Transition(c_z)

    def forward(self, m: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """m (B, S, L, c_m), z (B, L, L, c_z) -> the updated (m, z)."""
        def drop(x: torch.Tensor, shared_dim: int) -> torch.Tensor:
            return shared_dropout(x, self.dropout, shared_dim, self.training)

        rowwise, columnwise = -3, -2
        m = m + drop(self.row_attention(m, z), rowwise)
        m = m + self.column_attention(m)
        m = m + self.msa_transition(m)
        z = z + self.outer_product_mean(m)
        z = z + drop(self.tri_mul_out(z), rowwise)
        z = z + drop(self.tri_mul_in(z), rowwise)
        z = z + drop(self.tri_att_start(z), rowwise)
        z = z + drop(self.tri_att_end(z), columnwise)
        z = z + self.pair_transition(z)
        return m, z


class Evoformer(nn.Module):
    """Algorithm 6's stack: ``num_blocks`` blocks without shared weights (48 in AlphaFold 2).
    The stack's last line, the single representation s_i = Linear(m_1i) read off the first MSA
    row for the structure module, is left to the caller."""

    def __init__(self, num_blocks: int, c_m: int, c_z: int, heads_msa: int = 4,
                 heads_pair: int = 4, c_hidden: int = 16, dropout: float = 0.0) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            EvoformerBlock(c_m, c_z, heads_msa, heads_pair, c_hidden, dropout)
            for _ in range(num_blocks))

    def forward(self, m: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """m (B, S, L, c_m), z (B, L, L, c_z) -> (m, z), same shapes."""
        for block in self.blocks:
            m, z = block(m, z)
        return m, z
