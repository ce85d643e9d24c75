"""What the tasks on copy-paste scenes share (``segment``, ``detect``): composing the scenes
(:mod:`deepatlas.data.scenes`), their normalisation, the batches, the per-split evaluation and
the data description saved in checkpoints."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from deepatlas.data.loaders import TensorBatches
from deepatlas.data.mosaic import mosaic_epochs
from deepatlas.data.scenes import SCENE_SETS, SceneData, Scenes, load_scenes
from deepatlas.errors import UserError
from deepatlas.train import Context, Task


def normalise(images: torch.Tensor, mean: list[float], std: list[float]) -> torch.Tensor:
    """uint8 (B, 3, H, W) -> float, per channel ``(x / 255 - mean) / std``."""
    m = torch.tensor(mean, device=images.device).view(1, -1, 1, 1)
    s = torch.tensor(std, device=images.device).view(1, -1, 1, 1)
    return (images.float() / 255 - m) / s


@torch.inference_mode()
def run_saved_model(state: dict[str, Any], path: str, device: torch.device, num_classes: int,
                    multiple: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A saved scene run's model (inference weights) on the image at ``path``: the image as
    float (3, H, W) in [0, 1], and the model's output. The image keeps its size: it is padded
    (edge pixels repeated) to a ``multiple`` of the model's, which the caller cuts off; an
    image smaller than one such cell is refused."""
    import numpy as np
    import torch.nn.functional as F

    from deepatlas.data.image_files import read_pixels
    from deepatlas.models.saved import saved_model

    meta = state["data"]
    model = saved_model(state, in_channels=3, image_size=meta["image_size"],
                        num_classes=num_classes).to(device)
    rgb = torch.from_numpy(np.ascontiguousarray(read_pixels(path, 3))).permute(2, 0, 1)
    h, w = rgb.shape[1:]
    if min(h, w) < multiple:  # under one cell of the output grid: mostly repeated edge pixels
        raise UserError(f"{path} is {w}x{h} px, smaller than one cell of this network's "
                        f"{multiple}-px grid; give it an image of at least {multiple}x"
                        f"{multiple} px")
    x = F.pad(rgb[None], (0, -w % multiple, 0, -h % multiple), mode="replicate")
    m = torch.tensor(meta["mean"]).view(1, -1, 1, 1)
    s = torch.tensor(meta["std"]).view(1, -1, 1, 1)
    return rgb, model(((x - m) / s).to(device))


def first(scenes: Scenes, n: int) -> Scenes:
    """The first ``n`` scenes."""
    return Scenes(scenes.images[:n], scenes.masks[:n], scenes.boxes[:n], scenes.labels[:n])


SCENE_AUGMENTATIONS = ("none", "copy-paste", "copy-paste-recolour", "copy-paste-turn",
                       "copy-paste-recolour-turn", "mosaic", "mosaic-flip")


class FreshEpochs:
    """Training batches of scenes drawn anew every epoch by ``draw(epoch)``: copy-paste as
    augmentation, as Dwibedi et al. use it (``data.augment = "copy-paste"``: epoch 0 is the
    set's own training scenes, epoch ``e`` composes as many from the same digits and
    photographs with seed ``(seed, 0, e)``), or mosaics of the fixed set (``"mosaic"``,
    seed ``(seed, 1, e)``). A resumed epoch sees exactly the scenes it saw before."""

    def __init__(self, draw: Callable[[int], Scenes],
                 tensors: Callable[[Scenes], tuple[torch.Tensor, ...]], **batches: Any) -> None:
        self.draw, self.tensors, self.batches = draw, tensors, batches
        self.epoch = -1
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self.loader = TensorBatches(*self.tensors(self.draw(epoch)), **self.batches)
            self.epoch = epoch
        self.loader.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.loader)

    def iterate(self, start: int = 0):
        return self.loader.iterate(start)


