"""Segmentation (MAP 6.1): Dice and IoU against torchmetrics, the soft Dice loss, U-Net's
shapes and skips, and copy-paste scenes that are exact, disjoint and reproducible."""

from pathlib import Path

import numpy as np
import pytest
import torch

from deepatlas.errors import UserError
from deepatlas.losses import dice_iou, overlap_counts, soft_dice_loss
from deepatlas.models import create_model, list_models


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> Path:
    from fakedata import make_scene_sources

    return make_scene_sources(tmp_path_factory.mktemp("scenes"))


def test_dice_and_iou_equal_torchmetrics():
    from torchmetrics.functional.classification import multiclass_f1_score, multiclass_jaccard_index

    g = torch.Generator().manual_seed(0)
    target = torch.randint(0, 4, (6, 16, 16), generator=g)
    pred = torch.where(torch.rand(6, 16, 16, generator=g) < 0.7, target,
                       torch.randint(0, 4, (6, 16, 16), generator=g))
    dice, iou = dice_iou(*overlap_counts(pred, target, 4))
    # Dice is the F1 score of pixels; micro-averaging over all pixels, per class.
    reference_dice = multiclass_f1_score(pred, target, 4, average="none",
                                         multidim_average="global")
    reference_iou = multiclass_jaccard_index(pred, target, 4, average="none")
    torch.testing.assert_close(dice.float(), reference_dice, atol=1e-6, rtol=0)
    torch.testing.assert_close(iou.float(), reference_iou, atol=1e-6, rtol=0)
    torch.testing.assert_close(iou, dice / (2 - dice))  # the identity in the docstring


def test_dice_of_a_known_case():
    target = torch.tensor([[0, 1, 1, 1]])
    pred = torch.tensor([[1, 1, 1, 0]])  # TP 2, FP 1, FN 1 for class 1
    dice, iou = dice_iou(*overlap_counts(pred, target, 2))
    assert dice[1].item() == pytest.approx(4 / 6) and iou[1].item() == pytest.approx(2 / 4)


def test_soft_dice_loss_is_near_zero_when_right_and_falls_as_the_logits_improve():
    target = torch.randint(0, 3, (2, 8, 8), generator=torch.Generator().manual_seed(1))
    one_hot = torch.nn.functional.one_hot(target, 3).permute(0, 3, 1, 2).float()
    assert soft_dice_loss(one_hot * 50, target).item() < 1e-3
    losses = [soft_dice_loss(one_hot * scale, target).item() for scale in (0.0, 1.0, 3.0)]
    assert losses[0] > losses[1] > losses[2]


def test_foreground_dice_counts_a_wrong_digit_as_foreground():
    from deepatlas.tasks.segment import segmentation_metrics

    target = torch.tensor([[0, 0, 3, 3]])
    pred = torch.tensor([[0, 5, 3, 4]])  # one false positive; two object pixels found
    k = 11
    tp, fp, fn = overlap_counts(pred, target, k)
    counts = torch.cat([tp, fp, fn, torch.tensor([0.0, 4.0])]).double()
    metrics = segmentation_metrics(counts)
    assert metrics["dice"] == pytest.approx(2 * 2 / (2 * 2 + 1 + 0))
    assert metrics["class_dice"] < metrics["dice"]  # digit 4 for a 3 is a class error


@pytest.mark.parametrize("name", list_models("dense"))
def test_every_dense_model_maps_pixels_to_logits_and_trains_every_parameter(name):
    torch.manual_seed(0)
    model = create_model(name, in_channels=3, image_size=32, num_classes=5)
    x = torch.randn(2, 3, 32, 32)
    out = model(x)
    assert out.shape == (2, 5, 32, 32) and torch.isfinite(out).all()
    out.square().mean().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"{name}.{pname}"


def test_unet_without_skips_has_narrower_decoder_convs_and_same_output_shape():
    with_skips = create_model("unet", in_channels=3, image_size=32, num_classes=3, width=8)
    without = create_model("unet", in_channels=3, image_size=32, num_classes=3, width=8,
                           skips=False)
    assert without.merge[0][0].in_channels * 2 == with_skips.merge[0][0].in_channels
    assert without(torch.randn(1, 3, 32, 32)).shape == (1, 3, 32, 32)
    with pytest.raises(ValueError, match="divisible by 8"):
        with_skips(torch.randn(1, 3, 36, 36))


