#!/usr/bin/env python3
"""Add (or replace) experiments in the committed tour summary from a later ``--only`` tour.

    deepatlas tour --only bert translation --out runs/new
    python scripts/merge_tour.py runs/new/summary.json   # rewrites results/tour-summary.json

A full tour takes about 40 minutes on 2 cores; when a session adds one experiment, this keeps
the committed summary complete without rerunning the others. Each merged record keeps its own
``wall_s`` and gains ``"merged_from"`` (the later tour's finish time and machine), and the
summary lists its merges, so a reader sees which rows came from which run. Both tours must be
the same size (full or quick).
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("new", type=Path, help="the summary.json of a tour --only run, or an "
                        "experiment's result.json (deepatlas lab run NAME)")
    parser.add_argument("--into", type=Path, default=ROOT / "results" / "tour-summary.json")
    args = parser.parse_args()
    base, new = (json.loads(p.read_text()) for p in (args.into, args.new))
    if "experiments" not in new:  # one experiment's own result.json (deepatlas lab run)
        from deepatlas.lab.tour import SUMMARY_KEYS

        new = {"quick": new["quick"], "smoke": new["smoke"], "finished": new["finished"],
               "machine": {k: new.get(k) for k in ("device", "torch", "python", "cpu",
                                                     "cpu_threads", "gpu")},
               "experiments": [{k: new.get(k) for k in SUMMARY_KEYS}]}
    if (base["quick"], base["smoke"]) != (new["quick"], new["smoke"]):
        raise SystemExit("the two tours are not the same size (quick/smoke differ)")
    stamp = {"finished": new["finished"], "machine": new["machine"]}
    merged = {e["id"]: e for e in base["experiments"]}
    for record in new["experiments"]:
        merged[record["id"]] = {**record, "merged_from": stamp}
    from deepatlas.lab import list_experiments  # the map's order, as a tour lists them

    order = {e.name: i for i, e in enumerate(list_experiments())}
    base["experiments"] = sorted(merged.values(), key=lambda e: order.get(e["id"], len(order)))
    counts = Counter(e["verdict"] for e in base["experiments"])
    base["verdicts"] = {v: counts.get(v, 0) for v in base["verdicts"]}
    base["wall_s"] = sum(e.get("wall_s", 0) for e in base["experiments"])
    base.setdefault("merges", []).append({**stamp, "experiments": [e["id"] for e in
                                                                    new["experiments"]]})
    args.into.write_text(json.dumps(base, indent=2, ensure_ascii=False) + "\n")
    print(f"{args.into}: {len(new['experiments'])} experiments merged, "
          f"{len(base['experiments'])} in all")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
