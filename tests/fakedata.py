"""Small data sets written in the real on-disk formats, so every loader is tested on files.

Each class c draws a bright bar whose position depends on c, plus noise: learnable, tiny.
"""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np


def class_images(n: int, num_classes: int, size: int, channels: int, seed: int = 0
                 ) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % num_classes
    images = rng.integers(0, 60, size=(n, channels, size, size), dtype=np.uint8)
    for i, c in enumerate(labels):
        row = int((c + 0.5) * size / num_classes)
        images[i, :, max(0, row - 1):row + 1, :] = 250
    return images, labels.astype(np.uint8)


def write_idx(path: Path, array: np.ndarray, compress: bool = True) -> Path:
    magic = 0x0800 | array.ndim  # unsigned bytes
    raw = struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape)
    raw += array.astype(np.uint8).tobytes()
    if compress:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(raw))
    else:
        path.write_bytes(raw)
    return path


def make_mnist(folder: Path, n_train: int = 200, n_test: int = 60) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for split, n, seed in (("train", n_train, 0), ("t10k", n_test, 1)):
        images, labels = class_images(n, 10, 28, 1, seed)
        write_idx(folder / f"{split}-images-idx3-ubyte", images[:, 0])
        write_idx(folder / f"{split}-labels-idx1-ubyte", labels)
    return folder


def make_cifar(folder: Path, num_classes: int = 10, per_batch: int = 40) -> Path:
    """CIFAR-10 (``cifar-10-batches-py``) or CIFAR-100 (``cifar-100-python``) pickles."""
    if num_classes == 10:
        sub = folder / "cifar-10-batches-py"
        names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
        meta, key, label_key = "batches.meta", "label_names", "labels"
    else:
        sub = folder / "cifar-100-python"
        names, meta, key, label_key = ["train", "test"], "meta", "fine_label_names", "fine_labels"
    sub.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        images, labels = class_images(per_batch, num_classes, 32, 3, seed=i)
        with (sub / name).open("wb") as f:
            pickle.dump({b"data": images.reshape(per_batch, -1),
                         label_key.encode(): labels.tolist()}, f)
    with (sub / meta).open("wb") as f:
        pickle.dump({key: [f"class{c}" for c in range(num_classes)]}, f)
    return folder


def make_image_folder(folder: Path, classes: int = 3, per_class: int = 4, size: int = 40) -> Path:
    from PIL import Image

    for split in ("train", "val"):
        for c in range(classes):
            d = folder / split / f"n{c:08d}"
            d.mkdir(parents=True, exist_ok=True)
            images, _ = class_images(per_class, classes, size, 3, seed=c)
            for i in range(per_class):
                Image.fromarray(images[i].transpose(1, 2, 0)).save(d / f"img{i}.JPEG")
    return folder


AUSTEN_KEYS = ("sensesensibility", "prideprejudice", "mansfieldpark", "emma", "northangerabbey",
               "persuasion")


def make_austen(folder: Path, lines_per_book: int = 40, seed: int = 0) -> Path:
    """The installed form of the ``austen`` set: one UTF-8 ``KEY.txt`` per novel, one line of
    text per line, blank lines between paragraphs."""
    rng = np.random.default_rng(seed)
    words = "the of and to her she was it in not be that had as you with for his".split()
    folder.mkdir(parents=True, exist_ok=True)
    for key in AUSTEN_KEYS:
        lines = []
        for i in range(lines_per_book):
            lines.append("" if i % 5 == 4 else
                         " ".join(rng.choice(words, size=int(rng.integers(4, 9)))).capitalize()
                         + ".")
        (folder / f"{key}.txt").write_text("\n".join(lines) + "\n", "utf-8")
    return folder


EN_ES = {"the": "el", "man": "hombre", "sees": "ve", "house": "casa", "god": "dios",
         "made": "hizo", "light": "luz", "and": "y", "water": "agua", "land": "tierra"}


def make_bible_pairs(folder: Path, books: int = 12, chapters: int = 5, verses: int = 6,
                     seed: int = 0) -> Path:
    """The installed form of the ``bible-en-es`` set: ``pairs.tsv`` with OSIS reference,
    English and Spanish per line; the Spanish is a word-for-word gloss, so it is learnable."""
    rng = np.random.default_rng(seed)
    words = list(EN_ES)
    lines = []
    for b in range(books):
        for c in range(1, chapters + 1):
            for v in range(1, verses + 1):
                en = [str(w) for w in rng.choice(words, size=int(rng.integers(3, 8)))]
                lines.append(f"Bk{b}.{c}.{v}\t{' '.join(en).capitalize()}.\t"
                             f"{' '.join(EN_ES[w] for w in en).capitalize()}.")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pairs.tsv").write_text("\n".join(lines) + "\n", "utf-8")
    return folder


