"""MAP 4.2: the encoder-decoder Transformer and its number-words task."""

import json

import pytest
import torch

from deepatlas.data.numbers import BOS, EOS, load_number_words, spell
from deepatlas.models import create_model, list_models
from deepatlas.tasks.seq2seq import exact_match


@pytest.mark.parametrize("n, words", [
    (0, "zero"), (13, "thirteen"), (40, "forty"), (42, "forty two"), (105, "one hundred five"),
    (3042, "three thousand forty two"), (9999, "nine thousand nine hundred ninety nine"),
])
def test_spell(n, words):
    assert spell(n) == words


def test_number_words_split_holds_out_unseen_numbers():
    data = load_number_words()
    assert len(data.src_train) == 8000 and len(data.src_test) == 2000
    train = {tuple(r.tolist()) for r in data.src_train}
    assert not any(tuple(r.tolist()) in train for r in data.src_test)
    assert (data.tgt_train[:, 0] == BOS).all()


def test_seq2seq_model_shapes_gradients_and_decoding():
    assert list_models("seq2seq") == ["transformer-seq2seq"]
    torch.manual_seed(0)
    model = create_model("transformer-seq2seq", in_channels=20, num_classes=9, d_model=32)
    src = torch.randint(1, 20, (3, 5))
    src[0, 3:] = 0  # padding
    tgt = torch.randint(3, 9, (3, 4))
    logits = model(src, tgt)
    assert logits.shape == (3, 4, 9) and torch.isfinite(logits).all()
    logits.square().mean().backward()
    assert all(p.grad is not None for p in model.parameters())
    model.eval()
    out = model.greedy_decode(src, BOS, EOS, max_len=6)
    assert out.shape[0] == 3 and out.shape[1] <= 6


def test_padding_does_not_change_the_encoding():
    torch.manual_seed(0)
    model = create_model("transformer-seq2seq", in_channels=20, num_classes=9, d_model=32).eval()
    src = torch.randint(1, 20, (1, 4))
    padded = torch.cat([src, torch.zeros(1, 3, dtype=torch.long)], dim=1)
    tgt = torch.tensor([[BOS, 4, 5]])
    assert torch.allclose(model(src, tgt), model(padded, tgt), atol=1e-5)


def test_exact_match_counts_whole_sequences():
    class Echo(torch.nn.Module):  # "decodes" a fixed answer
        def __init__(self, answer):
            super().__init__()
            self.answer = answer

        def greedy_decode(self, src, begin, end, max_len):
            return self.answer

    tgt = torch.tensor([[BOS, 3, 4, EOS, 0], [BOS, 5, EOS, 0, 0]])
    right = torch.tensor([[3, 4, EOS, 7, 7], [5, EOS, 9, 9, 9]])  # junk after <eos> is ignored
    assert exact_match(Echo(right), tgt, tgt) == 1.0
    wrong = torch.tensor([[3, 4, EOS, 0, 0], [6, EOS, 0, 0, 0]])
    assert exact_match(Echo(wrong), tgt, tgt) == 0.5


def test_number_words_recipe_learns(cli, tmp_path):
    code, out, err = cli("train", "number-words", "--out", tmp_path, "--set", "train.epochs=3")
    assert code == 0, err
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["data"] == {"name": "number-words", "source": summary["data"]["source"],
                               "train": 7200, "val": 800, "test": 2000, "val_fraction": 0.1}
    assert summary["primary"] == "test_exact_match" and "test_exact_match" in out
    assert summary["monitor"] == "val_exact_match" and "val_exact_match" in summary["best"]
    assert summary["test_exact_match"] > 0.2  # 3 of 25 epochs; the full recipe reaches ~99%
