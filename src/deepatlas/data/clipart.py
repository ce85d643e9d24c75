"""``clipart``: the Open Clip Art Library's SVGs from Debian ``openclipart-svg`` (public domain),
rendered to transparent 64x64 RGBA PNGs, each with its human-written title, keywords and
categories, for image-text tasks.

The package keeps ``usr/share/openclipart/svg/CATEGORY/[SUBFOLDER/]NAME.svg`` in 22 categories:
8,121 names, of which 663 are symbolic links to a drawing filed elsewhere. Each drawing is
rendered once; a link adds its category to the drawing's ``categories`` (the drawing's own
folder first). Title and keywords come from each SVG's RDF metadata: the ``cc:Work``'s
``dc:title`` and the ``rdf:li`` of its ``dc:subject``.

Rendering is done by PyPI ``cairosvg`` in a pool of one worker process, one SVG at a time with a
time limit, so that an SVG that crashes or hangs the renderer costs that SVG only; such SVGs,
and those cairosvg refuses (entity declarations, which it treats as unsafe), are skipped and
counted: 26 of the 7,458 with cairosvg 2.9.1 (12 with sizes in percent, 6 entity declarations,
8 others). Nothing outside an SVG is fetched: with ``unsafe=False`` cairosvg reads ``data:``
URLs only. 7,396 drawings have a title, 7,340 keywords, 267 more than one category.

64x64: clip art is flat shapes that stay recognisable at that size, the whole set decodes to
(7,432, 4, 64, 64) uint8 = 122 MB (96x96 would be 2.25 times that for the same render time), and
64 is the size of the downsampled-ImageNet benchmarks. Installed as ``index.tsv`` (every drawing:
path, categories, title, keywords; its content is fixed by the package, so it is checksummed)
and ``png/PATH.png`` for each drawing that rendered (cairo's output may move with its version).
"""

from __future__ import annotations

import contextlib
import csv
import io
import multiprocessing
import os
import posixpath
import signal
import sys
import time
import xml.etree.ElementTree as ET
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import NamedTuple

from deepatlas.data.fetch import DamagedPackage, Progress, deb_symlinks, unpack

SVG = "usr/share/openclipart/svg/"
SIZE = 64
RENDER_TIMEOUT_S = 60  # per SVG; the slowest of the real set takes about 1 s
COLUMNS = ["path", "categories", "title", "keywords"]
_DC = "{http://purl.org/dc/elements/1.1/}"
_RDF = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}"


class ClipArt(NamedTuple):
    images: object  # torch.Tensor (N, 4, SIZE, SIZE) uint8 RGBA; alpha 0 is the background
    titles: list[str]
    keywords: list[list[str]]
    categories: list[list[str]]  # its own folder's category first, then those linking to it
    paths: list[str]  # relative to usr/share/openclipart/svg/


def _clean(text: str | None) -> str:
    return " ".join((text or "").split()).replace("|", "/")


def metadata(svg: bytes) -> tuple[str, list[str]]:
    """(title, keywords) from the SVG's RDF metadata; ("", []) where it has none or is not XML.
    (Python's expat refuses entity expansion attacks; external entities are never read.)"""
    try:
        root = ET.fromstring(svg)
    except ET.ParseError:
        return "", []
    # cc is http://web.resource.org/cc/ here, http://creativecommons.org/ns# in newer files
    work = next((e for e in root.iter() if isinstance(e.tag, str) and e.tag.endswith("}Work")),
                None)
    if work is None:
        return "", []
    title = _clean(work.findtext(f"{_DC}title"))
    words = [_clean(li.text) for li in work.iterfind(f"{_DC}subject/{_RDF}Bag/{_RDF}li")]
    return title, [w for w in words if w]


def render(src: str, dest: str, size: int) -> str:
    """Render ``src`` into a ``size`` x ``size`` RGBA PNG at ``dest``, aspect ratio kept and
    centred on a transparent background; "" on success, else why not. Runs in the worker."""
    import cairosvg
    from PIL import Image

    try:
        # unsafe=False (the default): no entities, no files or URLs but data: ones
        png = cairosvg.svg2png(bytestring=Path(src).read_bytes(), output_width=size,
                               output_height=size, unsafe=False)
        with Image.open(io.BytesIO(png)) as image:
            rgba = image.convert("RGBA")
        if rgba.size != (size, size):
            raise ValueError(f"rendered {rgba.size}, not {size}x{size}")
        Path(dest).parent.mkdir(parents=True, exist_ok=True)
        rgba.save(dest, "PNG", optimize=True)
        return ""
    except Exception as exc:  # noqa: BLE001 - any renderer failure skips this one SVG
        return f"{type(exc).__name__}: {' '.join(str(exc).split())[:120]}"


