"""``deepatlas tour``: every experiment in the map's order, then the report page."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from deepatlas.lab.registry import list_experiments, run_experiment


def run_tour(out_dir: str | Path, quick: bool = True, seed: int = 0,
             only: list[str] | None = None, log=print) -> dict[str, Any]:
    """Run the experiments (all, or ``only``) into ``out_dir``; write ``summary.json`` and
    ``index.html`` there and return the summary."""
    from deepatlas.report.html import render

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    results = []
    for exp in list_experiments():
        if only and exp.name not in only:
            continue
        log(f"[{exp.map_id}] {exp.name} ...")
        record = run_experiment(exp.name, out, quick=quick, seed=seed)
        log(f"[{exp.map_id}] {exp.name}: {record['verdict']} ({record['wall_s']:.1f} s)")
        results.append(record)
    wall = time.perf_counter() - t0
    page = render(results, out, wall)
    summary = {"quick": quick, "seed": seed, "wall_s": wall, "page": str(page),
               "experiments": [{k: r[k] for k in ("id", "map_id", "claim", "verdict",
                                                  "metrics", "details", "wall_s")}
                               for r in results]}
    (out / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    return summary
