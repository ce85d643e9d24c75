"""BERT's masked-language-model corruption (MAP 6.2; Devlin et al. 2019, section 3.1), and the
batches of token sequences that the BERT tasks train on.

Each ordinary token (not [PAD], [CLS], [SEP] or [MASK]) is chosen with probability 15%. A
chosen token becomes [MASK] 80% of the time, a random ordinary token 10% of the time, and stays
itself the other 10%, so the model cannot learn that only [MASK] positions matter. The loss is
taken at the chosen positions only: elsewhere the label is -100, PyTorch's ``ignore_index``.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

IGNORE = -100  # F.cross_entropy's default ignore_index
RATE, TO_MASK, TO_RANDOM = 0.15, 0.8, 0.1


def mask_tokens(tokens: torch.Tensor, *, mask_id: int, first_ordinary: int, vocab_size: int,
                rate: float = RATE, generator: torch.Generator | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, labels) of the same shape as ``tokens``: ids below ``first_ordinary`` are
    special and never chosen; labels are the original ids at chosen positions, -100 elsewhere."""
    chosen = (torch.rand(tokens.shape, generator=generator) < rate) & (tokens >= first_ordinary)
    labels = torch.where(chosen, tokens, IGNORE)
    action = torch.rand(tokens.shape, generator=generator)  # which corruption, per position
    random_ids = torch.randint(first_ordinary, vocab_size, tokens.shape, generator=generator)
    inputs = torch.where(chosen & (action < TO_MASK), mask_id, tokens)
    inputs = torch.where(chosen & (action >= TO_MASK) & (action < TO_MASK + TO_RANDOM),
                         random_ids, inputs)
    return inputs, labels


def pad(rows: list[list[int]], pad_id: int = 0) -> torch.Tensor:
    out = torch.full((len(rows), max(map(len, rows))), pad_id, dtype=torch.long)
    for i, row in enumerate(rows):
        out[i, :len(row)] = torch.tensor(row)
    return out


class SequenceBatches:
    """Training batches of token sequences padded to their own longest row, with their
    ``labels`` (fine-tuning) or masked for MLM (``masking``: :func:`mask_tokens`'s keyword
    arguments). Each epoch: a permutation seeded by (seed, epoch), cut into pools of 20
    batches, each pool sorted by length (less padding) and cut into batches, the batches
    shuffled; the masking of batch ``b`` is seeded by (seed, epoch, b). So a resumed epoch
    gives the same batches; rank ``r`` of ``W`` takes every ``W``-th batch."""

    def __init__(self, rows: list[list[int]], batch_size: int, *,
                 labels: list[int] | None = None, masking: dict | None = None, seed: int = 0,
                 rank: int = 0, world_size: int = 1) -> None:
        if (labels is None) == (masking is None):
            raise ValueError("give labels (fine-tuning) or masking (pretraining), not both")
        self.rows, self.labels, self.masking = rows, labels, masking
        self.batch_size, self.seed = batch_size, seed
        self.rank, self.world_size, self.epoch = rank, world_size, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _batches(self) -> list[list[int]]:
        g = torch.Generator().manual_seed(self.seed * 1000 + self.epoch)
        order = torch.randperm(len(self.rows), generator=g).tolist()
        pool, size = 20 * self.batch_size, self.batch_size
        batches = []
        for i in range(0, len(order), pool):
            chunk = sorted(order[i:i + pool], key=lambda j: len(self.rows[j]))
            batches += [chunk[k:k + size] for k in range(0, len(chunk) - size + 1, size)]
        shuffled = torch.randperm(len(batches), generator=g).tolist()
        return [batches[i] for i in shuffled][self.rank::self.world_size]

    def __len__(self) -> int:
        pool, n = 20 * self.batch_size, len(self.rows)
        return ((n // pool) * 20 + (n % pool) // self.batch_size) // self.world_size

    def iterate(self, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for b, batch in enumerate(self._batches()[start:len(self)], start):
            tokens = pad([self.rows[j] for j in batch])  # (B, T)
            if self.labels is not None:
                yield tokens, torch.tensor([self.labels[j] for j in batch])
                continue
            g = torch.Generator().manual_seed((self.seed * 1000 + self.epoch) * 100_003 + b)
            yield mask_tokens(tokens, generator=g, **self.masking)

    def __iter__(self):
        return self.iterate(0)


def eval_masking(rows: list[list[int]], batch_size: int, masking: dict, seed: int = 1234
                 ) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Held-out MLM batches masked once with a fixed seed, so every evaluation (and every
    run) scores the same corrupted positions."""
    g = torch.Generator().manual_seed(seed)
    return [mask_tokens(pad(rows[i:i + batch_size]), generator=g, **masking)
            for i in range(0, len(rows), batch_size)]
