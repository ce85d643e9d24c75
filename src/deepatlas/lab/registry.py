"""Experiments by name, the way models are: ``@experiment(...)`` on a ``run(ctx)`` function."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deepatlas.errors import unknown_name
from deepatlas.lab.stats import Effect

VERDICTS = ("holds", "does not hold at this scale", "the text is wrong", "not measurable here")
# Why a claim cannot be measured on a machine: the only reasons the lab gives.
REASONS = ("no data", "no GPU", "needs pretrained weights", "needs human listeners")
EXPLAINED = {
    "holds": "measured here, and every effect the claim predicts is there, beyond the spread "
             "over seeds where there are seeds",
    "does not hold at this scale": "measured here, and at least one predicted effect is "
                                   "missing, reversed, or not resolved from seed noise",
    "the text is wrong": "the source's own statement (a formula, a figure) is contradicted by "
                         "measurement",
    "not measurable here": "this machine lacks what the measurement needs: data, a GPU, "
                           "pretrained weights or human listeners",
}


@dataclass
class Context:
    """What an experiment is given: its output folder, the size to run at, a seed.

    Sizes: full (``deepatlas tour``), quick (``--quick``: the tour in minutes) and smoke (the
    test suite's: every code path in seconds, too small to be evidence; its records say
    ``"smoke": true``)."""

    out: Path
    quick: bool = True
    seed: int = 0
    smoke: bool = False

    def size(self, full, quick, smoke=None):
        """The setting for this run's size (``smoke`` defaults to ``quick``)."""
        if self.smoke and smoke is not None:
            return smoke
        return quick if self.quick or self.smoke else full

    def path(self, name: str) -> Path:
        self.out.mkdir(parents=True, exist_ok=True)
        return self.out / name


@dataclass
class Result:
    """What an experiment measured. ``metrics`` are plain numbers; ``plots`` are file names in
    the experiment's folder; ``details`` says in a sentence or two what the numbers show;
    ``effects`` are the comparisons the verdict rests on (:mod:`deepatlas.lab.stats`);
    ``seeds`` the seeds behind them; ``note`` qualifies the verdict (e.g. "undecided at 3
    seeds"); ``reason`` is required with "not measurable here" and is one of REASONS;
    ``parts`` are sub-claims with their own verdicts (the curriculum's steps)."""

    metrics: dict[str, float]
    verdict: str
    details: str
    plots: list[str] = field(default_factory=list)
    effects: list[Effect] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)
    note: str = ""
    reason: str = ""
    parts: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")
        if (self.verdict == "not measurable here") != bool(self.reason):
            raise ValueError("a 'not measurable here' verdict needs a reason, and only it")
        if self.reason and self.reason not in REASONS:
            raise ValueError(f"reason must be one of {REASONS}, got {self.reason!r}")
        for part in self.parts:
            if part.get("verdict") not in VERDICTS or (part.get("reason") or "") not in (
                    "", *REASONS):
                raise ValueError(f"bad part {part!r}")

    def record(self) -> dict[str, Any]:
        return {"metrics": self.metrics, "verdict": self.verdict, "note": self.note,
                "reason": self.reason, "details": self.details, "plots": self.plots,
                "seeds": self.seeds, "effects": [e.as_dict() for e in self.effects],
                "parts": self.parts}


@dataclass(frozen=True)
class Experiment:
    name: str
    map_id: str
    title: str
    claim: str  # in English
    source: tuple[str, ...]  # fragments of the source text, each verbatim
    implements: str  # the deepatlas modules it exercises
    run: Callable[[Context], Result]
    order: float = 0.0  # position in the map, for the report
    correction: str = ""  # where the source is wrong or unclear, what we measure instead
    timed: bool = False  # it measures time: the tour runs it alone, with every core


_EXPERIMENTS: dict[str, Experiment] = {}


def experiment(*, name: str, map_id: str, title: str, claim: str, source: str | Sequence[str],
               implements: str, correction: str = "", timed: bool = False
               ) -> Callable[[Callable[[Context], Result]], Callable]:
    """Register ``run(ctx) -> Result`` as experiment ``name`` of MAP item ``map_id``.
    ``source`` is one or more fragments copied verbatim from the source text (a test checks
    it); what the source gets wrong goes in ``correction``. ``timed``: its result includes a
    time or speed, so the tour never runs it beside another experiment."""

    fragments = (source,) if isinstance(source, str) else tuple(source)

    def wrap(fn: Callable[[Context], Result]) -> Callable[[Context], Result]:
        major, _, minor = map_id.split(",")[0].strip().partition(".")
        order = float(major) + float(minor or 0) / 100
        _EXPERIMENTS[name] = Experiment(name, map_id, title, claim, fragments, implements, fn,
                                        order, correction, timed)
        return fn

    return wrap


def list_experiments() -> list[Experiment]:
    """All experiments, in the order of the map."""
    return sorted(_EXPERIMENTS.values(), key=lambda e: (e.order, e.name))


def get_experiment(name: str) -> Experiment:
    if name not in _EXPERIMENTS:
        raise unknown_name("experiment", name, _EXPERIMENTS)
    return _EXPERIMENTS[name]


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def run_experiment(name: str, out_dir: str | Path, quick: bool = True,
                   seed: int = 0, smoke: bool = False) -> dict[str, Any]:
    """Run experiment ``name``; write and return its ``result.json`` in ``out_dir/name``.

    The experiment runs in a fresh temporary folder beside ``out_dir/name`` and only reads
    what it writes there; when it has finished, that folder replaces ``out_dir/name`` (two
    renames), so a previous result is never mixed with a new one and a failed run leaves the
    previous result in place (the failed run's folder is kept as ``NAME.failed``). What the experiment prints goes to ``log.txt``."""
    import contextlib

    import torch

    from deepatlas.train.runinfo import machine_info

    exp = get_experiment(name)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    final = out / name
    for leftover in [*out.glob(f".{name}.*.running"), *out.glob(f".{name}.*.old")]:
        shutil.rmtree(leftover, ignore_errors=True)  # from a run that was killed
    work = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".running", dir=out))
    ctx = Context(work, quick=quick, seed=seed, smoke=smoke)
    threads = torch.get_num_threads()
    t0 = time.perf_counter()
    try:
        with (work / "log.txt").open("w") as log, contextlib.redirect_stdout(log):
            result = exp.run(ctx)
        record = {"id": exp.name, "map_id": exp.map_id, "title": exp.title,
                  "claim": exp.claim, "source": list(exp.source),
                  "correction": exp.correction, "implements": exp.implements,
                  **result.record(), "quick": quick, "smoke": smoke, "seed": seed,
                  "seeds": result.seeds or [seed],  # one run at ``seed`` unless it says
                  "run_id": uuid.uuid4().hex, "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
                  "wall_s": time.perf_counter() - t0, **machine_info(torch.device("cpu"))}
        (work / "result.json").write_text(
            json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    except BaseException:
        failed = out / f"{name}.failed"  # kept for its log.txt; the last result stays
        shutil.rmtree(failed, ignore_errors=True)
        os.replace(work, failed)
        raise
    finally:
        torch.set_num_threads(threads)
    old = None
    if final.exists():
        old = out / f".{name}.{uuid.uuid4().hex[:8]}.old"
        os.replace(final, old)
    os.replace(work, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return record
