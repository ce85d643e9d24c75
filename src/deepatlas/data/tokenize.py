"""Tokenisers for the language tasks (MAP 6.2): characters, or byte-level BPE.

- ``char``: one id per character seen in the training text; id 0 is ``<unk>``, which every
  character the tokeniser never saw maps to (so any prompt encodes, and decodes to "?").
- ``bpe``: byte-level BPE (Sennrich et al. 2016; GPT-2's byte-level variant) trained locally
  with Hugging Face ``tokenizers``. Bytes are the base alphabet, so every string encodes and
  decodes back exactly.

Both round-trip through a JSON string (``to_json`` / :func:`tokenizer_from_json`), which a
checkpoint stores beside the weights, so a run describes itself.
"""

from __future__ import annotations

import json
from typing import Protocol

UNKNOWN = "<unk>"


class Tokenizer(Protocol):
    kind: str

    @property
    def vocab_size(self) -> int: ...

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: list[int]) -> str: ...

    def to_json(self) -> str: ...


class CharTokenizer:
    kind = "char"

    def __init__(self, chars: list[str]) -> None:
        self.chars = [UNKNOWN] + [c for c in chars if c != UNKNOWN]
        self.index = {c: i for i, c in enumerate(self.chars)}

    @classmethod
    def train(cls, text: str) -> CharTokenizer:
        return cls(sorted(set(text)))

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> list[int]:
        return [self.index.get(c, 0) for c in text]

    def decode(self, ids: list[int]) -> str:
        return "".join("?" if i == 0 else self.chars[i] for i in ids)

    def to_json(self) -> str:
        return json.dumps({"kind": "char", "chars": self.chars[1:]}, ensure_ascii=False)


class BPETokenizer:
    kind = "bpe"

    def __init__(self, tokenizer) -> None:  # a tokenizers.Tokenizer
        self.tokenizer = tokenizer

    @classmethod
    def train(cls, text: str | list[str], vocab_size: int, special: tuple[str, ...] = (),
              lowercase: bool = False) -> BPETokenizer:
        """Fitted to ``text`` (paragraphs, or a list of lines); ``special`` tokens take ids
        0, 1, ... in order and are never merged; ``lowercase`` folds case first (BERT's
        uncased vocabularies), so decoding gives lower case."""
        from tokenizers import ByteLevelBPETokenizer

        bpe = ByteLevelBPETokenizer(lowercase=lowercase)
        # Trained on paragraphs, so merges never cross a blank line.
        lines = text.split("\n\n") if isinstance(text, str) else text
        bpe.train_from_iterator(lines, vocab_size=vocab_size, min_frequency=2,
                                show_progress=False, special_tokens=list(special))
        return cls(bpe._tokenizer)

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size()

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text).ids

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        """Many texts at once, in Rust threads: several times faster than one by one."""
        return [e.ids for e in self.tokenizer.encode_batch(texts)]

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def to_json(self) -> str:
        return json.dumps({"kind": "bpe", "tokenizer": self.tokenizer.to_str()})


TOKENIZERS = ("char", "bpe")


def encode_all(tokenizer: Tokenizer, texts: list[str]) -> list[list[int]]:
    """The ids of every text: in one batch where the tokeniser can (BPE's Rust threads,
    several times faster than one text at a time), else one by one."""
    batch = getattr(tokenizer, "encode_batch", None)
    return batch(texts) if batch is not None else [tokenizer.encode(t) for t in texts]


def train_tokenizer(kind: str, text: str, vocab_size: int = 512) -> Tokenizer:
    """A ``kind`` tokeniser fitted to ``text`` (``vocab_size`` is BPE's target size)."""
    if kind == "char":
        return CharTokenizer.train(text)
    if kind == "bpe":
        return BPETokenizer.train(text, vocab_size)
    raise ValueError(f"tokenizer must be one of {', '.join(TOKENIZERS)}, not {kind!r}")


def tokenizer_from_json(state: str) -> Tokenizer:
    """The tokeniser that ``to_json`` wrote."""
    data = json.loads(state)
    if data["kind"] == "char":
        return CharTokenizer(data["chars"])
    from tokenizers import Tokenizer as HFTokenizer

    return BPETokenizer(HFTokenizer.from_str(data["tokenizer"]))