class Renderer:
    """A pool of one worker process. A render that kills the worker costs that SVG only; one
    that hangs is given up after ``timeout`` s and its worker killed; either way the pool is
    started again. Forked on Linux (the worker only runs cairo and PIL, and a spawned one would
    import torch again: seconds and 800 MB), spawned elsewhere."""

    def __init__(self, timeout: float = RENDER_TIMEOUT_S):
        self.timeout, self.pool, self.pid = timeout, None, 0

    def __call__(self, src: Path, dest: Path, size: int) -> str:
        if self.pool is None:
            import cairosvg  # noqa: F401 - imported once here, inherited by forked workers

            method = "fork" if sys.platform == "linux" else "spawn"
            self.pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context(method))
            self.pid = self.pool.submit(os.getpid).result()
        try:
            return self.pool.submit(render, str(src), str(dest), size).result(self.timeout)
        except TimeoutError:
            why = f"no result after {self.timeout:g} s: the renderer hung"
        except BrokenProcessPool:
            why = "the renderer crashed on it"
        self.close()
        return why

    def close(self) -> None:
        if self.pool is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)  # a no-op where it ended or already died
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None


def _category(path: str) -> str:
    return path.split("/", 1)[0]


def build(files: dict[str, Path], work: Path, out: Path, progress: Progress,
          size: int = SIZE) -> dict:
    """Read every drawing's metadata, render it, write ``index.tsv``; links become categories."""
    deb = files["openclipart-svg"]
    unpack(deb, work, keep=lambda n: n.startswith(SVG))
    root = work / SVG
    svgs = sorted(str(p.relative_to(root)) for p in root.rglob("*.svg") if p.is_file())
    if not svgs:
        raise DamagedPackage(f"clipart: no SVG under {SVG} in {deb.name}")
    categories = {path: [_category(path)] for path in svgs}
    links = deb_symlinks(deb, keep=lambda n: n.startswith(SVG) and n.endswith(".svg"))
    for name, target in sorted(links.items()):
        link = name.removeprefix(SVG)
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(link), target))
        if resolved in categories and _category(link) not in categories[resolved]:
            categories[resolved].append(_category(link))
    progress(f"  {len(svgs):,} drawings and {len(links):,} links in "
             f"{len({_category(p) for p in svgs})} categories; rendering at {size}x{size}")
    rows, failed, start, renderer = [], [], time.perf_counter(), Renderer()
    try:
        for i, path in enumerate(svgs, 1):
            title, keywords = metadata((root / path).read_bytes())
            rows.append([path, "|".join(categories[path]), title, "|".join(keywords)])
            why = renderer(root / path, out / "png" / f"{path[:-4]}.png", size)
            if why:
                failed.append(f"{path}\t{why}")
            if i % 500 == 0 or i == len(svgs):
                progress(f"  rendered {i - len(failed):,} of {i:,} ({len(failed)} skipped), "
                         f"{time.perf_counter() - start:.0f} s")
    finally:
        renderer.close()
    with (out / "index.tsv").open("w", newline="", encoding="utf-8") as f:
        csv.writer(f, delimiter="\t", lineterminator="\n").writerows([COLUMNS] + rows)
    (out / "skipped.tsv").write_text("".join(f"{line}\n" for line in failed), "utf-8")
    return {"drawings": len(svgs), "rendered": len(svgs) - len(failed), "skipped": len(failed),
            "links": len(links), "titled": sum(bool(r[2]) for r in rows),
            "with_keywords": sum(bool(r[3]) for r in rows), "size": size}


def load(folder: Path) -> ClipArt:
    """The drawings that rendered: RGBA images with their titles, keywords and categories."""
    import numpy as np
    import torch
    from PIL import Image

    with (folder / "index.tsv").open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f, delimiter="\t"))
    if not rows or rows[0] != COLUMNS:
        raise DamagedPackage(f"{folder}/index.tsv: not a clipart index; run deepatlas data get "
                             "clipart again")
    images, kept = [], []
    for row in rows[1:]:
        png = folder / "png" / f"{row[0][:-4]}.png"
        if png.is_file():
            with Image.open(png) as image:
                images.append(np.asarray(image.convert("RGBA")))
            kept.append(row)
    stack = (torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous() if images
             else torch.zeros(0, 4, SIZE, SIZE, dtype=torch.uint8))
    split = lambda text: text.split("|") if text else []  # noqa: E731
    return ClipArt(stack, [r[2] for r in kept], [split(r[3]) for r in kept],
                   [split(r[1]) for r in kept], [r[0] for r in kept])
