"""Atomic file writes (a reader sees the old file or the new one, never half of either), the
exclusive lock a scan holds on its store and a run on its directory, and the checks of arrays read
back."""

from __future__ import annotations

import json
import os
import tempfile
import tomllib
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

import numpy as np

from relaxsim.errors import ConfigError, RelaxsimError


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


@contextmanager
def atomic_open(path: str | Path, mode: str = "w"):
    """Open a temporary file beside ``path``; on success fsync it and rename it over ``path``."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; results get the usual permissions
        with os.fdopen(fd, mode, **({"encoding": "utf-8"} if "b" not in mode else {})) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def stale_temporaries(directory: str | Path, names) -> list[Path]:
    """The temporary files that :func:`atomic_open` leaves beside ``directory/NAME`` (for each of
    ``names``) when its process is killed before the rename."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    return sorted(p for name in names for p in directory.glob(f".{name}.*.tmp") if p.is_file())


def remove_stale_temporaries(directory: str | Path, names) -> None:
    """Delete what :func:`stale_temporaries` finds (call only when no other process writes
    ``names`` in ``directory``)."""
    for path in stale_temporaries(directory, names):
        path.unlink(missing_ok=True)


def write_text(path: str | Path, text: str) -> None:
    with atomic_open(path) as fh:
        fh.write(text)


def write_json(path: str | Path, data) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def write_npz(path: str | Path, arrays: dict[str, np.ndarray]) -> None:
    """Write an ``.npz`` readable by ``np.load`` whose bytes depend only on the arrays.

    ``np.savez`` stamps each member with the current time; here every member carries the same
    fixed timestamp, so the same weights give the same file.
    """
    with atomic_open(path, "wb") as fh, zipfile.ZipFile(fh, "w", zipfile.ZIP_STORED) as zf:
        for name, array in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            with zf.open(info, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)


def read_toml(path: str | Path, what: str = "file") -> dict:
    """Read a TOML file; every way it can fail is a one-line error naming ``what`` and the path.
    A UTF-8 byte-order mark, which some editors write, is skipped."""
    where = f"{what} {str(path)!r}"
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise RelaxsimError(f"{where}: not found") from None
    except IsADirectoryError:
        raise RelaxsimError(f"{where}: is a directory, not a TOML file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RelaxsimError(f"{where}: cannot read ({exc})") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RelaxsimError(f"{where}: invalid TOML ({exc})") from None


def expand_home(path: str | Path, field: str) -> Path:
    """``Path(path).expanduser()``; a ``~user`` whose home the system does not know is a
    :class:`ConfigError` of ``field``."""
    try:
        return Path(path).expanduser()
    except RuntimeError:
        raise ConfigError(field, "names the home directory of a user this system does not know",
                          repr(str(path))) from None


def make_directory(path: Path, what: str | None = None) -> None:
    """``path.mkdir(parents=True, exist_ok=True)``, a failure (a file in the way, no permission,
    a read-only file system) as one line naming ``what`` (default: the path)."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RelaxsimError(f"{what or repr(str(path))}: cannot create the directory "
                            f"({exc.strerror or exc})") from None


@contextmanager
def exclusive_lock(path: str | Path, busy: Callable[[str], str], directory: bool = False,
                   what: str | None = None):
    """Hold an exclusive ``flock`` on ``path`` for the block; held by another process, raise
    ``RelaxsimError(busy(holder))`` at once, ``holder`` saying who holds it.

    ``path`` is a lock file (created if missing; the holder writes its pid and host into it) or,
    with ``directory``, a directory locked as it is, so that nothing is added to it (made, with
    its missing parents, if it does not exist, and removed again on leaving if it is still
    empty). The operating system drops the lock with the process however it ends (SIGKILL
    too): nothing stale is left. Where locks are unavailable (no fcntl, a file system without
    them) the block runs unlocked. A directory that cannot be made raises
    :class:`RelaxsimError` naming ``what`` (default: the path).
    """
    try:
        import fcntl
    except ImportError:  # not POSIX
        yield
        return
    path = Path(path)
    made: list[Path] = []
    while True:
        if directory:
            made += [p for p in (*path.parents[::-1], path) if not p.exists() and p not in made]
            make_directory(path, what)
        try:
            fd = (os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)) if directory
                  else os.open(path, os.O_RDWR | os.O_CREAT, 0o666))
        except FileNotFoundError:  # removed by a holder leaving it as it was: make it again
            if not directory:
                raise
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = "" if directory else os.pread(fd, 200, 0).decode("utf-8", "replace")
            os.close(fd)  # (a directory we made stays: its holder may have made it too)
            raise RelaxsimError(busy(holder.strip() or "another process")) from None
        except OSError:  # no locks here (some network file systems): run unlocked
            os.close(fd)
            fd = None
            break
        # the lock is ours if ``path`` still names what we opened (its holder may have removed
        # it between our open and our flock)
        try:
            if os.path.samestat(os.fstat(fd), os.stat(path)):
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    try:
        if fd is not None and not directory:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()} on {os.uname().nodename}\n".encode(), 0)
        yield
    finally:
        _remove_empty(made)  # while still held: a process waiting for the lock sees it gone
        if fd is not None:
            os.close(fd)  # drops the lock


def _remove_empty(directories: list[Path]) -> None:
    """Remove the ``directories`` (parents after children) that are empty."""
    for d in reversed(directories):
        try:
            d.rmdir()
        except OSError:  # not empty, or gone
            return


def shape_mismatch(arrays: dict[str, np.ndarray], shapes: dict[str, tuple]):
    """The first of ``shapes`` that ``arrays`` lacks or holds in another shape, as
    ``(key, shape found or None)``; ``None`` when every array is there in its shape."""
    for key, shape in shapes.items():
        if key not in arrays:
            return key, None
        if arrays[key].shape != shape:
            return key, arrays[key].shape
    return None


def check_output_path(option: str, path: str) -> None:
    """Refuse, before any work, a path whose directory does not exist or that is a directory."""
    p = Path(path)
    if p.is_dir():
        raise RelaxsimError(f"{option} {path!r}: is a directory; give a file name")
    if not p.parent.is_dir():
        raise RelaxsimError(f"{option} {path!r}: directory {str(p.parent)!r} does not exist")


def suffix_format(path, formats, noun: str = "format") -> str:
    """The format of ``path`` from its suffix (``"png"``), one of ``formats``; any other is a
    :class:`RelaxsimError` naming the path and the formats allowed."""
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix not in formats:
        raise RelaxsimError(f"{str(path)!r}: unknown {noun} "
                            f"{('.' + suffix) if suffix else '(no suffix)'}; use "
                            + ", ".join("." + f for f in formats))
    return suffix
