"""Graph layers (MAP 2.2) on an ``edge_index`` (2, E) of (source, target) pairs, as in PyG.

Messages flow from ``edge_index[0]`` to ``edge_index[1]``; an undirected graph lists each edge
both ways. Parameter names follow torch_geometric (``lin.weight``, ``bias``, ``att_src``,
``att_dst``), so weights copy across and outputs agree (tests/test_recurrent_graph.py).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def add_self_loops(edge_index: torch.Tensor, num_nodes: int) -> torch.Tensor:
    """``A + I``: drop existing self-loops, then add one per node."""
    keep = edge_index[0] != edge_index[1]
    loops = torch.arange(num_nodes, device=edge_index.device).repeat(2, 1)
    return torch.cat([edge_index[:, keep], loops], dim=1)


class GCNConv(nn.Module):
    """Graph convolution (Kipf and Welling 2017): ``X' = D^-1/2 (A + I) D^-1/2 X W + b``,
    where ``D`` is the degree matrix of ``A + I``. Each node averages its neighbours' (and its
    own) transformed features, weighted by ``1 / sqrt(deg_i deg_j)``."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.lin = nn.Linear(in_channels, out_channels, bias=False)
        self.bias = nn.Parameter(torch.zeros(out_channels))
        nn.init.xavier_uniform_(self.lin.weight)

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        src, dst = add_self_loops(edge_index, n)
        deg = torch.zeros(n, device=x.device, dtype=x.dtype).index_add_(
            0, dst, torch.ones_like(dst, dtype=x.dtype))  # degree of A + I
        norm = deg[src].rsqrt() * deg[dst].rsqrt()  # (E,): 1 / sqrt(deg_i deg_j)
        h = self.lin(x)  # X W: (N, out)
        out = torch.zeros_like(h).index_add_(0, dst, h[src] * norm[:, None])
        return out + self.bias


def edge_softmax(scores: torch.Tensor, dst: torch.Tensor, num_nodes: int) -> torch.Tensor:
    """Softmax of edge ``scores`` (E, H) over the edges entering each target node."""
    heads = scores.shape[1]
    peak = torch.full((num_nodes, heads), float("-inf"), device=scores.device,
                      dtype=scores.dtype).scatter_reduce(0, dst[:, None].expand(-1, heads),
                                                         scores, reduce="amax")
    e = (scores - peak[dst]).exp()  # shifted by each target's max: stable
    total = torch.zeros(num_nodes, heads, device=scores.device, dtype=scores.dtype)
    return e / total.index_add_(0, dst, e)[dst]


class GATConv(nn.Module):
    """Graph attention (Velickovic et al. 2018), ``heads`` heads concatenated::

        h_i = W x_i                                         (per head, C channels)
        e_ij = LeakyReLU(a_src . h_j + a_dst . h_i)         for each edge j -> i (and i -> i)
        alpha_ij = softmax_j(e_ij)                          over the edges entering i
        x'_i = || over heads of sum_j alpha_ij h_j, + b
    """

    def __init__(self, in_channels: int, out_channels: int, heads: int = 1,
                 negative_slope: float = 0.2, dropout: float = 0.0) -> None:
        super().__init__()
        self.heads, self.out_channels = heads, out_channels
        self.negative_slope, self.dropout = negative_slope, dropout
        self.lin = nn.Linear(in_channels, heads * out_channels, bias=False)
        self.att_src = nn.Parameter(torch.empty(1, heads, out_channels))
        self.att_dst = nn.Parameter(torch.empty(1, heads, out_channels))
        self.bias = nn.Parameter(torch.zeros(heads * out_channels))
        for p in (self.lin.weight, self.att_src, self.att_dst):
            nn.init.xavier_uniform_(p)

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        src, dst = add_self_loops(edge_index, n)
        h = self.lin(x).view(n, self.heads, self.out_channels)  # (N, H, C)
        score_src = (h * self.att_src).sum(-1)  # (N, H): a_src . h_j
        score_dst = (h * self.att_dst).sum(-1)  # (N, H): a_dst . h_i
        scores = F.leaky_relu(score_src[src] + score_dst[dst], self.negative_slope)  # (E, H)
        alpha = edge_softmax(scores, dst, n)
        alpha = F.dropout(alpha, self.dropout, self.training)
        out = torch.zeros_like(h).index_add_(0, dst, h[src] * alpha[..., None])  # (N, H, C)
        return out.reshape(n, -1) + self.bias
