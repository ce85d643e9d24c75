"""Clip-art scenes (MAP 6.1, #17): drawings pasted in their own colours, one class per category,
split by drawing, faint drawings left out, and a detector and a U-Net trained on them."""

import json

import numpy as np
import pytest
import torch


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    from fakedata import make_clipart, make_scene_sources

    from PIL import Image

    folder = make_scene_sources(tmp_path_factory.mktemp("clipart-scenes"))
    make_clipart(folder)
    # Three more animals: a faint one (alpha 0.4 wherever it is drawn), and opaque squares of
    # 14 x 14 and 15 x 15 px, 4.8% and 5.5% of the 64 x 64 canvas, either side of MIN_OPAQUE.
    for name, side, alpha in (("faint", 48, 100), ("below", 14, 255), ("above", 15, 255)):
        drawing = np.zeros((64, 64, 4), np.uint8)
        drawing[8:8 + side, 8:8 + side] = (250, 250, 0, alpha)
        Image.fromarray(drawing, "RGBA").save(folder / "clipart" / "png" / "animals" /
                                              f"{name}.png")
        with (folder / "clipart" / "index.tsv").open("a") as f:
            f.write(f"animals/{name}.svg\tanimals\t{name}\t{name}\n")
    return folder


def test_compose_pastes_an_rgba_drawing_in_its_own_colours():
    from deepatlas.data.scenes import compose

    drawing = np.zeros((1, 4, 64, 64), np.uint8)
    drawing[0, :, 8:56, 8:56] = np.array([200, 10, 10, 255], np.uint8)[:, None, None]
    background = np.full((40, 40, 3), 30, np.uint8)
    s = compose(drawing, np.array([4]), [background], 1, size=32, max_objects=1, seed=3)
    mask = s.masks[0] == 5
    assert mask.any() and s.labels[0].tolist() == [4]
    interior = ~torch.nn.functional.max_pool2d(  # the mask less its edge pixels
        (~mask)[None, None].float(), 3, 1, 1)[0, 0].bool()
    assert interior.any()
    inside = s.images[0][:, interior].T.float()  # opaque: the drawing's colour exactly
    assert torch.allclose(inside, torch.tensor([200.0, 10, 10]).expand_as(inside), atol=1)


def test_compose_blends_a_drawing_by_its_own_alpha_and_masks_only_alpha_over_half():
    from deepatlas.data.scenes import compose

    drawing = np.zeros((1, 4, 64, 64), np.uint8)
    drawing[0, :3] = np.array([200, 10, 10], np.uint8)[:, None, None]
    drawing[0, 3] = 102  # alpha 0.4 over the whole canvas ...
    drawing[0, 3, 16:48, 16:48] = 255  # ... around an opaque core
    background = np.full((40, 40, 3), 30, np.uint8)
    s = compose(drawing, np.array([1]), [background], 1, size=32, max_objects=1, seed=5)
    pixels, mask = s.images[0].permute(1, 2, 0).reshape(-1, 3).int(), s.masks[0].flatten()
    translucent = (pixels - torch.tensor([98, 22, 22])).abs().max(1).values <= 1  # 0.4 c + 0.6 b
    assert translucent.sum() > 20 and (mask[translucent] == 0).all()
    assert (mask == 2).sum() > 4


def test_digit_scenes_are_the_ones_the_committed_results_were_measured_on():
    """A checksum of composed digit scenes: changing how a digit is pasted changes every
    split, and so the meaning of every committed detect and segment figure."""
    import hashlib

    from deepatlas.data.scenes import compose

    rng = np.random.default_rng(0)
    digits = rng.integers(0, 256, (5, 28, 28), dtype=np.uint8)
    photos = [rng.integers(0, 256, (50, 70, 3), dtype=np.uint8) for _ in range(2)]
    s = compose(digits, np.arange(5), photos, 6, size=32, seed=(1, 2), recolour=True)
    digest = hashlib.sha256(s.images.numpy().tobytes() + s.masks.numpy().tobytes()
                            + torch.cat(s.boxes).numpy().tobytes()).hexdigest()
    assert digest == DIGIT_SCENES_SHA256