class SceneTask(Task):
    """A task on scenes: ``digit-scenes`` or ``clipart-scenes``, or a ``yolo-folder`` or
    ``coco-json`` of your own (detection only: they have boxes, not masks). Subclasses build
    their model and loader in ``setup`` after :meth:`load_scenes`, and score one split in
    :meth:`score`."""

    uses = {"data.image_size", "data.augment", "data.more_photos", "train.eval_batch_size",
            "train.channels_last", "train.limit_eval_examples"}
    image_task = True

    def load_scenes(self, ctx: Context) -> SceneData:
        """Compose the scenes (limits compose only what a short run uses: the lab, tests) and
        the training set's per-channel mean and std."""
        cfg, self.ctx = self.config, ctx
        counts = {}
        if cfg.train.limit_train_batches:
            counts["train"] = cfg.train.limit_train_batches * cfg.train.batch_size
        if cfg.train.limit_eval_examples:
            counts["val"] = counts["test"] = cfg.train.limit_eval_examples
        if cfg.data.name in SCENE_SETS:
            self.data = load_scenes(cfg.data.dir, download=cfg.data.download,
                                    image_size=cfg.data.image_size, counts=counts,
                                    name=cfg.data.name, more_photos=cfg.data.more_photos)
        else:  # your own boxes: a YOLO or COCO folder (data.more_photos: composed sets only)
            from deepatlas.data import box_folders

            read = {"yolo-folder": box_folders.load_yolo_folder,
                    "coco-json": box_folders.load_coco_folder}[cfg.data.name]
            self.data = read(cfg.data.dir, cfg.data.image_size)
            for split, n in counts.items():  # the same limits as composing fewer scenes
                setattr(self.data, split, first(getattr(self.data, split), n))
        pixels = self.data.train.images.float().div(255)
        self.mean = pixels.mean((0, 2, 3)).tolist()
        self.std = pixels.std((0, 2, 3)).tolist()
        return self.data

    def batches(self, tensors: Callable[[Scenes], tuple[torch.Tensor, ...]]
                ) -> TensorBatches | FreshEpochs:
        """Shuffled training batches of ``tensors(scenes)`` (the scenes' images first), this
        rank's share; with ``data.augment = "copy-paste"``, of fresh scenes every epoch (and
        ``"copy-paste-recolour"``, on recoloured photographs; ``-turn``, on photographs turned
        by multiples of 90 degrees and mirrored); with ``"mosaic"``
        (``"mosaic-flip"``), of new mosaics of the training set every epoch, save the last
        tenth of the epochs, which see the set itself (Ultralytics' ``close_mosaic``)."""
        cfg, dist, data = self.config, self.ctx.dist, self.data
        augment = cfg.data.augment
        if augment not in SCENE_AUGMENTATIONS:
            raise UserError(f"data.augment={augment} does not apply to scenes; task "
                            f"{self.name} takes {', '.join(SCENE_AUGMENTATIONS)}")
        kwargs = {"batch_size": cfg.train.batch_size // dist.world_size, "seed": cfg.seed,
                  "rank": dist.rank, "world_size": dist.world_size}
        if augment.startswith("copy-paste"):
            if data.compose_train is None:
                raise UserError(f"data.augment={augment} composes new copy-paste scenes; "
                                f"{data.name} is a fixed set of images: use data.augment=none "
                                "or mosaic")
            recolour, turn = "recolour" in augment, "turn" in augment
            loader = FreshEpochs(lambda epoch: data.compose_train(epoch, recolour, turn),
                                 tensors, **kwargs)
        elif augment.startswith("mosaic"):
            loader = FreshEpochs(mosaic_epochs(data.train, cfg.train.epochs, cfg.seed,
                                               flip=augment == "mosaic-flip"), tensors, **kwargs)
        else:
            loader = TensorBatches(*tensors(data.train), **kwargs)
        if len(loader) == 0:
            raise UserError(f"train.batch_size={cfg.train.batch_size} is larger than the "
                            f"{len(data.train)} training scenes; lower it")
        return loader

    def inputs(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 scenes on the device -> the model's normalised input."""
        return normalise(images, self.mean, self.std).contiguous(
            memory_format=self.ctx.memory_format)

    def score(self, model: nn.Module, scenes: Scenes) -> dict[str, float]:
        raise NotImplementedError

    def evaluate(self, models: dict[str, nn.Module]) -> dict[str, float]:
        return {f"{split}_{key}": value for split in ("val", "test")
                for key, value in self.score(models["model"], getattr(self.data, split)).items()}

    def describe_data(self) -> dict[str, Any]:
        d = self.data
        return {"name": d.name, "classes": d.classes, "in_channels": 3,
                "image_size": d.image_size, "mean": self.mean, "std": self.std}

    def data_summary(self) -> dict[str, Any]:
        d = self.data
        return {"name": d.name, "source": d.source, "train": len(d.train), "val": len(d.val),
                "test": len(d.test)}
