"""README tables drawn from one lab experiment's record in ``results/tour-summary.json``
(beside ``readme_results.py``, which places them; ``readme_benchmarks.py`` and
``readme_detect.py`` hold the benchmarks' tables, ``readme_recipes.py`` the recipes')."""

from __future__ import annotations

import json
import re
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[1] / "results"
CELLS = (("pre-LN", "no-warm-up"), ("pre-LN", "warm-up"), ("post-LN", "no-warm-up"),
         ("post-LN", "warm-up"))


def experiment(name: str) -> dict | None:
    """Experiment ``name``'s record in ``results/tour-summary.json``; None before it is run."""
    summary = json.loads((RESULTS / "tour-summary.json").read_text())
    return next((e for e in summary["experiments"] if e["id"] == name), None)


def translation_depth() -> str:
    """The ``translation`` experiment's held-out loss per depth, layout and warm-up."""
    record = experiment("translation")
    if record is None:
        return "Not measured yet: `deepatlas lab run translation`."
    loss = {k.removesuffix("_val_loss"): v for k, v in record["metrics"].items()
            if k.endswith("_val_loss")}
    depths = sorted({int(re.match(r"(\d+)L-", k).group(1)) for k in loss})
    best = min(loss.values())

    def cell(key: str) -> str:
        if key not in loss:
            return "not run"
        return f"**{loss[key]:.2f}**" if loss[key] == best else f"{loss[key]:.2f}"

    header = " | ".join(f"{layout}, {warm.replace('no-', 'no ')}" for layout, warm in CELLS)
    rows = [f"| {d} | " + " | ".join(cell(f"{d}L-{layout}-{warm}") for layout, warm in CELLS)
            + " |" for d in depths]
    return "\n".join([f"| layers | {header} |", "| --- " * (len(CELLS) + 1) + "|", *rows])
