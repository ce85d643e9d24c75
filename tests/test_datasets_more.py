"""`deepatlas data get` of the sets that are built rather than copied: clipart (SVGs rendered
with cairosvg in a pool of one), proteins (PDB files read and checked against their DSSP
assignments) and speech (austen sentences spoken by espeak-ng), on tiny package files the tests
write in the real formats. Their real counts are checked in test_datasets.py (marker `data`)."""

from __future__ import annotations

import dataclasses
import os
import shutil
import time

import pytest
import torch

from deepatlas.data.packages import SETS
from test_datasets import _clean, _one_error_line


# ------------------------------------------------------------------------------ clipart


def failing_render(src: str, dest: str, size: int) -> str:
    """A renderer that dies on one file and hangs on another (module level: the forked worker
    finds it by name)."""
    from deepatlas.data import clipart

    if "crash" in src:
        os._exit(1)
    if "hang" in src:
        time.sleep(60)
    return clipart.real_render(src, dest, size)


def test_clipart_rendered_with_titles_keywords_and_link_categories(cli, cache, tmp_path):
    from fakepackages import clipart_svg, write_openclipart

    write_openclipart(tmp_path / "pkgs", {
        "animals/bugs/spider.svg": clipart_svg("Angry spider", ["insect", "spider"], 200, 100),
        "food/apple.svg": clipart_svg("", [], 50, 50),  # no title, no keywords
        "office/broken.svg": b"<svg><this is not XML",
    }, links={"people/spider_link.svg": "../animals/bugs/spider.svg",
              "food/dangling.svg": "nowhere.svg"})
    code, out, err = cli("data", "get", "clipart", "--from", tmp_path / "pkgs")
    assert code == 0, err
    assert "clipart: drawings 3, rendered 2, skipped 1, links 2" in out
    from deepatlas.data.packages import load_set

    art = load_set("clipart")
    assert art.paths == ["animals/bugs/spider.svg", "food/apple.svg"]
    assert art.images.dtype == torch.uint8 and art.images.shape == (2, 4, 64, 64)
    assert art.titles == ["Angry spider", ""] and art.keywords == [["insect", "spider"], []]
    assert art.categories == [["animals", "people"], ["food"]]
    spider = art.images[0]  # 2:1, centred: transparent above and below, red in the middle
    assert spider[3, 0].max() == 0 and spider[3, 32].min() == 255
    assert spider[:3, 32, 32].tolist() == [255, 0, 0] and art.images[1][3].min() == 255
    skipped = (cache / "clipart" / "skipped.tsv").read_text()
    assert skipped.startswith("office/broken.svg\t")


def test_clipart_renderer_survives_a_crash_and_a_hang(tmp_path, monkeypatch):
    from deepatlas.data import clipart
    from fakepackages import clipart_svg

    names = ("a.svg", "crash.svg", "b.svg", "hang.svg", "c.svg")
    for name in names:
        (tmp_path / name).write_bytes(clipart_svg("t", [], 10, 10))
    monkeypatch.setattr(clipart, "real_render", clipart.render, raising=False)
    monkeypatch.setattr(clipart, "render", failing_render)
    renderer = clipart.Renderer(timeout=30)
    results = []
    try:
        for name in names:
            renderer.timeout = 0.5 if name == "hang.svg" else 30
            results.append(renderer(tmp_path / name, tmp_path / f"{name}.png", 8))
    finally:
        renderer.close()
    assert results[1] == "the renderer crashed on it"
    assert results[3] == "no result after 0.5 s: the renderer hung"
    assert results[0] == results[2] == results[4] == ""
    assert [p.name for p in sorted(tmp_path.glob("*.png"))] == ["a.svg.png", "b.svg.png",
                                                                "c.svg.png"]


# ------------------------------------------------------------------------------ proteins


def test_proteins_chains_from_mdanalysis_sdist(cli, cache, tmp_path):
    import gzip

    from fakepackages import pdb_text, write_mdanalysis_sdist

    first = [("MET", (1.0, 2.0, 3.0)), ("MSE", (4.5, 5.0, 6.0)), ("GLY-", (9.0, 9.0, 9.0)),
             ("HSD", (7.0, 8.0, 9.25))]  # GLY- has no O: not a complete backbone
    second = [("ALA", (0.0, 0.0, 0.0)), ("XYZ", (-1.0, -2.0, -3.5))]
    write_mdanalysis_sdist(tmp_path / "pkgs", {
        "1abcA": (pdb_text(first), "H-E"), "2xyzB": (pdb_text(second, "B"), "EE"),
        "1mr1D_failing": (pdb_text(second), "")},
        {"4E43.pdb": pdb_text(second).encode(), "1a2c.cif.gz": gzip.compress(b"data_1A2C\n"),
         "adk.psf": b"PSF\n"})
    code, out, err = cli("data", "get", "proteins", "--from", tmp_path / "pkgs")
    assert code == 0, err
    assert "structure_files 5, dssp_pdb_files 3, chains 2, residues 5" in out
    from deepatlas.data import proteins
    from deepatlas.data.packages import load_set

    chains = load_set("proteins")
    assert [(c.id, c.sequence, c.secondary) for c in chains] == [("1abcA", "MMH", "H-E"),
                                                                 ("2xyzB", "AX", "EE")]
    assert chains[0].ca.dtype == torch.float32 and chains[0].ca.tolist() == [
        [1.0, 2.0, 3.0], [4.5, 5.0, 6.0], [7.0, 8.0, 9.25]]
    assert chains[1].ca[1].tolist() == [-1.0, -2.0, -3.5]
    assert [p.name for p in proteins.structures(cache / "proteins")] == [
        "1a2c.cif.gz", "4E43.pdb", "1abcA.pdb.gz", "1mr1D_failing.pdb.gz", "2xyzB.pdb.gz"]


