"""Knowledge distillation (MAP 5.3): ``deepatlas distill --teacher RUN --student RECIPE``.

The student trains with the usual Trainer; ``distill.teacher`` makes each step add the
teacher's soft targets (:func:`deepatlas.losses.distillation_loss`)::

    L = alpha * CE(y, z_s) + (1 - alpha) * T^2 * KL(softmax(z_t / T) || softmax(z_s / T))

The hard term is the recipe's own loss (with its label smoothing or Mixup, if any). With
``--compare`` the same student recipe is also trained without a teacher, with the same seed
and budget, so that the gain (or loss) is measured rather than assumed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from deepatlas.errors import UserError


def load_teacher(run_or_file: str, data, device: torch.device,
                 memory_format: torch.memory_format = torch.contiguous_format) -> nn.Module:
    """The teacher's inference model, frozen, after checking it speaks the student's data."""
    from deepatlas.train.checkpoint import find_checkpoint, load_checkpoint
    from deepatlas.train.evaluate import model_from_checkpoint

    path = find_checkpoint(run_or_file)
    state = load_checkpoint(path)
    meta = state["data"]
    if meta["classes"] != data.classes:
        raise UserError(f"the teacher {path} was trained on {meta['name']} "
                        f"({len(meta['classes'])} classes), the student on {data.name} "
                        f"({data.num_classes}); distillation needs the same classes")
    if (meta["in_channels"], meta["image_size"]) != (data.in_channels, data.image_size):
        raise UserError(f"the teacher {path} reads {meta['in_channels']}x{meta['image_size']}"
                        f"x{meta['image_size']} images, the student's data is "
                        f"{data.in_channels}x{data.image_size}x{data.image_size}")
    # Both see the same normalised batch, so the teacher must have been normalised alike.
    if not (torch.allclose(torch.tensor(meta["mean"]), torch.tensor(data.mean), atol=1e-3)
            and torch.allclose(torch.tensor(meta["std"]), torch.tensor(data.std), atol=1e-3)):
        raise UserError(f"the teacher {path} was trained with mean/std {meta['mean']}/"
                        f"{meta['std']}, the student's data has {list(data.mean)}/"
                        f"{list(data.std)}; train both on the same data set")
    with torch.random.fork_rng(devices=[]):  # building it must not shift the student's draws
        model, _ = model_from_checkpoint(state)
    model = model.to(device, memory_format=memory_format).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def distill(teacher: str, student: str, overrides: list[str], out: Path, *, compare: bool,
            device: str = "auto", progress: bool = True) -> dict[str, Any]:
    """Train ``student`` taught by ``teacher`` in ``out``; with ``compare`` also train it
    alone in ``out/no-teacher``. Returns (and writes to ``out/distill.json``) both results."""
    from deepatlas.compress.modelfile import load_model_file
    from deepatlas.config import load_recipe, set_key
    from deepatlas.train import Trainer

    teacher_file = load_model_file(teacher)  # fail early on a bad teacher, before training
    if teacher_file.kind != "checkpoint":
        raise UserError(f"--teacher must be a training run or checkpoint, not a "
                        f"{teacher_file.kind} file")
    teacher_params = sum(p.numel() for p in teacher_file.module.parameters())
    taught = load_recipe(student, overrides)
    set_key(taught, "distill.teacher", str(teacher))
    results = {"student": student, "teacher": teacher, "teacher_params": teacher_params,
               "alpha": taught.distill.alpha, "temperature": taught.distill.temperature}
    summary = Trainer(taught, out, device=device, progress=progress).fit()
    results["distilled"] = _row(summary)
    if compare:
        alone = load_recipe(student, overrides)
        set_key(alone, "distill.teacher", "")
        summary = Trainer(alone, out / "no-teacher", device=device, progress=progress).fit()
        results["no_teacher"] = _row(summary)
        results["gain"] = results["distilled"]["test_acc"] - results["no_teacher"]["test_acc"]
    results["student_params"] = results["distilled"]["num_params"]
    (out / "distill.json").write_text(json.dumps(results, indent=2) + "\n")
    return results


def _row(summary: dict[str, Any]) -> dict[str, Any]:
    return {k: summary[k] for k in ("test_acc", "best_test_acc", "num_params", "wall_s", "seed",
                                    "out_dir")}
