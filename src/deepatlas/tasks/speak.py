"""Text to speech (MAP 6.3, Tacotron 2; Shen et al. 2018): ``task = "speak"``.

The ``speech`` set's sentences (espeak-ng's voice) as symbols -> log-mel spectrograms at 16 kHz
(data/speech_features.py). The loss of a batch, over its real (unpadded) frames::

    L = MSE(mel, y) + MSE(mel_post, y) + BCE(stop, [t >= T - 1]) + lambda * L_guide
    L_guide = mean_t sum_n A_tn (1 - exp(-(n/N - t/T)^2 / 2g^2))  # Tachibana et al. 2017

The guide (``speech.guided_attention``; not in Tacotron 2) is a prior that the text is read in
order at a steady pace: it lets the attention align in hundreds of steps, not the paper's tens
of thousands, which is what a CPU can afford. ``val_mel_loss`` (teacher-forced) picks best.pt.

At the end (``finish``, with the last epoch's weights, as every task's summary is; best.pt,
which ``deepatlas speak`` reads, may be an earlier epoch's), ``speech.eval_sentences`` test
sentences are spoken free-running, the
prenet's dropout on, turned into waveforms by Griffin-Lim, and scored (tasks/speech_metrics.py):
MCD against espeak-ng's audio of the same sentence, beside two reference points measured the
same way (the true spectrogram through Griffin-Lim: the vocoder's floor; another sentence of
espeak-ng's: unrelated speech), the attention's focus and diagonality, and the word error rate
of pocketsphinx on ours and on espeak-ng's audio.
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from deepatlas.data.audio import Spectrogram, log_mel, mel_to_wave
from deepatlas.data.loaders import TensorBatches
from deepatlas.data.speech_features import (Symbols, Utterances, load_utterances, pad_batch,
                                            pad_symbols)
from deepatlas.errors import UserError
from deepatlas.models import create_model
from deepatlas.tasks import speech_metrics as sm
from deepatlas.train import Context, StepOutput, Task

SPECTROGRAM = Spectrogram()
_DATA: dict[tuple, dict[str, Utterances]] = {}  # the lab's seeds share one load
_ESPEAK_HEARD: dict[tuple, list[str]] = {}


def frame_budget(symbols: int) -> int:
    """The most frames free-running may speak for a text of ``symbols`` symbols: about twice
    espeak-ng's pace (5 frames a phoneme), so a decoder that never stops still ends."""
    return 10 * symbols + 40


@contextlib.contextmanager
def seeded(seed: int, device: torch.device):
    """Randomness (the prenet's dropout) fixed for an evaluation and kept out of training's."""
    with torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        yield


