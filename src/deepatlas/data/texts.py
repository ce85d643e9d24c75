"""Text sets: ``austen`` (novels), ``bible-en-es`` (verse-aligned translation pairs) and
``rt-snippets`` (review sentences with human sentiment ratings).

- ``austen``: Debian ``r-cran-janeaustenr`` (MIT; the novels are public domain). Its
  ``data/Rdata.rdb`` holds six R character vectors, one line of text per element, read with
  :mod:`deepatlas.data.rserial` (no R needed). Installed as one UTF-8 ``.txt`` per novel.
- ``bible-en-es``: Debian ``sword-text-kjv`` (King James, 1769 text) and ``sword-text-sparv``
  (Reina-Valera 1909), both public domain SWORD ``zText`` modules in the KJV versification.
  Installed as ``pairs.tsv``: reference, English, Spanish; Strong's-number markup, notes and
  the pilcrow removed.
- ``rt-snippets``: PyPI ``vaderSentiment`` 3.3.2 source distribution (MIT),
  ``additional_resources/hutto_ICWSM_2014.tar.gz``, ``movieReviewSnippets_GroundTruth.txt``:
  10,605 Rotten Tomatoes sentences (Pang & Lee's), each with the mean of 20 raters' scores in
  [-4, 4] (Hutto & Gilbert, ICWSM 2014). Installed as ``snippets.tsv``: id, score, sentence.
"""

from __future__ import annotations

import html
import re
import struct
import zlib
from pathlib import Path
from typing import NamedTuple

from deepatlas.data.fetch import DamagedPackage, Progress, unpack
from deepatlas.data.rserial import read_lazyload

# ---------------------------------------------------------------------------------- austen

AUSTEN_DATA = "usr/lib/R/site-library/janeaustenr/data/"
AUSTEN_BOOKS = {  # R object -> title, in publication order (as janeaustenr's austen_books())
    "sensesensibility": "Sense & Sensibility", "prideprejudice": "Pride & Prejudice",
    "mansfieldpark": "Mansfield Park", "emma": "Emma", "northangerabbey": "Northanger Abbey",
    "persuasion": "Persuasion"}


def build_austen(files: dict[str, Path], work: Path, out: Path, progress: Progress) -> dict:
    """Decode the six novels from the R package's lazy-load database."""
    unpack(files["r-cran-janeaustenr"], work, keep=lambda n: n.startswith(AUSTEN_DATA))
    objects = read_lazyload(work / AUSTEN_DATA / "Rdata.rdx")
    counts = {}
    for key in AUSTEN_BOOKS:
        lines = objects.get(key)
        if not isinstance(lines, list) or not all(isinstance(x, (str, type(None)))
                                                  for x in lines):
            raise DamagedPackage(f"austen: R object {key!r} is missing or not a character vector")
        (out / f"{key}.txt").write_text("\n".join(x or "" for x in lines) + "\n", "utf-8")
        counts[key] = len(lines)
        progress(f"  {AUSTEN_BOOKS[key]}: {len(lines):,} lines")
    return {"lines": sum(counts.values()), "books": counts}


def load_austen(folder: Path) -> dict[str, list[str]]:
    """The six novels, title -> lines (blank lines kept: they separate paragraphs)."""
    return {title: (folder / f"{key}.txt").read_text("utf-8").split("\n")[:-1]
            for key, title in AUSTEN_BOOKS.items()}


# ---------------------------------------------------------------------------------- bible

SWORD = "usr/share/sword/modules/texts/ztext/"
MODULES = {"sword-text-kjv": "engKJV2006eb", "sword-text-sparv": "spaRV1909eb"}
_NOTE = re.compile(r"<note\b.*?</note>", re.S)
_TAG = re.compile(r"<[^>]*>")


class VersePair(NamedTuple):
    ref: str  # OSIS reference, e.g. "Gen.1.1"
    en: str
    es: str


def read_ztext(folder: Path, testament: str) -> list[str]:
    """Every entry of one testament of a SWORD zText module, in index order. ``.bzs``: per
    block (offset, size, uncompressed size), little-endian uint32; ``.bzv``: per entry
    (block, start, length) as uint32, uint32, uint16; ``.bzz``: the zlib-compressed blocks."""
    bzz = (folder / f"{testament}.bzz").read_bytes()
    blocks = [zlib.decompress(bzz[offset:offset + size]) for offset, size, _ in
              struct.iter_unpack("<III", (folder / f"{testament}.bzs").read_bytes())]
    return [blocks[b][start:start + n].decode("utf-8") if n else ""
            for b, start, n in struct.iter_unpack("<IIH", (folder / f"{testament}.bzv")
                                                  .read_bytes())]


