"""Copy-paste scenes (MAP 6.1): real objects pasted onto real photographs, with exact masks and
boxes, for detection and segmentation.

After Dwibedi, Misra and Hebert, "Cut, Paste and Learn" (ICCV 2017): an object's pixels are
alpha-blended onto a background, ``I = a * colour + (1 - a) * B``, so the label is exact by
construction. The backgrounds are random crops of the 23 ``photos`` (with
``data.more_photos``, the training scenes' also of the 13 ``photos-more``); the objects are

- ``digit-scenes``: the 10,000 real handwritten digits of ``mnist-10k`` (their grey level is
  the alpha, their colour the scene's), 10 classes;
- ``clipart-scenes``: the ``clipart`` drawings, in their own colours with their own alpha, 22
  classes (the category of the drawing's folder), split within each category.

- **Disjoint splits.** Train, validation and test use different objects (mnist-10k's own
  8,000 / 2,000 split, with a tenth of the 8,000 held out for validation; for clip art, a
  tenth of each category for validation and one for test) and different photographs (split
  by photograph), so a test scene shares nothing with training.
- **Copy-paste as augmentation.** ``SceneData.compose_train(epoch)`` composes a fresh set of
  training scenes from the same objects and photographs, so a task can see new scenes every
  epoch (``data.augment = "copy-paste"``), as the paper uses it. ``"copy-paste-recolour"``
  also recolours their backgrounds (channels permuted, half of them inverted), since 15
  training photographs are few looks. On the U-Net recipe (one seed each, 8 epochs) fresh
  scenes lifted test Dice from 0.816 to 0.842, and recolouring them to 0.863; on the
  width-16 detector (20 epochs) recolouring left test mAP@0.5 where it was (0.721 against
  0.723; ``results/benchmarks/scene-augment-*.json``). The width-32 detector of 56 epochs
  (an unrecoloured run, with a weight EMA) names 94% of test digits right on the training
  photographs but 87% on the test ones (``benchmarks/naming_by_photos.py``). Recolouring
  gains at two seeds: validation mAP@0.5:0.95 0.675 and 0.693 against 0.667 and 0.684, test
  mAP@0.5 0.897 and 0.893 against 0.879 and 0.886, so ``detect-scenes`` recolours since session 26
  (``results/benchmarks/detect-recolour-vm.json``); the naming gap stays (87.6% on the test
  photographs). Since session 27 ``detect-scenes`` also composes its training scenes on
  ``photos-more``'s 13 photographs (``data.more_photos``): validation mAP@0.5:0.95 0.694 ±
  0.011 over three seeds against 0.678 ± 0.014, test mAP@0.5 0.907 ± 0.003 against 0.894 ±
  0.002 (``results/benchmarks/detect-more-photos-vm.json``); since session 29 ``segment-scenes``
  too: best.pt's validation Dice 0.930 ± 0.000 against 0.921 ± 0.002, test Dice 0.916 ±
  0.005 against 0.906 ± 0.006 (``results/benchmarks/segment-more-photos-vm.json``).
  ``"copy-paste-turn"`` and ``"copy-paste-recolour-turn"`` also turn each photograph crop by a
  random multiple of 90 degrees and mirror half of them.
- **Reproducible.** A scene is a function of (split, index, seed): numpy's PCG64 seeded with
  them. :func:`compose` is deterministic; nothing is cached on disk.
- **Occlusion.** Up to ``max_objects`` objects per scene, each 45-75% of the scene's side; a
  later object may cover part of an earlier one (their boxes overlap by IoU <= 0.3), and
  masks and boxes are of what is visible (alpha > 0.5).
- **Contrast.** A digit's colour is drawn dark on a bright patch and bright on a dark one, as
  printed signs are; its colour is otherwise random. Clip art keeps its own colours.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from deepatlas.data import mnist10k, photos
from deepatlas.data.packages import set_folder
from deepatlas.errors import UserError

SPLITS = ("train", "val", "test")
SCENES = {"train": 4000, "val": 500, "test": 1000}  # scenes per split, fixed
MAX_OBJECTS = 3  # digits per scene, at most
PHOTO_SIDE = 384  # photographs are shrunk to this longest side once, then cropped
CLASSES = [str(d) for d in range(10)]
MIN_OPAQUE = 0.05  # clip-art drawings with less of their 64x64 canvas opaque are not pasted


@dataclass
class Scenes:
    """One split: ``images`` (N, 3, S, S) uint8; ``masks`` (N, S, S) int64, 0 for background and
    1 + class where a digit is visible; per image, ``boxes`` (k, 4) float xyxy in pixels (of
    the visible part) and ``labels`` (k,) int64 classes."""

    images: torch.Tensor
    masks: torch.Tensor
    boxes: list[torch.Tensor] = field(default_factory=list)
    labels: list[torch.Tensor] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.images)


@dataclass
class SceneData:
    """The three splits, the class names, and where the objects and photographs came from."""

    name: str
    classes: list[str]
    image_size: int
    train: Scenes
    val: Scenes
    test: Scenes
    source: str
    in_channels: int = 3
    # compose_train(epoch, recolour): as many fresh training scenes (same digits and
    # photographs, new draws), for copy-paste as augmentation; epoch 0 is ``train`` itself
    compose_train: Callable[[int, bool], Scenes] | None = None


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _crop(photo: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """A random square crop of ``photo`` (H, W, 3), resized to ``size``: float32 (S, S, 3)."""
    h, w = photo.shape[:2]
    side = int(rng.integers(min(size, h, w), min(h, w) + 1))
    y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    patch = Image.fromarray(photo[y:y + side, x:x + side]).resize((size, size), Image.BILINEAR)
    return np.asarray(patch, dtype=np.float32)


def _paste(obj: np.ndarray, side: int) -> tuple[np.ndarray, np.ndarray | None]:
    """An object resized to ``side`` px: its alpha (s, s, 1) in [0, 1], and its own colours
    (s, s, 3) for an RGBA drawing (4, h, w), or None for a grey digit (h, w), whose grey level
    is the alpha and whose colour the scene draws."""
    if obj.ndim == 2:
        grey = Image.fromarray(obj).resize((side, side), Image.BILINEAR)
        return np.asarray(grey, np.float32)[..., None] / 255.0, None
    rgba = Image.fromarray(np.ascontiguousarray(obj.transpose(1, 2, 0)), "RGBA")
    rgba = np.asarray(rgba.resize((side, side), Image.BILINEAR), np.float32)
    return rgba[..., 3:] / 255.0, rgba[..., :3]


def compose(objects: np.ndarray, object_labels: np.ndarray, backgrounds: list[np.ndarray],
            n: int, *, size: int = 64, max_objects: int = MAX_OBJECTS,
            scale: tuple[float, float] = (0.45, 0.75), seed: int | Sequence[int] = 0,
            recolour: bool = False, turn: bool = False) -> Scenes:
    """``n`` scenes of ``size`` px from ``objects`` with their ``object_labels``, pasted onto
    crops of ``backgrounds`` ((H, W, 3) uint8 each): grey digits (M, h, w) uint8, whose grey
    level is the alpha, drawn in a colour of the scene's choosing, or RGBA drawings
    (M, 4, h, w) uint8 in their own colours. ``seed`` is numpy's (an int or a sequence of
    ints). ``recolour``: each crop's colour channels are permuted at random, and half of the
    crops are inverted (255 - B), so 15 photographs give 12 looks each; textures and edges,
    what an object must be told apart from, stay real. ``turn``: each crop is turned by a
    random multiple of 90 degrees and mirrored half of the time (8 looks; the objects are
    pasted upright afterwards)."""
    if len(objects) == 0 or not backgrounds:
        raise UserError("copy-paste scenes need at least one object and one background photo")
    rng = np.random.default_rng(seed)
    images = np.empty((n, size, size, 3), np.uint8)
    masks = np.zeros((n, size, size), np.int64)
    all_boxes, all_labels = [], []
    for i in range(n):
        canvas = _crop(backgrounds[int(rng.integers(len(backgrounds)))], size, rng)
        if recolour:
            canvas = canvas[..., rng.permutation(3)]
            if rng.random() < 0.5:
                canvas = 255.0 - canvas
        if turn:
            canvas = np.rot90(canvas, int(rng.integers(4)))
            if rng.random() < 0.5:
                canvas = canvas[:, ::-1]
            canvas = np.ascontiguousarray(canvas)
        placed: list[tuple[np.ndarray, int, np.ndarray]] = []  # (box, class, mask) in order
        for _ in range(int(rng.integers(1, max_objects + 1))):
            side = int(round(rng.uniform(*scale) * size))
            for _attempt in range(10):  # a place that does not hide an earlier digit
                x, y = (int(v) for v in rng.integers(0, size - side + 1, 2))
                box = np.array([x, y, x + side, y + side], np.float32)
                if all(_iou(box, b) <= 0.3 for b, _, _ in placed):
                    break
            else:
                continue
            k = int(rng.integers(len(objects)))
            alpha, colour = _paste(objects[k], side)  # (s, s, 1), (s, s, 3) or None
            if colour is not None and not (alpha > 0.5).any():
                continue  # a drawing too thin at this size to hold a mask pixel: not pasted
            region = canvas[y:y + side, x:x + side]
            if colour is None:  # a digit: light on a dark patch, dark on a light one
                bright = region.mean() < 128
                colour = rng.uniform(170, 255, 3) if bright else rng.uniform(0, 85, 3)
            canvas[y:y + side, x:x + side] = alpha * colour + (1 - alpha) * region
            mask = np.zeros((size, size), bool)
            mask[y:y + side, x:x + side] = alpha[..., 0] > 0.5
            for _, _, earlier in placed:  # the new digit covers what lies beneath it
                earlier &= ~mask
            placed.append((box, int(object_labels[k]), mask))
        boxes, labels = [], []
        for _, label, mask in placed:
            ys, xs = np.nonzero(mask)
            if len(xs) == 0:
                continue
            masks[i][mask] = label + 1
            boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
            labels.append(label)
        images[i] = np.clip(np.rint(canvas), 0, 255).astype(np.uint8)
        all_boxes.append(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4))
        all_labels.append(torch.tensor(labels, dtype=torch.int64))
    return Scenes(torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(),
                  torch.from_numpy(masks), all_boxes, all_labels)


def _read_photo(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        img = img.convert("RGB")
        img.thumbnail((PHOTO_SIDE, PHOTO_SIDE), Image.BILINEAR)
        return np.asarray(img)


def load_scenes(data_dir: str = "", download: bool = True, image_size: int = 64,
                seed: int = 0, counts: dict[str, int] | None = None,
                name: str = "digit-scenes", more_photos: bool = False) -> SceneData:
    """The ``name`` set (:data:`SCENE_SETS`): ``counts`` scenes per split (default
    :data:`SCENES`) of ``image_size`` px, composed from its objects (``mnist-10k`` digits or
    ``clipart`` drawings) and ``photos``, with ``more_photos`` also ``photos-more``'s in the
    training scenes (each set fetched on first use unless ``download`` is False; ``data_dir``
    may hold them as subfolders). Composing the 5,500 default scenes takes about 15 s on 2
    cores, so the last sets composed are kept in memory for the next run in the same process
    (the lab trains several)."""
    if name not in SCENE_SETS:
        raise UserError(f"no scene set {name!r}; the sets: {', '.join(SCENE_SETS)}")
    counts = {**SCENES, **(counts or {})}
    return _composed(name, scene_folders(name, data_dir, download, more_photos), image_size,
                     seed, tuple(sorted(counts.items())))


def scene_folders(name: str, data_dir: str = "", download: bool = True,
                  more_photos: bool = False) -> tuple[Path, ...]:
    """The folders of the ``name`` set's objects, of ``photos`` and, with ``more_photos``, of
    ``photos-more``, for :func:`scene_sources` (each fetched on first use unless
    ``download`` is False)."""
    sets = (SCENE_SETS[name][0], "photos") + (("photos-more",) if more_photos else ())
    return tuple(set_folder(data_dir, s, download) for s in sets)


def _digit_objects(folder: Path) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], list[str]]:
    """Per split, mnist-10k's digits (N, 28, 28) and labels: its own 8,000 / 2,000 split, every
    tenth training digit (a fixed, class-mixed tenth) held out for validation."""
    images, labels = mnist10k.load(folder)
    train_idx, test_idx = mnist10k.split(labels)
    val_idx = train_idx[::10]
    index = {"train": np.setdiff1d(train_idx, val_idx), "val": val_idx, "test": test_idx}
    return {s: (images[i, 0].numpy(), labels[i].numpy()) for s, i in index.items()}, CLASSES


def _clipart_objects(folder: Path) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], list[str]]:
    """Per split, the clip-art drawings (N, 4, 64, 64) RGBA and their class, the category of
    the drawing's own folder (22); split within each category, a tenth each for validation
    and test (:func:`deepatlas.data.image_text.stratified_split`). Drawings with fewer than
    :data:`MIN_OPAQUE` of their pixels opaque (alpha > 0.5) are left out: thin outlines and
    translucent shapes (1,882 of the 7,432 here) would show in a scene with no mask pixel, and
    so no box, to label them."""
    from deepatlas.data import clipart
    from deepatlas.data.image_text import stratified_split

    art = clipart.load(folder)
    opaque = (art.images[:, 3] > 127).float().mean((1, 2))  # share of pixels an object's mask
    keep = (opaque >= MIN_OPAQUE).nonzero().flatten().tolist()
    categories = sorted({art.categories[i][0] for i in keep})
    labels = torch.tensor([categories.index(art.categories[i][0]) for i in keep],
                          dtype=torch.int64)
    images = art.images[keep].numpy()
    return ({s: (images[i.numpy()], labels[i].numpy())
             for s, i in stratified_split(labels, 0.1, 0.1).items()}, categories)


# Each set's name: the package set its objects come from, and the reader of their splits.
SCENE_SETS = {"digit-scenes": ("mnist-10k", _digit_objects),
              "clipart-scenes": ("clipart", _clipart_objects)}


def scene_sources(name: str, folders: tuple[Path, ...]
                  ) -> tuple[dict[str, tuple[np.ndarray, np.ndarray, list[np.ndarray]]], list[str]]:
    """Per split, what its scenes are composed of: the objects, their labels and the
    background photographs, for :func:`compose` (``folders``: the objects', the photos' and,
    if given, ``photos-more``'s, whose photographs join the training split's after its own);
    and the class names. Composing one split's objects on another's photographs shows which
    of the two a model has not learnt to generalise from."""
    objects_dir, photos_dir, *more_dir = folders
    objects, classes = SCENE_SETS[name][1](objects_dir)
    by_split = photos.split_by_photograph([p.path for p in photos.load(photos_dir)])
    by_split["train"] += [p.path for d in more_dir for p in photos.load(d)]
    return {split: (*objects[split], [_read_photo(p) for p in by_split[split]])
            for split in SPLITS}, classes


@functools.lru_cache(maxsize=2)
def _composed(name: str, folders: tuple[Path, ...], image_size: int, seed: int,
              counts_items: tuple[tuple[str, int], ...]) -> SceneData:
    counts = dict(counts_items)
    inputs, classes = scene_sources(name, folders)
    splits = {split: compose(*inputs[split], counts[split], size=image_size, seed=seed * 10 + s)
              for s, split in enumerate(SPLITS)}

    def compose_train(epoch: int, recolour: bool = False, turn: bool = False) -> Scenes:
        if epoch == 0:
            return splits["train"]
        return compose(*inputs["train"], counts["train"], size=image_size, seed=(seed, 0, epoch),
                       recolour=recolour, turn=turn)

    return SceneData(name, classes, image_size, splits["train"], splits["val"], splits["test"],
                     f"{folders[0]} on {' and '.join(map(str, folders[1:]))}",
                     compose_train=compose_train)