def test_scenes_are_reproducible_exact_and_disjoint(sources):
    from deepatlas.data import scenes

    a = scenes.load_scenes(str(sources), image_size=32, counts={"train": 40, "val": 8, "test": 8})
    b = scenes.load_scenes(str(sources), image_size=32, counts={"train": 40, "val": 8, "test": 8})
    assert torch.equal(a.train.images, b.train.images) and torch.equal(a.test.masks, b.test.masks)
    assert not torch.equal(a.train.images[:8], a.test.images)
    for split in (a.train, a.val, a.test):
        assert split.images.shape[1:] == (3, 32, 32) and split.masks.shape[1:] == (32, 32)
        for i in range(len(split)):
            mask, boxes, labels = split.masks[i], split.boxes[i], split.labels[i]
            assert set(mask.unique().tolist()) <= {0} | {c + 1 for c in labels.tolist()}
            for (x0, y0, x1, y1), c in zip(boxes.long().tolist(), labels.tolist()):
                inside = torch.zeros_like(mask, dtype=torch.bool)
                inside[y0:y1, x0:x1] = True
                assert (mask == c + 1)[inside].any()  # the box holds its object ...
            outside = torch.ones_like(mask, dtype=torch.bool)  # ... and nothing lies outside
            for x0, y0, x1, y1 in boxes.long().tolist():
                outside[y0:y1, x0:x1] = False
            assert (mask[outside] == 0).all()
    from deepatlas.data.photos import split_by_photograph

    names = [p.name for p in (sources / "photos").glob("*.png")]
    split = split_by_photograph([Path(p) for p in names])
    assert sorted(sum(split.values(), [])) == sorted(Path(p) for p in names)
    assert all(len(v) >= 1 for v in split.values())


def test_copy_paste_epochs_are_fresh_scenes_the_same_on_every_pass(sources):
    """data.augment=copy-paste: epoch 0 trains on the set's scenes, each later epoch on new
    ones, and a resumed epoch (set_epoch again, in another loader) sees the same batches."""
    from deepatlas.data import scenes
    from deepatlas.tasks.scene_task import FreshEpochs

    data = scenes.load_scenes(str(sources), image_size=32, counts={"train": 24, "val": 4,
                                                                    "test": 4})

    def tensors(s):
        return s.images, s.masks

    def epoch_images(loader, epoch):
        loader.set_epoch(epoch)
        return torch.cat([images for images, _ in loader.iterate(0)])

    def copy_paste(recolour=False):
        return FreshEpochs(lambda epoch: data.compose_train(epoch, recolour), tensors,
                           batch_size=8, seed=0)

    loader = copy_paste()
    first, second = epoch_images(loader, 0), epoch_images(loader, 1)
    assert len(loader) == 3
    assert sorted(first.flatten(1).sum(1).tolist()) == sorted(
        data.train.images.flatten(1).sum(1).tolist())  # epoch 0: the set itself, shuffled
    assert not torch.equal(first, second)
    resumed = copy_paste()
    assert torch.equal(epoch_images(resumed, 1), second)
    resumed.set_epoch(1)
    assert torch.equal(torch.cat([i for i, _ in resumed.iterate(1)]), second[8:])
    recoloured = copy_paste(recolour=True)
    held_out = data.val.images.clone(), data.test.images.clone()
    data.compose_train(3, True)  # recolouring training scenes never touches the held-out ones
    scenes._composed.cache_clear()  # compose every split again, from the same photographs
    again = scenes.load_scenes(str(sources), image_size=32, counts={"train": 24, "val": 4,
                                                                     "test": 4})
    assert again is not data
    assert torch.equal(again.val.images, held_out[0])
    assert torch.equal(again.test.images, held_out[1])
    assert torch.equal(epoch_images(recoloured, 0), first)  # the set itself is never recoloured
    assert not torch.equal(epoch_images(recoloured, 1), second)
    assert torch.equal(epoch_images(copy_paste(recolour=True), 1), epoch_images(recoloured, 1))


def test_more_photos_join_the_training_photographs_only(sources, tmp_path):
    """data.more_photos: photos-more's photographs are added to the training split's, after
    its own; validation and test scenes are composed exactly as without them."""
    from deepatlas.data import scenes

    counts = {"train": 16, "val": 4, "test": 4}
    plain, _ = scenes.scene_sources("digit-scenes", scenes.scene_folders("digit-scenes",
                                                                         str(sources)))
    more, _ = scenes.scene_sources("digit-scenes", scenes.scene_folders(
        "digit-scenes", str(sources), more_photos=True))
    added = [scenes._read_photo(sources / "photos-more" / f"more{i}.png") for i in range(2)]
    assert len(more["train"][2]) == len(plain["train"][2]) + len(added)
    assert all(np.array_equal(a, b) for a, b in zip(more["train"][2],
                                                      plain["train"][2] + added))
    for split in ("val", "test"):
        assert len(more[split][2]) == len(plain[split][2])
        assert all(np.array_equal(a, b) for a, b in zip(more[split][2], plain[split][2]))
    with_more = scenes.load_scenes(str(sources), image_size=32, counts=counts, more_photos=True)
    without = scenes.load_scenes(str(sources), image_size=32, counts=counts)
    assert torch.equal(with_more.val.images, without.val.images)
    assert torch.equal(with_more.test.images, without.test.images)
    assert not torch.equal(with_more.train.images, without.train.images)
    assert not torch.equal(with_more.compose_train(1, True).images,  # the fresh scenes too
                           without.compose_train(1, True).images)
    assert "photos-more" in with_more.source
    lacking = tmp_path / "lacking"
    lacking.mkdir()
    for name in ("mnist-10k", "photos"):
        (lacking / name).symlink_to(sources / name)
    with pytest.raises(UserError, match="deepatlas data get photos-more"):
        scenes.load_scenes(str(lacking), image_size=32, counts=counts, more_photos=True)


