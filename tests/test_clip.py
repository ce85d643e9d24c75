"""CLIP (MAP 6.3): the symmetric InfoNCE against a hand computation, recall@k through
torchmetrics against ranks counted by hand, the encoders' masks, the captions and the split,
and the task on a tiny clipart set."""

from __future__ import annotations

import math

import pytest
import torch

from deepatlas.data.image_text import (PAD, caption, caption_tokens, caption_variants,
                                       category_name, draw_variants, keyword_slots,
                                       stratified_split, to_rgb, train_caption_tokenizer)
from deepatlas.losses import clip_loss
from deepatlas.models import create_model, list_models
from deepatlas.tasks.clip import accuracies, retrieval_recall
from fakedata import make_clipart


def test_clip_loss_equals_the_hand_computed_symmetric_infonce():
    torch.manual_seed(0)
    logits = torch.randn(5, 5, dtype=torch.float64) * 3
    n = len(logits)
    rows = [-math.log(math.exp(logits[i, i]) / sum(math.exp(logits[i, j]) for j in range(n)))
            for i in range(n)]
    cols = [-math.log(math.exp(logits[j, j]) / sum(math.exp(logits[i, j]) for i in range(n)))
            for j in range(n)]
    expected = (sum(rows) / n + sum(cols) / n) / 2
    assert clip_loss(logits).item() == pytest.approx(expected, rel=1e-6)
    # a perfect, confident batch costs nearly nothing; a constant one costs log N
    assert clip_loss(torch.eye(4) * 50).item() < 1e-6
    assert clip_loss(torch.zeros(4, 4)).item() == pytest.approx(math.log(4))


def test_the_local_losses_of_the_processes_average_to_the_global_batchs():
    """open_clip's local loss: process r's B images against all W·B captions and its B
    captions against all W·B images, its pairs at r·B + i; the W losses' mean is the loss of
    the whole (W·B, W·B) batch."""
    torch.manual_seed(0)
    world, b = 3, 4
    logits = torch.randn(world * b, world * b, dtype=torch.float64) * 3
    local = [clip_loss(logits[r * b:(r + 1) * b], logits.T[r * b:(r + 1) * b],
                       torch.arange(b) + r * b) for r in range(world)]
    assert (sum(local) / world).item() == pytest.approx(clip_loss(logits).item(), rel=1e-12)


def test_retrieval_recall_matches_ranks_counted_by_hand():
    torch.manual_seed(1)
    similarity = torch.randn(30, 30)
    similarity += 2 * torch.eye(30)  # the pair usually, not always, ranks first
    rank = (similarity > similarity.diag()[:, None]).sum(1)  # documents scored above the pair
    for k, value in retrieval_recall(similarity, (1, 5, 10)).items():
        assert value == pytest.approx((rank < k).float().mean().item())
    assert retrieval_recall(torch.eye(6), (1,))[1] == 1.0


def test_balanced_accuracy_scores_always_the_largest_class_at_one_over_classes():
    labels = torch.tensor([0] * 8 + [1] * 1 + [2] * 1)
    always_zero = accuracies(labels, torch.zeros(10, dtype=torch.long))
    assert always_zero == pytest.approx({"acc": 0.8, "balanced_acc": 1 / 3})
    assert accuracies(labels, labels) == {"acc": 1.0, "balanced_acc": 1.0}
    # a prediction of a class that the labels lack lowers recall, and is no error
    assert accuracies(labels, torch.full((10,), 5))["balanced_acc"] == 0.0


@pytest.mark.parametrize("encoder", ["resnet", "vit"])
def test_clip_model_shapes_gradients_and_the_eot_pooling(encoder):
    assert "clip" in list_models("clip")
    torch.manual_seed(0)
    model = create_model("clip", in_channels=3, image_size=16, num_classes=50,
                         image_encoder=encoder, depth=8, width=4, patch=4, vision_layers=1,
                         context=8, text_width=16, text_layers=1, heads=2, embed_dim=8)
    for m in model.modules():  # zero-init BN scales would block gradients at step 0
        if isinstance(m, torch.nn.BatchNorm2d):
            torch.nn.init.ones_(m.weight)
    images = torch.randn(3, 3, 16, 16)
    tokens = torch.tensor([[1, 7, 9, 2, 0, 0, 0, 0], [1, 5, 2, 0, 0, 0, 0, 0],
                           [1, 3, 4, 5, 6, 7, 8, 2]])
    logits = model(images, tokens)
    assert logits.shape == (3, 3) and torch.isfinite(logits).all()
    clip_loss(logits).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()]
    assert not missing, missing
    # causal attention and [EOT] pooling: what follows a caption's [EOT] never changes it
    model.eval()
    other = tokens.clone()
    other[0, 4:] = 11
    assert torch.allclose(model.encode_text(tokens)[0], model.encode_text(other)[0], atol=1e-6)
    assert torch.allclose(model.encode_image(images).norm(dim=1), torch.ones(3))


