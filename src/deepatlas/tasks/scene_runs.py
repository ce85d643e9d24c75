"""``deepatlas eval`` of a saved ``segment`` or ``detect`` run: its test scenes, composed again
from the run's own config (they are a function of the seed), scored as training scored them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from deepatlas.tasks.detect import Detect, coco_files
from deepatlas.tasks.segment import Segment, segmentation_metrics
from deepatlas.train.task import rebuild_task


def _rebuild(state: dict[str, Any], device: torch.device, overrides: list[str]
             ) -> Detect | Segment:
    """The run's task, set up on its data with its trained weights (the inference ones)."""
    task_class = {"detect": Detect, "segment": Segment}[state["config"]["task"]]
    # few training scenes: only the test ones are scored
    task = rebuild_task(task_class, state, device, [*overrides, "train.limit_train_batches=1"])
    task.mean, task.std = state["data"]["mean"], state["data"]["std"]  # the training set's
    return task


def evaluate_scene_run(state: dict[str, Any], device: torch.device, overrides: list[str],
                       predictions: Path | None = None) -> dict[str, Any]:
    """The test metrics of a saved run; for a detector with ``predictions``, also its test
    detections in COCO's results format there, with the ground truth beside it
    (``NAME.truth.json``)."""
    task = _rebuild(state, device, overrides)
    model, test = task.models["model"], task.data.test
    result: dict[str, Any] = {"task": task.name, "data": task.data.name, "test_images": len(test),
                              "epoch": state.get("epoch")}
    if isinstance(task, Segment):
        metrics = segmentation_metrics(task.count(model, test))
        return {**result, **{f"test_{k}": v for k, v in metrics.items()}}
    found: list = []
    metrics = task.score(model, test, keep=found)
    result.update({f"test_{k}": v for k, v in metrics.items()})
    if predictions is not None:
        truth, results = coco_files(test, found, task.data.classes)
        truth_path = predictions.with_name(predictions.stem + ".truth.json")
        from deepatlas.outputs import write_via_temp

        for path, content in ((predictions, results), (truth_path, truth)):
            write_via_temp(path, lambda tmp, c=content: tmp.write_text(json.dumps(c) + "\n"))
        result.update({"predictions": str(predictions), "ground_truth": str(truth_path)})
    return result
