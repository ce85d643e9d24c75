"""Audio features for speech synthesis (MAP 6.3, Tacotron 2): the log-mel spectrogram a model
predicts, and Griffin-Lim, which turns a magnitude spectrogram back into a waveform.

torchaudio has no release for this torch, so both are written here in torch (they run on the
model's device and batch) and tested against librosa, the field's reference:

- **mel filterbank** (Slaney's scale, librosa's default): ``m(f) = 3 f / 200`` below 1 kHz,
  ``15 + 27 ln(f / 1000) / ln 6.4`` above; ``n_mels`` triangles between ``n_mels + 2`` points
  equally spaced in ``m``, each scaled by ``2 / (f_{i+2} - f_i)`` (equal area);
- **log-mel** (Tacotron 2's features): ``ln max(M |STFT(x)|, 1e-5)``, magnitude, not power;
- **Griffin-Lim** (fast, Perraudin et al. 2013): from phases ``P``, repeat
  ``x = iSTFT(S P)``, ``R = STFT(x)``, ``P = (R - a/(1+a) R_prev) / |.|`` with momentum ``a``;
- the magnitude from a log-mel: ``max(M^+ exp(log-mel), 0)``, the filterbank's pseudo-inverse
  (librosa solves a non-negative least squares instead; close, and far cheaper here).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

LOG_FLOOR = 1e-5  # NVIDIA's Tacotron 2 clamp before the log (the paper: 0.01); ln 1e-5 = -11.5


@dataclass(frozen=True)
class Spectrogram:
    """The analysis every speech run shares (saved in its checkpoints). The paper's: 24 kHz,
    50 ms windows every 12.5 ms, 125 Hz - 7.6 kHz; these suit 16 kHz and a CPU's frame rate."""

    sample_rate: int = 16_000  # Hz; pocketsphinx's rate, and espeak-ng's energy is below 8 kHz
    n_fft: int = 1024  # 64 ms window
    hop: int = 256  # 16 ms between frames: 62.5 frames a second
    n_mels: int = 80
    fmin: float = 0.0
    fmax: float = 8000.0


def hz_to_mel(f: np.ndarray) -> np.ndarray:
    """Slaney's mel scale: linear below 1 kHz, logarithmic above."""
    f = np.asarray(f, dtype=np.float64)
    linear = f * 3 / 200
    return np.where(f >= 1000, 15 + np.log(np.maximum(f, 1e-10) / 1000) * 27 / np.log(6.4),
                    linear)


def mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    return np.where(m >= 15, 1000 * np.exp((m - 15) * np.log(6.4) / 27), m * 200 / 3)


def mel_filterbank(spec: Spectrogram) -> torch.Tensor:
    """(n_mels, n_fft // 2 + 1): triangles on Slaney's scale, each of equal area."""
    bins = np.linspace(0, spec.sample_rate / 2, spec.n_fft // 2 + 1)
    edges = mel_to_hz(np.linspace(hz_to_mel(spec.fmin), hz_to_mel(spec.fmax), spec.n_mels + 2))
    widths = np.diff(edges)
    ramps = edges[:, None] - bins[None, :]
    rising = -ramps[:-2] / widths[:-1, None]
    falling = ramps[2:] / widths[1:, None]
    weights = np.maximum(0, np.minimum(rising, falling))
    weights *= (2 / (edges[2:] - edges[:-2]))[:, None]
    return torch.from_numpy(weights).float()


def stft(wave: torch.Tensor, spec: Spectrogram) -> torch.Tensor:
    """(..., n_fft // 2 + 1, frames) complex; centred frames, zero-padded ends (librosa's)."""
    window = torch.hann_window(spec.n_fft, dtype=wave.dtype, device=wave.device)
    return torch.stft(wave, spec.n_fft, spec.hop, window=window, center=True,
                      pad_mode="constant", return_complex=True)


def istft(frames: torch.Tensor, spec: Spectrogram, length: int | None = None) -> torch.Tensor:
    window = torch.hann_window(spec.n_fft, dtype=frames.real.dtype, device=frames.device)
    return torch.istft(frames, spec.n_fft, spec.hop, window=window, center=True, length=length)


def log_mel(wave: torch.Tensor, spec: Spectrogram,
            filterbank: torch.Tensor | None = None) -> torch.Tensor:
    """(..., frames, n_mels): ln max(M |STFT(x)|, 1e-5) of waveforms (..., samples)."""
    fb = mel_filterbank(spec) if filterbank is None else filterbank
    magnitude = stft(wave, spec).abs()  # (..., F, frames)
    mel = fb.to(magnitude) @ magnitude  # (..., n_mels, frames)
    return mel.clamp_min(LOG_FLOOR).log().transpose(-1, -2)


def mel_to_magnitude(logmel: torch.Tensor, spec: Spectrogram) -> torch.Tensor:
    """(..., F, frames) magnitude from (..., frames, n_mels): M^+ exp(log-mel), clipped at 0."""
    inverse = torch.linalg.pinv(mel_filterbank(spec).double()).to(logmel)  # (F, n_mels)
    return (inverse @ logmel.exp().transpose(-1, -2)).clamp_min(0)


def griffin_lim(magnitude: torch.Tensor, spec: Spectrogram, iterations: int = 32,
                momentum: float = 0.99, length: int | None = None,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """A waveform (..., samples) whose STFT magnitude approaches ``magnitude`` (..., F, frames).
    Phases start at 0 (librosa's ``init=None``), or random with a ``generator``. Fewer than
    two frames (a decoder that stopped at once) are padded with silence to two."""
    if magnitude.shape[-1] < 2:
        magnitude = torch.nn.functional.pad(magnitude, (0, 2 - magnitude.shape[-1]))
    if generator is None:
        phases = torch.ones_like(magnitude, dtype=torch.complex128 if magnitude.dtype ==
                                 torch.float64 else torch.complex64)
    else:
        angle = torch.rand(magnitude.shape, generator=generator, dtype=magnitude.dtype)
        phases = torch.polar(torch.ones_like(magnitude), 2 * math.pi * angle.to(magnitude))
    previous = torch.zeros_like(phases)
    tiny = torch.finfo(magnitude.dtype).tiny
    for _ in range(iterations):
        rebuilt = stft(istft(magnitude * phases, spec, length), spec)
        phases = rebuilt - (momentum / (1 + momentum)) * previous  # the "fast" in fast G-L
        phases = phases / (phases.abs() + tiny)
        previous = rebuilt
    return istft(magnitude * phases, spec, length)


def mel_to_wave(logmel: torch.Tensor, spec: Spectrogram, iterations: int = 32) -> torch.Tensor:
    """A waveform from a log-mel (frames, n_mels): its magnitude, then Griffin-Lim."""
    return griffin_lim(mel_to_magnitude(logmel, spec), spec, iterations)


def resample(wave: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
    """scipy's polyphase resampler (a Kaiser-windowed FIR), float32."""
    from scipy.signal import resample_poly

    if source_rate == target_rate:
        return wave.astype(np.float32)
    g = math.gcd(source_rate, target_rate)
    return resample_poly(wave, target_rate // g, source_rate // g).astype(np.float32)


def to_int16(wave: torch.Tensor | np.ndarray) -> np.ndarray:
    """Peak-normalised to 0.9 of full scale (Griffin-Lim's level is arbitrary), 16-bit."""
    x = np.asarray(wave, dtype=np.float64)
    peak = np.abs(x).max() if x.size else 0.0
    return (x / peak * 0.9 * 32767 if peak > 0 else x).astype(np.int16)
