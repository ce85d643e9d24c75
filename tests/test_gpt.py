"""GPT (MAP 6.2): causal attention, the KV cache, sampling, tokenisers, the 175B count, and
the language-model task on text in the austen set's installed format."""

from __future__ import annotations

import json

import pytest
import torch

from deepatlas.data.corpus import TokenWindows, eval_windows, load_corpus, split_books
from deepatlas.data.tokenize import CharTokenizer, tokenizer_from_json, train_tokenizer
from deepatlas.lab.experiments.gpt import unigram_bpc
from deepatlas.models.gpt import GPT, GPT3_175B, GPTConfig, sample_next
from fakedata import make_austen

TINY = GPTConfig(vocab_size=37, context=24, d_model=32, heads=4, layers=2)


def tiny_gpt(seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    return GPT(TINY).eval()


def test_fused_attention_equals_the_maps_own():
    model = tiny_gpt()
    x = torch.randint(0, TINY.vocab_size, (3, 20))
    fused = model(x)
    model.set_fused_attention(False)  # softmax(Q K^T / sqrt(d_k)) V with a (T, T) causal mask
    torch.testing.assert_close(model(x), fused, atol=1e-5, rtol=1e-5)


def test_changing_a_later_token_never_changes_earlier_logits():
    model = tiny_gpt()
    x = torch.randint(0, TINY.vocab_size, (1, 20))
    before = model(x)
    for t in (0, 7, 18):
        y = x.clone()
        y[0, t + 1] = (y[0, t + 1] + 1) % TINY.vocab_size
        after = model(y)
        torch.testing.assert_close(after[:, :t + 1], before[:, :t + 1], atol=0, rtol=0)
        assert not torch.allclose(after[:, t + 1], before[:, t + 1])  # the change is seen


def test_cached_logits_equal_uncached_ones():
    model = tiny_gpt()
    x = torch.randint(0, TINY.vocab_size, (2, 20))
    full = model(x)
    logits, cache = model(x[:, :12], [])  # the prompt at once, then one token at a time
    steps = [logits]
    for t in range(12, 20):
        logits, cache = model(x[:, t:t + 1], cache)
        steps.append(logits)
    torch.testing.assert_close(torch.cat(steps, 1), full, atol=1e-5, rtol=1e-5)


def test_greedy_generation_is_the_same_with_and_without_the_cache():
    model = tiny_gpt()
    prompt = torch.randint(0, TINY.vocab_size, (2, 5))
    cached = model.generate(prompt, 15, temperature=0)
    plain = model.generate(prompt, 15, temperature=0, use_cache=False)
    assert torch.equal(cached, plain) and cached.shape == (2, 20)


def test_generation_slides_past_the_context():
    model = tiny_gpt()
    out = model.generate(torch.zeros(1, 3, dtype=torch.long), 3 * TINY.context, temperature=0.8,
                         generator=torch.Generator().manual_seed(0))
    assert out.shape == (1, 3 + 3 * TINY.context)
    with pytest.raises(ValueError, match="exceed the context"):
        model(torch.zeros(1, TINY.context + 1, dtype=torch.long))


def test_top_k_one_and_a_tiny_top_p_are_greedy():
    logits = torch.randn(64, 50)
    greedy = logits.argmax(-1, keepdim=True)
    g = torch.Generator().manual_seed(0)
    assert torch.equal(sample_next(logits, 1.0, top_k=1, generator=g), greedy)
    assert torch.equal(sample_next(logits, 1.0, top_p=1e-6, generator=g), greedy)
    assert torch.equal(sample_next(logits, 0.0), greedy)


def test_top_p_keeps_the_smallest_set_that_reaches_p():
    logits = torch.tensor([[0.5, 0.3, 0.15, 0.05]]).log()
    draws = torch.cat([sample_next(logits, 1.0, top_p=0.7, generator=torch.Generator()
                                   .manual_seed(s)) for s in range(400)])
    assert set(draws.flatten().tolist()) == {0, 1}  # 0.5 < 0.7 <= 0.5 + 0.3
    share = (draws == 0).float().mean().item()
    assert abs(share - 0.5 / 0.8) < 0.08


def test_gpt3_175b_parameter_count_is_exact():
    with torch.device("meta"):
        model = GPT(GPT3_175B)
    d, layers, v, ctx = 12288, 96, 50257, 2048
    # per layer: W_qkv 3d^2 + 3d, W_o d^2 + d, MLP 8d^2 + 5d, two LayerNorms 4d
    expected = layers * (12 * d * d + 13 * d) + v * d + ctx * d + 2 * d
    assert model.num_params() == expected == 174_604_259_328  # "175 billion"
    assert model.num_params(embeddings=False) == expected - v * d - ctx * d


def test_char_tokenizer_round_trips_and_maps_unseen_characters_to_unknown():
    tok = CharTokenizer.train("Emma Woodhouse, handsome, clever")
    text = "clever Emma"
    assert tok.decode(tok.encode(text)) == text
    assert tok.encode("é")[0] == 0 and tok.decode(tok.encode("Emma é")) == "Emma ?"
    again = tokenizer_from_json(tok.to_json())
    assert again.encode(text) == tok.encode(text) and again.vocab_size == tok.vocab_size


def test_byte_level_bpe_round_trips_any_string():
    text = "It is a truth universally acknowledged, that a single man in possession\n" * 50
    tok = train_tokenizer("bpe", text, vocab_size=300)
    assert 256 < tok.vocab_size <= 300
    for s in (text[:200], "naïve café — 日本語 🙂", ""):
        assert tok.decode(tok.encode(s)) == s
    assert len(tok.encode(text[:200])) < 200  # merges shorten the common text
    assert tokenizer_from_json(tok.to_json()).encode("a single man") == tok.encode("a single man")


def test_each_book_is_split_at_line_boundaries_in_order():
    books = {"a": "\n".join(f"line {i}" for i in range(100)), "b": "x\ny\n" * 300}
    train, val, test = split_books(books)
    for key, text in books.items():
        pieces = [part.split("\n\n")[list(books).index(key)] for part in (train, val, test)]
        assert "\n".join(pieces) == text.strip("\n")  # whole lines, in order, nothing lost
        shares = [len(p) / len(text) for p in pieces]
        assert 0.89 < shares[0] < 0.92 and 0.03 < shares[1] < 0.07 and shares[2] > 0.03


def test_token_windows_resume_mid_epoch_and_eval_windows_cover_every_token():
    tokens = torch.arange(1000)
    loader = TokenWindows(tokens, batch_size=4, context=10, seed=3)
    loader.set_epoch(2)
    full = list(loader.iterate(0))
    assert len(full) == len(loader) == 25
    assert all(torch.equal(a, b) for a, b in zip(list(loader.iterate(7)), full[7:]))
    assert all(torch.equal(w[1:] - w[:-1], torch.ones(10, dtype=torch.long)) for w in full[0])
    windows = eval_windows(tokens, 10)
    targets = windows[:, 1:].flatten()
    assert torch.equal(targets, torch.arange(1, len(targets) + 1))
    # a held-out split shorter than one window (BPE on a small text) is one shorter window
    assert torch.equal(eval_windows(tokens[:7], 10), tokens[None, :7])


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """gpt-austen, shrunk, for 8 epochs on generated text in the austen set's format."""
    from deepatlas.cli.main import main

    tmp = tmp_path_factory.mktemp("gpt")
    data = make_austen(tmp / "austen", lines_per_book=120)
    sets = [f"data.dir={data}", "model.context=32", "model.d_model=32", "model.layers=2",
            "train.epochs=8", "train.tensorboard=false"]
    code = main(["train", "gpt-austen", "--out", str(tmp / "run"), "--no-progress",
                 *[a for s in sets for a in ("--set", s)]])
    assert code == 0
    return tmp / "run"


def test_gpt_recipe_trains_and_generates(cli, trained_run):
    summary = json.loads((trained_run / "summary.json").read_text())
    assert summary["primary"] == "test_bpc" and summary["data"]["tokenizer"] == "char"
    # Words of a fixed list in random order: within a word the next letter is nearly certain,
    # which a model of single-character frequencies cannot use.
    corpus = load_corpus("austen", str(trained_run.parent / "austen"))
    assert summary["test_bpc"] < unigram_bpc(corpus.train, corpus.test) - 1.0, summary
    code, out, err = cli("generate", trained_run, "--prompt", "She was", "--max-tokens", "40",
                         "--seed", "1")
    assert code == 0, err
    assert out.startswith("She was") and len(out.rstrip("\n")) == len("She was") + 40
    _, again, _ = cli("generate", trained_run, "--prompt", "She was", "--max-tokens", "40",
                      "--seed", "1")
    assert again == out  # the seed fixes the sample


@pytest.mark.parametrize("args, message", [
    (["--prompt", ""], "empty prompt"),
    (["--prompt", "x", "--max-tokens", "0"], "--max-tokens must be >= 1"),
    (["--prompt", "x", "--temperature", "-1"], "--temperature must be >= 0"),
    (["--prompt", "x", "--top-p", "1.5"], "--top-p must be in (0, 1]"),
    (["--prompt", "x", "--top-k", "0"], "--top-k must be >= 1"),
])
def test_generate_refuses_bad_input_in_one_line(cli, trained_run, args, message):
    code, _, err = cli("generate", trained_run, *args)
    assert code == 2 and message in err and "Traceback" not in err


def test_generate_refuses_a_run_that_is_not_a_language_model(cli, tmp_path):
    code, _, err = cli("train", "digits", "--out", tmp_path / "d", "--no-progress",
                       "--set", "train.epochs=1", "--set", "train.tensorboard=false")
    assert code == 0, err
    code, _, err = cli("generate", tmp_path / "d", "--prompt", "x")
    assert code == 2 and "not a language-model run" in err
