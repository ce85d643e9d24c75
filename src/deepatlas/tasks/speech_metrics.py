"""How good synthesised speech is, without listeners (MAP 6.3, Tacotron 2):

- **mel-cepstral distortion** against espeak-ng's own rendering of the sentence, frames paired
  by dynamic time warping (librosa's DTW)::

      MCD = (10 / ln 10) sqrt(2 sum_{d=1}^{D} (c_d - c'_d)^2)   dB, averaged along the path

  with ``c_1..c_24`` (c_0, the loudness, left out) the cosine series of the log-mel amplitude
  spectrum in SPTK's convention, ``ln |H(w~)| = c_0 + sum_{m>=1} c_m cos(m w~)`` on the mel
  axis w~, so ``c_m = (2/K) sum_k ln M_k cos(pi m (k + 1/2) / K)`` over the K mel bands (a
  DCT-II): the scale of published MCDs, though SPTK fits its cepstra to the spectral envelope
  and so gives somewhat different absolute values; the figures compare within this page;
- **attention**: *focus*, the mean over decoder steps of the largest attention weight (1: one
  symbol at a time; uniform over N symbols: 1/N), and *diagonality*, the mean weight under a
  Gaussian band around the diagonal, ``sum_nt A_nt exp(-(n/N - t/T)^2 / 2g^2) / T``;
- **intelligibility**: the word error rate (torchmetrics') of an offline recogniser,
  pocketsphinx with its bundled CMU en-US model, on our audio and on espeak-ng's.
"""

from __future__ import annotations

import math
import re

import numpy as np
import torch

MCD_COEFFICIENTS = 24
_DB = 10 / math.log(10) * math.sqrt(2)


def mel_cepstrum(logmel: torch.Tensor, n: int = MCD_COEFFICIENTS) -> np.ndarray:
    """(frames, n_mels) log-mel -> (frames, n) cepstra c_1..c_n."""
    from scipy.fft import dct

    k = logmel.shape[-1]  # scipy's DCT-II is 2 sum_k x_k cos(.): divide by K for 2/K
    return dct(logmel.double().numpy(), type=2, axis=-1)[:, 1:n + 1] / k


def mcd_dtw(reference: torch.Tensor, ours: torch.Tensor) -> float:
    """Mel-cepstral distortion (dB) of two log-mels (frames, n_mels) along their DTW path."""
    import librosa

    a, b = mel_cepstrum(reference), mel_cepstrum(ours)
    _, path = librosa.sequence.dtw(X=a.T, Y=b.T, metric="euclidean")
    return float(_DB * np.linalg.norm(a[path[:, 0]] - b[path[:, 1]], axis=1).mean())


def guide_penalty(symbol_fraction: torch.Tensor, step_fraction: torch.Tensor, width: float
                  ) -> torch.Tensor:
    """Tachibana et al.'s W = 1 - exp(-(n/N - t/T)^2 / 2g^2): 0 on the diagonal."""
    return 1 - torch.exp(-(symbol_fraction - step_fraction) ** 2 / (2 * width ** 2))


def guide(n: int, t: int, width: float) -> torch.Tensor:
    """(t, n): the guide's penalty for one utterance of t decoder steps and n symbols."""
    steps = torch.arange(t, dtype=torch.float32).unsqueeze(1) / max(t, 1)
    symbols = torch.arange(n, dtype=torch.float32).unsqueeze(0) / max(n, 1)
    return guide_penalty(symbols, steps, width)


def attention_focus(alignment: torch.Tensor) -> float:
    """Mean over decoder steps of max_n A_tn, for one utterance's (T, N)."""
    return alignment.max(-1).values.mean().item()


def attention_diagonality(alignment: torch.Tensor, width: float = 0.2) -> float:
    """Mean over steps of the weight within the diagonal band: 1 - mean(A * guide)."""
    t, n = alignment.shape
    return 1 - (alignment * guide(n, t, width)).sum(-1).mean().item()


def words(text: str) -> str:
    """Lower case, letters and apostrophes only: how a transcript is compared."""
    return " ".join(re.sub(r"[^a-z']+", " ", text.lower()).split())


def recognise(waves: list[np.ndarray], sample_rate: int = 16_000) -> list[str]:
    """pocketsphinx's transcript of each 16 kHz waveform (its default en-US model and
    language model, bundled with the PyPI package)."""
    from pocketsphinx import Decoder

    from deepatlas.data.audio import to_int16

    decoder = Decoder(samprate=sample_rate, loglevel="FATAL")
    out = []
    for wave in waves:
        decoder.start_utt()
        decoder.process_raw(to_int16(wave).tobytes(), full_utt=True)
        decoder.end_utt()
        out.append(words(decoder.hyp().hypstr) if decoder.hyp() is not None else "")
    return out


def word_error_rate(hypotheses: list[str], references: list[str]) -> float:
    """(substitutions + deletions + insertions) / reference words, over the whole set."""
    from torchmetrics.text import WordErrorRate

    return float(WordErrorRate()([words(h) for h in hypotheses],
                                 [words(r) for r in references]))