def make_rt_snippets(folder: Path, sentences: int = 300, seed: int = 0) -> Path:
    """The installed form of the ``rt-snippets`` set: ``snippets.tsv``, ID<TAB>mean rating
    <TAB>sentence; a sentence's polarity word decides the sign of its rating, so it is
    learnable, and every 50th rating is exactly 0 (dropped by the loader)."""
    rng = np.random.default_rng(seed)
    filler = "the film a plot is and with its story this cast".split()
    lines = []
    for i in range(1, sentences + 1):
        positive = bool(rng.integers(0, 2))
        words = [str(w) for w in rng.choice(filler, size=int(rng.integers(3, 10)))]
        words.insert(int(rng.integers(0, len(words))), "wonderful" if positive else "dull")
        score = 0.0 if i % 50 == 0 else float(rng.uniform(0.5, 3.5)) * (1 if positive else -1)
        lines.append(f"{i}\t{score!r}\t{' '.join(words).capitalize()}.")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "snippets.tsv").write_text("\n".join(lines) + "\n", "utf-8")
    return folder


def make_bert_text(folder: Path) -> Path:
    """What ``data.name = "austen+rt-snippets"`` reads from ``data.dir``: both sets, each in
    its own sub-folder."""
    make_austen(folder / "austen")
    make_rt_snippets(folder / "rt-snippets")
    return folder


def make_scene_sources(folder: Path, digits: int = 200, photos: int = 3, seed: int = 0,
                       more_photos: int = 2) -> Path:
    """``folder`` holding the installed forms of ``mnist-10k`` (images.npy, labels.npy),
    ``photos`` and ``photos-more`` (index.tsv and RGB PNGs): what copy-paste scenes are
    composed from."""
    rng = np.random.default_rng(seed)
    digits_dir = folder / "mnist-10k"
    digits_dir.mkdir(parents=True)
    images = np.zeros((digits, 28, 28), np.uint8)
    images[:, 6:22, 10:18] = rng.integers(128, 256, (digits, 16, 8), dtype=np.uint8)  # a stroke
    np.save(digits_dir / "images.npy", images)
    np.save(digits_dir / "labels.npy", np.arange(digits, dtype=np.uint8) % 10)
    make_photos(folder / "photos", photos, rng)
    make_photos(folder / "photos-more", more_photos, rng, prefix="more")
    return folder


def make_photos(folder: Path, count: int, rng: np.random.Generator, prefix: str = "photo"
                ) -> Path:
    """An installed photo set: ``count`` random 64x48 RGB PNGs listed in index.tsv."""
    from PIL import Image

    folder.mkdir(parents=True)
    rows = ["file\twidth\theight\tpackage\tlicence\tsource"]
    for i in range(count):
        name = f"{prefix}{i}.png"
        Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(folder / name)
        rows.append(f"{name}\t64\t48\tfake\tCC0\tmade by the test")
    (folder / "index.tsv").write_text("\n".join(rows) + "\n")
    return folder


def make_adult(folder: Path, n_train: int = 400, n_test: int = 200, seed: int = 0) -> Path:
    """The installed form of `deepatlas data get adult`: FOLDER/adult/train.csv and test.csv
    (header, then UCI's columns, "" for unknown), random rows in which income depends on
    education and sex, so a predictor has something to learn and something to be fair about."""
    import csv

    from deepatlas.data.adult import COLUMNS

    rng = np.random.default_rng(seed)
    out = folder / "adult"
    out.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("test", n_test)):
        with (out / f"{split}.csv").open("w", newline="") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(COLUMNS)
            for _ in range(n):
                sex = rng.choice(["Male", "Female"])
                education = int(rng.integers(1, 17))
                rich = education + 4 * (sex == "Male") + rng.normal(0, 1.5) > 12
                age, work = int(rng.integers(17, 90)), rng.choice(["Private", "", "State-gov"])
                writer.writerow([age, work,
                                 int(rng.integers(10_000, 500_000)), "Bachelors", education,
                                 rng.choice(["Never-married", "Married-civ-spouse"]),
                                 rng.choice(["Sales", "Exec-managerial"]), "Husband",
                                 rng.choice(["White", "Black"]), sex, 0, 0,
                                 int(rng.integers(10, 60)), "United-States",
                                 ">50K" if rich else "<=50K"])
    return folder


