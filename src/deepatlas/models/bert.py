"""BERT (MAP 6.2; Devlin et al. 2019): a bidirectional Transformer encoder, pretrained by
masked language modelling and then fine-tuned with a classifier on its [CLS] vector.

    h_0 = Dropout(LayerNorm(E_tok[x_t] + E_pos[t] + E_seg[s_t]))          # (B, T, D)
    h_l = EncoderLayer(h_(l-1)), l = 1..L; h = LayerNorm(h_L)            # pre-norm layers
    MLM:      p(x_t | masked x) = softmax(LN(GELU(W_m h_t + b_m)) E_tok^T + b_v)  # tied decoder
    classify: p(y | x) = softmax(W_c Dropout(tanh(W_p pool(h) + b_p)) + b_c)       # the pooler
    pool(h) = h_[CLS], or with model.pool = "mean": sum_t m_t h_t / sum_t m_t     # (B, D)

where m_t = 1 for a real token ([CLS] and [SEP] included) and 0 for padding. [CLS] is BERT's
choice; the mean is offered because masked-LM pretraining never asks [CLS] to summarise a
sentence (there is no next-sentence task here), while every token's vector is trained.

Two departures from the paper, both for a model trained from nothing on two CPU cores: the
layers are pre-norm (the original is post-norm, which needs warm-up; see
``nn/transformer.py``), and there is no next-sentence prediction (RoBERTa, Liu et al. 2019,
found it does not help), so the segment embedding is kept for sentence pairs but single
sentences use segment 0. Weights start from N(0, 0.02), BERT's ``initializer_range``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from deepatlas.errors import UserError
from deepatlas.models.registry import register_model
from deepatlas.nn.init import normal_002_
from deepatlas.nn.transformer import EncoderLayer

PAD = 0  # the padding id; attention never looks at it


@dataclass
class BertConfig:
    vocab_size: int = 4000
    context: int = 64  # positions: the longest input, [CLS] and [SEP] included
    d_model: int = 128
    heads: int = 4
    layers: int = 4
    dropout: float = 0.1
    num_labels: int = 2
    segments: int = 2
    pool: str = "cls"  # what the classifier reads: the [CLS] vector, or the tokens' "mean"


class Bert(nn.Module):
    """``model(tokens)`` gives the classifier's logits (B, num_labels); ``model(tokens,
    head="mlm")`` the masked-LM logits (B, T, V). ``tokens`` (B, T) start with [CLS]."""

    def __init__(self, cfg: BertConfig) -> None:
        super().__init__()
        if cfg.pool not in ("cls", "mean"):
            raise UserError(f"model.pool={cfg.pool!r} is not one of: cls, mean")
        self.cfg = cfg
        d = cfg.d_model
        self.token = nn.Embedding(cfg.vocab_size, d, padding_idx=PAD)
        self.position = nn.Embedding(cfg.context, d)
        self.segment = nn.Embedding(cfg.segments, d)
        self.embed_norm, self.norm = nn.LayerNorm(d), nn.LayerNorm(d)
        self.drop = nn.Dropout(cfg.dropout)
        self.layers = nn.ModuleList(EncoderLayer(d, cfg.heads, 4 * d, cfg.dropout)
                                    for _ in range(cfg.layers))
        self.mlm_transform = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.LayerNorm(d))
        self.mlm_bias = nn.Parameter(torch.zeros(cfg.vocab_size))
        self.pooler = nn.Linear(d, d)
        self.classifier = nn.Linear(d, cfg.num_labels)
        self.apply(normal_002_)

    def layer_depth(self, name: str) -> int:
        """Where the parameter ``name`` sits, bottom up, for layer-wise learning-rate decay
        (``optim.layer_decay``): 0 for the embeddings, ``i + 1`` for encoder layer ``i``, and
        ``layers + 1`` for what sits above them (the final norm and the heads)."""
        if name.startswith(("token.", "position.", "segment.", "embed_norm.")):
            return 0
        if name.startswith("layers."):
            return int(name.split(".")[1]) + 1
        return len(self.layers) + 1

    def encode(self, tokens: torch.Tensor, segments: torch.Tensor | None = None
               ) -> torch.Tensor:
        """The contextual vectors h (B, T, D) of ``tokens`` (B, T); padding is masked out."""
        b, t = tokens.shape
        if t > self.cfg.context:
            raise ValueError(f"{t} tokens exceed the model's context of {self.cfg.context}")
        keep = (tokens != PAD)[:, None, None, :]  # (B, 1, 1, T): attend to real tokens only
        segments = torch.zeros_like(tokens) if segments is None else segments
        positions = torch.arange(t, device=tokens.device)
        h = self.drop(self.embed_norm(self.token(tokens) + self.position(positions)
                                      + self.segment(segments)))  # (B, T, D)
        for layer in self.layers:
            h = layer(h, keep)
        return self.norm(h)

    def mlm_logits(self, h: torch.Tensor) -> torch.Tensor:
        """(B, T, V): the decoder shares the token embedding matrix (weight tying)."""
        return F.linear(self.mlm_transform(h), self.token.weight, self.mlm_bias)

    def classify(self, h: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """(B, num_labels) from the [CLS] position's vector, or the mean over ``tokens``'
        real (non-padding) positions."""
        if self.cfg.pool == "mean":
            real = (tokens != PAD).unsqueeze(-1).to(h.dtype)  # (B, T, 1)
            pooled = (h * real).sum(1) / real.sum(1).clamp(min=1)  # (B, D)
        else:
            pooled = h[:, 0]
        return self.classifier(self.drop(torch.tanh(self.pooler(pooled))))

    def forward(self, tokens: torch.Tensor, segments: torch.Tensor | None = None,
                head: str = "classify", select: torch.Tensor | None = None) -> torch.Tensor:
        """``select`` (B, T) bool, with ``head="mlm"``: the logits (N, V) of the selected
        positions only, so pretraining skips the vocabulary projection of the 85% of positions
        that carry no loss."""
        h = self.encode(tokens, segments)
        if head == "mlm":
            return self.mlm_logits(h if select is None else h[select])
        if head == "both":  # the every-parameter-gets-a-gradient test
            return torch.cat([self.mlm_logits(h).flatten(1), self.classify(h, tokens)], 1)
        return self.classify(h, tokens)


@register_model(kind="text")
def bert(*, in_channels: int = 4000, image_size: int = 0, num_classes: int = 2,
         context: int = 64, d_model: int = 128, heads: int = 4, layers: int = 4,
         dropout: float = 0.1, pool: str = "cls") -> nn.Module:
    """A BERT (MAP 6.2); ``in_channels`` is the vocabulary size (from the tokeniser) and
    ``num_classes`` the number of labels, both filled in by the task; ``pool``: "cls" or
    "mean" (what the classifier reads)."""
    return Bert(BertConfig(in_channels, context, d_model, heads, layers, dropout, num_classes,
                           pool=pool))
