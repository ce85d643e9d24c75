"""Translation (MAP 6.2): chapter splits, length batches, beam search, sacreBLEU, and the
translation task and command on pairs in the bible-en-es set's installed format."""

from __future__ import annotations

import json

import pytest
import torch

from deepatlas.data.translation import LengthBatches, load_pairs, read_pairs, split_by_chapter
from deepatlas.errors import UserError
from deepatlas.models import create_model
from deepatlas.tasks.translation import bleu_and_chrf, cut_at_end
from fakedata import make_bible_pairs


def test_chapters_are_held_out_whole(tmp_path):
    pairs = read_pairs(make_bible_pairs(tmp_path) / "pairs.tsv")
    splits = split_by_chapter(pairs)
    chapters = {s: {r.rsplit(".", 1)[0] for r in p.refs} for s, p in splits.items()}
    assert not (chapters["train"] & chapters["val"]) and not (chapters["train"] & chapters["test"])
    assert not (chapters["val"] & chapters["test"])
    assert sum(len(p.refs) for p in splits.values()) == len(pairs.refs)
    assert len(chapters["val"]) == len(chapters["test"]) == 3  # 60 chapters, 1 in 20 each


def test_length_batches_pad_to_their_own_longest_row_and_resume_mid_epoch():
    src = [[5] * n for n in range(1, 401)]
    tgt = [[1] + [6] * n + [2] for n in range(1, 401)]
    loader = LengthBatches(src, tgt, batch_size=8, seed=1)
    loader.set_epoch(3)
    batches = list(loader.iterate(0))
    assert len(batches) == len(loader) == 50
    widths = [s.shape[1] for s, _ in batches]
    assert max(widths) == 400 and min(widths) <= 60  # sorted within pools, not padded to 400
    again = list(loader.iterate(17))
    assert all(torch.equal(a[0], b[0]) for a, b in zip(again, batches[17:]))


@pytest.mark.parametrize("pre_norm", [True, False])
def test_incremental_decoding_with_the_kv_cache_equals_the_full_decoder(pre_norm):
    torch.manual_seed(0)
    model = create_model("transformer-seq2seq", in_channels=20, num_classes=20, d_model=32,
                         heads=4, layers=2, dropout=0.1, pre_norm=pre_norm).eval()
    src = torch.randint(3, 20, (3, 9))
    src[0, 6:] = 0  # padding in the source is masked in both
    tgt = torch.randint(3, 20, (3, 11))
    memory, keep = model.encode(src)
    full = model.decode(tgt, memory, keep)  # (B, T, V)
    cache = model.start_decoding(memory)
    steps = [model.decode_step(tgt[:, t], t, cache, keep) for t in range(tgt.shape[1])]
    torch.testing.assert_close(torch.stack(steps, 1), full, atol=1e-5, rtol=1e-5)


def test_tied_embeddings_share_one_matrix_and_tokens_enter_at_the_positions_scale():
    """Vaswani et al. 3.4: one matrix for both embeddings and the output layer, scaled by
    sqrt(d_model); drawn from N(0, 1/d_model), a token's entries then have unit variance,
    like the sinusoidal positions'."""
    torch.manual_seed(0)
    untied = create_model("transformer-seq2seq", in_channels=4000, num_classes=4000,
                          d_model=128)
    tied = create_model("transformer-seq2seq", in_channels=4000, num_classes=4000,
                        d_model=128, tie_embeddings=True)
    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert n(untied) - n(tied) == 2 * 4000 * 128  # parameters() counts a shared one once
    assert tied.src_embed.weight is tied.tgt_embed.weight is tied.out.weight
    scaled = tied.src_embed.weight[1:] * 128 ** 0.5
    assert scaled.std().item() == pytest.approx(1.0, rel=0.02)
    assert torch.count_nonzero(tied.src_embed.weight[0]) == 0  # padding
    loss = tied(torch.randint(1, 4000, (2, 5)), torch.randint(1, 4000, (2, 6))).sum()
    loss.backward()  # the shared matrix collects the gradients of all three uses
    assert tied.out.weight.grad is not None and tied.out.weight.grad.abs().sum() > 0
    with pytest.raises(UserError, match="one vocabulary"):
        create_model("transformer-seq2seq", in_channels=20, num_classes=9, tie_embeddings=True)