def test_the_vit_equals_open_clips_vision_transformer_with_the_same_weights():
    """CLIP's ViT, ln_pre included: open_clip's VisionTransformer (its projection set to the
    identity) and deepatlas's, given one set of weights, give the same [CLS] vector."""
    from open_clip.transformer import VisionTransformer as OpenClipViT

    from deepatlas.models.clip import VisionTransformer

    torch.manual_seed(0)
    theirs = OpenClipViT(image_size=16, patch_size=4, width=16, layers=2, heads=2,
                         mlp_ratio=4.0, output_dim=16).eval()
    ours = VisionTransformer(3, 16, 4, 16, 2, 2).eval()
    with torch.no_grad():
        theirs.proj.copy_(torch.eye(16))
        for p in theirs.parameters():  # LayerNorms and biases too, so that none is trivial
            if p is not theirs.proj:
                p.add_(0.1 * torch.randn_like(p))
    state = theirs.state_dict()
    renamed = {"cls": state["class_embedding"].view(1, 1, 16),
               "position": state["positional_embedding"][None],
               "to_patches.weight": state["conv1.weight"],
               "norm.weight": state["ln_post.weight"], "norm.bias": state["ln_post.bias"]}
    names = {"ln_1": "norm1", "ln_2": "norm2", "attn": "attention", "mlp.c_fc": "ff.0",
             "mlp.c_proj": "ff.3"}
    for key, value in state.items():
        if key.startswith("ln_pre"):
            renamed[key] = value
        if key.startswith("transformer.resblocks."):
            rest = key.removeprefix("transformer.resblocks.")
            for old, new in names.items():
                rest = rest.replace(f".{old}.", f".{new}.")
            renamed[f"layers.{rest}"] = value
    ours.load_state_dict(renamed)  # strict: every parameter of ours has its counterpart
    images = torch.randn(3, 3, 16, 16)
    assert torch.allclose(ours(images), theirs(images), atol=1e-5)


def test_the_temperature_is_clipped_at_one_hundredth():
    model = create_model("clip", image_size=16, num_classes=20, width=4, context=8,
                         text_width=16, text_layers=1, heads=2, embed_dim=8)
    assert model.scale().item() == pytest.approx(1 / 0.07)
    with torch.no_grad():
        model.logit_scale.fill_(10.0)
    assert model.scale().item() == pytest.approx(100.0)
    frozen = create_model("clip", image_size=16, num_classes=20, width=4, context=8,
                          text_width=16, text_layers=1, heads=2, embed_dim=8,
                          learn_temperature=False)
    assert not frozen.logit_scale.requires_grad


def test_captions_images_and_the_stratified_split():
    assert caption("Red car", ["car", "auto", "vehicle"], 1) == "Red car. auto"
    assert caption("", ["a", "b"], 6) == "a, b"
    assert caption("", [], 6) == ""
    assert category_name("signs_and_symbols") == "signs and symbols"
    assert caption_variants("Red car", ["auto", "vehicle"], 6, 3) == [
        "Red car. auto, vehicle", "Red car", "auto, vehicle", "vehicle"]
    assert caption_variants("", ["auto"], 6, 0) == ["auto"] * 4  # none is ever empty
    rgba = torch.zeros(1, 4, 4, 4, dtype=torch.uint8)
    rgba[0, :, 0, 0] = torch.tensor([255, 0, 0, 255])  # one opaque red pixel, the rest clear
    rgb = to_rgb(rgba, 4)
    assert rgb[0, :, 0, 0].tolist() == [1.0, 0.0, 0.0] and rgb[0, :, 1, 1].tolist() == [1.0] * 3
    assert to_rgb(rgba, 2).shape == (1, 3, 2, 2)
    labels = torch.tensor([0] * 50 + [1] * 30 + [2] * 20)
    split = stratified_split(labels, 0.1, 0.2)
    assert [labels[split["test"]].bincount().tolist(), labels[split["val"]].bincount().tolist()] \
        == [[10, 6, 4], [5, 3, 2]]
    assert sorted(torch.cat(list(split.values())).tolist()) == list(range(100))
    assert torch.equal(split["test"], stratified_split(labels, 0.1, 0.2)["test"])  # fixed


