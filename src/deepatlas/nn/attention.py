"""Attention (MAP 4.2; Vaswani et al. 2017).

    Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k)) V

(the source's ``K_T`` is the transpose ``K^T``). Dividing by sqrt(d_k) keeps the dot products'
variance near 1, so the softmax does not saturate as d_k grows.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def scaled_dot_product_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                                 mask: torch.Tensor | None = None) -> torch.Tensor:
    """``softmax(Q K^T / sqrt(d_k)) V`` for q (..., Tq, d_k), k (..., Tk, d_k), v (..., Tk, d_v).

    ``mask`` is boolean, broadcastable to (..., Tq, Tk), True where attention is allowed (the
    convention of torch's ``attn_mask``).
    """
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (..., Tq, Tk)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(dim=-1) @ v  # (..., Tq, d_v)


def causal_mask(length: int, device: torch.device | None = None) -> torch.Tensor:
    """(T, T) boolean: position i may attend to positions j <= i."""
    return torch.ones(length, length, dtype=torch.bool, device=device).tril()


class MultiHeadAttention(nn.Module):
    """``num_heads`` attentions over d_model / num_heads channels each, concatenated and
    projected: ``MHA(Q, K, V) = Concat(head_1..head_h) W_O``, ``head_i = Attention(Q W_Qi, K
    W_Ki, V W_Vi)``. Parameters are laid out like torch.nn.MultiheadAttention's
    (``in_proj_weight`` stacks W_Q, W_K, W_V), so weights copy across."""

    def __init__(self, d_model: int, num_heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if d_model % num_heads:
            raise ValueError(f"d_model={d_model} must divide by num_heads={num_heads}")
        self.d_model, self.num_heads, self.dropout = d_model, num_heads, dropout
        self.in_proj_weight = nn.Parameter(torch.empty(3 * d_model, d_model))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * d_model))
        self.out_proj = nn.Linear(d_model, d_model)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.out_proj.bias)

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        """query (B, Tq, D), key and value (B, Tk, D), batch first; ``mask`` as in
        :func:`scaled_dot_product_attention`. Returns (B, Tq, D)."""
        w_q, w_k, w_v = self.in_proj_weight.chunk(3)
        b_q, b_k, b_v = self.in_proj_bias.chunk(3)
        b, tq, d = query.shape
        h = self.num_heads

        def split(x: torch.Tensor) -> torch.Tensor:  # (B, T, D) -> (B, h, T, D/h)
            return x.view(b, -1, h, d // h).transpose(1, 2)

        q, k, v = split(F.linear(query, w_q, b_q)), split(F.linear(key, w_k, b_k)), split(
            F.linear(value, w_v, b_v))
        if self.training and self.dropout > 0:
            # torch's fused kernel drops attention weights; same semantics, faster
            heads = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=self.dropout)
        else:
            heads = scaled_dot_product_attention(q, k, v, mask)  # (B, h, Tq, D/h)
        return self.out_proj(heads.transpose(1, 2).reshape(b, tq, d))


def project(attention: MultiHeadAttention, x: torch.Tensor, which: int) -> torch.Tensor:
    """``x W_Q`` (which=0), ``x W_K`` (1) or ``x W_V`` (2), split into heads: (B, h, T, D/h).
    Incremental decoding projects each new token once and caches the keys and values."""
    b, h, d = x.shape[0], attention.num_heads, attention.d_model
    w, bias = attention.in_proj_weight.chunk(3)[which], attention.in_proj_bias.chunk(3)[which]
    return F.linear(x, w, bias).view(b, -1, h, d // h).transpose(1, 2)


def attend(attention: MultiHeadAttention, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
           mask: torch.Tensor | None = None) -> torch.Tensor:
    """Projected heads (B, h, Tq, D/h) attended and recombined: (B, Tq, D), in eval mode."""
    heads = scaled_dot_product_attention(q, k, v, mask)
    b, h, tq, dh = heads.shape
    return attention.out_proj(heads.transpose(1, 2).reshape(b, tq, h * dh))


def sinusoidal_positional_encoding(length: int, d_model: int) -> torch.Tensor:
    """(length, d_model): ``PE(pos, 2i) = sin(pos / 10000^(2i/d))``,
    ``PE(pos, 2i+1) = cos(pos / 10000^(2i/d))``."""
    pos = torch.arange(length, dtype=torch.float64)[:, None]  # (T, 1)
    two_i = torch.arange(0, d_model, 2, dtype=torch.float64)  # 2i: (ceil(d/2),)
    angle = pos / 10000 ** (two_i / d_model)  # (T, ceil(d/2))
    pe = torch.zeros(length, d_model, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(angle)
    pe[:, 1::2] = torch.cos(angle[:, : d_model // 2])
    return pe.float()
