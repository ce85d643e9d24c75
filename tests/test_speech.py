"""MAP 6.3, Tacotron 2: the audio features against librosa, the attention and its masks, the
measures against analytic cases, and the task and `deepatlas speak` on a tiny tone "voice"."""

from __future__ import annotations

import math
import subprocess
import sys

import librosa
import numpy as np
import pytest
import torch

from deepatlas.data.audio import Spectrogram, griffin_lim, log_mel, mel_filterbank
from fakedata import make_speech

SPEC = Spectrogram()


def _chirp(seconds: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * SPEC.sample_rate)) / SPEC.sample_rate
    return (0.5 * np.sin(2 * np.pi * (200 + 1500 * t) * t)).astype(np.float64)


def test_mel_filterbank_is_librosas():
    ours = mel_filterbank(SPEC).double().numpy()
    theirs = librosa.filters.mel(sr=SPEC.sample_rate, n_fft=SPEC.n_fft, n_mels=SPEC.n_mels,
                                 fmin=SPEC.fmin, fmax=SPEC.fmax)
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-8)


def test_log_mel_is_librosas_magnitude_melspectrogram():
    x = _chirp()
    ours = log_mel(torch.from_numpy(x), SPEC).numpy()  # (frames, n_mels)
    theirs = librosa.feature.melspectrogram(y=x, sr=SPEC.sample_rate, n_fft=SPEC.n_fft,
                                            hop_length=SPEC.hop, power=1.0, n_mels=SPEC.n_mels,
                                            fmin=SPEC.fmin, fmax=SPEC.fmax)
    np.testing.assert_allclose(ours, np.log(np.maximum(theirs, 1e-5)).T, atol=1e-5)


def test_griffin_lim_is_librosas_fast_griffin_lim():
    x = _chirp()
    magnitude = np.abs(librosa.stft(x, n_fft=SPEC.n_fft, hop_length=SPEC.hop))
    theirs = librosa.griffinlim(magnitude, n_iter=8, hop_length=SPEC.hop, n_fft=SPEC.n_fft,
                                init=None, momentum=0.99, length=len(x))
    ours = griffin_lim(torch.from_numpy(magnitude), SPEC, iterations=8, length=len(x))
    np.testing.assert_allclose(ours.numpy(), theirs, atol=1e-7)


def test_location_sensitive_attention_masks_padding_and_its_conv_is_the_conv():
    from deepatlas.nn.tacotron import LocationSensitiveAttention

    torch.manual_seed(0)
    attention = LocationSensitiveAttention(8, 6, 16, filters=4, kernel=5)
    previous, cumulative = torch.rand(2, 7), torch.rand(2, 7)
    conv = attention.location_conv(torch.stack([previous, cumulative], 1)).transpose(1, 2)
    torch.testing.assert_close(attention.where(previous, cumulative), conv)
    memory = torch.randn(2, 7, 6)
    mask = torch.tensor([[False] * 7, [False] * 4 + [True] * 3])
    context, weights = attention(torch.randn(2, 8), attention.keys(memory), memory, previous,
                                 cumulative, mask)
    assert torch.all(weights[1, 4:] == 0)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2))
    torch.testing.assert_close(context, torch.einsum("bn,bnm->bm", weights, memory))


def _tiny_tacotron():
    from deepatlas.models import create_model

    torch.manual_seed(0)
    return create_model("tacotron2", in_channels=10, num_classes=12, reduction=2, width=16,
                        prenet=8, rnn=16, attention=8, postnet=8)


