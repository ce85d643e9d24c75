"""``deepatlas speak RUN "text" --out a.wav``: a Tacotron 2 run (MAP 6.3) reads a text aloud.

The text becomes the run's symbols (espeak-ng's IPA phonemes, as in training, or its
characters), the decoder speaks free-running until its stop token fires, and Griffin-Lim turns
the mel spectrogram into a 16-bit WAV. ``-`` reads the text from stdin.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from deepatlas.errors import UserError
from deepatlas.outputs import check_output, write_via_temp

MAX_CHARACTERS = 600  # about 8 training sentences' worth


def add_parser(sub) -> None:
    """Register ``speak`` on the top-level subparsers."""
    p = sub.add_parser("speak", help="read a text aloud with a Tacotron 2 run, into a WAV",
                       description="Synthesise speech from text with a speak run (deepatlas "
                       "train speak-espeak): Tacotron 2 to a mel spectrogram, Griffin-Lim to "
                       "audio.", formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("run", help="a speak run directory or checkpoint")
    p.add_argument("text", help="the text to say, in UTF-8; - reads it from stdin")
    p.add_argument("--out", default="speech.wav", help="the WAV file to write")
    p.add_argument("--seed", type=int, default=0, help="seeds the prenet's dropout, which "
                   "stays on when speaking (Tacotron 2's source of variation)")
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")


def read_text(text: str) -> str:
    """The text to say, checked: UTF-8 (argv or stdin) and not empty."""
    if text == "-":
        raw = sys.stdin.buffer.read()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise UserError(f"the text on stdin is not UTF-8 (byte {e.start}: "
                            f"{raw[e.start:e.start + 1]!r}); convert it, e.g. with iconv -t "
                            "UTF-8") from None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # undecodable argv bytes arrive as lone surrogates
        raise UserError("the text is not UTF-8; give it in UTF-8 (or pipe it through "
                        "iconv -t UTF-8 into `deepatlas speak RUN -`)") from None
    if not text.strip():
        raise UserError("empty text: give the words to say, e.g. "
                        "deepatlas speak RUN \"It is a truth universally acknowledged.\"")
    text = " ".join(text.split())
    if len(text) > MAX_CHARACTERS:
        raise UserError(f"the text has {len(text):,} characters; speak reads at most "
                        f"{MAX_CHARACTERS} at a time (its runs learned sentences): split it")
    return text


def cmd_speak(args: argparse.Namespace) -> int:
    import soundfile

    from deepatlas.data.audio import to_int16
    from deepatlas.data.speech_features import normalise, phonemise
    from deepatlas.tasks.speak import load_speech_run, say

    text = read_text(args.text)
    if not 0 <= args.seed < 2 ** 63:
        raise UserError(f"--seed must be in [0, 2^63), got {args.seed}")
    out = check_output(args.out, args.force, protect=Path(args.run))
    model, symbols, data = load_speech_run(args.run)
    source = phonemise(text) if symbols.kind == "phonemes" else text
    known = set(symbols.table)
    unknown = sorted({c for c in normalise(symbols.kind, source) if c not in known})
    wave, alignment, stopped = say(model, symbols, data, source, args.seed)
    rate = data["spectrogram"]["sample_rate"]
    write_via_temp(out, lambda tmp: soundfile.write(tmp, to_int16(wave), rate,
                                                    format="WAV", subtype="PCM_16"))
    if unknown:
        print(f"note: {len(unknown)} symbols this run never saw were read as unknown: "
              f"{' '.join(unknown)}")
    if not stopped:
        print("note: the stop token never fired; the audio was cut at the frame budget")
    focus = alignment.max(-1).values.mean().item()
    print(f"{len(wave) / rate:.2f} s of speech ({symbols.kind}: {len(source)} symbols, "
          f"attention focus {focus:.2f}) written to {out}")
    return 0
