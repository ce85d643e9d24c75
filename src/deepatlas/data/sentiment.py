"""Sentence polarity for BERT (MAP 6.2): ``rt-snippets`` binarised with a fixed split, and the
unlabelled text BERT pretrains on.

- **Labels.** Each Rotten Tomatoes sentence (Pang & Lee's sentence polarity corpus, re-rated
  by 20 people for VADER, Hutto & Gilbert 2014) carries the mean rating in [-4, 4]: positive
  (label 1) above 0, negative (label 0) below; the 37 sentences rated exactly 0 are dropped.
- **Split** (:data:`SPLIT_RULE`): by the sentence's id, so it never changes: ``id % 10 == 0``
  tests, ``id % 10 == 5`` validates (chooses best.pt), the rest trains.
- **Pretraining text**: the six Austen novels (their first 90%, as the GPT trains on) cut into
  pieces of at most ``context - 2`` tokens, plus the *training* sentences of rt-snippets
  without their labels. Validation and test sentences never reach pretraining.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from deepatlas.data.tokenize import encode_all
from deepatlas.errors import UserError

SPLIT_RULE = "sentence id mod 10: 0 tests, 5 validates, the rest train"
SPECIAL = ("[PAD]", "[CLS]", "[SEP]", "[MASK]")  # ids 0..3 of every BERT vocabulary here
PAD, CLS, SEP, MASK = range(4)


class Sentences(NamedTuple):
    texts: list[str]
    labels: list[int]


def _folder(data_dir: str, name: str, marker: str, download: bool) -> Path:
    """``data_dir`` (holding ``marker``, or a ``name`` sub-folder that does), else the
    installed set, fetched on first use unless ``download`` is False."""
    if data_dir:
        base = Path(data_dir).expanduser()
        for folder in (base / name, base):
            if (folder / marker).is_file():
                return folder
        raise UserError(f"data.dir={data_dir} has no {marker} (nor {name}/{marker}); get the "
                        f"set with deepatlas data get {name}, or drop data.dir")
    from deepatlas.data.packages import ensure

    return ensure(name, download=download)


def split_sentiment(rows: list[tuple[int, float, str]]) -> dict[str, Sentences]:
    """(id, mean rating, sentence) rows -> train/val/test sentences with 0/1 labels."""
    splits = {s: Sentences([], []) for s in ("train", "val", "test")}
    for sentence_id, score, text in rows:
        if score == 0:
            continue
        split = {0: "test", 5: "val"}.get(sentence_id % 10, "train")
        splits[split].texts.append(text)
        splits[split].labels.append(int(score > 0))
    return splits


def load_sentiment(data_dir: str = "", download: bool = True) -> dict[str, Sentences]:
    from deepatlas.data.texts import parse_snippets

    folder = _folder(data_dir, "rt-snippets", "snippets.tsv", download)
    return split_sentiment(parse_snippets((folder / "snippets.tsv").read_text("utf-8")))


def pretraining_text(data_dir: str = "", download: bool = True, in_domain_repeats: int = 1
                     ) -> dict[str, list[str]]:
    """{"train": paragraphs and sentences to pretrain on, "val": held-out ones (the novels'
    next 5% and the validation sentences), for the masked-LM loss that picks best.pt}.

    ``in_domain_repeats`` = k: train = the novels' P paragraphs + k copies of the task's S
    training sentences, so the task's share of the pretraining sequences is kS / (P + kS).
    This upsamples the task's own text inside the mix, in the spirit of Gururangan et al.
    2020's task-adaptive pretraining (theirs is a second phase on the task text alone).
    Validation keeps one copy of each sentence."""
    if in_domain_repeats < 1:
        raise UserError(f"data.in_domain_repeats must be >= 1, got {in_domain_repeats}")
    from deepatlas.data.corpus import split_books
    from deepatlas.data.texts import AUSTEN_BOOKS, load_austen

    austen = _folder(data_dir, "austen", f"{next(iter(AUSTEN_BOOKS))}.txt", download)
    books = {title: "\n".join(lines) for title, lines in load_austen(austen).items()}
    train, val, _ = split_books(books)
    sentiment = load_sentiment(data_dir, download)

    def paragraphs(text: str) -> list[str]:
        return [p.replace("\n", " ") for p in text.split("\n\n") if p.strip()]

    return {"train": paragraphs(train) + sentiment["train"].texts * in_domain_repeats,
            "val": paragraphs(val) + sentiment["val"].texts}


def sequences(tokenizer, texts: list[str], context: int, first_only: bool = False
              ) -> list[list[int]]:
    """``[CLS] tokens [SEP]``, each text cut into pieces of at most ``context - 2`` tokens
    (``first_only``: its first piece only, one row per text). Encoded in one batch where the
    tokeniser can (BPE's Rust threads: several times faster than one text at a time)."""
    out = []
    for ids in encode_all(tokenizer, texts):
        for i in range(0, max(1, len(ids)), context - 2):
            out.append([CLS, *ids[i:i + context - 2], SEP])
            if first_only:
                break
    return out