def test_turned_photographs_keep_their_texture_in_every_orientation():
    """``turn``: crops turned by 90-degree steps and mirrored. A photograph that changes only
    from top to bottom then also changes from left to right in the scenes turned a quarter;
    the digits (ink-free here) leave no box."""
    from deepatlas.data.scenes import compose

    ramp = np.repeat(np.linspace(0, 255, 80)[:, None, None], 80, 1).repeat(3, 2)  # rows vary
    blank = np.zeros((4, 28, 28), np.uint8)
    plain, turned = (compose(blank, np.arange(4), [ramp.astype(np.uint8)], 40, size=32,
                             seed=5, turn=turn) for turn in (False, True))
    def varies_across_columns(scenes):
        img = scenes.images.float()
        return (img.diff(dim=3).abs().amax((1, 2, 3)) > 0).tolist()

    assert not any(varies_across_columns(plain))
    across = varies_across_columns(turned)
    assert 0 < sum(across) < len(across)  # about half are turned a quarter
    assert all(len(b) == 0 for b in turned.boxes)


def test_the_overlay_colours_every_class_of_clip_art():
    from deepatlas.tasks.segment import PALETTE, overlay

    labels = np.arange(23).reshape(1, 23)  # background and 22 categories
    image = np.asarray(overlay(np.zeros((1, 23, 3)), labels))
    assert (image[0, 0] == 0).all() and (image[0, 1:] > 0).any(1).all()
    assert (image[0, 1] == image[0, 1 + len(PALETTE)]).all()  # past ten, the colours repeat


def test_clipart_scenes_label_each_drawing_by_its_category_and_split_by_drawing(sources):
    from deepatlas.data import scenes

    data = scenes.load_scenes(str(sources), image_size=32, counts={"train": 30, "val": 6,
                                                                    "test": 6},
                              name="clipart-scenes")
    assert data.name == "clipart-scenes"
    assert data.classes == ["animals", "signs_and_symbols", "transportation"]
    objects, classes = scenes._clipart_objects(sources / "clipart")
    assert sum(len(labels) for _, labels in objects.values()) == 37  # 36 + "above"
    assert all(len(np.unique(labels)) == 3 for _, labels in objects.values())  # stratified
    train, test = objects["train"][0], objects["test"][0]
    assert not any((t == x).all() for t in test for x in train)  # no drawing in both
    for split in (data.train, data.val, data.test):
        for mask, boxes, labels in zip(split.masks, split.boxes, split.labels):
            assert len(labels) >= 1
            assert set(mask.unique().tolist()) <= {0} | {c + 1 for c in labels.tolist()}
            for (x0, y0, x1, y1), c in zip(boxes.long().tolist(), labels.tolist()):
                assert (mask[y0:y1, x0:x1] == c + 1).any()
    scenes._composed.cache_clear()  # compose again, not the cached sets
    again = scenes.load_scenes(str(sources), image_size=32, counts={"train": 30, "val": 6,
                                                                     "test": 6},
                               name="clipart-scenes")
    assert torch.equal(again.test.images, data.test.images)


@pytest.mark.parametrize("recipe", ["detect-scenes", "segment-scenes"])
def test_detector_and_unet_train_on_clipart_scenes(cli, sources, tmp_path, recipe):
    run = tmp_path / "run"
    sets = ["data.name=clipart-scenes", f"data.dir={sources}", "data.image_size=32",
            "model.width=4", "train.epochs=2", "train.batch_size=8",
            "train.limit_train_batches=2", "train.limit_eval_examples=6",
            "train.tensorboard=false"]
    code, out, err = cli("train", recipe, "--out", run, "--no-progress",
                         *(arg for s in sets for arg in ("--set", s)))
    assert code == 0, err
    summary = json.loads((run / "summary.json").read_text())
    assert summary["data"]["name"] == "clipart-scenes" and summary["epochs"] == 2
    assert summary["primary"] in summary


# compose's digit scenes before clip art was added (session 19's code gives the same digest).
DIGIT_SCENES_SHA256 = "be4fdc26fa67077097f07e534bac8da9994f8cceb10658fd30d8c80da495b8bf"
