"""``deepatlas runs``: the runs under a folder (``./runs``), with recipe, headline metric, date
and state. Reads only small text files (no torch), so it answers at once.

States: ``finished`` (summary.json), ``training`` (another process holds the run's lock),
``diverged`` or ``interrupted`` (the run's stopped.json: a NaN stop, Ctrl-C or SIGTERM),
``killed`` (a checkpoint but no summary: the process died without a word), ``empty``.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import time
import tomllib
from pathlib import Path
from typing import Any

from deepatlas.errors import UserError
from deepatlas.outputs import LOCK_FILE
from deepatlas.formats import format_metric


def add_parser(sub) -> None:
    p = sub.add_parser("runs", help="list the runs under ./runs: recipe, metric, date, state",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("folder", nargs="?", default="runs", help="where to look (recursively)")
    p.add_argument("--json", action="store_true", help="one JSON list instead of the table")


def _locked(run: Path) -> bool:
    """Whether a training process holds the run's lock (see train/rundir.py)."""
    try:
        fd = os.open(run / LOCK_FILE, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def describe_run(run: Path) -> dict[str, Any]:
    """One row: path, recipe, state, headline metric (or the reason it stopped), date."""
    try:
        config = tomllib.loads((run / "config.toml").read_text())
    except (OSError, tomllib.TOMLDecodeError):
        config = {}
    summary, stopped = _read_json(run / "summary.json"), _read_json(run / "stopped.json")
    newest = max((p.stat().st_mtime for p in run.iterdir() if p.is_file()), default=0.0)
    row: dict[str, Any] = {"run": str(run), "recipe": config.get("recipe", "?"),
                           "date": time.strftime("%Y-%m-%d %H:%M", time.localtime(newest))}
    if _locked(run):
        row["state"] = "training"
    elif stopped:
        row |= {"state": stopped.get("state", "stopped"), "detail": stopped.get("message", "")}
    elif summary:
        row["state"] = "finished"
        primary = summary.get("primary")
        if isinstance(summary.get(primary), (int, float)):
            row |= {"metric": primary, "value": summary[primary],
                    "detail": format_metric(primary, summary[primary])}
    elif (run / "last.pt").is_file():
        row["state"] = "killed"
    else:
        row["state"] = "empty"
    return row


def cmd_runs(args: argparse.Namespace) -> int:
    folder = Path(args.folder)
    if not folder.is_dir():
        raise UserError(f"{folder} is not a folder; runs are written to ./runs by default "
                        "(deepatlas train RECIPE), or give the folder: deepatlas runs DIR")
    rows = [describe_run(c.parent) for c in sorted(folder.rglob("config.toml"))]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print(f"no runs under {folder}")
        return 0
    widths = [max(len(r[k]) for r in rows) for k in ("run", "recipe", "state")]
    for r in rows:
        detail = r.get("detail", "")
        detail = detail if len(detail) <= 90 else detail[:87] + "..."
        print(f"{r['run']:<{widths[0]}}  {r['recipe']:<{widths[1]}}  {r['date']}  "
              f"{r['state']:<{widths[2]}}  {detail}".rstrip())
    return 0
