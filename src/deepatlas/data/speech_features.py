"""The ``speech`` set as a text-to-speech task reads it (MAP 6.3, Tacotron 2): each sentence's
symbols (espeak-ng's IPA phonemes, or the text's characters) and its log-mel spectrogram at
16 kHz, split by sentence into train / validation / test with a fixed seed.
"""

from __future__ import annotations

import random
import shutil
import subprocess
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from deepatlas.data import speech
from deepatlas.data.audio import Spectrogram, log_mel, mel_filterbank, resample
from deepatlas.errors import UserError

PAD, EOS, UNKNOWN = 0, 1, 2  # ids; symbols start at 3
HELD_OUT = 0.05  # of the sentences, each of validation and test
SPLIT_SEED = 0


@dataclass
class Symbols:
    """The symbol table, fitted to the training sentences: one id per character (an IPA string
    is spelled in characters too: stress marks and length are symbols of their own)."""

    kind: str  # "phonemes" | "characters"
    table: list[str]

    @classmethod
    def fit(cls, kind: str, texts: list[str]) -> Symbols:
        return cls(kind, sorted({c for t in texts for c in normalise(kind, t)}))

    def encode(self, text: str) -> list[int]:
        """ids of the symbols, unknown ones as UNKNOWN, then EOS."""
        return [self.index.get(c, UNKNOWN) for c in normalise(self.kind, text)] + [EOS]

    @cached_property
    def index(self) -> dict[str, int]:
        return {c: i + 3 for i, c in enumerate(self.table)}

    @property
    def size(self) -> int:
        return len(self.table) + 3


def normalise(kind: str, text: str) -> str:
    """Lower-case characters, spaces collapsed (phonemes: espeak-ng's as given)."""
    text = " ".join(text.split())
    return text if kind == "phonemes" else text.lower()


def phonemise(text: str) -> str:
    """espeak-ng's IPA for new text (what ``deepatlas speak`` reads), clauses joined by a
    space; a UserError naming the install command if espeak-ng is absent, or saying what
    failed."""
    if shutil.which(speech.ESPEAK) is None:
        raise UserError("this run reads phonemes, which espeak-ng makes from text; install it "
                        "with: apt-get install espeak-ng")
    try:
        proc = subprocess.run([speech.ESPEAK, "-q", "-v", speech.VOICE, "--ipa", "--stdin"],
                              input=text, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise UserError(f"espeak-ng could not phonemise the text: {e}") from None
    ipa = " ".join(proc.stdout.split())
    if proc.returncode or not ipa:
        why = " ".join(proc.stderr.split())[:120] or "no phonemes came out"
        raise UserError(f"espeak-ng could not phonemise {text[:40]!r}: {why}")
    return ipa


@dataclass
class Utterances:
    """One split: the sentence texts, the symbol sources (IPA or text) and log-mels."""

    ids: list[str]
    texts: list[str]
    sources: list[str]
    mels: list[torch.Tensor]  # each (frames, n_mels)
    waves: list[np.ndarray] | None = None  # 16 kHz float32 (test only: the references)

    def __len__(self) -> int:
        return len(self.ids)


def split_ids(ids: list[str]) -> dict[str, set[str]]:
    order = list(ids)
    random.Random(SPLIT_SEED).shuffle(order)
    held = max(1, round(HELD_OUT * len(order)))
    return {"val": set(order[:held]), "test": set(order[held:2 * held]),
            "train": set(order[2 * held:])}


def load_utterances(folder: Path, spec: Spectrogram, kind: str) -> dict[str, Utterances]:
    """Every sentence of the installed set, resampled to ``spec.sample_rate``, as log-mels."""
    spoken = speech.load(folder)
    if len(spoken) < 3:
        raise UserError(f"{folder} holds {len(spoken)} sentences, too few to split; run "
                        "deepatlas data get speech again")
    parts = split_ids([u.id for u in spoken])
    fb = mel_filterbank(spec)
    out = {s: Utterances([], [], [], [], [] if s == "test" else None) for s in parts}
    for u in spoken:
        split = next(s for s, ids in parts.items() if u.id in ids)
        wave = resample(u.waveform.numpy(), speech.SAMPLE_RATE, spec.sample_rate)
        part = out[split]
        part.ids.append(u.id)
        part.texts.append(u.text)
        part.sources.append(u.phonemes if kind == "phonemes" else u.text)
        part.mels.append(log_mel(torch.from_numpy(wave), spec, fb))
        if part.waves is not None:
            part.waves.append(wave)
    return out


def pad_symbols(seqs: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, longest) ids padded with PAD, and the lengths."""
    symbols = torch.zeros(len(seqs), max(map(len, seqs)), dtype=torch.long)
    for i, s in enumerate(seqs):
        symbols[i, :len(s)] = torch.tensor(s)
    return symbols, torch.tensor([len(s) for s in seqs])


def pad_batch(seqs: list[list[int]], mels: list[torch.Tensor], n_mels: int, multiple: int
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """symbols (N, longest), their lengths, mels (N, frames rounded up to ``multiple``,
    n_mels) padded with silence (ln 1e-5), frame counts."""
    symbols, lengths = pad_symbols(seqs)
    frames = torch.tensor([len(m) for m in mels])
    longest = -(-int(frames.max()) // multiple) * multiple
    padded = torch.full((len(mels), longest, n_mels), float(np.log(1e-5)))
    for i, m in enumerate(mels):
        padded[i, :len(m)] = m
    return symbols, lengths, padded, frames
