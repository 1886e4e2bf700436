"""Data files of the file-based tasks: where they live and how they are fetched and checked.

Files live in a cache directory, ``$RELAXSIM_DATA`` or ``~/.cache/relaxsim``, one subdirectory per
data set (``svhn/``, ``shakespeare/``); ``relaxsim data download NAME`` puts them there from their
official address, each written atomically and kept only when its published checksum matches.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from tqdm.auto import tqdm

from relaxsim.errors import DataError
from relaxsim.io import atomic_open
from relaxsim.registry import Registry

DATA_ENV = "RELAXSIM_DATA"
CHUNK_BYTES = 1 << 20  # bytes per read while downloading and hashing
TIMEOUT_S = 60.0  # seconds without an answer before a download gives up


def data_dir() -> Path:
    """The cache directory: ``$RELAXSIM_DATA`` if set, else ``~/.cache/relaxsim``."""
    env = os.environ.get(DATA_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "relaxsim"


@dataclass(frozen=True)
class RemoteFile:
    """One published file: name, address and checksum (``"md5:<hex>"`` or ``"sha256:<hex>"``)."""

    name: str
    url: str
    digest: str
    size: str  # approximate size, for the help text
    optional: bool = False  # fetched only on request (the 1.3 GB SVHN extra split)


@dataclass(frozen=True)
class DataSource:
    """A data set that ``relaxsim data download`` knows: its files and where they come from."""

    name: str
    home: str  # the page that publishes the files
    files: tuple[RemoteFile, ...]

    def directory(self) -> Path:
        """Where the files go by default: ``data_dir() / name``."""
        return data_dir() / self.name


SOURCES: Registry[DataSource] = Registry("data set")

_SVHN = "http://ufldl.stanford.edu/housenumbers/"
# md5 sums as published with the data set (and used by torchvision.datasets.SVHN).
SOURCES.register("svhn", DataSource("svhn", _SVHN, (
    RemoteFile("train_32x32.mat", _SVHN + "train_32x32.mat",
               "md5:e26dedcc434d2e4c54c9b2d4a06d8373", "182 MB"),
    RemoteFile("test_32x32.mat", _SVHN + "test_32x32.mat",
               "md5:eb5a983be6a315427106f1b164d9cef3", "64 MB"),
    RemoteFile("extra_32x32.mat", _SVHN + "extra_32x32.mat",
               "md5:a93ce644f1a588dc4d68dda5feec44a7", "1.3 GB", optional=True),
)))

_TINY = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/"
# sha256 and size (1,115,394 bytes) as recorded by tensorflow_datasets (tiny_shakespeare).
SOURCES.register("shakespeare", DataSource("shakespeare", _TINY, (
    RemoteFile("input.txt", _TINY + "input.txt",
               "sha256:86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
               "1.1 MB"),
)))


def _split_digest(digest: str) -> tuple[str, str]:
    algorithm, _, expected = digest.partition(":")
    return algorithm, expected.lower()


def file_digest(path: str | Path, algorithm: str) -> str:
    """The hex digest of the file at ``path`` (``algorithm``: any name :mod:`hashlib` knows)."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK_BYTES):
            h.update(chunk)
    return h.hexdigest()


def has_digest(path: str | Path, digest: str) -> bool:
    """Whether the file at ``path`` exists and has the checksum ``digest``."""
    algorithm, expected = _split_digest(digest)
    return Path(path).is_file() and file_digest(path, algorithm) == expected


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    reason = getattr(exc, "reason", None) or exc
    return " ".join(str(reason).split()) or type(exc).__name__


def fetch(url: str, dest: str | Path, digest: str, progress: bool = False) -> Path:
    """Download ``url`` to ``dest`` and check it against ``digest``.

    The file is written beside ``dest`` under a temporary name and renamed only once complete and
    verified: a failed or interrupted download, or a checksum mismatch, leaves nothing behind
    (and an earlier ``dest`` untouched). Every failure is a one-line :class:`DataError`.
    """
    dest = Path(dest)
    algorithm, expected = _split_digest(digest)
    h = hashlib.new(algorithm)
    try:
        response = urllib.request.urlopen(url, timeout=TIMEOUT_S)
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:
        raise DataError(f"download of {url}: failed ({_one_line(exc)}); check the network "
                        "connection, or fetch the file by hand and pass --mirror DIR") from None
    total = response.headers.get("Content-Length")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        with response, atomic_open(dest, "wb") as fh, \
                tqdm(total=int(total) if total and total.isdigit() else None, unit="B",
                     unit_scale=True, unit_divisor=1024, desc=dest.name, disable=not progress,
                     leave=False) as bar:
            while chunk := response.read(CHUNK_BYTES):
                fh.write(chunk)
                h.update(chunk)
                bar.update(len(chunk))
            got = h.hexdigest()
            if got != expected:  # raised inside atomic_open: the temporary file is removed
                raise DataError(f"download of {url}: {algorithm} mismatch (got {got}, expected "
                                f"{expected}); the file was not kept, try again")
    except (OSError, http.client.HTTPException) as exc:
        raise DataError(f"download of {url}: failed ({_one_line(exc)}); nothing was kept, "
                        "try again") from None
    return dest


def download(name: str, optional: bool = False, directory: str | Path | None = None,
             mirror: str | None = None, progress: bool = False,
             log: Callable[[str], None] = print) -> list[Path]:
    """Fetch the files of the data set ``name`` into ``directory`` (default: its cache directory).

    Files already present with the right checksum are kept. ``optional`` also fetches the files
    marked optional; ``mirror`` is a base URL or a local directory to take the files from instead
    of the official address. Returns the paths of the data set's files.
    """
    source = SOURCES.get(name)
    directory = Path(directory) if directory else source.directory()
    paths = []
    for remote in source.files:
        if remote.optional and not optional:
            continue
        dest = directory / remote.name
        algorithm = _split_digest(remote.digest)[0]
        if has_digest(dest, remote.digest):
            log(f"{name}: {remote.name} already present ({algorithm} ok): {dest}")
        else:
            url = _mirror_url(mirror, remote.name) if mirror else remote.url
            fetch(url, dest, remote.digest, progress=progress)
            log(f"{name}: {remote.name} downloaded ({dest.stat().st_size:,} bytes, "
                f"{algorithm} ok): {dest}")
        paths.append(dest)
    return paths


def _mirror_url(mirror: str, filename: str) -> str:
    if "://" not in mirror:  # a local directory
        return (Path(mirror).expanduser().resolve() / filename).as_uri()
    return mirror.rstrip("/") + "/" + filename