def make_proteins(folder: Path, chains: int = 18, length: int = 40, seed: int = 0) -> Path:
    """The installed form of `deepatlas data get proteins` that task predict-contacts reads:
    FOLDER/proteins/chains.tsv (id, sequence, secondary structure) and ca.npy, CA traces of
    compact random walks (3.8 A steps, turning sharply, so far residues come into contact)."""
    rng = np.random.default_rng(seed)
    out = folder / "proteins"
    out.mkdir(parents=True, exist_ok=True)
    rows, coords = [], []
    for k in range(chains):
        steps = rng.normal(size=(length, 3))
        steps[1:] += -0.6 * steps[:-1]  # anti-correlated steps fold the walk back on itself
        steps *= 3.8 / np.linalg.norm(steps, axis=1, keepdims=True)
        coords.append(np.cumsum(steps, axis=0))
        rows.append(f"{k}fakA\t{'A' * length}\t{'-' * length}")
    (out / "chains.tsv").write_text("\n".join(rows) + "\n", "utf-8")
    np.save(out / "ca.npy", np.concatenate(coords).astype(np.float32))
    # An NMR ensemble of two models, the second 0.5 A off on every axis at every other residue.
    atom = "ATOM  {:5d}  CA  ALA A{:4d}    {:8.3f}{:8.3f}{:8.3f}  1.00  0.00           C\n"
    text = "EXPDTA    SOLUTION NMR\n"
    for model, shift in ((1, 0.0), (2, 0.5)):
        text += f"MODEL     {model:4d}\n" + "".join(
            atom.format(i, i, *(xyz + shift * (i % 2))) for i, xyz in enumerate(coords[0], 1))
        text += "ENDMDL\n"
    (out / "structures").mkdir(exist_ok=True)
    (out / "structures" / "nmr.pdb").write_text(text)
    return folder


CLIPART_FAKE = {"animals": ("cat", "dog", "bird"), "transportation": ("car", "bus", "train"),
                "signs_and_symbols": ("arrow", "star", "heart")}


def make_clipart(folder: Path, per_category: int = 12, seed: int = 0) -> Path:
    """The installed form of `deepatlas data get clipart`: FOLDER/clipart/index.tsv (path,
    categories, title, keywords) and png/PATH.png, 64x64 RGBA drawings: per category a shape
    of its own colour on a transparent background, titled with one of its words."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    out = folder / "clipart"
    rows = ["path\tcategories\ttitle\tkeywords"]
    for c, (category, words) in enumerate(CLIPART_FAKE.items()):
        for k in range(per_category):
            word = words[k % len(words)]
            image = np.zeros((64, 64, 4), np.uint8)
            y, x = rng.integers(4, 28, size=2)
            image[y:y + 32, x:x + 32, c] = 200 + rng.integers(0, 56)  # this category's colour
            image[y:y + 32, x:x + 32, 3] = 255
            path = f"{category}/{word}_{k}.svg"
            (out / "png" / category).mkdir(parents=True, exist_ok=True)
            Image.fromarray(image, "RGBA").save(out / "png" / f"{path[:-4]}.png")
            rows.append(f"{path}\t{category}\t{word} number {k}\t{word}|{category}|drawing")
    (out / "index.tsv").write_text("\n".join(rows) + "\n", "utf-8")
    return folder


SPEECH_LETTERS = "aeiostn"


def make_speech(folder: Path, sentences: int = 60, seed: int = 0) -> Path:
    """The installed form of `deepatlas data get speech`: FOLDER/speech/sentences.tsv (id,
    book, text), phonemes.tsv (id, IPA) and audio/ID.flac at 22,050 Hz. Each "phoneme" is a
    letter spoken as 60 ms of its own tone (a space: 60 ms of silence), so the audio follows
    the symbols one to one, as a voice does."""
    import soundfile

    rng = np.random.default_rng(seed)
    out = folder / "speech"
    (out / "audio").mkdir(parents=True)
    rate, piece = 22_050, 1323
    tones = {c: 300.0 * (1 + i) for i, c in enumerate(SPEECH_LETTERS)}
    t = np.arange(piece) / rate
    texts, ipa = [], []
    for i in range(sentences):
        words = ["".join(rng.choice(list(SPEECH_LETTERS), rng.integers(2, 5)))
                 for _ in range(rng.integers(2, 5))]
        phonemes = " ".join(words)
        wave = np.concatenate([np.zeros(piece)] + [
            np.zeros(piece) if c == " " else 0.5 * np.sin(2 * np.pi * tones[c] * t)
            for c in phonemes] + [np.zeros(piece)])
        key = f"{i:04d}"
        soundfile.write(out / "audio" / f"{key}.flac", (wave * 32767).astype(np.int16), rate,
                        subtype="PCM_16")
        texts.append(f"{key}\tEmma\t{phonemes.capitalize()}.")
        ipa.append(f"{key}\t{phonemes}")
    (out / "sentences.tsv").write_text("\n".join(texts) + "\n", "utf-8")
    (out / "phonemes.tsv").write_text("\n".join(ipa) + "\n", "utf-8")
    return folder
