"""``deepatlas tour``: every experiment in the map's order, then the report page.

The tour can run again and again into the same folder: each experiment measures afresh in a
temporary folder that then replaces its previous result (:func:`run_experiment`), and
``summary.json`` and ``index.html`` are replaced whole. Nothing is read from earlier runs.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import threading
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from deepatlas.lab.registry import VERDICTS, list_experiments, run_experiment, write_atomic

SUMMARY_KEYS = ("id", "map_id", "claim", "verdict", "note", "reason", "seeds", "effects",
                "parts", "metrics", "details", "wall_s", "run_id")


def _one_experiment(name: str, out: Path, quick: bool, seed: int, smoke: bool,
                    threads: int) -> dict[str, Any]:
    """In a worker process: ``run_experiment`` with ``threads`` CPU threads."""
    import torch

    torch.set_num_threads(threads)
    return run_experiment(name, out, quick=quick, seed=seed, smoke=smoke)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM as Ctrl-C: the workers are stopped on the way out


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """Terminate the pool's worker processes now. ``shutdown`` alone would wait for each
    running experiment to finish (minutes), and a parent killed by SIGTERM would leave them
    running as orphans. ``_processes`` is private, but it is the pool's only handle on them."""
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        process.terminate()
    pool.shutdown(wait=True, cancel_futures=True)


def longest_first(experiments: list, out: Path, quick: bool) -> list:
    """``experiments`` ordered longest first (the LPT rule: a long one started last would keep
    one worker busy alone at the end). The lengths are this folder's previous run's, else, for
    the quick tour, the shipped ``lab/data/quick_seconds.json`` (a `make run` on the project's
    2-core machine); unknown ones go first, then map order breaks ties."""
    seconds: dict[str, float] = {}
    if quick:
        shipped = Path(__file__).parent / "data" / "quick_seconds.json"
        seconds.update(json.loads(shipped.read_text()) if shipped.is_file() else {})
    try:
        previous = json.loads((out / "summary.json").read_text())
        if previous.get("quick") == quick:
            seconds.update({e["id"]: float(e["wall_s"]) for e in previous["experiments"]})
    except (OSError, ValueError, KeyError, TypeError):
        pass  # no previous run here, or one this version cannot read: the shipped order
    return sorted(experiments, key=lambda exp: -seconds.get(exp.name, float("inf")))


def run_tour(out_dir: str | Path, quick: bool = True, seed: int = 0,
             only: list[str] | None = None, log=print, smoke: bool = False,
             jobs: int = 1) -> dict[str, Any]:
    """Run the experiments (all, or ``only``) into ``out_dir``; write ``summary.json`` and
    ``index.html`` there and return the summary.

    With ``jobs`` > 1 the untimed experiments run ``jobs`` at a time in worker processes
    (each with cores / jobs threads); the timed ones (``@experiment(timed=True)``: their
    results include a time or a speed) then run one after another with every core."""
    import torch

    from deepatlas.report.html import render
    from deepatlas.train.runinfo import machine_info

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    chosen = [exp for exp in list_experiments() if not only or exp.name in only]
    untimed = [exp for exp in chosen if not exp.timed]
    jobs = max(1, min(jobs, len(untimed)))  # one experiment alone gets every core
    side_by_side = longest_first(untimed, out, quick) if jobs > 1 else []
    records: dict[str, dict[str, Any]] = {}

    def done(exp, record: dict[str, Any]) -> None:
        qualifier = record["note"] or record["reason"]
        log(f"[{exp.map_id}] {exp.name}: {record['verdict']}"
            f"{' (' + qualifier + ')' if qualifier else ''} ({record['wall_s']:.1f} s)")
        records[exp.name] = record

    if side_by_side:
        threads = max(1, (os.cpu_count() or 1) // jobs)
        spawn = multiprocessing.get_context("spawn")  # a fresh interpreter: no forked threads
        in_main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGTERM, _interrupt) if in_main else None
        with ProcessPoolExecutor(jobs, mp_context=spawn) as pool:
            futures = {pool.submit(_one_experiment, exp.name, out, quick, seed, smoke,
                                   threads): exp for exp in side_by_side}
            log(f"{len(side_by_side)} experiments, {jobs} at a time: "
                + ", ".join(exp.name for exp in side_by_side))
            try:
                for future in as_completed(futures):
                    done(futures[future], future.result())
            except BaseException:
                _stop_workers(pool)
                raise
            finally:
                if in_main:
                    signal.signal(signal.SIGTERM, previous)
    for exp in chosen:
        if exp.name not in records:
            log(f"[{exp.map_id}] {exp.name} ...")
            done(exp, run_experiment(exp.name, out, quick=quick, seed=seed, smoke=smoke))
    results = [records[exp.name] for exp in chosen]
    wall = time.perf_counter() - t0
    page = render(results, out, wall)
    counts = Counter(r["verdict"] for r in results)
    summary = {"quick": quick, "smoke": smoke, "seed": seed, "jobs": jobs, "wall_s": wall,
               "page": str(page),
               "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
               "machine": machine_info(torch.device("cpu")),
               "verdicts": {v: counts.get(v, 0) for v in VERDICTS},
               "experiments": [{k: r.get(k) for k in SUMMARY_KEYS} for r in results]}
    write_atomic(out / "summary.json", json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    return summary