def test_tacotron2_trains_every_parameter_and_never_reads_ahead():
    model = _tiny_tacotron()
    for m in model.modules():  # dropout aside, the output is a function of its inputs
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    model.prenet.p, model.dropout = 0.0, 0.0
    symbols = torch.randint(3, 12, (3, 9))
    symbols[2, 6:] = 0
    lengths = torch.tensor([9, 9, 6])
    mel = torch.randn(3, 12, 10)
    out, post, stop, alignment = model(symbols, lengths, mel)
    assert out.shape == post.shape == (3, 12, 10) and stop.shape == (3, 12)
    assert alignment.shape == (3, 6, 9) and torch.all(alignment[2, :, 6:] == 0)
    (post.square().mean() + stop.mean()).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    # Teacher forcing feeds frames < 2i to step i: changing the last 2 frames changes nothing.
    model.eval()
    later = mel.clone()
    later[:, -2:] += 5
    a, b = model(symbols, lengths, mel)[0], model(symbols, lengths, later)[0]
    torch.testing.assert_close(a, b)
    # Padding a sentence in a batch gives it the outputs it has alone.
    alone = model(symbols[2:, :6], lengths[2:], mel[2:])[0]
    torch.testing.assert_close(alone, a[2:], atol=1e-5, rtol=1e-5)


def test_generate_stops_each_row_at_its_first_stop_or_its_own_budget():
    model = _tiny_tacotron().eval()
    torch.nn.init.zeros_(model.stop.weight)
    with torch.no_grad():
        model.stop.bias.copy_(torch.tensor([-9.0, 9.0]))  # fires on each step's second frame
    mel, spoken, stopped, alignment = model.generate(
        torch.randint(3, 12, (3, 5)), torch.tensor([5, 3, 4]), torch.tensor([40, 40, 1]))
    # rows 0 and 1 stop at frame 2; row 2's budget (1 frame) ends before its stop fires
    assert spoken.tolist() == [2, 2, 1] and stopped.tolist() == [True, True, False]
    assert alignment.shape[1] == 1 and mel.shape[1] == 2
    torch.nn.init.constant_(model.stop.bias, -9.0)  # never fires: each row cut at its budget
    _, spoken, stopped, alignment = model.generate(
        torch.randint(3, 12, (2, 5)), torch.tensor([5, 5]), torch.tensor([7, 3]))
    assert spoken.tolist() == [7, 3] and not stopped.any() and alignment.shape[1] == 4


def test_mcd_is_zero_for_the_same_speech_blind_to_loudness_and_exact_for_one_cepstrum():
    from deepatlas.tasks.speech_metrics import mcd_dtw

    torch.manual_seed(0)
    reference = torch.randn(30, 80)
    assert mcd_dtw(reference, reference) == pytest.approx(0, abs=1e-9)
    assert mcd_dtw(reference, reference + 3.0) == pytest.approx(0, abs=1e-5)  # c_0 only
    # Frames all alike, so every DTW path pairs the same frames; c_1 differs by a.
    flat, a = torch.randn(1, 80).repeat(20, 1), 0.5
    k = torch.arange(80, dtype=torch.float64)
    shifted = flat + a * torch.cos(math.pi * (k + 0.5) / 80).float()
    expected = 10 / math.log(10) * math.sqrt(2) * a
    assert mcd_dtw(flat, shifted[:13]) == pytest.approx(expected, rel=1e-4)


def test_attention_measures_on_a_diagonal_and_a_uniform_alignment():
    from deepatlas.tasks.speech_metrics import attention_diagonality, attention_focus, guide

    diagonal = torch.eye(10)
    uniform = torch.full((10, 10), 0.1)
    assert attention_focus(diagonal) == 1 and attention_focus(uniform) == pytest.approx(0.1)
    assert attention_diagonality(diagonal) == pytest.approx(1.0)
    assert attention_diagonality(uniform) < 0.6
    assert torch.all(guide(10, 10, 0.2).diagonal() == 0)


def test_word_error_rate_counts_edits_over_reference_words():
    from deepatlas.tasks.speech_metrics import word_error_rate, words

    assert words("Mr. Darcy's  PRIDE!") == "mr darcy's pride"
    # one substitution and one insertion over 3 + 2 reference words
    assert word_error_rate(["a x c d", "e f"], ["a b c", "e f"]) == pytest.approx(2 / 5)


