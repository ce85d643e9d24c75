"""BERT (MAP 6.2): the masked-LM corruption's rates, the model's shape, gradients and padding,
the fixed sentiment split, and pretraining -> fine-tuning -> predict through the CLI on sets in
their installed format."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from deepatlas.data.mlm import IGNORE, SequenceBatches, mask_tokens
from deepatlas.data.sentiment import SPLIT_RULE, load_sentiment
from deepatlas.models import create_model
from fakedata import make_bert_text, make_rt_snippets


def test_masking_chooses_15_percent_and_replaces_80_10_10():
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, 1000, (512, 256), generator=g)  # ids 0..3 are special
    inputs, labels = mask_tokens(tokens, mask_id=3, first_ordinary=4, vocab_size=1000,
                                 generator=g)
    ordinary = tokens >= 4
    chosen = labels != IGNORE
    assert not (chosen & ~ordinary).any()  # specials are never chosen
    assert torch.equal(labels[chosen], tokens[chosen])
    assert torch.equal(inputs[~chosen], tokens[~chosen])
    n = chosen.sum().item()
    assert n / ordinary.sum().item() == pytest.approx(0.15, abs=0.003)  # 130k draws
    masked = (inputs[chosen] == 3).sum().item() / n
    kept = (inputs[chosen] == tokens[chosen]).sum().item() / n
    replaced = 1 - masked - kept
    assert (masked, kept, replaced) == pytest.approx((0.8, 0.1, 0.1), abs=0.006)
    assert (inputs[chosen & (inputs != 3)] >= 4).all()  # random replacements are ordinary


def test_masked_batches_repeat_exactly_on_resume():
    rows = [[1] + [5 + i % 50] * (3 + i % 20) + [2] for i in range(400)]
    masking = {"mask_id": 3, "first_ordinary": 4, "vocab_size": 60}
    loader = SequenceBatches(rows, 8, masking=masking, seed=2)
    loader.set_epoch(1)
    whole = list(loader.iterate(0))
    again = list(loader.iterate(30))
    assert len(whole) == len(loader) == 50
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
               for a, b in zip(again, whole[30:]))


def test_bert_heads_shapes_gradients_and_padding():
    torch.manual_seed(0)
    model = create_model("bert", in_channels=50, num_classes=2, context=16, d_model=32,
                         heads=4, layers=2)
    tokens = torch.randint(4, 50, (3, 10))
    tokens[:, 0] = 1  # [CLS]
    out = model(tokens, head="both")
    assert model(tokens, head="mlm").shape == (3, 10, 50) and model(tokens).shape == (3, 2)
    out.square().mean().backward()
    for name, p in model.named_parameters():
        if name in ("token.weight", "segment.weight"):  # [PAD]'s row and segment 1 stay unused
            continue
        assert p.grad is not None and p.grad.abs().sum() > 0, f"{name} got no gradient"
    model.eval()
    padded = torch.cat([tokens, torch.zeros(3, 4, dtype=torch.long)], 1)
    torch.testing.assert_close(model(padded), model(tokens))  # [PAD] changes nothing
    # Bidirectional, unlike GPT: the last token changes the first position's vector.
    later = tokens.clone()
    later[:, -1] = (later[:, -1] + 1 - 4) % 46 + 4
    assert not torch.allclose(model.encode(later)[:, 0], model.encode(tokens)[:, 0])
    with pytest.raises(ValueError, match="context"):
        model(torch.ones(1, 17, dtype=torch.long))


def test_mean_pooling_reads_the_real_tokens_mean_and_ignores_padding():
    from deepatlas.errors import UserError

    torch.manual_seed(0)
    model = create_model("bert", in_channels=50, num_classes=2, context=16, d_model=32,
                         heads=4, layers=2, pool="mean").eval()
    tokens = torch.randint(4, 50, (2, 12))
    tokens[:, 0] = 1
    tokens[1, 7:] = 0  # the second sentence is 7 tokens long, then padding
    h = model.encode(tokens)
    pooled = torch.stack([h[0].mean(0), h[1, :7].mean(0)])  # by hand, over real tokens only
    expected = model.classifier(torch.tanh(model.pooler(pooled)))
    torch.testing.assert_close(model(tokens), expected)
    torch.testing.assert_close(model(tokens[1:, :7]), expected[1:])  # padding changes nothing
    cls = create_model("bert", in_channels=50, num_classes=2, context=16, d_model=32,
                       heads=4, layers=2).eval()
    cls.load_state_dict(model.state_dict())
    assert not torch.allclose(cls(tokens), model(tokens))  # the same weights, read otherwise
    with pytest.raises(UserError, match="model.pool='max' is not one of: cls, mean"):
        create_model("bert", in_channels=50, num_classes=2, pool="max")


def test_layer_decay_gives_each_depth_its_learning_rate_and_every_parameter_one_group():
    from deepatlas.config import OptimConfig, ScheduleConfig
    from deepatlas.errors import UserError
    from deepatlas.train.optim import build_optimizer, build_schedule

    model = create_model("bert", in_channels=50, num_classes=2, context=8, d_model=16,
                         heads=2, layers=2)
    cfg = OptimConfig(name="adamw", lr=1e-3, weight_decay=0.01, layer_decay=0.5)
    optimizer = build_optimizer(model, cfg)
    lr_of = {id(p): g["lr"] for g in optimizer.param_groups for p in g["params"]}
    assert sorted(lr_of) == sorted(id(p) for p in model.parameters())  # each exactly once
    assert sum(len(g["params"]) for g in optimizer.param_groups) == len(lr_of)
    # depth 0 embeddings, 1-2 the encoder layers, 3 the heads: lr * 0.5 ** (3 - depth)
    assert lr_of[id(model.token.weight)] == pytest.approx(1e-3 / 8)
    assert lr_of[id(next(model.layers[0].parameters()))] == pytest.approx(1e-3 / 4)
    assert lr_of[id(next(model.layers[1].parameters()))] == pytest.approx(1e-3 / 2)
    assert lr_of[id(model.classifier.weight)] == pytest.approx(1e-3)
    assert {g["weight_decay"] for g in optimizer.param_groups
            if any(p is model.classifier.bias for p in g["params"])} == {0.0}  # not decayed
    schedule = build_schedule(optimizer, ScheduleConfig(name="cosine"), 10, 1)
    optimizer.step(), schedule.step()  # the schedule scales every depth alike
    ratios = {round(g["lr"] / g["initial_lr"], 9) for g in optimizer.param_groups}
    assert len(ratios) == 1 and 0 < ratios.pop() < 1
    with pytest.raises(UserError, match="model.name=bert"):
        build_optimizer(torch.nn.Linear(3, 2), cfg)
    with pytest.raises(UserError, match="sgd or adamw"):
        build_optimizer(model, OptimConfig(name="adam", layer_decay=0.5))
    with pytest.raises(UserError, match=r"in \(0, 1\]"):
        build_optimizer(model, OptimConfig(name="adamw", layer_decay=1.5))


def test_sentiment_split_is_fixed_by_id_and_drops_neutral_sentences(tmp_path):
    splits = load_sentiment(str(make_rt_snippets(tmp_path, sentences=300)))
    assert [len(s.texts) for s in splits.values()] == [240, 30, 24]  # ids 50, 100.. are 0
    assert "mod 10" in SPLIT_RULE
    for split in splits.values():
        assert all(("wonderful" in t.lower()) == bool(y) for t, y in zip(split.texts, split.labels))


def test_in_domain_repeats_weight_the_task_sentences_in_training_only(tmp_path):
    from deepatlas.data.sentiment import pretraining_text
    from deepatlas.errors import UserError

    data = str(make_bert_text(tmp_path / "data"))
    once, thrice = (pretraining_text(data, download=False, in_domain_repeats=k) for k in (1, 3))
    task = load_sentiment(data, download=False)["train"].texts
    assert len(thrice["train"]) - len(once["train"]) == 2 * len(task)
    assert all(thrice["train"].count(t) == 3 * once["train"].count(t) for t in task[:20])
    assert thrice["val"] == once["val"]
    with pytest.raises(UserError, match="in_domain_repeats must be >= 1"):
        pretraining_text(data, download=False, in_domain_repeats=0)


def _train(cli, recipe: str, out: Path, *sets: str):
    small = ["model.d_model=32", "model.layers=1", "model.heads=2", "train.batch_size=16"]
    args = [a for s in (*small, *sets) for a in ("--set", s)]
    return cli("train", recipe, "--out", out, "--no-progress", *args)


def test_pretrain_then_fine_tune_then_predict(cli, tmp_path):
    data = make_bert_text(tmp_path / "data")
    code, out, err = _train(cli, "bert-pretrain", tmp_path / "pre", f"data.dir={data}",
                            "train.epochs=1", "data.vocab_size=300")
    assert code == 0, err
    # The vocabulary is the from-scratch baseline's: fitted to the training sentences alone.
    from deepatlas.data.sentiment import load_sentiment
    from deepatlas.tasks.masked_lm import bert_tokenizer
    from deepatlas.train import load_checkpoint

    pretrained = load_checkpoint(tmp_path / "pre" / "best.pt")["data"]["tokenizer"]
    baseline = bert_tokenizer(load_sentiment(str(data), download=False)["train"].texts, 300)
    assert pretrained == baseline.to_json()
    # Fine-tuning keeps the architecture: another width is refused in one line.
    code, _, err = _train(cli, "bert-sentiment", tmp_path / "bad", f"data.dir={data}",
                          f"train.init_from={tmp_path / 'pre'}", "model.layers=2")
    assert code == 2 and "model.layers" in err and "pretrained" in err, err
    # model.pool may differ from the pretraining run's: it changes only what the head reads.
    code, out, err = _train(cli, "bert-sentiment", tmp_path / "ft", f"data.dir={data}",
                            f"train.init_from={tmp_path / 'pre'}", "train.epochs=8",
                            "optim.lr=0.003", "model.pool=mean")
    assert code == 0, err
    summary = load_checkpoint(tmp_path / "ft" / "best.pt")
    assert summary["data"]["context"] == 64
    code, out, err = cli("predict", tmp_path / "ft", "a wonderful film", "a dull film")
    assert code == 0, err
    lines = out.strip().splitlines()
    assert lines[0].startswith("positive") and lines[1].startswith("negative"), out
    # A language run is not a fine-tuning start.
    code, _, err = _train(cli, "bert-sentiment", tmp_path / "bad2", f"data.dir={data}",
                          f"train.init_from={tmp_path / 'ft'}")
    assert code == 2 and "masked-lm" in err, err
