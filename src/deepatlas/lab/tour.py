"""``deepatlas tour``: every experiment in the map's order, then the report page.

The tour can run again and again into the same folder: each experiment measures afresh in a
temporary folder that then replaces its previous result (:func:`run_experiment`), and
``summary.json`` and ``index.html`` are replaced whole. Nothing is read from earlier runs.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

from deepatlas.lab.registry import VERDICTS, list_experiments, run_experiment, write_atomic

SUMMARY_KEYS = ("id", "map_id", "claim", "verdict", "note", "reason", "seeds", "effects",
                "parts", "metrics", "details", "wall_s", "run_id")


def run_tour(out_dir: str | Path, quick: bool = True, seed: int = 0,
             only: list[str] | None = None, log=print) -> dict[str, Any]:
    """Run the experiments (all, or ``only``) into ``out_dir``; write ``summary.json`` and
    ``index.html`` there and return the summary."""
    import torch

    from deepatlas.report.html import render
    from deepatlas.train.runinfo import machine_info

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    results = []
    for exp in list_experiments():
        if only and exp.name not in only:
            continue
        log(f"[{exp.map_id}] {exp.name} ...")
        record = run_experiment(exp.name, out, quick=quick, seed=seed)
        qualifier = record["note"] or record["reason"]
        log(f"[{exp.map_id}] {exp.name}: {record['verdict']}"
            f"{' (' + qualifier + ')' if qualifier else ''} ({record['wall_s']:.1f} s)")
        results.append(record)
    wall = time.perf_counter() - t0
    page = render(results, out, wall)
    counts = Counter(r["verdict"] for r in results)
    summary = {"quick": quick, "seed": seed, "wall_s": wall, "page": str(page),
               "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
               "machine": machine_info(torch.device("cpu")),
               "verdicts": {v: counts.get(v, 0) for v in VERDICTS},
               "experiments": [{k: r.get(k) for k in SUMMARY_KEYS} for r in results]}
    write_atomic(out / "summary.json", json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    return summary
