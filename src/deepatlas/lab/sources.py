"""The source text and the map, as shipped in ``deepatlas/lab/data`` (copies of
``../shared/seed/deep-learning-core-techniques.zh.txt`` and ``../shared/MAP.md``)."""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources

SEED = "deep-learning-core-techniques.zh.txt"


def _read(name: str) -> str:
    return resources.files("deepatlas.lab").joinpath("data", name).read_text("utf-8")


def normalise(text: str) -> str:
    """Whitespace runs become one space; leading and trailing space go."""
    return " ".join(text.split())


@lru_cache(maxsize=1)
def seed_text() -> str:
    """The source text, whitespace-normalised."""
    return normalise(_read(SEED))


def is_verbatim(fragment: str) -> bool:
    return normalise(fragment) in seed_text()


@lru_cache(maxsize=1)
def map_items() -> list[tuple[str, str]]:
    """(id, text) of every numbered item of MAP.md ("1.1", ..., "7.5", "8", "9"), in order.
    A bullet "- 7.1 A. 7.2 B." gives two items; a section without numbered bullets (8) is
    one item, its heading."""
    items: list[tuple[str, str]] = []
    section = None
    text = _read("MAP.md")
    for raw in re.split(r"\n(?=## |- )", text):
        block = " ".join(raw.split())
        heading = re.match(r"## (\d+) (.*)", raw.splitlines()[0] if raw.strip() else "")
        if heading:
            section = heading.group(1)
            if not re.search(rf"\n- {section}\.\d", text):
                items.append((section, heading.group(2)))
            continue
        bullet = re.match(r"- (\d+\.\d+) ", block)
        if not bullet or section is None:
            continue
        for part in re.split(r"\s(?=\d+\.\d+ [A-Z])", block[2:]):
            number, _, rest = part.partition(" ")
            if number.split(".")[0] == section:
                items.append((number, rest.strip()))
    return items