def test_pocketsphinx_gives_one_normalised_transcript_per_waveform():
    from deepatlas.tasks.speech_metrics import recognise, words

    t = np.arange(16_000) / 16_000
    heard = recognise([np.zeros(8_000, np.float32), np.sin(2 * np.pi * 440 * t)])
    assert len(heard) == 2 and all(isinstance(h, str) and h == words(h) for h in heard)


# ------------------------------------------------------------------------ the task and speak


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """speak-espeak on 60 tone "sentences" (characters as symbols: no espeak-ng needed), r = 4:
    one 60 ms tone (~4 frames) a decoder step."""
    from deepatlas.config import apply_overrides, load_recipe
    from deepatlas.tasks import fit

    root = tmp_path_factory.mktemp("speak")
    make_speech(root / "data", sentences=60)
    config = load_recipe("speak-espeak")
    apply_overrides(config, [f"data.dir={root / 'data'}", "speech.symbols=characters",
                             "model.width=32", "model.prenet=32", "model.rnn=64",
                             "model.attention=32", "model.postnet=32", "model.reduction=4",
                             "train.epochs=24", "train.batch_size=8", "optim.lr=0.003",
                             "speech.eval_sentences=4", "speech.wer_sentences=1",
                             "speech.griffin_lim_iterations=4", "train.tensorboard=false"])
    return root, fit(config, root / "run", progress=False)


def test_the_task_learns_to_read_the_tiny_voice_in_order(tiny_run):
    root, summary = tiny_run
    history = [line for line in (root / "run" / "metrics.jsonl").read_text().splitlines()]
    assert summary["test_attention_diagonality"] > 0.8  # untrained: 0.4 (measured)
    assert 0.7 < summary["test_length_ratio"] < 1.4  # untrained: 3.6, the budget
    assert summary["test_stopped"] == 1.0 and len(history) == 24
    assert summary["test_mcd_griffin_lim_db"] < summary["test_mcd_db"]
    transcripts = (root / "run" / "samples" / "transcripts.tsv").read_text().splitlines()
    assert len(transcripts) == 2 and {"test_wer", "test_wer_espeak"} <= summary.keys()
    for name in ("speech.png", "samples/transcripts.tsv", "samples/sentences.tsv"):
        assert (root / "run" / name).is_file(), name
    assert len(list((root / "run" / "samples").glob("*-ours.wav"))) == 3


def test_speak_writes_a_wav_and_never_over_a_file(tiny_run, cli):
    import soundfile

    root, _ = tiny_run
    code, out, err = cli("speak", root / "run", "Sat ton nie.", "--out", root / "a.wav")
    assert code == 0, err
    audio, rate = soundfile.read(root / "a.wav")
    assert rate == 16_000 and 0.2 < len(audio) / rate < 5
    assert "written to" in out and "never saw" not in out  # "S" is read as "s"
    before = (root / "a.wav").read_bytes()
    code, _, err = cli("speak", root / "run", "Sat.", "--out", root / "a.wav")
    assert code == 2 and "exists" in err and (root / "a.wav").read_bytes() == before


def test_speak_refuses_text_that_is_not_utf8(tiny_run, cli):
    root, _ = tiny_run
    code, _, err = cli("speak", root / "run", "caf\udce9", "--out", root / "b.wav")
    assert code == 2 and "not UTF-8" in err and not (root / "b.wav").exists()
    proc = subprocess.run([sys.executable, "-m", "deepatlas", "speak", str(root / "run"), "-",
                           "--out", str(root / "c.wav")], input=b"caf\xe9 au lait",
                          capture_output=True, timeout=120)
    err = proc.stderr.decode()
    assert proc.returncode == 2 and "stdin is not UTF-8 (byte 3" in err, err
    assert "Traceback" not in err and not (root / "c.wav").exists()
