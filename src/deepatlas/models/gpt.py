"""GPT (MAP 6.2; Radford et al. 2018, 2019): a decoder-only Transformer that predicts the next
token, ``p(x_1..x_T) = prod_t p(x_t | x_<t)``.

The layout is GPT-2's: learned positions, pre-norm blocks ``x + Attn(LN(x))`` and
``x + MLP(LN(x))``, a final LayerNorm, and an output layer that shares the token embedding's
weight (weight tying, Press & Wolf 2017). Residual projections start at std
``0.02 / sqrt(2 L)`` so that the sum over ``2 L`` residual branches keeps its scale.

Causal self-attention runs through torch's fused ``scaled_dot_product_attention`` by default;
``fused=False`` runs the map's own :func:`deepatlas.nn.attention.scaled_dot_product_attention`
with :func:`causal_mask`, and a test checks that the two agree.

Generation keeps a KV cache: each layer's keys and values of the tokens seen so far, so a new
token costs one query against the cache instead of a pass over the whole prefix. Learned
positions are absolute, so past the context length the cache cannot simply drop its oldest
entry (every kept key carries its old position); instead the window slides by half a context:
the newest ``context // 2`` tokens are encoded again from position 0 and the cache refills.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from deepatlas.models.registry import register_model
from deepatlas.nn.init import normal_002_
from deepatlas.nn.attention import causal_mask, scaled_dot_product_attention

KVCache = list[tuple[torch.Tensor, torch.Tensor]]  # per layer: keys, values (B, h, T, D/h)


@dataclass
class GPTConfig:
    vocab_size: int = 256
    context: int = 128  # the longest sequence the positions cover
    d_model: int = 128
    heads: int = 4
    layers: int = 4
    dropout: float = 0.0


GPT3_175B = GPTConfig(vocab_size=50257, context=2048, d_model=12288, heads=96, layers=96)
"""Brown et al. 2020, Table 2.1: "GPT-3 175B": n_layers 96, d_model 12288, n_heads 96, context
2048, and GPT-2's byte-level BPE vocabulary of 50257 tokens."""


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.heads, self.dropout = cfg.heads, cfg.dropout
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model)
        self.fused = True

    def forward(self, x: torch.Tensor, cache: tuple[torch.Tensor, torch.Tensor] | None = None
                ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """x (B, T, C); ``cache`` the keys and values of earlier positions. Returns the output
        (B, T, C) and the keys and values including these T positions."""
        b, t, c = x.shape
        q, k, v = (z.view(b, t, self.heads, c // self.heads).transpose(1, 2)  # (B, h, T, C/h)
                   for z in self.qkv(x).split(c, dim=2))
        if cache is not None:
            k, v = torch.cat([cache[0], k], dim=2), torch.cat([cache[1], v], dim=2)
        past = k.shape[2] - t
        # Query i (at position past + i) sees keys 0..past + i: causal over the new tokens,
        # everything cached before them.
        mask = None if t == 1 else causal_mask(k.shape[2], x.device)[past:]  # (T, past + T)
        if self.fused:
            # Without a cache the mask is the plain causal one, which the fused kernels take
            # as a flag rather than a (T, T) tensor.
            plain = past == 0 and t > 1
            y = F.scaled_dot_product_attention(
                q, k, v, attn_mask=None if plain else mask, is_causal=plain,
                dropout_p=self.dropout if self.training else 0.0)
        else:
            y = scaled_dot_product_attention(q, k, v, mask)  # softmax(Q K^T / sqrt(d_k)) V
        return self.proj(y.transpose(1, 2).reshape(b, t, c)), (k, v)


class Block(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(cfg.d_model), nn.LayerNorm(cfg.d_model)
        self.attn = CausalSelfAttention(cfg)
        self.mlp = nn.Sequential(nn.Linear(cfg.d_model, 4 * cfg.d_model), nn.GELU(),
                                 nn.Linear(4 * cfg.d_model, cfg.d_model))
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, cache=None):
        a, cache = self.attn(self.ln1(x), cache)
        x = x + self.drop(a)  # (B, T, C)
        return x + self.drop(self.mlp(self.ln2(x))), cache


class GPT(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        if cfg.d_model % cfg.heads:
            raise ValueError(f"d_model={cfg.d_model} must divide by heads={cfg.heads}")
        self.cfg = cfg
        self.tok = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.pos = nn.Embedding(cfg.context, cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.layers))
        self.ln_f = nn.LayerNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self.head.weight = self.tok.weight  # weight tying
        if not self.tok.weight.is_meta:
            self.apply(normal_002_)
            for name, p in self.named_parameters():
                if name.endswith(("attn.proj.weight", "mlp.2.weight")):
                    nn.init.normal_(p, std=0.02 / math.sqrt(2 * cfg.layers))

    def set_fused_attention(self, fused: bool) -> None:
        for block in self.blocks:
            block.attn.fused = fused

    def forward(self, idx: torch.Tensor, cache: KVCache | None = None
                ) -> torch.Tensor | tuple[torch.Tensor, KVCache]:
        """idx (B, T) token ids -> logits (B, T, V). With ``cache`` (a list, empty at first),
        the positions continue after the cached ones and ``(logits, cache)`` is returned."""
        b, t = idx.shape
        past = cache[0][0].shape[2] if cache else 0
        if past + t > self.cfg.context:
            raise ValueError(f"{past + t} tokens exceed the context of {self.cfg.context}")
        positions = torch.arange(past, past + t, device=idx.device)
        x = self.drop(self.tok(idx) + self.pos(positions))  # (B, T, C)
        new_cache: KVCache = []
        for i, block in enumerate(self.blocks):
            x, kv = block(x, cache[i] if cache else None)
            new_cache.append(kv)
        logits = self.head(self.ln_f(x))  # (B, T, V)
        return logits if cache is None else (logits, new_cache)

    def num_params(self, embeddings: bool = True) -> int:
        """Parameters, counting the tied output layer once; without ``embeddings``, Kaplan et
        al.'s non-embedding count N (token and position tables excluded)."""
        n = sum(p.numel() for p in self.parameters())  # parameters() yields a tied one once
        if not embeddings:
            n -= self.tok.weight.numel() + self.pos.weight.numel()
        return n

    @torch.no_grad()
    def generate(self, idx: torch.Tensor, max_tokens: int, *, temperature: float = 1.0,
                 top_k: int | None = None, top_p: float | None = None,
                 generator: torch.Generator | None = None, use_cache: bool = True
                 ) -> torch.Tensor:
        """Continue ``idx`` (B, T) by ``max_tokens`` sampled tokens: (B, T + max_tokens).

        Sampling: logits / temperature (0: the most likely token), then top-k (keep the k
        largest), then top-p (the smallest set whose probability reaches p; Holtzman et al.
        2020)."""
        context = self.cfg.context
        cache: KVCache | None = None
        out = idx
        for _ in range(max_tokens):
            if not use_cache:
                logits = self(out[:, -context:])[:, -1]
            else:
                if cache is None or cache[0][0].shape[2] >= context:
                    # (Re)start: encode the newest tokens from position 0.
                    keep = out[:, -(context // 2 if cache is not None else context):]
                    logits, cache = self(keep, [])
                else:
                    logits, cache = self(out[:, -1:], cache)
                logits = logits[:, -1]  # (B, V)
            out = torch.cat([out, sample_next(logits, temperature, top_k, top_p, generator)], 1)
        return out


def sample_next(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
                top_p: float | None = None, generator: torch.Generator | None = None
                ) -> torch.Tensor:
    """One token per row of ``logits`` (B, V): (B, 1)."""
    if temperature == 0:
        return logits.argmax(-1, keepdim=True)
    logits = logits.float() / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[:, -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        cumulative = sorted_logits.softmax(-1).cumsum(-1)
        # Drop a token when the tokens before it already reach p (the first is always kept).
        drop = cumulative - sorted_logits.softmax(-1) >= top_p
        logits = logits.scatter(-1, order, sorted_logits.masked_fill(drop, float("-inf")))
    probs = logits.softmax(-1)
    return torch.multinomial(probs, 1, generator=generator)


@register_model(kind="language")
def gpt(*, in_channels: int = 0, image_size: int = 0, num_classes: int = 256,
        context: int = 128, d_model: int = 128, heads: int = 4, layers: int = 4,
        dropout: float = 0.0) -> nn.Module:
    """A GPT (MAP 6.2); ``num_classes`` is the vocabulary size, filled in from the tokeniser."""
    return GPT(GPTConfig(num_classes, context, d_model, heads, layers, dropout))
