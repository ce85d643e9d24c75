"""Clip-art scenes (MAP 6.1, #17): drawings pasted in their own colours, one class per category,
split by drawing, faint drawings left out, and a detector and a U-Net trained on them."""

import json

import numpy as np
import pytest
import torch


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    from fakedata import make_clipart, make_scene_sources

    folder = make_scene_sources(tmp_path_factory.mktemp("clipart-scenes"))
    make_clipart(folder)
    # A faint drawing (alpha 0.4 everywhere it is drawn) has no pixel for a mask to hold.
    from PIL import Image

    faint = np.zeros((64, 64, 4), np.uint8)
    faint[8:56, 8:56] = (250, 250, 0, 100)
    Image.fromarray(faint, "RGBA").save(folder / "clipart" / "png" / "animals" / "faint.png")
    with (folder / "clipart" / "index.tsv").open("a") as f:
        f.write("animals/faint.svg\tanimals\tfaint\tfaint\n")
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
    x0, y0, x1, y1 = s.boxes[0][0].long().tolist()
    ys, xs = mask.nonzero(as_tuple=True)
    assert (x0, y0, x1, y1) == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)


def test_clipart_scenes_label_each_drawing_by_its_category_and_split_by_drawing(sources):
    from deepatlas.data import scenes

    data = scenes.load_scenes(str(sources), image_size=32, counts={"train": 30, "val": 6,
                                                                    "test": 6},
                              name="clipart-scenes")
    assert data.name == "clipart-scenes"
    assert data.classes == ["animals", "signs_and_symbols", "transportation"]
    objects, classes = scenes._clipart_objects(sources / "clipart")
    assert sum(len(labels) for _, labels in objects.values()) == 36  # the faint one is left out
    assert all(len(np.unique(labels)) == 3 for _, labels in objects.values())  # stratified
    train, test = objects["train"][0], objects["test"][0]
    assert not any((t == x).all() for t in test for x in train)  # no drawing in both
    for split in (data.train, data.val, data.test):
        for mask, boxes, labels in zip(split.masks, split.boxes, split.labels):
            assert len(labels) >= 1
            assert set(mask.unique().tolist()) <= {0} | {c + 1 for c in labels.tolist()}
            for (x0, y0, x1, y1), c in zip(boxes.long().tolist(), labels.tolist()):
                assert (mask[y0:y1, x0:x1] == c + 1).any()
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
