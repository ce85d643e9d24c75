"""Transformer layers (MAP 4.2) built on :class:`MultiHeadAttention`, pre-norm or post-norm.

- pre-norm (the default): ``x + f(LayerNorm(x))`` (Xiong et al. 2020). The identity path from
  input to output survives, so deep stacks train without warm-up;
- post-norm (``pre_norm=False``): ``LayerNorm(x + f(x))``, the original Transformer's and
  BERT's layout. Every residual sum passes a LayerNorm, which is why 12+ layers need warm-up.
"""

from __future__ import annotations

import torch
from torch import nn

from deepatlas.nn.attention import MultiHeadAttention, attend, project


def _feed_forward(d_model: int, d_ff: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_model, d_ff), nn.GELU(), nn.Dropout(dropout),
                         nn.Linear(d_ff, d_model))


def _residual(x: torch.Tensor, norm: nn.LayerNorm, pre_norm: bool, f) -> torch.Tensor:
    """pre-norm ``x + f(LN(x))`` or post-norm ``LN(x + f(x))``."""
    return x + f(norm(x)) if pre_norm else norm(x + f(x))


class EncoderLayer(nn.Module):
    def __init__(self, d_model: int, num_heads: int, d_ff: int, dropout: float = 0.1,
                 pre_norm: bool = True) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.attention = MultiHeadAttention(d_model, num_heads, dropout)
        self.ff = _feed_forward(d_model, d_ff, dropout)
        self.drop = nn.Dropout(dropout)
        self.pre_norm = pre_norm

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = _residual(x, self.norm1, self.pre_norm,  # (B, T, D)
                      lambda h: self.drop(self.attention(h, h, h, mask)))
        return _residual(x, self.norm2, self.pre_norm, lambda h: self.drop(self.ff(h)))


class DecoderLayer(nn.Module):
    """Causal self-attention, cross-attention to the encoder's output, feed-forward."""

    def __init__(self, d_model: int, num_heads: int, d_ff: int, dropout: float = 0.1,
                 pre_norm: bool = True) -> None:
        super().__init__()
        self.pre_norm = pre_norm
        self.norms = nn.ModuleList(nn.LayerNorm(d_model) for _ in range(3))
        self.self_attention = MultiHeadAttention(d_model, num_heads, dropout)
        self.cross_attention = MultiHeadAttention(d_model, num_heads, dropout)
        self.ff = _feed_forward(d_model, d_ff, dropout)
        self.drop = nn.Dropout(dropout)

    def forward(self, y: torch.Tensor, memory: torch.Tensor, self_mask: torch.Tensor,
                memory_mask: torch.Tensor | None = None) -> torch.Tensor:
        y = _residual(y, self.norms[0], self.pre_norm,  # (B, Ty, D)
                      lambda h: self.drop(self.self_attention(h, h, h, self_mask)))
        y = _residual(y, self.norms[1], self.pre_norm,
                      lambda h: self.drop(self.cross_attention(h, memory, memory, memory_mask)))
        return _residual(y, self.norms[2], self.pre_norm, lambda h: self.drop(self.ff(h)))

    def start(self, memory: torch.Tensor) -> dict[str, torch.Tensor]:
        """The cache of incremental decoding: the memory's keys and values for the
        cross-attention, computed once, and empty self-attention keys and values."""
        b, d = memory.shape[0], memory.shape[2]
        empty = memory.new_zeros(b, self.self_attention.num_heads, 0,
                                 d // self.self_attention.num_heads)
        return {"mk": project(self.cross_attention, memory, 1),
                "mv": project(self.cross_attention, memory, 2), "k": empty, "v": empty}

    def step(self, y: torch.Tensor, cache: dict[str, torch.Tensor],
             memory_mask: torch.Tensor | None = None) -> torch.Tensor:
        """The newest position only, y (B, 1, D), attending to the cached earlier positions
        (which extends ``cache``): equal to :meth:`forward`'s last row, in eval mode."""
        def self_attend(h: torch.Tensor) -> torch.Tensor:
            cache["k"] = torch.cat([cache["k"], project(self.self_attention, h, 1)], dim=2)
            cache["v"] = torch.cat([cache["v"], project(self.self_attention, h, 2)], dim=2)
            return attend(self.self_attention, project(self.self_attention, h, 0), cache["k"],
                          cache["v"])

        y = _residual(y, self.norms[0], self.pre_norm, self_attend)
        y = _residual(y, self.norms[1], self.pre_norm,
                      lambda h: attend(self.cross_attention, project(self.cross_attention, h, 0),
                                       cache["mk"], cache["mv"], memory_mask))
        return _residual(y, self.norms[2], self.pre_norm, self.ff)