def test_proteins_assignment_not_matching_residues(cli, cache, tmp_path):
    from fakepackages import pdb_text, write_mdanalysis_sdist

    write_mdanalysis_sdist(tmp_path / "pkgs", {"1abcA": (pdb_text([("ALA", (0, 0, 0))]),
                                                         "HHH")}, {})
    code, _, err = cli("data", "get", "proteins", "--from", tmp_path / "pkgs")
    assert code == 2
    _one_error_line(err, "proteins: 1abcA.pdb.gz has 1 residues with a backbone, its "
                    "assignment 3")
    _clean(cache)


# ------------------------------------------------------------------------------ speech

AUSTEN = {"sensesensibility": ["SENSE AND SENSIBILITY", "", "CHAPTER 1", "",
                               "The family of Dashwood had long been settled in Sussex.  Their",
                               "estate was large, said _Mr._ Dashwood, \"and their residence was",
                               "at Norland Park.\" Too short here.", ""],
          "prideprejudice": ["It is a truth universally acknowledged, that a single man."],
          "mansfieldpark": [""], "emma": [""], "northangerabbey": [""], "persuasion": [""]}


def _speech_with(monkeypatch, limit: int) -> None:
    import functools

    from deepatlas.data import speech

    monkeypatch.setitem(SETS, "speech", dataclasses.replace(
        SETS["speech"], build=functools.partial(speech.build, limit=limit)))


def test_speech_sentences_spoken_by_espeak(cli, cache, tmp_path, monkeypatch):
    from fakepackages import write_fake_espeak, write_janeaustenr

    write_janeaustenr(tmp_path / "pkgs", AUSTEN)
    write_fake_espeak(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    _speech_with(monkeypatch, limit=10)
    code, out, err = cli("data", "get", "speech", "--from", tmp_path / "pkgs")
    assert code == 0, err
    assert "speech: sentences 3" in out and (cache / "austen" / "manifest.json").is_file()
    from deepatlas.data.packages import load_set

    spoken = load_set("speech")
    assert [u.text for u in spoken] == [
        "The family of Dashwood had long been settled in Sussex.",
        "Their estate was large, said Mr. Dashwood, and their residence was at Norland Park.",
        "It is a truth universally acknowledged, that a single man."]
    assert spoken[0].book == "Sense & Sensibility" and spoken[0].phonemes == "/the family o/"
    wave = spoken[1].waveform
    assert wave.dtype == torch.float32 and len(wave) == 100 * len(spoken[1].text)
    assert 0.2 < wave.abs().max() < 0.3  # 8000 / 32768, through FLAC losslessly
    from deepatlas.data.fetch import read_manifest

    assert read_manifest(cache / "speech")["counts"]["espeak_ng"] == "9.99"


def test_speech_without_espeak_names_the_install_command(cli, cache, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no espeak-ng on it
    code, _, err = cli("data", "get", "speech")
    assert code == 2
    _one_error_line(err, "speech: espeak-ng is not installed here", "apt-get install espeak-ng")
    _clean(cache)


def test_speech_with_the_real_espeak(cache, tmp_path, monkeypatch):
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed here (apt-get install espeak-ng)")
    from deepatlas.data import speech

    folder = tmp_path / "austen"
    folder.mkdir()
    for key, lines in AUSTEN.items():
        (folder / f"{key}.txt").write_text("\n".join(lines) + "\n", "utf-8")
    (tmp_path / "out").mkdir()
    counts = speech.build({}, tmp_path / "work", tmp_path / "out", lambda line: None,
                          sets={"austen": folder}, limit=1)
    assert counts["sentences"] == 1 and counts["sample_rate"] == 22_050
    (utterance,) = speech.load(tmp_path / "out")
    assert "ɪ" in utterance.phonemes or "ə" in utterance.phonemes  # IPA
    assert 1.0 < len(utterance.waveform) / 22_050 < 8.0 and utterance.waveform.abs().max() > 0.05
