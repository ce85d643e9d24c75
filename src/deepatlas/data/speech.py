"""``speech``: sentences of the ``austen`` set read aloud by Debian ``espeak-ng`` (a formant
synthesiser, GPL-3+; its output is generated data), with the phonemes it spoke, for speech tasks
(text-to-speech, speech recognition, phoneme alignment).

The sentences: the novels' paragraphs split into sentences, those of 6 to 25 words kept (no
headings), and ``LIMIT`` of them (2,000) drawn with a fixed seed, then put back in book order. Each
is synthesised by the locally installed ``espeak-ng`` (voice ``en-gb``, its default speed) as
16-bit mono at 22,050 Hz, and its IPA phonemes come from the same run (``--ipa``). The text is
passed on stdin, never as markup. Installed as ``sentences.tsv`` (id, book, sentence: fixed by
``austen``, so it is checksummed), ``phonemes.tsv`` (id, IPA) and ``audio/ID.flac`` (lossless;
both depend on the espeak-ng version, recorded in the manifest). Read with PyPI ``soundfile``.
"""

from __future__ import annotations

import random
import re
import shutil
import subprocess
from pathlib import Path
from typing import NamedTuple

from deepatlas.data.fetch import DamagedPackage, Progress
from deepatlas.errors import UserError

LIMIT = 2000  # sentences synthesised by default; each about 4 s of audio, 0.1 MB of FLAC
SEED = 0
SAMPLE_RATE = 22_050
VOICE = "en-gb"
WORDS = (6, 25)  # shortest and longest sentence kept, in words
ESPEAK = "espeak-ng"
_ABBREVIATIONS = ("Mr.", "Mrs.", "Dr.", "St.", "Col.", "Capt.", "Messrs.")
_END = re.compile(r"(?:(?<=[.!?])|(?<=[.!?][\"']))\s+(?=[\"'A-Z])")


class Utterance(NamedTuple):
    id: str
    book: str
    text: str
    phonemes: str  # IPA, as espeak-ng spoke it
    waveform: object  # torch.Tensor (samples,) float32 in [-1, 1] at SAMPLE_RATE


def sentences(novels: dict[str, list[str]]) -> list[tuple[str, str]]:
    """(book, sentence) for every sentence of 6-25 words, in book order. Paragraphs are runs
    of non-blank lines; ``_emphasis_`` marks and double quotes are dropped; Mr./Mrs. do not end
    a sentence."""
    out = []
    for book, lines in novels.items():
        paragraphs, current = [], []
        for line in [*lines, ""]:
            if line.strip():
                current.append(line.strip())
            elif current:
                paragraphs.append(" ".join(current).replace("_", ""))
                current = []
        for paragraph in paragraphs:
            if paragraph.isupper():  # CHAPTER I, VOLUME II, the title
                continue
            pieces = _END.split(paragraph)
            merged: list[str] = []
            for piece in pieces:
                if merged and merged[-1].endswith(_ABBREVIATIONS):
                    merged[-1] += " " + piece
                else:
                    merged.append(piece)
            for sentence in merged:
                sentence = " ".join(sentence.replace('"', "").split())
                if WORDS[0] <= len(sentence.split()) <= WORDS[1]:
                    out.append((book, sentence))
    return out


def choose(candidates: list[tuple[str, str]], limit: int = LIMIT) -> list[tuple[str, str]]:
    """``limit`` of them drawn with seed ``SEED``, kept in book order."""
    picked = sorted(random.Random(SEED).sample(range(len(candidates)),
                                               min(limit, len(candidates))))
    return [candidates[i] for i in picked]


def espeak_version() -> str:
    """The installed espeak-ng's version; a UserError naming the install command if absent."""
    if shutil.which(ESPEAK) is None:
        raise UserError("speech: espeak-ng is not installed here; install it (a Debian tool, run "
                        "locally) with: apt-get install espeak-ng, then deepatlas data get speech")
    text = subprocess.run([ESPEAK, "--version"], capture_output=True, text=True).stdout
    found = re.search(r"NG text-to-speech: (\S+)", text)
    return found.group(1) if found else text.strip()[:40]


def synthesise(text: str, wav: Path) -> str:
    """Speak ``text`` into ``wav`` with espeak-ng; its IPA phonemes, clauses joined by a space."""
    proc = subprocess.run([ESPEAK, "-v", VOICE, "--ipa", "-w", str(wav),
                           "--stdin"], input=text, capture_output=True, text=True, timeout=120)
    if proc.returncode or not wav.is_file():
        raise DamagedPackage(f"speech: espeak-ng failed on {text[:40]!r}: "
                             f"{' '.join(proc.stderr.split())[:120]}")
    return " ".join(proc.stdout.split())


def build(files: dict[str, Path], work: Path, out: Path, progress: Progress, *,
          sets: dict[str, Path], limit: int = LIMIT) -> dict:
    """Choose the sentences from the installed ``austen`` set and synthesise each one."""
    import soundfile

    from deepatlas.data.texts import load_austen

    version = espeak_version()
    chosen = choose(sentences(load_austen(sets["austen"])), limit)
    (out / "audio").mkdir()
    work.mkdir(parents=True, exist_ok=True)
    rows, ipa, seconds = [], [], 0.0
    for i, (book, text) in enumerate(chosen):
        key = f"{i:04d}"
        phonemes = synthesise(text, work / f"{key}.wav")
        audio, rate = soundfile.read(work / f"{key}.wav", dtype="int16")
        if rate != SAMPLE_RATE or audio.ndim != 1:
            raise DamagedPackage(f"speech: espeak-ng wrote {rate} Hz, {audio.ndim}-D audio, not "
                                 f"{SAMPLE_RATE} Hz mono")
        soundfile.write(out / "audio" / f"{key}.flac", audio, rate, subtype="PCM_16")
        rows.append(f"{key}\t{book}\t{text}")
        ipa.append(f"{key}\t{phonemes}")
        seconds += len(audio) / rate
        if (i + 1) % 50 == 0 or i + 1 == len(chosen):
            progress(f"  spoke {i + 1} of {len(chosen)} sentences ({seconds / 60:.1f} min)")
    (out / "sentences.tsv").write_text("\n".join(rows) + "\n", "utf-8")
    (out / "phonemes.tsv").write_text("\n".join(ipa) + "\n", "utf-8")
    return {"sentences": len(rows), "audio_s": round(seconds), "sample_rate": SAMPLE_RATE,
            "espeak_ng": version, "voice": VOICE}


def load(folder: Path) -> list[Utterance]:
    """Every sentence with its phonemes and waveform (float32, mono, 22,050 Hz)."""
    import soundfile
    import torch

    texts = [line.split("\t") for line in (folder / "sentences.tsv").read_text("utf-8")
             .splitlines()]
    ipa = dict(line.split("\t", 1) for line in (folder / "phonemes.tsv").read_text("utf-8")
               .splitlines())
    out = []
    for key, book, text in texts:
        audio, rate = soundfile.read(folder / "audio" / f"{key}.flac", dtype="float32")
        if rate != SAMPLE_RATE:
            raise DamagedPackage(f"{folder}/audio/{key}.flac is {rate} Hz, not {SAMPLE_RATE}")
        out.append(Utterance(key, book, text, ipa.get(key, ""), torch.from_numpy(audio)))
    return out
