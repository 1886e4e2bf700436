"""Small data files in the real formats of the file-based tasks, for the tests.

``write_svhn`` writes a ``.mat`` file the way the official SVHN files are laid out (``X``:
32 x 32 x 3 x n uint8, ``y``: n x 1 with 10 for digit 0) through :func:`scipy.io.savemat`; the
images are noise with a bright block whose position and colour encode the digit, so that a small
network learns them in a few epochs. ``write_text`` writes a generated text with a small
vocabulary whose next character is predictable from a few before it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.io

WORDS = ("to be ", "or not ", "that is ", "the question ", "whether ", "tis nobler\n")


def svhn_arrays(n: int, rng: np.random.Generator, digits=None):
    """``X`` (32, 32, 3, n) and ``y`` (n, 1), uint8 in SVHN's layout, and the digits ``(n,)``."""
    digits = rng.integers(0, 10, n) if digits is None else np.asarray(digits)
    X = rng.normal(100, 25, (32, 32, 3, n))
    for k, d in enumerate(digits):
        r, c = divmod(int(d), 5)
        X[4 + 12 * r:12 + 12 * r, 2 + 6 * c:6 + 6 * c, d % 3, k] = 250
    y = np.where(digits == 0, 10, digits).reshape(-1, 1).astype(np.uint8)
    return X.clip(0, 255).astype(np.uint8), y, digits


def write_mat(path: Path, **arrays) -> Path:
    scipy.io.savemat(path, arrays)
    return path


def write_svhn(directory: Path, sizes=(("train", 60), ("test", 30)), seed: int = 0) -> dict:
    """Write ``<part>_32x32.mat`` for each ``(part, n)``; return ``{part: (X, y, digits)}``."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    written = {}
    for part, n in sizes:
        X, y, digits = svhn_arrays(n, rng)
        write_mat(directory / f"{part}_32x32.mat", X=X, y=y)
        written[part] = (X, y, digits)
    return written


def make_text(n_words: int = 3000, seed: int = 1) -> str:
    rng = np.random.default_rng(seed)
    return "".join(rng.choice(WORDS, n_words))


def write_text(path: Path, text: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(make_text() if text is None else text, encoding="utf-8")
    return path


def leftovers(directory: Path) -> list[str]:
    """Temporary files of unfinished atomic writes (``.<name>.<random>.tmp``) under ``directory``."""
    return sorted(p.name for p in directory.rglob(".*.tmp"))