def test_compose_pastes_an_opaque_object_exactly():
    from deepatlas.data.scenes import compose

    digit = np.zeros((1, 28, 28), np.uint8)
    digit[0, 4:24, 4:24] = 255  # a solid square: alpha 1 inside
    background = np.full((40, 40, 3), 30, np.uint8)  # dark: the digit is drawn bright
    s = compose(digit, np.array([7]), [background], 1, size=32, max_objects=1, seed=3)
    mask = s.masks[0] == 8
    assert mask.any() and s.labels[0].tolist() == [7]
    # alpha > 0.5 inside the mask: above halfway from 30 to a colour of at least 170.
    assert (s.images[0][:, mask] > 100).all()
    x0, y0, x1, y1 = s.boxes[0][0].long().tolist()
    outside = torch.ones_like(mask)
    outside[max(0, y0 - 1):y1 + 1, max(0, x0 - 1):x1 + 1] = False  # the anti-aliased rim
    assert (s.images[0][:, outside] == 30).all()  # the background is untouched elsewhere


def test_train_then_predict_writes_the_mask_over_an_image_of_any_size(cli, sources, tmp_path):
    from PIL import Image

    run = tmp_path / "run"
    code, out, err = cli("train", "segment-scenes", "--out", run, "--no-progress", "--set",
                         f"data.dir={sources}", "--set", "data.image_size=16", "--set",
                         "model.depth=2", "--set", "model.width=4", "--set", "train.epochs=1",
                         "--set", "train.batch_size=8", "--set", "train.limit_train_batches=3",
                         "--set", "train.limit_eval_examples=8", "--set",
                         "train.tensorboard=false")
    assert code == 0, err
    assert "test_dice" in out
    Image.new("RGB", (30, 21), (40, 90, 200)).save(tmp_path / "odd.png")  # not a multiple of 4
    code, out, err = cli("predict", run, tmp_path / "odd.png", "--out", tmp_path / "mask.png")
    assert code == 0, err
    with Image.open(tmp_path / "mask.png") as mask:
        assert mask.size == (30, 21) and mask.mode == "RGB"
    assert "odd.png:" in out and "of the pixels" in out
    code, _, err = cli("predict", run, tmp_path / "odd.png", "--out", tmp_path / "mask.png")
    assert code == 2 and "exists; pass --force" in err
    code, _, err = cli("predict", run, tmp_path / "odd.png", tmp_path / "odd.png", "--out",
                       tmp_path / "two.png")
    assert code == 2 and "--out takes one image" in err
    Image.new("RGB", (9, 3), (40, 90, 200)).save(tmp_path / "thin.png")  # under depth 2's 4 px
    code, _, err = cli("predict", run, tmp_path / "thin.png")
    assert code == 2 and err.count("\n") == 1, err
    assert "thin.png is 9x3 px, smaller than one cell of this network's 4-px grid" in err
    import json

    code, out, err = cli("eval", run, "--json")  # the test scenes again, scored the same way
    assert code == 0, err
    summary = json.loads((run / "summary.json").read_text())
    assert json.loads(out)["test_dice"] == pytest.approx(summary["test_dice"], abs=1e-9)
    code, _, err = cli("eval", run, "--predictions", tmp_path / "p.json")
    assert code == 2 and "--predictions writes a detector's" in err
    (tmp_path / "bad.png").write_text("not an image")
    code, out, err = cli("predict", run, tmp_path / "bad.png", tmp_path / "odd.png", "--json")
    assert code == 2 and "bad.png is not an image" in err and '"image"' in out


def test_recolour_permutes_or_inverts_the_background_and_keeps_the_digit_in_contrast():
    from deepatlas.data.scenes import compose

    digit = np.zeros((1, 28, 28), np.uint8)
    digit[0, 4:24, 4:24] = 255
    background = np.zeros((40, 40, 3), np.uint8)
    background[..., 0], background[..., 1], background[..., 2] = 20, 60, 100
    looks = set()
    for seed in range(40):
        s = compose(digit, np.array([7]), [background], 1, size=32, max_objects=1, seed=seed,
                    recolour=True)
        again = compose(digit, np.array([7]), [background], 1, size=32, max_objects=1,
                        seed=seed, recolour=True)
        assert torch.equal(s.images, again.images) and torch.equal(s.masks, again.masks)
        corner = tuple(s.images[0, :, 0, 0].tolist())  # outside any 20 px digit in 32 px
        assert sorted(corner) in ([20, 60, 100], [155, 195, 235])  # permuted, or inverted
        mask = s.masks[0] == 8
        far = s.images[0][:, mask].float().mean(0)  # alpha 1: the digit's colour alone
        assert mask.any() and (far - s.images[0, :, 0, 0].float().mean()).abs().min() > 40
        looks.add(corner)
    assert len(looks) == 12  # 6 orders x (as is, inverted)