def verses(folder: Path) -> dict[str, str]:
    """Reference -> raw OSIS text. The index holds, per testament, two header entries, then per
    book a heading and per chapter a heading followed by its verses (KJV versification)."""
    from pysword.canons import canons  # the verse counts of every chapter

    out = {}
    for testament in ("ot", "nt"):
        entries, index = read_ztext(folder, testament), 2
        for _, osis, _, chapters in canons["kjv"][testament]:
            index += 1
            for chapter, count in enumerate(chapters, 1):
                index += 1
                for verse in range(1, count + 1):
                    out[f"{osis}.{chapter}.{verse}"] = entries[index]
                    index += 1
        if index != len(entries):
            raise DamagedPackage(f"{folder.name}/{testament}: {len(entries)} index entries, the "
                                 f"KJV versification needs {index}")
    return out


def clean_osis(text: str) -> str:
    """Plain text: notes dropped, tags (Strong's numbers, milestones) stripped, no pilcrow."""
    text = html.unescape(_TAG.sub("", _NOTE.sub("", text))).replace("\u00b6", "")
    return " ".join(text.split())


def build_bible(files: dict[str, Path], work: Path, out: Path, progress: Progress) -> dict:
    """Align the two modules verse by verse; keep the verses both have."""
    texts = {}
    for package, module in MODULES.items():
        unpack(files[package], work, keep=lambda n: n.startswith(SWORD))
        texts[package] = verses(work / SWORD / module)
        progress(f"  {module}: {len(texts[package]):,} verses")
    en, es = texts["sword-text-kjv"], texts["sword-text-sparv"]
    rows, missing = [], 0
    for ref in en:
        pair = clean_osis(en[ref]), clean_osis(es.get(ref, ""))
        if all(pair):
            rows.append(f"{ref}\t{pair[0]}\t{pair[1]}")
        else:
            missing += 1
    (out / "pairs.tsv").write_text("\n".join(rows) + "\n", "utf-8")
    return {"pairs": len(rows), "verses_missing_in_one": missing}


def load_bible(folder: Path) -> list[VersePair]:
    """The verse pairs (reference, King James English, Reina-Valera 1909 Spanish)."""
    lines = (folder / "pairs.tsv").read_text("utf-8").splitlines()
    return [VersePair(*line.split("\t")) for line in lines]


# ---------------------------------------------------------------------------------- rt-snippets

VADER_ARCHIVE = "additional_resources/hutto_ICWSM_2014.tar.gz"
VADER_SNIPPETS = "hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt"


def parse_snippets(text: str) -> list[tuple[int, float, str]]:
    """``ID<TAB>MEAN-RATING<TAB>SENTENCE`` lines (CRLF in the package)."""
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split("\t", 2)
        if len(parts) != 3:
            raise DamagedPackage(f"rt-snippets: line {number} is not ID, score, text")
        rows.append((int(parts[0]), float(parts[1]), parts[2].strip()))
    return rows


def build_rt(files: dict[str, Path], work: Path, out: Path, progress: Progress) -> dict:
    """Take the movie-review snippets out of the archive inside the source distribution."""
    unpack(files["vaderSentiment"], work, keep=lambda n: n.endswith(VADER_ARCHIVE))
    inner = next(work.rglob("hutto_ICWSM_2014.tar.gz"), None)
    if inner is None:
        raise DamagedPackage(f"rt-snippets: {VADER_ARCHIVE} is missing from the package")
    unpack(inner, work / "inner", keep=lambda n: n == VADER_SNIPPETS)
    rows = parse_snippets((work / "inner" / VADER_SNIPPETS).read_text("utf-8"))
    (out / "snippets.tsv").write_text(
        "".join(f"{i}\t{score!r}\t{text}\n" for i, score, text in rows), "utf-8")
    return {"sentences": len(rows), "positive": sum(s > 0 for _, s, _ in rows),
            "negative": sum(s < 0 for _, s, _ in rows)}


def load_rt(folder: Path) -> list[tuple[str, float]]:
    """(sentence, mean human rating in [-4, 4]) pairs, in the corpus's order."""
    rows = parse_snippets((folder / "snippets.tsv").read_text("utf-8"))
    return [(text, score) for _, score, text in rows]
