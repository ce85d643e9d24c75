"""Image-caption pairs for CLIP (MAP 6.3), from ``clipart`` (data/clipart.py).

- **Caption**: the drawing's human-written title, then up to ``keywords`` of its keywords
  ("red sports car. car, auto, vehicle"); a drawing with neither is left out. Training can
  also draw, each step, one of four *variants*: the caption, the title alone, the keywords
  alone, or one keyword, so that the text encoder also learns to place a short text, such as
  a category name in a prompt, near its images. The one keyword is fixed per drawing, or,
  with ``clip.keyword_draw = "per-step"``, drawn afresh from its keywords at every step.
- **Image**: the RGBA rendering composited onto white (clip art is drawn for a white page),
  resized with antialiasing to ``image_size``: (3, S, S) floats in [0, 1].
- **Label**: the drawing's own category (its folder; 22 of them), for zero-shot
  classification and the linear probe only: training never sees it.
- **Split**: by drawing, within each category (stratified, so every category keeps its share
  in each split), with a fixed seed: every run and seed scores the same held-out drawings.
- **Tokens**: ``[SOT] BPE(caption)[:context - 2] [EOT]`` then ``[PAD]`` to ``context``: ids 0,
  1 and 2 are the special tokens of a BPE trained on the training captions only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from deepatlas.data.tokenize import BPETokenizer, encode_all

SPECIAL = ("[PAD]", "[SOT]", "[EOT]")  # ids 0, 1, 2 (deepatlas.models.clip's PAD, SOT, EOT)
PAD, SOT, EOT = range(3)
SPLIT_SEED = 0


@dataclass
class Pairs:
    images: torch.Tensor  # (N, 3, S, S) float32 in [0, 1]
    captions: list[str]
    variants: list[list[str]]  # per drawing: caption, title, keywords, one keyword
    keywords: list[list[str]]  # per drawing: the keywords a variant draws from (may be [])
    labels: torch.Tensor  # (N,) int64: index into the categories
    paths: list[str]

    def __len__(self) -> int:
        return len(self.captions)


def category_name(folder: str) -> str:
    """A category folder as words for a prompt: ``signs_and_symbols`` -> "signs and symbols"."""
    return folder.replace("_", " ").replace("-", " ").strip()


def caption(title: str, keywords: list[str], max_keywords: int) -> str:
    """The title, then up to ``max_keywords`` keywords not already in it; "" if neither."""
    title = title.strip()
    words = [k for k in keywords if k.lower() not in title.lower()][:max_keywords]
    if title and words:
        return f"{title}. {', '.join(words)}"
    return title or ", ".join(words)


def caption_variants(title: str, keywords: list[str], max_keywords: int, pick: int
                     ) -> list[str]:
    """[caption, title alone, keywords alone, keyword ``pick`` (mod their number)]; a variant
    that would be empty is the caption."""
    full = caption(title, keywords, max_keywords)
    words = keywords[:max_keywords]
    one = words[pick % len(words)] if words else ""
    return [full, title.strip() or full, ", ".join(words) or full, one or full]


def keyword_slots(keywords: list[list[str]], fallbacks: list[str], slots: int
                  ) -> tuple[list[list[str]], torch.Tensor]:
    """Each drawing's keywords padded to ``slots`` texts (with its first keyword, or its
    fallback text when it has none), and how many of them are its own (at least 1): a uniform
    draw among the first ``count`` slots is a uniform draw among its keywords."""
    padded = [(words or [fallback])[:slots] for words, fallback in zip(keywords, fallbacks)]
    counts = torch.tensor([len(texts) for texts in padded])
    return [texts + [texts[0]] * (slots - len(texts)) for texts in padded], counts


def draw_variants(n: int, counts: torch.Tensor | None, generator: torch.Generator
                  ) -> torch.Tensor:
    """(n,) the column of each drawing's text to train on: caption, title, keywords or one
    keyword (columns 0-3), each kind with probability 1/4. With ``counts`` (the per-step
    keyword draw, columns 3.. being :func:`keyword_slots`), the keyword is column ``3 + slot``,
    the slot uniform below the drawing's count."""
    device = generator.device
    pick = torch.randint(0, 4, (n,), device=device, generator=generator)
    if counts is None:
        return pick
    slot = (torch.rand(n, device=device, generator=generator) * counts).long()
    return torch.where(pick == 3, 3 + torch.minimum(slot, counts - 1), pick)