def test_beam_of_one_is_greedy_and_a_wider_beam_scores_at_least_as_high():
    torch.manual_seed(0)
    model = create_model("transformer-seq2seq", in_channels=20, num_classes=20, d_model=32,
                         heads=4, layers=1, dropout=0.0).eval()
    src = torch.randint(3, 20, (5, 7))
    greedy = model.greedy_decode(src, 1, 2, 12)
    beam1 = model.beam_search(src, 1, 2, 12, beam=1, alpha=0.0)
    for g, b in zip(greedy.tolist(), beam1.tolist()):
        assert cut_at_end(g) == cut_at_end(b)

    def logprob(out):  # sum of log p of each row's tokens up to and including <eos>
        total = []
        for s, row in zip(src, out.tolist()):
            ids = cut_at_end(row)
            ids = ids + [2] if len(ids) < len(row) else ids
            seq = torch.tensor([[1] + ids])
            lp = model(s[None], seq[:, :-1]).log_softmax(-1)
            total.append(lp[0, torch.arange(len(ids)), seq[0, 1:]].sum().item())
        return torch.tensor(total)

    wide = model.beam_search(src, 1, 2, 12, beam=4, alpha=0.0)
    assert (logprob(wide) >= logprob(greedy) - 1e-4).all()


def test_bleu_comes_from_sacrebleu_on_a_hand_made_case():
    refs = ["el hombre ve la casa", "dios hizo la luz"]
    same = bleu_and_chrf(refs, refs)
    assert same["bleu"] == pytest.approx(100.0) and same["chrf"] == pytest.approx(100.0)
    assert same["bleu_signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a")
    # One of two sentences wrong in every word: BLEU and chrF fall, and agree with sacrebleu.
    import sacrebleu

    hyps = ["el hombre ve la casa", "xx yy zz ww"]
    got = bleu_and_chrf(hyps, refs)
    assert got["bleu"] == pytest.approx(sacrebleu.corpus_bleu(hyps, [refs]).score)
    assert 0 < got["bleu"] < 100 and got["chrf"] < 100


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    from deepatlas.cli.main import main

    tmp = tmp_path_factory.mktemp("translate")
    data = make_bible_pairs(tmp / "bible", books=40)  # 1,200 pairs
    sets = [f"data.dir={data}", "data.vocab_size=300", "model.d_model=64", "model.layers=2",
            "model.dropout=0.0", "model.max_len=32", "train.batch_size=32", "optim.lr=0.002",
            "train.epochs=12", "train.tensorboard=false", "train.eval_batch_size=64"]
    code = main(["train", "translate-en-es", "--out", str(tmp / "run"), "--no-progress",
                 *[a for s in sets for a in ("--set", s)]])
    assert code == 0
    return tmp / "run"


def test_translation_recipe_learns_the_gloss_and_translates(cli, trained_run, tmp_path):
    summary = json.loads((trained_run / "summary.json").read_text())
    assert summary["primary"] == "test_bleu_beam"
    # 12 short epochs (about 400 steps) learn part of the gloss; the untranslated English
    # would score about 0 against the Spanish.
    assert summary["test_bleu_beam"] > 10 and summary["test_bleu_greedy"] > 10, summary
    assert summary["sacrebleu"]["bleu"].startswith("nrefs:1")
    code, out, err = cli("translate", trained_run, "The man sees the house.")
    assert code == 0, err
    assert out.strip() and out.split()[0] == "El"
    (tmp_path / "in.txt").write_text("God made light.\nThe water and the land.\n", "utf-8")
    code, out, err = cli("translate", trained_run, "--file", tmp_path / "in.txt",
                         "--out", tmp_path / "hyp.txt", "--beam", "1")
    assert code == 0, err
    assert len((tmp_path / "hyp.txt").read_text("utf-8").splitlines()) == 2
    code, _, err = cli("translate", trained_run, "--file", tmp_path / "in.txt",
                       "--out", tmp_path / "hyp.txt")
    assert code == 2 and "exists; pass --force" in err


@pytest.mark.parametrize("make, message", [
    (lambda p: p.write_bytes(b"caf\xe9\n"), "is not UTF-8"),
    (lambda p: p.write_text("\n\n", "utf-8"), "nothing to translate"),
])
def test_translate_refuses_bad_files_in_one_line(cli, trained_run, tmp_path, make, message):
    make(tmp_path / "bad.txt")
    code, _, err = cli("translate", trained_run, "--file", tmp_path / "bad.txt")
    assert code == 2 and message in err and "Traceback" not in err


def test_missing_pairs_say_how_to_get_them(tmp_path):
    from deepatlas.errors import UserError

    with pytest.raises(UserError, match="deepatlas data get bible-en-es"):
        load_pairs(str(tmp_path))
