"""MAP 6.3: Tacotron 2; the source quotes "Tacotron 2 generates natural speech (MOS 4.53)".

A mean opinion score needs listeners: not measurable here. What can be measured without them
is whether the mechanism works: **a Tacotron 2 trained on one voice learns to read a text in
order (its attention walks the diagonal) and speaks held-out sentences closer to that voice's
own rendering than any other sentence of the voice is.**

Recipe ``speak-espeak`` (phonemes -> CPU-sized Tacotron 2 -> Griffin-Lim) on ``speech``:
2,000 Austen sentences spoken by espeak-ng; 5% held out for validation (best.pt by teacher-
forced mel loss) and 5% for test. On the test sentences, spoken free-running:

- mel-cepstral distortion (MCD, dB, DTW-aligned) against espeak-ng's audio of the same
  sentence, beside two reference points measured the same way: the true spectrogram through
  the same Griffin-Lim (the vocoder's floor) and espeak-ng's audio of the *next* test sentence
  (same voice, other words: what "not this sentence" scores);
- the attention's diagonality (weight within a band of width 0.2 around the diagonal; a
  uniform attention scores about 0.45) and focus;
- pocketsphinx's word error rate on our audio and on espeak-ng's: reported, not judged,
  because the recogniser (trained on human American speech) already fails on espeak-ng's own
  voice.

Holds when, beyond the spread over seeds, (1) attention diagonality exceeds 0.9 and (2) MCD is
below the other-sentence MCD.
"""

from __future__ import annotations

import numpy as np

from deepatlas.lab.common import pyplot, save, without_data
from deepatlas.lab.registry import Context, Result, experiment
from deepatlas.lab.stats import against, compare, verdict

MOS_QUOTED = 4.53
DIAGONALITY_FLOOR = 0.9


@experiment(name="speech-synthesis", map_id="6.3", title="Tacotron 2: speech without listeners",
            claim="Tacotron 2 generates natural speech (MOS 4.53); here: trained on one voice, "
                  "it learns to read in order and speaks held-out sentences closer to that "
                  "voice's rendering than another sentence of the voice is.",
            source="语音合成:Tacotron 2生成自然语音(MOS 4.53)",
            implements="deepatlas.models.tacotron (encoder, location-sensitive attention, "
                       "autoregressive decoder, postnet, stop token); data.audio (log-mel, "
                       "Griffin-Lim); task speak; recipe speak-espeak; deepatlas speak")
def run(ctx: Context) -> Result:
    from deepatlas.config import load_recipe
    from deepatlas.tasks import fit

    missing = without_data("speech")
    if missing is not None:
        return missing
    seeds = [ctx.seed + s for s in range(ctx.size(3, 1, smoke=1))]
    small = ["model.width=64", "model.prenet=32", "model.rnn=64", "model.attention=32",
             "model.postnet=32", "train.batch_size=16", "speech.max_seconds=3",
             "speech.eval_sentences=6", "speech.wer_sentences=0",
             "speech.griffin_lim_iterations=8"]
    budget = ctx.size([], ["train.epochs=1", "train.limit_train_batches=8", *small],
                      smoke=["train.epochs=1", *small])
    keys = ("test_mcd_db", "test_mcd_predicted_mel_db", "test_mcd_griffin_lim_db",
            "test_mcd_other_sentence_db", "test_attention_diagonality", "test_attention_focus",
            "test_length_ratio", "test_stopped", "test_wer", "test_wer_espeak")
    runs: dict[str, list[float]] = {k: [] for k in (*keys, "train_seconds")}
    for seed in seeds:
        config = load_recipe("speak-espeak", ["train.tensorboard=false", "data.download=false",
                                              f"seed={seed}", *budget])
        summary = fit(config, ctx.out / f"seed{seed}", progress=False)
        for k in keys:
            runs[k].append(float(summary.get(k, float("nan"))))
        runs["train_seconds"].append(float(summary["wall_s"]))
    effects = [
        against(f"attention diagonality - {DIAGONALITY_FLOOR}",
                runs["test_attention_diagonality"], DIAGONALITY_FLOOR),
        compare("MCD other sentence - MCD ours (dB)", runs["test_mcd_other_sentence_db"],
                runs["test_mcd_db"]),
    ]
    status, note = verdict(effects)
    mean = {k: float(np.nanmean(v)) if not all(np.isnan(v)) else float("nan")
            for k, v in runs.items()}

    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.4))
    bars = (("Griffin-Lim of\nthe true mel", "test_mcd_griffin_lim_db"),
            ("ours, mel", "test_mcd_predicted_mel_db"), ("ours, audio", "test_mcd_db"),
            ("another\nsentence", "test_mcd_other_sentence_db"))
    left.bar(range(len(bars)), [mean[k] for _, k in bars],
             yerr=[np.std(runs[k]) for _, k in bars], capsize=4,
             color=["tab:gray", "tab:blue", "tab:blue", "tab:red"])
    left.set_xticks(range(len(bars)), [b for b, _ in bars], fontsize=8)
    left.set_ylabel("MCD against espeak-ng (dB)")
    left.set_title(f"held-out sentences ({len(seeds)} seeds)", fontsize=9)
    right.bar([0, 1], [mean["test_attention_diagonality"], mean["test_attention_focus"]],
              yerr=[np.std(runs["test_attention_diagonality"]),
                    np.std(runs["test_attention_focus"])], capsize=4, color="tab:green")
    right.axhline(DIAGONALITY_FLOOR, color="k", linestyle=":")
    right.set_xticks([0, 1], ["diagonality", "focus"])
    right.set_ylim(0, 1)
    right.set_title("attention, free-running", fontsize=9)
    plots = [save(fig, ctx.path("plot.png"))]
    figure = ctx.out / f"seed{seeds[0]}" / "speech.png"
    if figure.is_file():
        import shutil

        shutil.copyfile(figure, ctx.path("alignment.png"))
        plots.append("alignment.png")

    metrics = {f"{k}_mean": v for k, v in mean.items() if np.isfinite(v)}
    metrics["mos_quoted"] = MOS_QUOTED
    wer = (f"; pocketsphinx word error rate {mean['test_wer']:.0%} on ours, "
           f"{mean['test_wer_espeak']:.0%} on espeak-ng's own audio"
           if np.isfinite(mean["test_wer"]) else "")
    details = (
        f"MCD against espeak-ng: ours {mean['test_mcd_db']:.2f} ± {np.std(runs['test_mcd_db']):.2f}"
        f" dB (the predicted mel before Griffin-Lim {mean['test_mcd_predicted_mel_db']:.2f}), "
        f"another sentence {mean['test_mcd_other_sentence_db']:.2f}, the true mel through "
        f"Griffin-Lim {mean['test_mcd_griffin_lim_db']:.2f}; attention diagonality "
        f"{mean['test_attention_diagonality']:.2f}, focus {mean['test_attention_focus']:.2f}; "
        f"length {mean['test_length_ratio']:.2f} x espeak-ng's, the stop token fired in "
        f"{mean['test_stopped']:.0%}{wer} ({len(seeds)} seeds, {mean['train_seconds']:.0f} s "
        "training each). MOS 4.53 needs listeners: not measurable here.")
    return Result(metrics, status, details, plots, effects, seeds, note=note)