def to_rgb(rgba: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 RGBA (N, 4, H, W) composited onto white: float (N, 3, size, size) in [0, 1]."""
    x = rgba.float() / 255
    rgb = x[:, :3] * x[:, 3:] + (1 - x[:, 3:])  # alpha over a white page
    if rgb.shape[-1] != size:
        rgb = F.interpolate(rgb, size=(size, size), mode="bilinear", antialias=True,
                            align_corners=False).clamp_(0, 1)
    return rgb


def stratified_split(labels: torch.Tensor, val_fraction: float, test_fraction: float,
                     seed: int = SPLIT_SEED) -> dict[str, torch.Tensor]:
    """Indices of train, val and test: in each class, a seeded shuffle of its members, the
    first round(n * test_fraction) for test, the next round(n * val_fraction) for val."""
    g = torch.Generator().manual_seed(seed)
    parts: dict[str, list[torch.Tensor]] = {"train": [], "val": [], "test": []}
    for label in labels.unique().tolist():
        members = (labels == label).nonzero().flatten()
        members = members[torch.randperm(len(members), generator=g)]
        n_test, n_val = round(len(members) * test_fraction), round(len(members) * val_fraction)
        parts["test"].append(members[:n_test])
        parts["val"].append(members[n_test:n_test + n_val])
        parts["train"].append(members[n_test + n_val:])
    return {split: torch.cat(p).sort().values for split, p in parts.items()}


def load_pairs(folder: Path, image_size: int, max_keywords: int, val_fraction: float = 0.1,
               test_fraction: float = 0.1) -> tuple[dict[str, Pairs], list[str]]:
    """({train, val, test} pairs, category folder names) of the clipart set in ``folder``."""
    from deepatlas.data import clipart

    art = clipart.load(folder)
    texts = [caption(t, k, max_keywords) for t, k in zip(art.titles, art.keywords)]
    picks = torch.randint(0, 1 << 30, (len(texts),), generator=torch.Generator().manual_seed(
        SPLIT_SEED)).tolist()
    variants = [caption_variants(t, k, max_keywords, pick)
                for t, k, pick in zip(art.titles, art.keywords, picks)]
    keep = [i for i, text in enumerate(texts) if text]
    categories = sorted({art.categories[i][0] for i in keep})
    labels = torch.tensor([categories.index(art.categories[i][0]) for i in keep])
    images = to_rgb(art.images[keep], image_size)
    splits = stratified_split(labels, val_fraction, test_fraction)
    pairs = {split: Pairs(images[index], [texts[keep[i]] for i in index.tolist()],
                          [variants[keep[i]] for i in index.tolist()],
                          [art.keywords[keep[i]][:max_keywords] for i in index.tolist()],
                          labels[index], [art.paths[keep[i]] for i in index.tolist()])
             for split, index in splits.items()}
    return pairs, categories


def train_caption_tokenizer(captions: list[str], vocab_size: int) -> BPETokenizer:
    """Byte-level BPE (lower-cased) fitted to the training captions, ids 0-2 special."""
    return BPETokenizer.train(captions, vocab_size, special=SPECIAL, lowercase=True)


def caption_tokens(tokenizer, texts: list[str], context: int) -> torch.Tensor:
    """(N, context) int64: ``[SOT] ids[:context - 2] [EOT]`` padded with ``[PAD]``."""
    out = torch.full((len(texts), context), PAD, dtype=torch.long)
    for row, ids in zip(out, encode_all(tokenizer, texts)):
        ids = [SOT, *ids[:context - 2], EOT]
        row[:len(ids)] = torch.tensor(ids)
    return out
