"""Tasks: what to learn (data, models, the loss of one step, metrics) for the one Trainer.

``fit(config, out_dir)`` trains ``config.task`` and returns the run's summary. The summary
names its headline metric: ``summary["primary"]`` is a key of ``summary`` (for example
``"test_acc"``, or ``"fd"`` for a GAN).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from deepatlas.config import RunConfig


def fit(config: RunConfig, out_dir: str | Path, *, device: str = "auto", resume: bool = False,
        progress: bool = True) -> dict[str, Any]:
    """Train ``config`` into ``out_dir`` and return its summary (see the module docstring)."""
    if config.task == "classify-nodes":
        from deepatlas.train.nodes import train_nodes

        summary = train_nodes(config, out_dir, resume=resume)
    elif config.task == "seq2seq":
        from deepatlas.train.seq2seq import train_seq2seq

        summary = train_seq2seq(config, out_dir, resume=resume)
    elif config.task == "gan":
        from deepatlas.train.gan import train_gan

        summary = train_gan(config, out_dir, device=device, resume=resume)
    else:
        from deepatlas.train import Trainer

        summary = Trainer(config, out_dir, device=device, resume=resume,
                          progress=progress).fit()
    summary.setdefault("primary", "fd" if config.task == "gan" else "test_acc")
    return summary
