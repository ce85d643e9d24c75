"""Knowledge distillation (MAP 5.3): ``deepatlas distill --teacher RUN --student RECIPE``.

The student trains as an image-classification task on the one Trainer; ``distill.teacher``
makes each step add the teacher's soft targets
(:class:`deepatlas.tasks.classify_images.ClassifyImages`, :func:`deepatlas.losses.distillation_loss`)::

    L = alpha * CE(y, z_s) + (1 - alpha) * T^2 * KL(softmax(z_t / T) || softmax(z_s / T))

The hard term is the recipe's own loss (with its label smoothing or Mixup, if any). With
``--compare`` the same student recipe is also trained without a teacher, with the same seed
and budget, so that the gain (or loss) is measured rather than assumed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from deepatlas.compress.modelfile import load_model_file
from deepatlas.config import load_recipe, set_key
from deepatlas.errors import UserError
from deepatlas.tasks import fit


def distill(teacher: str, student: str, overrides: list[str], out: Path, *, compare: bool,
            device: str = "auto", progress: bool = True) -> dict[str, Any]:
    """Train ``student`` taught by ``teacher`` in ``out``; with ``compare`` also train it
    alone in ``out/no-teacher``. Returns (and writes to ``out/distill.json``) both results."""
    teacher_file = load_model_file(teacher, "distill --teacher")  # fail early on a bad teacher, before training
    if teacher_file.kind != "checkpoint":
        raise UserError(f"--teacher must be a training run or checkpoint, not a "
                        f"{teacher_file.kind} file")
    teacher_params = sum(p.numel() for p in teacher_file.module.parameters())
    taught = load_recipe(student, overrides)
    set_key(taught, "distill.teacher", str(teacher))
    results = {"student": student, "teacher": teacher, "teacher_params": teacher_params,
               "alpha": taught.distill.alpha, "temperature": taught.distill.temperature}
    summary = fit(taught, out, device=device, progress=progress)
    results["distilled"] = _row(summary)
    if compare:
        alone = load_recipe(student, overrides)
        set_key(alone, "distill.teacher", "")
        summary = fit(alone, out / "no-teacher", device=device, progress=progress)
        results["no_teacher"] = _row(summary)
        results["gain"] = results["distilled"]["test_acc"] - results["no_teacher"]["test_acc"]
    results["student_params"] = results["distilled"]["num_params"]
    (out / "distill.json").write_text(json.dumps(results, indent=2) + "\n")
    return results


def _row(summary: dict[str, Any]) -> dict[str, Any]:
    return {k: summary[k] for k in ("test_acc", "num_params", "wall_s", "seed", "out_dir")}
