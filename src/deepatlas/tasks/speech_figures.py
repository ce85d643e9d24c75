"""What a speech run leaves to look at and listen to (task speak, MAP 6.3): ``samples/`` with
our audio and espeak-ng's for the first test sentences, the recogniser's transcripts, and
``speech.png``: the first sentence's attention alignment and its spectrograms, ours above
espeak-ng's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from deepatlas.data.audio import Spectrogram, to_int16
from deepatlas.data.speech_features import Utterances

SAMPLES = 3  # sentences written as WAV pairs


def save_samples(out_dir: Path, test: Utterances,
                 spoken: list[tuple[torch.Tensor, torch.Tensor, bool]], waves: list[torch.Tensor],
                 transcripts: list[tuple[str, str, str]], spec: Spectrogram) -> dict[str, Any]:
    import soundfile

    folder = out_dir / "samples"
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(min(SAMPLES, len(waves))):
        key = test.ids[i]
        soundfile.write(folder / f"{key}-ours.wav", to_int16(waves[i]), spec.sample_rate)
        soundfile.write(folder / f"{key}-espeak.wav", to_int16(test.waves[i]), spec.sample_rate)
    lines = ["sentence\tpocketsphinx on ours\tpocketsphinx on espeak-ng"]
    lines += ["\t".join(row) for row in transcripts]
    (folder / "transcripts.tsv").write_text("\n".join(lines) + "\n", "utf-8")
    (folder / "sentences.tsv").write_text("".join(
        f"{test.ids[i]}\t{test.texts[i]}\n" for i in range(min(SAMPLES, len(waves)))), "utf-8")
    _figure(out_dir / "speech.png", test.texts[0], spoken[0], test.mels[0], spec)
    return {"samples": "samples", "figure": "speech.png"}


def _figure(path: Path, text: str, ours: tuple[torch.Tensor, torch.Tensor, bool],
            reference: torch.Tensor, spec: Spectrogram) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mel, alignment, _ = ours
    fig = plt.figure(figsize=(11, 5.2))
    grid = fig.add_gridspec(2, 2, width_ratios=(1, 2))
    left = fig.add_subplot(grid[:, 0])
    left.imshow(alignment.T.numpy(), origin="lower", aspect="auto", cmap="viridis")
    left.set_xlabel("decoder step")
    left.set_ylabel("symbol")
    left.set_title("attention (free-running)", fontsize=9)
    seconds = spec.hop / spec.sample_rate
    low = float(np.log(1e-5))
    for row, (what, m) in enumerate((("ours (Griffin-Lim input)", mel),
                                     ("espeak-ng", reference))):
        ax = fig.add_subplot(grid[row, 1])
        ax.imshow(m.T.numpy(), origin="lower", aspect="auto", cmap="magma", vmin=low,
                  extent=(0, len(m) * seconds, 0, spec.n_mels))
        ax.set_ylabel("mel band")
        ax.set_title(what, fontsize=9)
    ax.set_xlabel("seconds")
    fig.suptitle(f"\u201c{text[:90]}\u201d", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