class Speak(Task):
    name = "speak"
    uses = {"train.eval_batch_size", "speech.*"}
    monitor = ("val_mel_loss", "min")
    primary = "test_mcd_db"

    def setup(self, ctx: Context) -> None:
        from deepatlas.data.packages import set_folder

        cfg, self.ctx = self.config, ctx
        folder = set_folder(cfg.data.dir, "speech", cfg.data.download)
        key = (str(folder), SPECTROGRAM, cfg.speech.symbols)
        if key not in _DATA:
            _DATA[key] = load_utterances(folder, SPECTROGRAM, cfg.speech.symbols)
        self.parts, self.folder = _DATA[key], folder
        train = self.parts["train"]
        longest = cfg.speech.max_seconds * SPECTROGRAM.sample_rate / SPECTROGRAM.hop
        keep = [i for i, m in enumerate(train.mels) if len(m) <= longest]
        if len(keep) < cfg.train.batch_size * ctx.dist.world_size:
            raise UserError(f"{len(keep)} training sentences of at most "
                            f"speech.max_seconds={cfg.speech.max_seconds:g} s, fewer than "
                            f"train.batch_size={cfg.train.batch_size}; raise one, lower the "
                            "other")
        self.symbols = Symbols.fit(cfg.speech.symbols, [train.sources[i] for i in keep])
        # Targets standardised per mel band over the training frames (log-mels run from -11.5
        # in silence to about 2): every band weighs alike in the loss, and zero is average.
        frames_all = torch.cat([train.mels[i] for i in keep])
        self.mel_mean, self.mel_std = frames_all.mean(0), frames_all.std(0).clamp_min(1e-3)
        options = {k: v for k, v in cfg.model.items() if k != "name"}
        model = create_model(cfg.model["name"], in_channels=SPECTROGRAM.n_mels,
                             num_classes=self.symbols.size, **options)
        self.r = model.r
        self.models = {"model": model.to(ctx.device)}
        self.tensors = {s: self.padded(p.sources, p.mels) for s, p in self.parts.items()
                        if s != "train"}
        symbols, lengths, mels, frames = self.padded([train.sources[i] for i in keep],
                                                     [train.mels[i] for i in keep])
        self.train_sentences = len(keep)
        self.train_loader = TensorBatches(
            symbols, lengths, mels, frames, batch_size=cfg.train.batch_size // ctx.dist.world_size,
            seed=cfg.seed, device=ctx.device, rank=ctx.dist.rank, world_size=ctx.dist.world_size)

    def padded(self, sources: list[str], mels: list[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        """symbols, lengths, standardised mels padded with silence, frame counts."""
        symbols, lengths, mel, frames = pad_batch([self.symbols.encode(s) for s in sources],
                                                  mels, SPECTROGRAM.n_mels, self.r)
        return symbols, lengths, (mel - self.mel_mean) / self.mel_std, frames

    def losses(self, model: nn.Module, batch: tuple[torch.Tensor, ...]
               ) -> dict[str, torch.Tensor]:
        symbols, lengths, mel, frames = batch  # (B, N), (B,), (B, T, n_mels), (B,)
        n = int(lengths.max())
        t = -(-int(frames.max()) // self.r) * self.r  # this batch's longest, in whole steps
        symbols, mel = symbols[:, :n], mel[:, :t]
        with self.ctx.autocast():
            out, post, stop, alignment = model(symbols, lengths, mel)
        real = torch.arange(t, device=mel.device) < frames.unsqueeze(1)  # (B, T)
        per_frame = real.unsqueeze(-1).float() / (real.sum() * mel.shape[-1])
        mel_loss = ((out.float() - mel) ** 2 * per_frame).sum()
        post_loss = ((post.float() - mel) ** 2 * per_frame).sum()
        ended = torch.arange(t, device=mel.device) >= (frames - 1).unsqueeze(1)
        stop_loss = F.binary_cross_entropy_with_logits(stop.float(), ended.float())
        # The guide, per utterance: T its decoder steps, N its symbols.
        steps = (-(-frames // self.r)).float().view(-1, 1, 1)
        t_at = torch.arange(alignment.shape[1], device=mel.device).view(1, -1, 1)
        n_at = torch.arange(n, device=mel.device).view(1, 1, -1)
        inside = (t_at < steps) & (n_at < lengths.view(-1, 1, 1))
        weight = sm.guide_penalty(n_at / lengths.view(-1, 1, 1), t_at / steps,
                                  self.config.speech.guide_width)
        guide = (alignment.float() * weight * inside).sum() / steps.sum()
        return {"mel": mel_loss, "post": post_loss, "stop": stop_loss, "guide": guide,
                "alignment": alignment}

    def training_step(self, batch: Any, group: str) -> StepOutput:
        parts = self.losses(self.train_models["model"], batch)
        loss = (parts["mel"] + parts["post"] + parts["stop"]
                + self.config.speech.guided_attention * parts["guide"])
        return StepOutput(loss, {"loss": loss.detach(), "mel_loss": parts["post"].detach(),
                                 "stop_loss": parts["stop"].detach(),
                                 "guide_loss": parts["guide"].detach()}, n=len(batch[0]))

    @torch.no_grad()
    def evaluate(self, models: dict[str, nn.Module]) -> dict[str, float]:
        """Teacher-forced losses of validation and test (the prenet's dropout seeded)."""
        out: dict[str, float] = {}
        with seeded(self.config.seed, self.ctx.device):
            for split, tensors in self.tensors.items():
                size, total, guide = self.config.train.eval_batch_size, 0.0, 0.0
                n = len(tensors[0])
                for at in range(0, n, size):
                    batch = tuple(x[at:at + size].to(self.ctx.device) for x in tensors)
                    parts = self.losses(models["model"], batch)
                    total += parts["post"].item() * len(batch[0])
                    guide += parts["guide"].item() * len(batch[0])
                out[f"{split}_mel_loss"], out[f"{split}_guide_loss"] = total / n, guide / n
        return out

    @torch.no_grad()
    def speak(self, model: nn.Module, sources: list[str]
              ) -> list[tuple[torch.Tensor, torch.Tensor, bool]]:
        """Free-running, each text within its own frame budget: (log-mel (frames, n_mels),
        alignment (steps, symbols), whether the stop token fired) of each."""
        model.eval()
        out = []
        size = self.config.train.eval_batch_size
        for at in range(0, len(sources), size):
            seqs = [self.symbols.encode(s) for s in sources[at:at + size]]
            symbols, lengths = pad_symbols(seqs)
            budget = torch.tensor([frame_budget(len(s)) for s in seqs])
            mel, spoken, stopped, alignment = model.generate(
                symbols.to(self.ctx.device), lengths.to(self.ctx.device),
                budget.to(self.ctx.device))
            for i, s in enumerate(seqs):
                frames = int(spoken[i])
                logmel = mel[i, :frames].float().cpu() * self.mel_std + self.mel_mean
                out.append((logmel, alignment[i, :-(-frames // self.r), :len(s)].float().cpu(),
                            bool(stopped[i])))
        return out

    def waveform(self, logmel: torch.Tensor) -> torch.Tensor:
        return mel_to_wave(logmel, SPECTROGRAM, self.config.speech.griffin_lim_iterations)

    def finish(self, history: list[dict[str, float]], models: dict[str, nn.Module]
               ) -> dict[str, Any]:
        from deepatlas.tasks.speech_figures import save_samples

        cfg, test = self.config.speech, self.parts["test"]
        count = min(cfg.eval_sentences, len(test))
        if count == 0:
            return {}
        with seeded(self.config.seed, self.ctx.device):
            spoken = self.speak(models["model"], test.sources[:count])
        refs = test.mels[:count]
        waves = [self.waveform(mel) for mel, _, _ in spoken]
        heard = [log_mel(w, SPECTROGRAM) for w in waves]
        floor = [log_mel(self.waveform(m), SPECTROGRAM) for m in refs]
        mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
        out = {
            "test_mcd_db": mean([sm.mcd_dtw(r, h) for r, h in zip(refs, heard)]),
            "test_mcd_predicted_mel_db": mean([sm.mcd_dtw(r, m) for r, (m, _, _) in
                                               zip(refs, spoken)]),
            "test_mcd_griffin_lim_db": mean([sm.mcd_dtw(r, f) for r, f in zip(refs, floor)]),
            "test_mcd_other_sentence_db": mean([sm.mcd_dtw(refs[i], refs[(i + 1) % count])
                                                for i in range(count)]) if count > 1 else 0.0,
            "test_attention_focus": mean([sm.attention_focus(a) for _, a, _ in spoken]),
            "test_attention_diagonality": mean([sm.attention_diagonality(a)
                                                for _, a, _ in spoken]),
            "test_length_ratio": mean([len(m) / len(r) for (m, _, _), r in zip(spoken, refs)]),
            "test_stopped": mean([float(stopped) for _, _, stopped in spoken]),
            "test_sentences_spoken": count,
        }
        transcripts: list[tuple[str, str, str]] = []
        if cfg.wer_sentences > 0:
            n = min(cfg.wer_sentences, count)
            ours = sm.recognise([w.numpy() for w in waves[:n]], SPECTROGRAM.sample_rate)
            key = (str(self.folder), n)  # espeak-ng's audio is the same for every seed
            if key not in _ESPEAK_HEARD:
                _ESPEAK_HEARD[key] = sm.recognise(test.waves[:n], SPECTROGRAM.sample_rate)
            theirs = _ESPEAK_HEARD[key]
            out["test_wer"] = sm.word_error_rate(ours, test.texts[:n])
            out["test_wer_espeak"] = sm.word_error_rate(theirs, test.texts[:n])
            transcripts = list(zip(test.texts[:n], ours, theirs))
        out.update(save_samples(self.ctx.out_dir, test, spoken, waves, transcripts,
                                SPECTROGRAM))
        return out

    def describe_data(self) -> dict[str, Any]:
        return {"name": "speech", "symbols": self.symbols.kind, "table": self.symbols.table,
                "spectrogram": dataclasses.asdict(SPECTROGRAM),
                "mel_mean": self.mel_mean.tolist(), "mel_std": self.mel_std.tolist(),
                "griffin_lim_iterations": self.config.speech.griffin_lim_iterations}

    def data_summary(self) -> dict[str, Any]:
        return {"name": "speech", "source": "Jane Austen's sentences spoken by espeak-ng "
                "(Debian), resampled to 16 kHz", "train": self.train_sentences,
                **{s: len(p) for s, p in self.parts.items() if s != "train"},
                "symbols": f"{self.symbols.size} ({self.symbols.kind})"}


def load_speech_run(run_or_file: str) -> tuple[nn.Module, Symbols, dict[str, Any]]:
    """(Tacotron 2 in eval mode with its inference weights, its symbols, its checkpoint's data)
    of a ``speak`` run; any other run is a UserError."""
    from deepatlas.models.saved import inference_weights, load_weights
    from deepatlas.train.checkpoint import load_run

    state, _ = load_run(run_or_file, Speak.name,
                        "speak reads runs of `deepatlas train speak-espeak`")
    data = state["data"]
    symbols = Symbols(data["symbols"], data["table"])
    options = {k: v for k, v in state["config"]["model"].items() if k != "name"}
    model = create_model(state["config"]["model"]["name"], num_classes=symbols.size,
                         in_channels=data["spectrogram"]["n_mels"], **options)
    load_weights(model, inference_weights(state), state["config"]["model"])
    return model.eval(), symbols, data


@torch.no_grad()
def say(model: nn.Module, symbols: Symbols, data: dict[str, Any], source: str, seed: int = 0
        ) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """A run speaks ``source`` (its symbols' kind: IPA or text): (waveform at the run's rate,
    alignment (steps, symbols), whether the stop token fired within the frame budget)."""
    spec = Spectrogram(**data["spectrogram"])
    ids = torch.tensor([symbols.encode(source)])
    with seeded(seed, torch.device("cpu")):
        mel, spoken, stopped, alignment = model.generate(
            ids, torch.tensor([ids.shape[1]]), torch.tensor([frame_budget(ids.shape[1])]))
    frames = int(spoken[0])
    logmel = mel[0, :frames] * torch.tensor(data["mel_std"]) + torch.tensor(data["mel_mean"])
    wave = mel_to_wave(logmel, spec, data["griffin_lim_iterations"])
    return wave, alignment[0, :-(-frames // model.r)], bool(stopped[0])
