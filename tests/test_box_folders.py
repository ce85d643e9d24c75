"""Your own detection data: a YOLO txt folder and a COCO JSON folder read into the same
letterboxed scenes, bad label files named by file and line, and detect-scenes training on one."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from deepatlas.data.box_folders import load_coco_folder, load_yolo_folder
from deepatlas.errors import UserError

SPLITS = ("train", "val", "test")
# per image: (width, height, [(class, x, y, w, h) in pixels])
IMAGES = [(40, 20, [(1, 10, 5, 20, 10)]), (30, 30, [(0, 0, 0, 15, 30), (1, 15, 15, 15, 15)]),
          (24, 36, [])]


def _write_images(folder: Path) -> None:
    rng = np.random.default_rng(0)
    for split in SPLITS:
        (folder / "images" / split).mkdir(parents=True, exist_ok=True)
        for i, (w, h, _) in enumerate(IMAGES):
            Image.fromarray(rng.integers(0, 256, (h, w, 3), np.uint8)).save(
                folder / "images" / split / f"im{i}.png")


def make_yolo(folder: Path) -> Path:
    _write_images(folder)
    (folder / "data.yaml").write_text("names: [cat, dog]\n")
    for split in SPLITS:
        (folder / "labels" / split).mkdir(parents=True, exist_ok=True)
        for i, (w, h, objects) in enumerate(IMAGES):
            if objects:  # the last image has no label file: no objects
                (folder / "labels" / split / f"im{i}.txt").write_text("".join(
                    f"{c} {(x + bw / 2) / w} {(y + bh / 2) / h} {bw / w} {bh / h}\n"
                    for c, x, y, bw, bh in objects))
    return folder


def make_coco(folder: Path) -> Path:
    _write_images(folder)
    (folder / "annotations").mkdir()
    for split in SPLITS:
        images = [{"id": 10 + i, "file_name": f"im{i}.png", "width": w, "height": h}
                  for i, (w, h, _) in enumerate(IMAGES)]
        annotations = [{"id": k, "image_id": 10 + i, "category_id": [3, 7][c],
                        "bbox": [x, y, bw, bh], "iscrowd": 0}
                       for i, (_, _, objects) in enumerate(IMAGES)
                       for k, (c, x, y, bw, bh) in enumerate(objects)]
        annotations.append({"id": 99, "image_id": 10, "category_id": 3, "bbox": [0, 0, 5, 5],
                            "iscrowd": 1})  # a crowd region: skipped
        (folder / "annotations" / f"instances_{split}.json").write_text(json.dumps(
            {"images": images, "annotations": annotations,
             "categories": [{"id": 7, "name": "dog"}, {"id": 3, "name": "cat"}]}))
    return folder


def test_yolo_and_coco_folders_give_the_same_letterboxed_boxes(tmp_path):
    yolo = load_yolo_folder(make_yolo(tmp_path / "yolo"), 32)
    coco = load_coco_folder(make_coco(tmp_path / "coco"), 32)
    assert yolo.classes == coco.classes == ["cat", "dog"]
    for a, b in ((yolo.test, coco.test), (yolo.train, coco.train)):
        assert torch.equal(a.images, b.images) and a.images.shape == (3, 3, 32, 32)
        for boxes_a, boxes_b, la, lb in zip(a.boxes, b.boxes, a.labels, b.labels):
            torch.testing.assert_close(boxes_a, boxes_b)
            assert la.tolist() == lb.tolist()
    # 40 x 20 scaled by 0.8 to 32 x 16, centred 8 px down: (10, 5, 30, 15) -> (8, 12, 24, 20)
    torch.testing.assert_close(yolo.test.boxes[0], torch.tensor([[8.0, 12.0, 24.0, 20.0]]))
    assert (yolo.test.images[0, :, :8] == 114).all()  # the letterbox's grey band
    assert yolo.test.boxes[2].shape == (0, 4) and yolo.test.labels[2].tolist() == []


@pytest.mark.parametrize("line, words", [
    ("1 0.5 0.5 0.5", "expected 'class cx cy w h', got 4 fields"),
    ("2 0.5 0.5 0.5 0.5", "class 2 is not in 0..1"),
    ("1 0.5 0.5 1.5 0.5", "must be fractions of the image in [0, 1]"),
    ("dog 0.5 0.5 0.5 0.5", "class must be an integer"),
])
def test_a_bad_yolo_label_line_is_named_by_file_and_line(tmp_path, line, words):
    folder = make_yolo(tmp_path / "yolo")
    (folder / "labels" / "val" / "im1.txt").write_text(f"0 0.5 0.5 0.2 0.2\n{line}\n")
    with pytest.raises(UserError, match="im1.txt:2: ") as caught:
        load_yolo_folder(folder, 32)
    assert words in str(caught.value)


def test_a_yolo_folder_without_a_test_split_or_names_says_what_is_missing(tmp_path):
    folder = make_yolo(tmp_path / "yolo")
    for f in (folder / "images" / "test").iterdir():
        f.unlink()
    with pytest.raises(UserError, match="needs train, val and test splits"):
        load_yolo_folder(folder, 32)
    (folder / "data.yaml").unlink()
    with pytest.raises(UserError, match="neither data.yaml .* nor classes.txt"):
        load_yolo_folder(folder, 32)


def train_on_folder(cli, folder, run, augment: str, epochs: int):
    """``deepatlas train detect-scenes`` on the YOLO ``folder``, small and quick: (code, out,
    err)."""
    sets = ["data.name=yolo-folder", f"data.dir={folder}", "data.image_size=32",
            "train.batch_size=3", f"train.epochs={epochs}", "model.width=8",
            "train.tensorboard=false", f"data.augment={augment}"]
    return cli("train", "detect-scenes", "--out", run, "--no-progress",
               *(arg for s in sets for arg in ("--set", s)))


def test_detect_scenes_trains_on_a_yolo_folder_and_predicts(cli, tmp_path):
    folder = make_yolo(tmp_path / "yolo")
    run = tmp_path / "run"
    code, out, err = train_on_folder(cli, folder, run, "none", epochs=1)
    assert code == 0, err
    summary = json.loads((run / "summary.json").read_text())
    assert summary["data"]["name"] == "yolo-folder" and 0 <= summary["test_map50"] <= 1
    code, out, err = cli("predict", run, folder / "images" / "test" / "im0.png")
    assert code == 0, err
    code, _, err = cli("train", "detect-scenes", "--out", tmp_path / "cp", "--no-progress",
                       "--set", "data.name=yolo-folder", "--set", f"data.dir={folder}",
                       "--set", "data.augment=copy-paste")
    assert code == 2 and "is a fixed set of images: use data.augment=none" in err
