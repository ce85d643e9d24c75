"""Text corpora for language modelling (MAP 6.2) and the batches a GPT trains on.

``austen``: the six novels of the ``austen`` set (``deepatlas data get austen``). Each novel
is split by position, at line boundaries: its first 90% trains, the next 5% validates
(chooses best.pt) and the last 5% tests, so no held-out passage sits between two training
passages of the same book.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import torch

from deepatlas.errors import UserError

SPLIT = (0.90, 0.95)  # train | val | test boundaries, as shares of each novel's characters


class TextCorpus(NamedTuple):
    name: str
    source: str
    train: str
    val: str
    test: str


def _cut(text: str, share: float) -> int:
    """The first line boundary at or after ``share`` of ``text``."""
    at = text.find("\n", int(len(text) * share))
    return len(text) if at < 0 else at + 1


def split_books(books: dict[str, str]) -> tuple[str, str, str]:
    """(train, val, test): each book cut at :data:`SPLIT`, the parts joined by a blank line."""
    parts: tuple[list[str], list[str], list[str]] = ([], [], [])
    for text in books.values():
        a, b = _cut(text, SPLIT[0]), _cut(text, SPLIT[1])
        for part, piece in zip(parts, (text[:a], text[a:b], text[b:])):
            part.append(piece.strip("\n"))
    return tuple("\n\n".join(p) for p in parts)  # type: ignore[return-value]


def load_corpus(name: str, data_dir: str = "", download: bool = True) -> TextCorpus:
    """Corpus ``name`` (only ``austen`` so far), fetched on first use unless ``download`` is
    False; ``data_dir`` may hold the set's ``*.txt`` files instead."""
    from deepatlas.data.packages import ensure, get_set
    from deepatlas.data.texts import AUSTEN_BOOKS, load_austen

    if data_dir:
        folder = Path(data_dir).expanduser()
        if not all((folder / f"{key}.txt").is_file() for key in AUSTEN_BOOKS):
            raise UserError(f"data.dir={data_dir} lacks the austen novels "
                            f"({', '.join(k + '.txt' for k in AUSTEN_BOOKS)}); get the set with "
                            "deepatlas data get austen, or drop data.dir")
    else:
        folder = ensure(name, download=download)
    books = {title: "\n".join(lines) for title, lines in load_austen(folder).items()}
    return TextCorpus(name, get_set(name).source, *split_books(books))


class TokenWindows:
    """Training batches of random windows from one token stream: batch ``b`` of epoch ``e``
    is ``batch_size`` windows (B, T + 1) at starts drawn from a generator seeded by (seed, e,
    b, rank), so a resumed epoch sees the same windows. An epoch is as many batches as cover
    the stream once."""

    def __init__(self, tokens: torch.Tensor, batch_size: int, context: int, *, seed: int = 0,
                 device: torch.device = torch.device("cpu"), rank: int = 0,
                 world_size: int = 1) -> None:
        self.tokens = tokens.to(device)
        self.batch_size, self.context, self.seed = batch_size, context, seed
        self.rank, self.world_size, self.epoch = rank, world_size, 0
        self.offsets = torch.arange(context + 1, device=device)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.tokens) // (self.batch_size * self.world_size * self.context)

    def __iter__(self) -> Iterator[torch.Tensor]:
        return self.iterate(0)

    def iterate(self, start: int = 0) -> Iterator[torch.Tensor]:
        last_start = len(self.tokens) - self.context - 1
        for b in range(start, len(self)):
            g = torch.Generator().manual_seed(
                ((self.seed * 100_003 + self.epoch) * 1_000_003 + b) * 64 + self.rank)
            starts = torch.randint(0, last_start + 1, (self.batch_size,), generator=g)
            yield self.tokens[starts.to(self.tokens.device)[:, None] + self.offsets]  # (B, T+1)


def eval_windows(tokens: torch.Tensor, context: int) -> torch.Tensor:
    """The stream cut into consecutive windows (N, T + 1) that overlap by one token, so every
    token after the first is predicted exactly once (the tail shorter than T is dropped). A
    stream shorter than one window is one shorter window, (1, len(tokens))."""
    n = (len(tokens) - 1) // context
    if n == 0:
        return tokens[None, :]
    return tokens[: n * context + 1].unfold(0, context + 1, context)
