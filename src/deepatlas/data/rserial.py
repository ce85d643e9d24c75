"""A reader for R's serialization format (XDR, versions 2 and 3) and lazy-load databases.

Enough of it for data packages: vectors (logical, integer, double, character, list), their
attributes (``names``), symbols, pairlists and back-references. An R package's ``data/`` folder
keeps its objects in ``Rdata.rdb``, each ``4-byte big-endian length + zlib stream`` of one
serialized object, at the offsets listed in ``Rdata.rdx`` (itself a gzip-compressed serialized
list ``variables = list(NAME = c(offset, length))``). Format: R Internals, "Serialization
Formats"; the code of R's ``src/main/serialize.c`` and ``lazyLoadDBfetch``.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

from deepatlas.data.fetch import DamagedPackage

# SEXP types (Rinternals.h) and the pseudo-types of serialize.c
NILSXP, SYMSXP, LISTSXP, CLOSXP, ENVSXP, PROMSXP, LANGSXP = 0, 1, 2, 3, 4, 5, 6
CHARSXP, LGLSXP, INTSXP, REALSXP, CPLXSXP, STRSXP, DOTSXP = 9, 10, 13, 14, 15, 16, 17
VECSXP, EXPRSXP, RAWSXP = 19, 20, 24
REFSXP, NILVALUE_SXP, ATTRLISTSXP, ATTRLANGSXP = 255, 254, 239, 240
SINGLETONS = {253, 252, 251, 250, 242, 241}  # global env, unbound, missing arg, base ns, ...
PAIRS = {LISTSXP, CLOSXP, PROMSXP, LANGSXP, DOTSXP, ATTRLISTSXP, ATTRLANGSXP}


class RVector(list):
    """An R vector with attributes (``attrs``: name -> value)."""

    attrs: dict


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos, self.refs = data, 0, []

    def int(self) -> int:
        (value,) = struct.unpack_from(">i", self.data, self.pos)
        self.pos += 4
        return value

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise DamagedPackage("R data is truncated")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def length(self) -> int:
        n = self.int()
        return (self.int() << 32) + self.int() if n == -1 else n

    def numbers(self, fmt: str, size: int) -> list:
        n = self.length()
        return list(struct.unpack(f">{n}{fmt}", self.take(n * size)))

    def item(self):
        flags = self.int()
        kind, has_attr, has_tag = flags & 0xFF, flags & (1 << 9), flags & (1 << 10)
        if kind == REFSXP:
            return self.refs[(flags >> 8 or self.int()) - 1]
        if kind == NILVALUE_SXP or kind in SINGLETONS:
            return None
        if kind == SYMSXP:
            self.refs.append(self.item())  # a symbol is its name
            return self.refs[-1]
        if kind in PAIRS:  # a pairlist as a dict tag -> value (attributes, arguments)
            out: dict = {}
            while True:
                if has_attr:
                    self.item()
                tag = self.item() if has_tag else len(out)
                out[tag] = self.item()
                flags = self.int()
                kind, has_attr, has_tag = flags & 0xFF, flags & (1 << 9), flags & (1 << 10)
                if kind not in PAIRS:
                    if kind != NILVALUE_SXP:
                        raise DamagedPackage(f"R data: pairlist ends in type {kind}")
                    return out
        if kind == CHARSXP:
            n = self.int()
            return None if n == -1 else self.take(n).decode("utf-8", "replace")
        if kind in (LGLSXP, INTSXP):
            value = self.numbers("i", 4)
        elif kind == REALSXP:
            value = self.numbers("d", 8)
        elif kind in (STRSXP, VECSXP, EXPRSXP):
            value = [self.item() for _ in range(self.length())]
        elif kind == RAWSXP:
            value = self.take(self.length())
        else:
            raise DamagedPackage(f"R data: type {kind} is not supported by this reader")
        if has_attr:
            value = RVector(value)
            value.attrs = self.item()
        return value


def unserialize(data: bytes):
    """One object from R's XDR serialization (``saveRDS``/lazy-load format, no compression)."""
    if data[:2] != b"X\n":
        raise DamagedPackage("R data: not XDR serialization (want 'X\\n')")
    reader = _Reader(data)
    reader.pos = 2
    version = reader.int()
    reader.int(), reader.int()  # writer's R version, minimal reader version
    if version == 3:
        reader.take(reader.int())  # native encoding
    return reader.item()


def named(value) -> dict:
    """An R named list or vector as a dict."""
    names = getattr(value, "attrs", {}).get("names")
    if names is None:
        raise DamagedPackage("R data: expected a named list")
    return dict(zip(names, value))


def read_lazyload(rdx: Path) -> dict:
    """Every object of an R lazy-load database (``X.rdx`` beside ``X.rdb``) by name."""
    index = named(unserialize(gzip.decompress(rdx.read_bytes())))
    blob = rdx.with_suffix(".rdb").read_bytes()
    out = {}
    for name, (offset, length) in named(index["variables"]).items():
        chunk = blob[int(offset):int(offset) + int(length)]
        (size,) = struct.unpack(">I", chunk[:4])
        data = zlib.decompress(chunk[4:])
        if len(data) != size:
            raise DamagedPackage(f"{rdx.name}: object {name} is {len(data)} bytes, not {size}")
        out[name] = unserialize(data)
    return out

