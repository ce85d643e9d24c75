"""``proteins``: the structure files of PyPI ``MDAnalysisTests`` 2.11.0 (its source distribution:
only unpacked, never installed or imported; LGPL-3+, the PDB entries themselves CC0 from the
wwPDB), and the protein chains among them with DSSP secondary structure, for structure tasks.

``MDAnalysisTests/data/`` holds 133 structure files (PDB, gzip/bzip2 PDB, mmCIF, PQR, MMTF);
they are installed as shipped under ``structures/``. Its ``dssp/`` folder pairs single-chain
PDB files ``ID.pdb.gz`` with ``ID.pdb.dssp``: one line, the chain's DSSP assignment reduced to
three states (``H`` helix, ``E`` strand, ``-`` other) as MDAnalysis's DSSP tests check it, one
letter per residue. 50 of its 52 PDB files have such a file (``1mr1D_failing`` and
``wrong_hydrogens`` are there to fail); the assignment has exactly one letter per residue with
a complete backbone (N, CA, C, O), which the builder checks.

Installed as ``chains.tsv`` (id, one-letter sequence, secondary structure) and ``ca.npy``: the
CA coordinates in angstroms of every chain's residues, one chain after another, float32.
The PDB reader is this module's own (fixed columns, first model, first alternate location).
"""

from __future__ import annotations

import bz2
import gzip
import shutil
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np

from deepatlas.data.fetch import DamagedPackage, Progress, unpack

DATA = "MDAnalysisTests/data/"
STRUCTURES = (".pdb", ".pdb.gz", ".pdb.bz2", ".ent", ".ent.gz", ".cif", ".cif.gz", ".pqr",
              ".mmtf", ".mmtf.gz")
SECONDARY = set("HE-")
BACKBONE = {"N", "CA", "C", "O"}
ONE_LETTER = {
    "ALA": "A", "ARG": "R", "ASN": "N", "ASP": "D", "CYS": "C", "GLN": "Q", "GLU": "E",
    "GLY": "G", "HIS": "H", "ILE": "I", "LEU": "L", "LYS": "K", "MET": "M", "PHE": "F",
    "PRO": "P", "SER": "S", "THR": "T", "TRP": "W", "TYR": "Y", "VAL": "V", "MSE": "M",
    "SEC": "U", "PYL": "O", "HSD": "H", "HSE": "H", "HSP": "H", "HID": "H", "HIE": "H",
    "HIP": "H", "CYX": "C", "ASX": "B", "GLX": "Z"}


class Chain(NamedTuple):
    id: str  # the PDB file's name, e.g. "1ahsA" (entry 1AHS, chain A)
    sequence: str  # one letter per residue; X where the residue is not a standard one
    secondary: str  # H, E or - per residue
    ca: object  # torch.Tensor (len(sequence), 3) float32, angstroms


def _open_text(path: Path) -> str:
    raw = path.read_bytes()
    if path.name.endswith(".gz"):
        raw = gzip.decompress(raw)
    elif path.name.endswith(".bz2"):
        raw = bz2.decompress(raw)
    return raw.decode("latin-1")


def residues(pdb: str) -> Iterator[tuple[str, np.ndarray]]:
    """(residue name, CA xyz) of each residue with a complete backbone, in file order: ATOM and
    HETATM records of the first model, the first alternate location of each atom."""
    atoms: dict[tuple[str, str], dict[str, tuple[str, tuple[float, float, float]]]] = {}
    for line in pdb.splitlines():
        if line.startswith("ENDMDL"):
            break
        if not line.startswith(("ATOM  ", "HETATM")):
            continue
        key = (line[21], line[22:27])  # chain, residue number + insertion code
        atom = line[12:16].strip()
        if line[16] not in " A1" or atom in atoms.get(key, {}):
            continue
        xyz = (float(line[30:38]), float(line[38:46]), float(line[46:54]))
        atoms.setdefault(key, {})[atom] = (line[17:20].strip(), xyz)
    for found in atoms.values():
        if BACKBONE <= found.keys():
            yield found["CA"][0], np.array(found["CA"][1], dtype=np.float32)


class Residue(NamedTuple):
    chain: str  # the chain identifier, column 22
    number: str  # residue sequence number and insertion code, columns 23-27
    name: str  # three-letter residue name
    ca: np.ndarray  # (3,) float64, angstroms


def read_models(path: Path) -> list[dict[str, list[Residue]]]:
    """Every model of a PDB-format file (plain, gzip or bzip2): for each, its chains' residues
    that have a CA atom, in file order (the first alternate location). A file without MODEL
    records is one model. Raises ValueError, naming the file, when nothing parses."""
    if path.name.endswith((".cif", ".cif.gz", ".mmtf", ".mmtf.gz")):
        raise ValueError(f"{path}: only PDB-format files are read (.pdb, .ent, .pqr, also "
                         ".gz/.bz2); convert mmCIF or MMTF to PDB first")
    try:
        text = _open_text(path)
    except (OSError, EOFError, ValueError, zlib.error) as exc:  # damaged gzip or bzip2
        raise ValueError(f"{path}: cannot be read ({exc})") from None
    models: list[dict[str, list[Residue]]] = [{}]
    for line in text.splitlines():
        line = line.ljust(80)  # records cut short still have their fixed columns
        if line.startswith("ENDMDL"):
            models.append({})
        # " CA " is an alpha carbon; "CA  " (left-justified) is a calcium ion.
        elif line.startswith(("ATOM  ", "HETATM")) and line[12:16] == " CA " \
                and line[16] in " A1":
            try:
                xyz = np.array([float(line[30:38]), float(line[38:46]), float(line[46:54])])
            except ValueError:
                raise ValueError(f"{path}: bad coordinates in line {line!r}") from None
            chain = models[-1].setdefault(line[21], [])
            if not chain or chain[-1].number != line[22:27]:  # a second altloc of one residue
                chain.append(Residue(line[21], line[22:27], line[17:20].strip(), xyz))
    models = [m for m in models if m]
    if not models:
        raise ValueError(f"{path}: no CA atom in PDB format (ATOM/HETATM records) found")
    return models


