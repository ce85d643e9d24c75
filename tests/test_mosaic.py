"""Mosaic, scale and flip (data.augment = mosaic | mosaic-flip): boxes follow the pixels at any
scale, each epoch draws anew and reproducibly, and a detector trains on it from a YOLO folder."""

from __future__ import annotations

import json

import pytest
import torch

from deepatlas.data.mosaic import MIN_SIDE, kept_boxes, mosaic, mosaic_epochs
from deepatlas.data.scenes import Scenes

SIZE = 16
COLOURS = torch.tensor([[250, 0, 0], [0, 250, 0], [0, 0, 250], [250, 250, 0], [0, 250, 250]])


def solid_scenes(with_masks: bool = True) -> Scenes:
    """Five scenes, each one object filling the image in its own colour: its class is its
    index, its mask 1 + class, its box the whole image."""
    n = len(COLOURS)
    images = COLOURS[:, :, None, None].expand(n, 3, SIZE, SIZE).to(torch.uint8).clone()
    masks = (torch.arange(n)[:, None, None] + 1).expand(n, SIZE, SIZE).clone()
    return Scenes(images, masks if with_masks else torch.zeros(n, 0, 0, dtype=torch.int64),
                  [torch.tensor([[0.0, 0.0, SIZE, SIZE]]) for _ in range(n)],
                  [torch.tensor([k]) for k in range(n)])


@pytest.mark.parametrize("scale,flip", [((1.0, 1.0), False), ((0.5, 1.5), False),
                                        ((0.5, 1.5), True)])
def test_every_box_holds_its_own_object_and_covers_the_window(scale, flip):
    """Inside each box (one pixel in from its edges, where bilinear scaling blends colours),
    every pixel is that box's object, in the image and in the mask; together the boxes cover
    the window, save what a dropped sliver (under 10% of a box, or under 2 px) held."""
    out = mosaic(solid_scenes(), 40, seed=(0, 1, 3), scale=scale, flip=flip)
    assert out.images.shape == (40, 3, SIZE, SIZE) and out.masks.shape == (40, SIZE, SIZE)
    covered = []
    for image, mask, boxes, labels in zip(out.images, out.masks, out.boxes, out.labels):
        assert len(boxes) == len(labels) >= 1
        assert ((boxes >= 0) & (boxes <= SIZE)).all()
        seen = torch.zeros(SIZE, SIZE, dtype=torch.bool)
        for (x1, y1, x2, y2), label in zip(boxes.tolist(), labels.tolist()):
            assert x2 - x1 >= MIN_SIDE and y2 - y1 >= MIN_SIDE
            ix1, iy1, ix2, iy2 = int(x1) + 1, int(y1) + 1, int(x2 + 0.999) - 1, int(y2 + 0.999) - 1
            if ix2 > ix1 and iy2 > iy1:
                inner = image[:, iy1:iy2, ix1:ix2].permute(1, 2, 0).reshape(-1, 3).int()
                assert (inner - COLOURS[label]).abs().max() <= 1
                assert (mask[iy1:iy2, ix1:ix2] == label + 1).all()
            seen[int(y1):int(y2 + 0.999), int(x1):int(x2 + 0.999)] = True
        covered.append(seen.float().mean())
    assert torch.stack(covered).mean() > 0.9


def test_each_epoch_draws_new_mosaics_and_the_same_seed_the_same():
    scenes = solid_scenes()
    a, b = mosaic(scenes, 8, seed=(0, 1, 1)), mosaic(scenes, 8, seed=(0, 1, 1))
    assert torch.equal(a.images, b.images) and all(
        torch.equal(x, y) for x, y in zip(a.boxes, b.boxes))
    assert not torch.equal(a.images, mosaic(scenes, 8, seed=(0, 1, 2)).images)


def test_boxes_only_scenes_stay_boxes_only_and_flips_mirror_the_boxes():
    scenes = solid_scenes(with_masks=False)
    plain = mosaic(scenes, 30, seed=5, scale=(1.0, 1.0))
    flipped = mosaic(scenes, 30, seed=5, scale=(1.0, 1.0), flip=True)
    assert plain.masks.shape == (30, 0, 0)
    mirrored = 0
    for i in range(30):  # the same draws, then a coin per window
        if torch.equal(flipped.images[i], plain.images[i].flip(-1)) and not torch.equal(
                flipped.images[i], plain.images[i]):
            mirrored += 1
            x1, y1, x2, y2 = plain.boxes[i].unbind(1)
            assert torch.allclose(flipped.boxes[i], torch.stack([SIZE - x2, y1, SIZE - x1, y2], 1))
    assert 5 <= mirrored <= 25


def test_a_clipped_box_is_kept_by_ultralytics_thresholds():
    """Kept: at least 10% of its area left, 2 px wide and high, under 100:1. Dropped: less."""
    boxes = torch.tensor([[-91.0, 2, 9, 12],  # 9% of it inside the 16-px window
                          [-89.0, 2, 11, 12],  # 11%
                          [14.5, 2, 30, 12],  # 1.5 px wide inside
                          [0.0, 0, 16, 16]])
    clipped, keep = kept_boxes(boxes, SIZE)
    assert keep.tolist() == [False, True, False, True]
    assert clipped[1].tolist() == [0, 2, 11, 12]
    _, keep = kept_boxes(torch.tensor([[-100.0, 0, 700, 5], [0.0, 0, 600, 7]]), 640)
    assert keep.tolist() == [False, True]  # 128:1 and 86:1


def test_the_epochs_draw_new_mosaics_then_end_on_the_set_itself():
    scenes = solid_scenes()
    draw = mosaic_epochs(scenes, epochs=30, seed=4)
    assert torch.equal(draw(5).images, mosaic(scenes, 5, seed=(4, 1, 5)).images)
    assert not torch.equal(draw(5).images, draw(6).images)
    assert draw(26) is not scenes and draw(27) is scenes and draw(29) is scenes  # last 3
    assert mosaic_epochs(scenes, epochs=5)(4) is scenes  # a tenth of 5, rounded up
    assert mosaic_epochs(scenes, epochs=4)(3) is not scenes  # ... of 4: none
    flipped = mosaic_epochs(scenes, epochs=30, seed=4, flip=True)
    assert any(not torch.equal(flipped(e).images, draw(e).images) for e in range(6))


def test_detect_trains_with_mosaic_on_a_yolo_folder_with_many_objects(cli, tmp_path):
    """A photograph of one's own can hold more objects than a digit scene's three (this once
    failed to batch); the mosaic-flip run trains and names its augmentation in the config."""
    from test_box_folders import make_yolo, train_on_folder

    folder = make_yolo(tmp_path / "yolo")
    crowded = folder / "labels" / "train" / "im0.txt"
    crowded.write_text("".join(f"{k % 2} {0.1 + 0.15 * k} 0.5 0.1 0.4\n" for k in range(6)))
    run = tmp_path / "run"
    code, out, err = train_on_folder(cli, folder, run, "mosaic-flip", epochs=2)
    assert code == 0, err
    summary = json.loads((run / "summary.json").read_text())
    assert summary["epochs"] == 2 and 0 <= summary["test_map50"] <= 1
    code, _, err = cli("train", "digits", "--out",
                       tmp_path / "bad", "--set", "data.augment=mosaic")
    assert code == 2 and "is for tasks segment and detect" in err, err
    code, _, err = cli("train", "detect-scenes", "--out", tmp_path / "mirrored", "--set",
                       "data.augment=mosaic-flip")
    assert code == 2 and "a mirrored digit is another symbol" in err, err
