"""Experiments by name, the way models are: ``@experiment(...)`` on a ``run(ctx)`` function."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from deepatlas.errors import unknown_name

VERDICTS = ("holds", "does not hold at this scale", "the text is wrong")


@dataclass
class Context:
    """What an experiment is given: its output folder, the size to run at, a seed."""

    out: Path
    quick: bool = True
    seed: int = 0

    def path(self, name: str) -> Path:
        self.out.mkdir(parents=True, exist_ok=True)
        return self.out / name


@dataclass
class Result:
    """What an experiment measured. ``metrics`` are plain numbers; ``plots`` are file names in
    the experiment's folder; ``details`` says in a sentence or two what the numbers show."""

    metrics: dict[str, float]
    verdict: str
    details: str
    plots: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")


@dataclass(frozen=True)
class Experiment:
    name: str
    map_id: str
    title: str
    claim: str  # in English
    source: str  # the source text's own line, in Chinese
    implements: str  # the deepatlas modules it exercises
    run: Callable[[Context], Result]
    order: float = 0.0  # position in the map, for the report


_EXPERIMENTS: dict[str, Experiment] = {}


def experiment(*, name: str, map_id: str, title: str, claim: str, source: str,
               implements: str) -> Callable[[Callable[[Context], Result]], Callable]:
    """Register ``run(ctx) -> Result`` as experiment ``name`` of MAP item ``map_id``."""

    def wrap(fn: Callable[[Context], Result]) -> Callable[[Context], Result]:
        major, _, minor = map_id.split(",")[0].strip().partition(".")
        order = float(major) + float(minor or 0) / 100
        _EXPERIMENTS[name] = Experiment(name, map_id, title, claim, source, implements, fn,
                                        order)
        return fn

    return wrap


def list_experiments() -> list[Experiment]:
    """All experiments, in the order of the map."""
    return sorted(_EXPERIMENTS.values(), key=lambda e: (e.order, e.name))


def get_experiment(name: str) -> Experiment:
    if name not in _EXPERIMENTS:
        raise unknown_name("experiment", name, _EXPERIMENTS)
    return _EXPERIMENTS[name]


def run_experiment(name: str, out_dir: str | Path, quick: bool = True,
                   seed: int = 0) -> dict[str, Any]:
    """Run experiment ``name`` into ``out_dir/name``; write and return its ``result.json``.
    What the experiment prints (training logs) goes to ``out_dir/name/log.txt``."""
    import contextlib

    import torch

    from deepatlas.train.runinfo import machine_info

    exp = get_experiment(name)
    ctx = Context(Path(out_dir) / name, quick=quick, seed=seed)
    ctx.out.mkdir(parents=True, exist_ok=True)
    threads = torch.get_num_threads()
    t0 = time.perf_counter()
    try:
        with (ctx.out / "log.txt").open("w") as log, contextlib.redirect_stdout(log):
            result = exp.run(ctx)
    finally:
        torch.set_num_threads(threads)
    record = {"id": exp.name, "map_id": exp.map_id, "title": exp.title, "claim": exp.claim,
              "source": exp.source, "implements": exp.implements,
              **asdict(result), "quick": quick, "seed": seed,
              "wall_s": time.perf_counter() - t0, **machine_info(torch.device("cpu"))}
    (ctx.out / "result.json").write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n")
    return record