def test_the_per_step_keyword_is_drawn_uniformly_from_the_drawings_own_keywords():
    slots, counts = keyword_slots([["car", "auto"], [], ["tree", "oak", "leaf", "green"]],
                                  ["Red car", "Untitled", "Oak"], 3)
    assert slots == [["car", "auto", "car"], ["Untitled"] * 3, ["tree", "oak", "leaf"]]
    assert counts.tolist() == [2, 1, 3]
    n = 80_000
    fixed = draw_variants(n, None, torch.Generator().manual_seed(0))
    # the recipe's per-drawing path draws exactly what it drew before the option existed
    assert torch.equal(fixed, torch.randint(0, 4, (n,), generator=torch.Generator().manual_seed(0)))
    assert fixed.bincount(minlength=4).div(n).sub(0.25).abs().max() < 0.01  # 4 kinds, 1 in 4
    counts = torch.tensor([1, 2, 3, 6]).repeat(n // 4)  # drawings with 1, 2, 3 and 6 keywords
    drawn = draw_variants(n, counts, torch.Generator().manual_seed(1))
    for count in (1, 2, 3, 6):
        mine = drawn[counts == count]
        assert mine.max() < 3 + count  # never a padding slot
        share = mine.bincount(minlength=3 + count).div(len(mine))
        assert share[:3].sub(0.25).abs().max() < 0.015  # caption, title, keywords
        assert share[3:].sub(0.25 / count).abs().max() < 0.015  # each keyword alike


def test_caption_tokens_are_sot_text_eot_then_padding():
    tokenizer = train_caption_tokenizer(["a red car", "a blue bus", "a red bus"] * 5, 300)
    tokens = caption_tokens(tokenizer, ["a red car", "a red car " * 20], 8)
    assert tokens.shape == (2, 8)
    first = tokens[0][tokens[0] != PAD].tolist()
    assert first[0] == 1 and first[-1] == 2 and tokenizer.decode(first[1:-1]) == "a red car"
    assert (tokens[1] != PAD).all() and tokens[1, -1] == 2  # cut to fit, [EOT] kept


# clip-clipart shrunk to the tiny set: a few seconds on 2 cores (the thresholds were set in fp32)
TINY = ["data.vocab_size=300", "data.image_size=16", "model.width=8", "model.text_width=32",
        "model.text_layers=1", "model.embed_dim=16", "train.epochs=12", "train.batch_size=18",
        "optim.lr=0.003", "train.tensorboard=false", "schedule.warmup_epochs=0",
        "train.precision=fp32"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A clip-clipart run on 90 fake drawings of 3 categories, a few seconds on 2 cores."""
    from deepatlas.config import apply_overrides, load_recipe
    from deepatlas.tasks import fit

    root = tmp_path_factory.mktemp("clip")
    make_clipart(root / "data", per_category=30)
    config = load_recipe("clip-clipart")
    apply_overrides(config, [f"data.dir={root / 'data'}", *TINY])
    summary = fit(config, root / "run", progress=False)
    return root, summary


def test_clip_task_learns_the_tiny_set(tiny_run):
    from deepatlas.train.checkpoint import load_checkpoint

    root, summary = tiny_run
    assert load_checkpoint(root / "run" / "best.pt")["data"]["templates"] == ["{}"]
    # one prompt: its own accuracy is the ensemble's (five would average five different ones)
    assert summary["test_zero_shot_acc_per_template"] == summary["test_zero_shot_acc"]
    # 9 test pairs, 3 categories: chance is 1/9 for R@1 and 1/3 for zero-shot
    assert summary["test_image_to_text_r5"] > 5 / 9
    assert summary["test_zero_shot_acc"] > 0.5
    assert summary["test_majority_acc"] == pytest.approx(1 / 3)
    assert summary["test_chance_balanced_acc"] == pytest.approx(1 / 3)
    assert summary["test_probe_balanced_acc"] > 0.5


def test_the_per_step_draw_and_phrased_prompts_train_and_wrong_values_name_valid_ones(
        tiny_run, tmp_path):
    from deepatlas.config import apply_overrides, load_recipe
    from deepatlas.errors import UserError
    from deepatlas.tasks import fit
    from deepatlas.tasks.clip import PROMPT_SETS
    from deepatlas.train.checkpoint import load_checkpoint

    root, _ = tiny_run
    config = load_recipe("clip-clipart")
    apply_overrides(config, [f"data.dir={root / 'data'}", *TINY, "clip.keyword_draw=per-step",
                             "clip.prompts=phrased"])
    summary = fit(config, tmp_path / "per-step", progress=False)
    assert summary["test_zero_shot_acc"] > 0.5  # chance 1/3, as for the recipe's draw
    templates = load_checkpoint(tmp_path / "per-step" / "best.pt")["data"]["templates"]
    assert templates == list(PROMPT_SETS["phrased"]) and len(templates) == 5
    apply_overrides(config, ["clip.keyword_draw=each"])
    with pytest.raises(UserError, match="per-drawing, per-step"):
        fit(config, tmp_path / "wrong", progress=False)
    apply_overrides(config, ["clip.keyword_draw=per-step", "clip.variants=false"])
    with pytest.raises(UserError, match="needs clip.variants=true"):
        fit(config, tmp_path / "no-variants", progress=False)
    apply_overrides(config, ["clip.keyword_draw=per-drawing", "clip.variants=true",
                             "clip.prompts=sentences"])
    with pytest.raises(UserError, match="name, phrased"):
        fit(config, tmp_path / "no-such-prompts", progress=False)


def test_search_ranks_a_folder_and_draws_a_contact_sheet(tiny_run, cli):
    root, _ = tiny_run
    images = root / "data" / "clipart" / "png"
    # the tiny model knows its training captions' kind of text, not a word alone
    query = "car number 6. transportation, drawing"
    code, out, err = cli("search", root / "run", query, "--images", images, "--top", "6",
                         "--out", root / "sheet.png")
    assert code == 0, err
    ranked = [line.split()[-1] for line in out.splitlines()[:6]]
    assert sum("/transportation/" in path for path in ranked) >= 4  # 1 in 3 by chance
    from PIL import Image

    with Image.open(root / "sheet.png") as sheet:
        assert sheet.size == (4 * 128, 2 * (128 + 16))
    code, _, err = cli("search", root / "run", "car", "--images", images,
                       "--out", root / "sheet.png")
    assert code == 2 and "exists" in err  # never over a file it was not asked to replace
    junk = root / "junk"
    junk.mkdir()
    (junk / "notes.png").write_text("not an image")
    code, _, err = cli("search", root / "run", "car", "--images", junk, "--out", root / "j.png")
    assert code == 2 and "holds no image that decodes" in err and "Traceback" not in err


def test_two_gloo_processes_gather_the_negatives_and_match_one(tiny_run, tmp_path):
    """Under torchrun each process's images meet every process's captions (the gathered
    embeddings, open_clip's local loss): 2 processes of B reach the weights of 1 of 2B. Without
    the gather each would see B - 1 negatives, not 2B - 1, and the weights would differ."""
    import os
    import subprocess
    import sys

    from deepatlas.train.checkpoint import load_checkpoint

    root, _ = tiny_run
    # No per-rank draws, so both see the same data. SGD, not AdamW: attention's key bias has a
    # gradient of exactly 0 in theory (softmax ignores a shift shared by all keys), and Adam
    # would blow the two runs' different rounding of that 0 up to a full step.
    sets = [f"data.dir={root / 'data'}", *TINY, "train.epochs=2", "model.image_encoder=vit",
            "clip.variants=false", "data.augment=none", "optim.name=sgd", "optim.lr=0.1"]
    args = ["-m", "deepatlas", "train", "clip-clipart", "--no-progress",
            *(x for s in sets for x in ("--set", s))]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = subprocess.run([sys.executable, *args, "--out", tmp_path / "one"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert one.returncode == 0, one.stderr[-3000:]
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                          "--nproc_per_node=2", *args, "--out", tmp_path / "two"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert two.returncode == 0, two.stderr[-3000:]
    a, b = (load_checkpoint(tmp_path / run / "last.pt") for run in ("one", "two"))
    assert a["step"] == b["step"] == 2 * 4  # 72 training pairs in batches of 18
    for key, value in a["models"]["model"].items():
        torch.testing.assert_close(value, b["models"]["model"][key], rtol=1e-4, atol=1e-5)
