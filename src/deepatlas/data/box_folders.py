"""Your own detection data (MAP 6.1): a folder in the YOLO txt format (``data.name =
"yolo-folder"``) or with COCO JSON annotations (``data.name = "coco-json"``), read into the
same :class:`~deepatlas.data.scenes.SceneData` the copy-paste scenes use, so ``detect-scenes``
trains on it unchanged (``--set data.name=yolo-folder --set data.dir=DIR``).

**YOLO** (Ultralytics' layout)::

    DIR/data.yaml              names: [cat, dog]  (or {0: cat, 1: dog}); optional train/val/test
    DIR/images/train/a.jpg     DIR/labels/train/a.txt: one "class cx cy w h" line per object,
    DIR/images/val/...         centre and size as fractions of the image (0..1)
    DIR/images/test/...

``classes.txt`` (one name per line, darknet's convention) may stand in for ``data.yaml``. An
image without a label file has no objects.

**COCO**: ``DIR/annotations/{train,val,test}.json`` (or ``instances_{split}.json``), each with
``images`` (``file_name`` under ``DIR/images/{split}/``), ``annotations`` (``bbox`` = x, y,
width, height in pixels; crowd regions are skipped) and ``categories`` (numbered in id order).

All three splits are required: validation chooses the model, test is reported only. Each image
is letterboxed to ``data.image_size`` (scaled to fit, centred on grey 114, as Ultralytics
does) and its boxes follow; everything is held in memory as uint8.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from deepatlas.data.scenes import SPLITS, SceneData, Scenes
from deepatlas.errors import UserError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
PAD = 114  # Ultralytics' letterbox grey


def letterbox(path: Path, size: int) -> tuple[np.ndarray, float, int, int, int, int]:
    """The image scaled to fit ``size`` x ``size`` and centred on grey: (size, size, 3) uint8,
    the scale, the x and y offsets, and the original width and height."""
    try:
        with Image.open(path) as img:
            rgb = img.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise UserError(f"{path} is not an image PIL can read ({exc})") from None
    w, h = rgb.size
    r = size / max(w, h)
    nw, nh = max(1, round(w * r)), max(1, round(h * r))
    canvas = np.full((size, size, 3), PAD, np.uint8)
    x0, y0 = (size - nw) // 2, (size - nh) // 2
    canvas[y0:y0 + nh, x0:x0 + nw] = np.asarray(rgb.resize((nw, nh), Image.BILINEAR))
    return canvas, r, x0, y0, w, h


def _yolo_boxes(path: Path, classes: int, w: int, h: int) -> tuple[list, list]:
    """Boxes in the image's pixels (xyxy) and classes from a YOLO label file."""
    boxes, labels = [], []
    if not path.is_file():
        return boxes, labels
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        where = f"{path}:{n}"
        if len(fields) != 5:
            raise UserError(f"{where}: expected 'class cx cy w h', got {len(fields)} fields "
                            f"({line.strip()[:60]!r})")
        try:
            c, (cx, cy, bw, bh) = int(fields[0]), map(float, fields[1:])
        except ValueError:
            raise UserError(f"{where}: class must be an integer and cx cy w h numbers, got "
                            f"{line.strip()[:60]!r}") from None
        if not 0 <= c < classes:
            raise UserError(f"{where}: class {c} is not in 0..{classes - 1} (the names of "
                            "data.yaml or classes.txt)")
        if not all(0 <= v <= 1 for v in (cx, cy, bw, bh)) or bw == 0 or bh == 0:
            raise UserError(f"{where}: cx cy w h must be fractions of the image in [0, 1] "
                            f"with w, h > 0 (YOLO's normalised format), got {line.strip()[:60]!r}")
        boxes.append([(cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h])
        labels.append(c)
    return boxes, labels


def _yolo_names(folder: Path) -> tuple[list[str], dict[str, str]]:
    """Class names and split folders from data.yaml (or classes.txt)."""
    splits = {s: f"images/{s}" for s in SPLITS}
    if (folder / "data.yaml").is_file():
        import yaml

        try:
            spec = yaml.safe_load((folder / "data.yaml").read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise UserError(f"{folder / 'data.yaml'} is not valid YAML ({exc})") from None
        names = spec.get("names") if isinstance(spec, dict) else None
        if isinstance(names, dict):
            names = [str(names[k]) for k in sorted(names)]
        if not isinstance(names, list) or not names:
            raise UserError(f"{folder / 'data.yaml'} has no 'names' list of classes")
        splits.update({s: str(spec[s]) for s in SPLITS if isinstance(spec.get(s), str)})
        return [str(n) for n in names], splits
    if (folder / "classes.txt").is_file():
        names = [n.strip() for n in (folder / "classes.txt").read_text().splitlines() if n.strip()]
        if names:
            return names, splits
    raise UserError(f"{folder} has neither data.yaml (with names: [...]) nor classes.txt: "
                    "name the classes of a YOLO folder in one of them")


def _scenes(images: list[np.ndarray], boxes: list, labels: list) -> Scenes:
    n = len(images)
    return Scenes(torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous(),
                  torch.zeros(n, 0, 0, dtype=torch.int64),  # boxes only: no masks
                  [torch.tensor(b, dtype=torch.float32).reshape(-1, 4) for b in boxes],
                  [torch.tensor(c, dtype=torch.int64) for c in labels])


def _placed(boxes: list, r: float, x0: int, y0: int) -> list:
    return [[x1 * r + x0, y1 * r + y0, x2 * r + x0, y2 * r + y0] for x1, y1, x2, y2 in boxes]


def load_yolo_folder(folder: str | Path, image_size: int) -> SceneData:
    """A YOLO-format folder (see the module docstring) as letterboxed scenes with boxes."""
    folder = _existing(folder, "yolo-folder")
    names, split_dirs = _yolo_names(folder)
    splits = {}
    for split in SPLITS:
        image_dir = folder / split_dirs[split]
        files = sorted(p for p in image_dir.glob("*") if p.suffix.lower() in IMAGE_SUFFIXES) \
            if image_dir.is_dir() else []
        if not files:
            raise UserError(f"{image_dir} holds no images: a YOLO folder needs train, val and "
                            "test splits (validation chooses the model, test is reported)")
        rel = Path(split_dirs[split])  # images/train -> labels/train; else labels beside
        label_dir = folder / Path("labels", *rel.parts[1:]) if rel.parts[:1] == ("images",) \
            else image_dir
        images, all_boxes, all_labels = [], [], []
        for path in files:
            pixels, r, x0, y0, w, h = letterbox(path, image_size)
            boxes, labels = _yolo_boxes(label_dir / f"{path.stem}.txt", len(names), w, h)
            images.append(pixels)
            all_boxes.append(_placed(boxes, r, x0, y0))
            all_labels.append(labels)
        splits[split] = _scenes(images, all_boxes, all_labels)
    return SceneData("yolo-folder", names, image_size, splits["train"], splits["val"],
                     splits["test"], str(folder))


def load_coco_folder(folder: str | Path, image_size: int) -> SceneData:
    """A folder of COCO JSON annotations and images (see the module docstring)."""
    folder = _existing(folder, "coco-json")
    specs, names = {}, None
    for split in SPLITS:
        candidates = [folder / "annotations" / f"{split}.json",
                      folder / "annotations" / f"instances_{split}.json"]
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:
            raise UserError(f"{folder}/annotations has no {split}.json (or instances_{split}"
                            ".json): a COCO folder needs train, val and test annotations")
        try:
            spec = json.loads(path.read_text(encoding="utf-8"))
            categories = sorted(spec["categories"], key=lambda c: c["id"])
            spec["_path"], spec["_ids"] = path, {c["id"]: i for i, c in enumerate(categories)}
            these = [str(c["name"]) for c in categories]
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as exc:
            raise UserError(f"{path} is not COCO JSON with images, annotations and categories "
                            f"({type(exc).__name__}: {exc})") from None
        if names is not None and these != names:
            raise UserError(f"{path}: its categories differ from the train split's")
        names, specs[split] = these, spec
    splits = {}
    for split, spec in specs.items():
        objects: dict[int, list] = {}
        for a in spec.get("annotations", []):
            if a.get("iscrowd"):
                continue
            try:
                x, y, w, h = map(float, a["bbox"])
                objects.setdefault(a["image_id"], []).append(
                    ([x, y, x + w, y + h], spec["_ids"][a["category_id"]]))
            except (KeyError, TypeError, ValueError):
                raise UserError(f"{spec['_path']}: annotation {a.get('id')} needs image_id, "
                                "bbox [x, y, w, h] and a category_id of its categories") from None
        images, all_boxes, all_labels = [], [], []
        for entry in spec.get("images", []):
            if not isinstance(entry, dict) or "file_name" not in entry or "id" not in entry:
                raise UserError(f"{spec['_path']}: every image needs an id and a file_name")
            path = folder / "images" / split / str(entry["file_name"])
            if not path.is_file():
                raise UserError(f"{path} is missing (file_name {entry['file_name']!r} of "
                                f"{spec['_path'].name})")
            pixels, r, x0, y0, _, _ = letterbox(path, image_size)
            found = objects.get(entry["id"], [])
            images.append(pixels)
            all_boxes.append(_placed([b for b, _ in found], r, x0, y0))
            all_labels.append([c for _, c in found])
        if not images:
            raise UserError(f"{spec['_path']} lists no images")
        splits[split] = _scenes(images, all_boxes, all_labels)
    return SceneData("coco-json", names, image_size, splits["train"], splits["val"],
                     splits["test"], str(folder))


def _existing(folder: str | Path, name: str) -> Path:
    if not folder:
        raise UserError(f"data.name={name} reads your own folder: set data.dir=DIR")
    path = Path(folder).expanduser()
    if not path.is_dir():
        raise UserError(f"data.dir={folder} is not a folder")
    return path
