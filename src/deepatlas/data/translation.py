"""Parallel text for translation (MAP 6.2): the ``bible-en-es`` set, English -> Spanish.

Held out by whole chapters, so that no test verse has a neighbour in training: the chapters,
in canonical order, are dealt round-robin into 20 groups; group 7 validates and group 13
tests (about 5% each), the rest trains. A shared byte-level BPE vocabulary is trained on the
training verses of both languages.

Batches group verses of similar length (Vaswani et al. 2017 batch by length too), so that a
batch pads to its own longest verse rather than to the longest of the set.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import torch

from deepatlas.data.tokenize import encode_all
from deepatlas.errors import UserError

GROUPS, VAL_GROUP, TEST_GROUP = 20, 7, 13
PAD, BOS, EOS = 0, 1, 2  # the ids of SPECIAL in the shared BPE vocabulary
SPECIAL = ("<pad>", "<bos>", "<eos>")


class Pairs(NamedTuple):
    refs: list[str]
    en: list[str]
    es: list[str]


def read_pairs(path: Path) -> Pairs:
    refs, en, es = [], [], []
    for number, line in enumerate(path.read_text("utf-8").splitlines(), 1):
        parts = line.split("\t")
        if len(parts) != 3:
            raise UserError(f"{path}:{number}: expected reference<TAB>English<TAB>Spanish; "
                            "get the set again with deepatlas data get bible-en-es")
        refs.append(parts[0])
        en.append(parts[1])
        es.append(parts[2])
    return Pairs(refs, en, es)


def split_by_chapter(pairs: Pairs) -> dict[str, Pairs]:
    """{"train", "val", "test"}: whole chapters (``Book.chapter``), dealt round-robin."""
    chapters = list(dict.fromkeys(ref.rsplit(".", 1)[0] for ref in pairs.refs))
    group = {c: i % GROUPS for i, c in enumerate(chapters)}
    out = {s: Pairs([], [], []) for s in ("train", "val", "test")}
    for ref, en, es in zip(*pairs):
        g = group[ref.rsplit(".", 1)[0]]
        split = "val" if g == VAL_GROUP else "test" if g == TEST_GROUP else "train"
        for column, value in zip(out[split], (ref, en, es)):
            column.append(value)
    return out


def load_pairs(data_dir: str = "", download: bool = True) -> tuple[dict[str, Pairs], str]:
    """(splits, source) of bible-en-es, fetched on first use unless ``download`` is False;
    ``data_dir`` may hold ``pairs.tsv`` instead."""
    from deepatlas.data.packages import ensure, get_set

    if data_dir:
        path = Path(data_dir).expanduser() / "pairs.tsv"
        if not path.is_file():
            raise UserError(f"data.dir={data_dir} holds no pairs.tsv; get the set with "
                            "deepatlas data get bible-en-es, or drop data.dir")
    else:
        path = ensure("bible-en-es", download=download) / "pairs.tsv"
    return split_by_chapter(read_pairs(path)), get_set("bible-en-es").source


def encode_source(tokenizer, text: str, max_len: int) -> list[int]:
    """Source ids ``... <eos>``, cut to ``max_len`` tokens."""
    return tokenizer.encode(text)[:max_len - 1] + [EOS]


def encode_pairs(tokenizer, pairs: Pairs, max_len: int) -> tuple[list[list[int]], list[list[int]]]:
    """Source ids (``... <eos>``) and target ids (``<bos> ... <eos>``), each cut to
    ``max_len`` tokens."""
    # as encode_source
    src = [ids[:max_len - 1] + [EOS] for ids in encode_all(tokenizer, pairs.en)]
    tgt = [[BOS] + ids[:max_len - 2] + [EOS] for ids in encode_all(tokenizer, pairs.es)]
    return src, tgt


def pad(rows: list[list[int]]) -> torch.Tensor:
    out = torch.full((len(rows), max(map(len, rows))), PAD, dtype=torch.long)
    for i, row in enumerate(rows):
        out[i, :len(row)] = torch.tensor(row)
    return out


class LengthBatches:
    """Training batches of (source, target) padded to their own longest row. Each epoch:
    a permutation seeded by (seed, epoch), cut into pools of 50 batches, each pool sorted by
    length and cut into batches, the batches shuffled. Deterministic, so a resumed epoch gives
    the same batches; rank ``r`` of ``W`` takes every ``W``-th batch."""

    def __init__(self, src: list[list[int]], tgt: list[list[int]], batch_size: int, *,
                 seed: int = 0, rank: int = 0, world_size: int = 1) -> None:
        self.src, self.tgt, self.batch_size = src, tgt, batch_size
        self.seed, self.rank, self.world_size, self.epoch = seed, rank, world_size, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _batches(self) -> list[list[int]]:
        g = torch.Generator().manual_seed(self.seed * 1000 + self.epoch)
        order = torch.randperm(len(self.src), generator=g).tolist()
        pool = 50 * self.batch_size
        batches = []
        for i in range(0, len(order), pool):
            chunk = sorted(order[i:i + pool], key=lambda j: len(self.tgt[j]))
            batches += [chunk[k:k + self.batch_size] for k in range(0, len(chunk),
                                                                    self.batch_size)
                        if len(chunk[k:k + self.batch_size]) == self.batch_size]
        shuffled = torch.randperm(len(batches), generator=g).tolist()
        return [batches[i] for i in shuffled][self.rank::self.world_size]

    def __len__(self) -> int:
        pool = 50 * self.batch_size  # full batches of each pool; the last pool may be short
        n = len(self.src)
        return ((n // pool) * 50 + (n % pool) // self.batch_size) // self.world_size

    def iterate(self, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for batch in self._batches()[start:len(self)]:
            yield pad([self.src[j] for j in batch]), pad([self.tgt[j] for j in batch])

    def __iter__(self):
        return self.iterate(0)
