"""A sequence-to-sequence task with real structure: English number words to digits.

"three thousand forty two" -> "3042". Solving it needs what translation needs: reorder
(tens before ones within "forty two", but zeros where a word is missing), count and align.
Numbers 0..9999; a fixed 20% are held out, so the test measures generalisation to numbers
never seen in training.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
        "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
        "eighteen", "nineteen"]
TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
PAD, BOS, EOS = 0, 1, 2
SRC_VOCAB = ["<pad>", *ONES, *TENS[2:], "hundred", "thousand"]
TGT_VOCAB = ["<pad>", "<bos>", "<eos>", *"0123456789"]
SPLIT_SEED = 0


def spell(n: int) -> str:
    """English words for 0 <= n <= 9999, without "and"."""
    if not 0 <= n <= 9999:
        raise ValueError(f"spell() covers 0..9999, got {n}")
    if n < 20:
        return ONES[n]
    words = []
    if n >= 1000:
        words += [ONES[n // 1000], "thousand"]
        n %= 1000
    if n >= 100:
        words += [ONES[n // 100], "hundred"]
        n %= 100
    if n >= 20:
        words.append(TENS[n // 10])
        n %= 10
        if n:
            words.append(ONES[n])
    elif n:
        words.append(ONES[n])
    return " ".join(words)


@dataclass
class Seq2SeqData:
    name: str
    src_train: torch.Tensor  # (N, Ts) token ids, 0-padded
    tgt_train: torch.Tensor  # (N, Tt): <bos> digits <eos>, 0-padded
    src_test: torch.Tensor
    tgt_test: torch.Tensor
    src_vocab: list[str]
    tgt_vocab: list[str]
    source: str = ""


def _encode(numbers: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    src = [[SRC_VOCAB.index(w) for w in spell(n).split()] for n in numbers]
    tgt = [[BOS, *(TGT_VOCAB.index(c) for c in str(n)), EOS] for n in numbers]

    def pad(rows: list[list[int]]) -> torch.Tensor:
        out = torch.zeros(len(rows), max(map(len, rows)), dtype=torch.long)
        for i, row in enumerate(rows):
            out[i, :len(row)] = torch.tensor(row)
        return out

    return pad(src), pad(tgt)


def load_number_words(test_fraction: float = 0.2) -> Seq2SeqData:
    order = torch.randperm(10000, generator=torch.Generator().manual_seed(SPLIT_SEED)).tolist()
    n_test = int(10000 * test_fraction)
    src_test, tgt_test = _encode(order[:n_test])
    src_train, tgt_train = _encode(order[n_test:])
    return Seq2SeqData("number-words", src_train, tgt_train, src_test, tgt_test, SRC_VOCAB,
                       TGT_VOCAB, source="generated: English number words 0..9999")


SEQ2SEQ_SOURCES = {"number-words": load_number_words}
