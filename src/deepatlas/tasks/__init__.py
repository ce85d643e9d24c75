"""Tasks (one module each): what a recipe learns, on the one Trainer.

``fit(config, out_dir)`` trains ``config.task`` and returns the run's summary. The summary
names its headline metric: ``summary["primary"]`` is a key of ``summary`` (``"test_acc"``,
``"test_exact_match"``, ``"fd"``). ``create_task(config)`` refuses any key set to a
non-default value that neither the Trainer nor the task reads.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from deepatlas.config import SECTIONS, RunConfig
from deepatlas.errors import UserError, unknown_name
from deepatlas.tasks.classify_images import ClassifyImages
from deepatlas.tasks.classify_nodes import ClassifyNodes
from deepatlas.tasks.classify_text import ClassifyText
from deepatlas.tasks.clip import ContrastiveImageText
from deepatlas.tasks.contacts import PredictContacts
from deepatlas.tasks.debias import Debias
from deepatlas.tasks.detect import Detect
from deepatlas.tasks.gan import Gan
from deepatlas.tasks.language_model import LanguageModel
from deepatlas.tasks.masked_lm import MaskedLM
from deepatlas.tasks.segment import Segment
from deepatlas.tasks.simclr import SimCLR
from deepatlas.tasks.speak import Speak
from deepatlas.tasks.seq2seq import Seq2Seq
from deepatlas.tasks.translation import Translation
from deepatlas.tasks.upscale import Upscale
from deepatlas.train import Callback, Task, Trainer
from deepatlas.train.task import ENGINE_KEYS

TASKS: dict[str, type[Task]] = {t.name: t for t in (ClassifyImages, ClassifyNodes, Seq2Seq, Gan,
                                                    LanguageModel, Translation, MaskedLM,
                                                    ClassifyText, Segment, Detect, Upscale,
                                                    Debias, SimCLR, PredictContacts,
                                                    ContrastiveImageText, Speak)}


def list_tasks() -> list[str]:
    return sorted(TASKS)


def _reads(key: str, task: type[Task]) -> bool:
    section = key.split(".", 1)[0]
    keys = ENGINE_KEYS | task.uses
    return key in keys or f"{section}.*" in keys


def unused_keys(config: RunConfig, task: type[Task]) -> list[str]:
    """The keys set away from their defaults that neither the Trainer nor ``task`` reads."""
    default, found = RunConfig(), []
    for section in SECTIONS:
        if section == "model":
            continue
        ours, theirs = getattr(config, section), getattr(default, section)
        for f in dataclasses.fields(ours):
            key = f"{section}.{f.name}"
            if getattr(ours, f.name) != getattr(theirs, f.name) and not _reads(key, task):
                found.append(key)
    return found


def create_task(config: RunConfig) -> Task:
    """The task ``config.task`` names, after checking that every key it sets is used."""
    if config.task not in TASKS:
        raise unknown_name("task", config.task, TASKS)
    task = TASKS[config.task]
    unused = unused_keys(config, task)
    if unused:
        raise UserError(f"{unused[0]} does nothing for task {task.name}"
                        + (f" (nor {', '.join(unused[1:])})" if unused[1:] else "")
                        + f"; remove it from the recipe (task {task.name} reads "
                          f"{', '.join(sorted(task.uses))} beyond the Trainer's keys)")
    return task(config)


def fit(config: RunConfig, out_dir: str | Path, *, device: str = "auto", resume: bool = False,
        progress: bool = True, callbacks: list[Callback] | None = None) -> dict[str, Any]:
    """Train ``config`` into ``out_dir`` and return its summary (see the module docstring)."""
    return Trainer(create_task(config), out_dir, device=device, resume=resume,
                   progress=progress, callbacks=callbacks).fit()


__all__ = ["TASKS", "ClassifyImages", "ClassifyNodes", "ClassifyText", "Debias", "Gan",
           "LanguageModel",
           "MaskedLM", "Seq2Seq", "Translation", "Upscale", "create_task", "fit", "list_tasks",
           "unused_keys"]
