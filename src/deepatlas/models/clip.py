"""CLIP (MAP 6.3; Radford et al. 2021): an image encoder and a text encoder map a picture and
its caption into one space, trained so that each image is nearest its own caption::

    I = normalize(W_i f_image(x))      # (B, E)
    T = normalize(W_t f_text(t))       # (B, E)
    logits = I T^T / tau               # (B, B); tau = exp(-s), s learned, tau >= 0.01
    L = symmetric InfoNCE(logits)      # deepatlas.losses.clip_loss

- **Image encoder** (``image_encoder``): ``"resnet"``, the CIFAR-style ResNet of
  :mod:`deepatlas.models.resnet` without its classifier (features 4w), or ``"vit"``, a Vision
  Transformer (Dosovitskiy et al. 2021) from the map's Transformer layers: ``patch`` x
  ``patch`` patches, a [CLS] token, learned positions, pre-norm layers of width 4w. As in
  CLIP's ViT (and open_clip's): a LayerNorm before the first layer (``ln_pre``), which ViT
  itself lacks; a patch projection without bias (the learned positions already add an
  offset); the [CLS] token and the positions drawn from N(0, 1/width) (open_clip's
  ``scale = width ** -0.5``).
- **Text encoder**: CLIP's, a causal Transformer over BPE tokens whose caption vector is the
  last layer's output at the [EOT] token (after LayerNorm). Causal, as in the paper, so the
  padding after [EOT] never reaches it.
- **Temperature**: s starts at log(1 / 0.07) and is clipped so that 1 / tau <= 100, as in
  the paper (which clips the parameter after each step; here the clip is in the forward,
  where the Trainer's loop need not know of it).

``features(x)`` is f_image(x) before the projection: what the linear probe reads, as in the
paper's linear-probe evaluation.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from deepatlas.errors import UserError
from deepatlas.models.registry import register_model
from deepatlas.models.resnet import CifarResNet
from deepatlas.nn.attention import causal_mask
from deepatlas.nn.init import normal_002_
from deepatlas.nn.transformer import EncoderLayer

PAD, SOT, EOT = 0, 1, 2  # token ids of padding, start of text and end of text
MAX_LOGIT_SCALE = math.log(100)  # 1 / tau <= 100


class VisionTransformer(nn.Module):
    """x (B, C, H, W) -> the [CLS] token's vector (B, D) after a final LayerNorm."""

    def __init__(self, in_channels: int, image_size: int, patch: int, width: int, layers: int,
                 heads: int) -> None:
        super().__init__()
        if image_size % patch:
            raise UserError(f"model.patch={patch} must divide data.image_size={image_size}")
        # a linear map of each patch, without bias: the learned positions, added next, already
        # give every patch a learned offset
        self.to_patches = nn.Conv2d(in_channels, width, patch, stride=patch, bias=False)
        scale = width ** -0.5
        self.cls = nn.Parameter(scale * torch.randn(1, 1, width))
        self.position = nn.Parameter(scale * torch.randn(1, 1 + (image_size // patch) ** 2,
                                                         width))
        self.ln_pre = nn.LayerNorm(width)
        self.layers = nn.ModuleList(EncoderLayer(width, heads, 4 * width, dropout=0.0)
                                    for _ in range(layers))
        self.norm = nn.LayerNorm(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.to_patches(x).flatten(2).transpose(1, 2)  # (B, N, D)
        h = torch.cat([self.cls.expand(len(h), -1, -1), h], dim=1) + self.position  # (B, 1+N, D)
        h = self.ln_pre(h)
        for layer in self.layers:
            h = layer(h)
        return self.norm(h[:, 0])


class TextTransformer(nn.Module):
    """tokens (B, T), [SOT] ... [EOT] then anything (PAD) -> the vector at the first [EOT]
    (B, D); causal attention keeps what follows it out."""

    def __init__(self, vocab_size: int, context: int, width: int, layers: int,
                 heads: int) -> None:
        super().__init__()
        self.context = context
        self.token = nn.Embedding(vocab_size, width)
        self.position = nn.Embedding(context, width)
        self.layers = nn.ModuleList(EncoderLayer(width, heads, 4 * width, dropout=0.0)
                                    for _ in range(layers))
        self.norm = nn.LayerNorm(width)
        self.apply(normal_002_)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        b, t = tokens.shape
        if t > self.context:
            raise ValueError(f"{t} tokens exceed the text encoder's context of {self.context}")
        h = self.token(tokens) + self.position(torch.arange(t, device=tokens.device))  # (B, T, D)
        mask = causal_mask(t, tokens.device)
        for layer in self.layers:
            h = layer(h, mask)
        eot = (tokens == EOT).int().argmax(1)  # each caption's first [EOT]
        return self.norm(h[torch.arange(b, device=tokens.device), eot])  # (B, D)


class Clip(nn.Module):
    def __init__(self, image_encoder: nn.Module, image_dim: int, text_encoder: nn.Module,
                 text_dim: int, embed_dim: int, init_temperature: float = 0.07,
                 learn_temperature: bool = True) -> None:
        super().__init__()
        self.image_encoder, self.text_encoder = image_encoder, text_encoder
        self.image_projection = nn.Linear(image_dim, embed_dim, bias=False)
        self.text_projection = nn.Linear(text_dim, embed_dim, bias=False)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / init_temperature)),
                                        requires_grad=learn_temperature)
        self.feature_dim = image_dim
        self.context = text_encoder.context  # the longest caption in tokens

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """f_image(x) (B, image_dim): the representation before the projection."""
        return self.image_encoder(images)

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """(B, E), unit length."""
        return F.normalize(self.image_projection(self.features(images)), dim=-1)

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, E), unit length."""
        return F.normalize(self.text_projection(self.text_encoder(tokens)), dim=-1)

    def scale(self) -> torch.Tensor:
        """1 / tau, at most 100."""
        return self.logit_scale.clamp(max=MAX_LOGIT_SCALE).exp()

    def forward(self, images: torch.Tensor, tokens: torch.Tensor, embeddings: bool = False
                ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """logits (B_images, B_texts) = <I_i, T_j> / tau; with ``embeddings``, the parts
        (I (B, E), T (B, E), 1 / tau) for a loss that gathers them across processes."""
        if embeddings:
            return self.encode_image(images), self.encode_text(tokens), self.scale()
        return self.scale() * self.encode_image(images) @ self.encode_text(tokens).T


@register_model(kind="clip")
def clip(*, in_channels: int = 3, image_size: int = 32, num_classes: int = 1000,
         image_encoder: str = "resnet", depth: int = 8, width: int = 32, patch: int = 4,
         vision_layers: int = 4, context: int = 32, text_width: int = 128,
         text_layers: int = 3, heads: int = 4, embed_dim: int = 128,
         init_temperature: float = 0.07, learn_temperature: bool = True) -> nn.Module:
    """A CLIP: ``num_classes`` is the text vocabulary (the tokeniser's size, filled in by the
    task). The image encoder is a ResNet-``depth`` of base width ``width`` (features 4w) or,
    with ``image_encoder="vit"``, a ViT of width 4w, ``vision_layers`` layers and ``patch``
    px patches."""
    if context < 4:
        raise UserError(f"model.context must be >= 4 tokens ([SOT], text, [EOT]), got {context}")
    if init_temperature <= 0:
        raise UserError(f"model.init_temperature must be > 0, got {init_temperature}")
    if image_encoder == "resnet":
        encoder = CifarResNet(in_channels, 1, depth, width)
        encoder.head = nn.Identity()  # f ends at the pooled features
    elif image_encoder == "vit":
        encoder = VisionTransformer(in_channels, image_size, patch, 4 * width, vision_layers,
                                    heads)
    else:
        raise UserError(f"model.image_encoder must be resnet or vit, not {image_encoder!r}")
    text = TextTransformer(num_classes, context, text_width, text_layers, heads)
    return Clip(encoder, 4 * width, text, text_width, embed_dim, init_temperature,
                learn_temperature)
