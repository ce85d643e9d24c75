"""``deepatlas superpose A.pdb [B.pdb]``: how far two models of a protein differ (MAP 6.3).

Each comparison prints the CA RMSD after Kabsch superposition, AlphaFold 2's r.m.s.d.95 (the
RMSD over the 95% of CA atoms that superimpose best, five rounds) and lDDT-Cα
(superposition-free), from :mod:`deepatlas.nn.frames`. With one file it compares what the file
holds: every NMR model against the first, or else every copy of a chain (same residues)
against the first copy. With two files it compares their first models, chain by chain
(``--chains A B`` picks one chain of each).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from deepatlas.errors import UserError


def add_parser(sub) -> None:
    """Register ``superpose`` on the top-level subparsers."""
    p = sub.add_parser("superpose", help="RMSD, r.m.s.d.95 and lDDT-Ca between protein models",
                       description="Compare protein structures (PDB format): the CA RMSD after "
                       "superposition, AlphaFold 2's r.m.s.d.95 and lDDT-Ca. One file: its NMR "
                       "models against the first, or its copies of a chain against the first. "
                       "Two files: their first models.")
    p.add_argument("first", help="a PDB file (.pdb, .ent, .pqr; .gz and .bz2 too)")
    p.add_argument("second", nargs="?", default=None, help="a second PDB file (default: "
                   "compare within the first)")
    p.add_argument("--chains", nargs=2, default=None, metavar=("A", "B"),
                   help="the chain of the first structure and of the second to compare")
    p.add_argument("--json", action="store_true", help="print the comparisons as JSON")


def _read(path: str):
    from deepatlas.data.proteins import read_models

    if not Path(path).is_file():
        raise UserError(f"{path} is not a file")
    try:
        return read_models(Path(path))
    except ValueError as exc:
        raise UserError(str(exc)) from None


def comparisons(args: argparse.Namespace) -> list[tuple[str, list, list]]:
    """(label, residues, residues) of every pair of chains to compare."""
    first = _read(args.first)
    if args.second is not None:
        second = _read(args.second)[0]
        chains = [tuple(args.chains)] if args.chains else sorted(first[0].keys() & second.keys())
        for a, b in chains:
            if a not in first[0] or b not in second:
                raise UserError(f"no chain {a!r} in {args.first} or no chain {b!r} in "
                                f"{args.second}; their chains: {''.join(first[0])} and "
                                f"{''.join(second)}")
        if not chains:
            raise UserError(f"{args.first} and {args.second} share no chain identifier; name "
                            "two with --chains A B")
        return [(f"{a} vs {b}", first[0][a], second[b]) for a, b in chains]
    if args.chains:
        a, b = args.chains
        if a not in first[0] or b not in first[0]:
            raise UserError(f"{args.first} has chains {''.join(first[0])}, not {a!r} and {b!r}")
        return [(f"chain {a} vs {b}", first[0][a], first[0][b])]
    if len(first) > 1:
        return [(f"chain {c}, model 1 vs {k + 1}", first[0][c], model[c])
                for k, model in enumerate(first[1:], 1) for c in first[0] if c in model]
    from deepatlas.data.proteins import chain_copies

    pairs = chain_copies(first[0])
    if not pairs:
        raise UserError(f"{args.first} has one model and no two copies of a chain: give a "
                        "second file to compare with")
    return [(f"chain {a} vs {b}", first[0][a], first[0][b]) for a, b in pairs]


def cmd_superpose(args: argparse.Namespace) -> int:
    """Run ``deepatlas superpose``."""
    import torch

    from deepatlas.data.proteins import matched_ca
    from deepatlas.nn.frames import lddt_ca, rmsd, rmsd95

    rows = []
    for label, a, b in comparisons(args):
        try:
            x, y = (torch.from_numpy(v) for v in matched_ca(a, b))
        except ValueError as exc:
            raise UserError(f"{label}: {exc}") from None
        rows.append({"compared": label, "residues": len(x), "rmsd": float(rmsd(x, y)),
                     "rmsd95": float(rmsd95(x, y)), "lddt_ca": float(lddt_ca(x, y))})
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    for r in rows:
        print(f"{r['compared']}: {r['residues']} CA, RMSD {r['rmsd']:.2f} A, r.m.s.d.95 "
              f"{r['rmsd95']:.2f} A, lDDT-Ca {r['lddt_ca']:.3f}")
    return 0