def matched_ca(first: list[Residue], second: list[Residue]) -> tuple[np.ndarray, np.ndarray]:
    """The CA coordinates (N, 3) of the residues two chains share (same number, insertion
    code and residue name), in the first chain's order."""
    theirs = {(r.number, r.name): r.ca for r in second}
    pairs = [(r.ca, theirs[(r.number, r.name)]) for r in first if (r.number, r.name) in theirs]
    if len(pairs) < 3:
        raise ValueError(f"the two chains share {len(pairs)} residues (by number and name); "
                         "superposition needs at least 3")
    return np.stack([a for a, _ in pairs]), np.stack([b for _, b in pairs])


def chain_copies(model: dict[str, list[Residue]]) -> list[tuple[str, str]]:
    """(first copy, later copy) for each chain that repeats an earlier one: at least 20
    residues, and 90% of the shorter chain's residues matched by number and name."""
    found: list[tuple[str, str]] = []
    names = list(model)
    for k, later in enumerate(names):
        theirs = {(r.number, r.name) for r in model[later]}
        for first in names[:k]:
            shared = sum((r.number, r.name) in theirs for r in model[first])
            if shared >= 20 and shared >= 0.9 * min(len(model[first]), len(theirs)):
                found.append((first, later))
                break
    return found


def experimental_method(path: Path) -> str:
    """The EXPDTA record of a PDB file ("X-RAY DIFFRACTION", "SOLUTION NMR", ...), or "" (also
    for a file that cannot be decompressed: the package ships some on purpose)."""
    try:
        text = _open_text(path)
    except (OSError, EOFError, ValueError, zlib.error):
        return ""
    for line in text.splitlines():
        if line.startswith("EXPDTA"):
            return line[10:].strip()
        if line.startswith(("ATOM  ", "HETATM")):
            break
    return ""


def read_dssp(text: str, name: str) -> str:
    """The assignment string of an MDAnalysis ``.dssp`` file: ``STRING FILENAME``."""
    fields = text.split()
    if not fields or not set(fields[0]) <= SECONDARY:
        raise DamagedPackage(f"proteins: {name} is not an H/E/- assignment")
    return fields[0]


def build(files: dict[str, Path], work: Path, out: Path, progress: Progress) -> dict:
    """Copy the structure files; read each DSSP chain's residues and check them against it."""
    unpack(files["MDAnalysisTests"], work, keep=lambda n: f"/{DATA}" in n
           and n.endswith((*STRUCTURES, ".dssp")))
    data = next(work.glob(f"*/{DATA}"), None)
    if data is None:
        raise DamagedPackage(f"proteins: no {DATA} folder in the source distribution")
    structures = sorted(p for p in data.rglob("*") if p.name.endswith(STRUCTURES))
    for path in structures:
        dest = out / "structures" / path.relative_to(data)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest)
    progress(f"  {len(structures)} structure files")
    rows, coords, dssp_pdbs = [], [], sorted((data / "dssp").glob("*.pdb.gz"))
    for pdb in dssp_pdbs:
        assignment = pdb.with_name(f"{pdb.name[:-3]}.dssp")
        if not assignment.is_file():
            continue
        secondary = read_dssp(assignment.read_text("utf-8"), assignment.name)
        found = list(residues(_open_text(pdb)))
        if len(found) != len(secondary):
            raise DamagedPackage(f"proteins: {pdb.name} has {len(found)} residues with a "
                                 f"backbone, its assignment {len(secondary)}")
        name = pdb.name.removesuffix(".pdb.gz")
        rows.append(f"{name}\t{''.join(ONE_LETTER.get(r, 'X') for r, _ in found)}\t{secondary}")
        coords += [xyz for _, xyz in found]
    if not rows:
        raise DamagedPackage(f"proteins: no DSSP chain in {DATA}dssp/")
    (out / "chains.tsv").write_text("\n".join(rows) + "\n", "utf-8")
    np.save(out / "ca.npy", np.stack(coords))
    progress(f"  {len(rows)} chains with DSSP, {len(coords):,} residues")
    return {"structure_files": len(structures), "dssp_pdb_files": len(dssp_pdbs),
            "chains": len(rows), "residues": len(coords),
            "helix": sum(r.rsplit("\t", 1)[1].count("H") for r in rows),
            "strand": sum(r.rsplit("\t", 1)[1].count("E") for r in rows)}


def load(folder: Path) -> list[Chain]:
    """The DSSP chains: (id, sequence, secondary structure, CA coordinates (L, 3))."""
    import torch

    ca = torch.from_numpy(np.load(folder / "ca.npy", allow_pickle=False))
    chains, start = [], 0
    for line in (folder / "chains.tsv").read_text("utf-8").splitlines():
        name, sequence, secondary = line.split("\t")
        if len(sequence) != len(secondary) or start + len(sequence) > len(ca):
            raise DamagedPackage(f"{folder}: chain {name} does not match ca.npy; run deepatlas "
                                 "data get proteins again")
        chains.append(Chain(name, sequence, secondary, ca[start:start + len(sequence)]))
        start += len(sequence)
    return chains


def structures(folder: Path) -> list[Path]:
    """The 133 structure files as shipped (PDB, mmCIF, PQR, MMTF; some gzip or bzip2)."""
    return sorted(p for p in (folder / "structures").rglob("*") if p.is_file())
