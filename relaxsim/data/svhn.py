"""SVHN, the Street View House Numbers (cropped 32x32 digits), from the official ``.mat`` files.

Each file holds ``X`` (32 x 32 x 3 x n, uint8) and ``y`` (n x 1, the digit, with 10 for digit 0).
A file is read once with :func:`scipy.io.loadmat` and converted to two ``.npy`` files beside it
(``train_32x32.X.npy``: n x 32 x 32 x 3 uint8, ``train_32x32.y.npy``: the digits 0..9) that later
runs memory-map: training then streams minibatches from the uint8 images and never holds a float
copy of the data.

Splits: validation is carved from ``train_32x32.mat`` with ``task.split_seed``; the rest of it (plus
``extra_32x32.mat`` with ``task.train_set = "train+extra"``) trains; ``test_32x32.mat`` tests.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from relaxsim.data.download import SOURCES
from relaxsim.data.images import ImageDataset, Segment, fit_features, n_raw_features
from relaxsim.data.tasks import TaskInfo
from relaxsim.errors import ConfigError, DataError
from relaxsim.io import atomic_open

IMAGE_SHAPE = (32, 32, 3)
N_CLASSES = 10
FILES = {"train": "train_32x32.mat", "test": "test_32x32.mat", "extra": "extra_32x32.mat"}
CONVERT_ROWS = 4096  # images per chunk when converting a .mat file to .npy


# -- reading one file ---------------------------------------------------------------------------


def read_mat(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read and check an SVHN ``.mat`` file: ``X`` (32, 32, 3, n) uint8 and the digits ``(n,)``
    uint8 (label 10 mapped to digit 0). Every problem is a one-line :class:`DataError`."""
    from scipy.io import loadmat, whosmat

    path = Path(path)
    where = f"SVHN file '{path}'"
    try:
        found = {name: shape for name, shape, _ in whosmat(path)}
        if "X" in found and "y" in found:
            _check_shapes(where, found["X"], found["y"])
        mat = loadmat(path, variable_names=("X", "y"))
    except DataError:
        raise
    except Exception as exc:  # scipy raises many kinds for a file that is not a .mat file
        raise DataError(f"{where}: not a readable MATLAB .mat file ({_one_line(exc)}); "
                        f"download it again with `relaxsim data download svhn`") from None
    for name in ("X", "y"):
        if name not in mat:
            raise DataError(f"{where}: has no variable {name!r} (found: "
                            f"{', '.join(sorted(found)) or 'none'}); not an SVHN cropped-digits "
                            "file")
    X, y = mat["X"], mat["y"]
    _check_shapes(where, X.shape, y.shape)
    return _pixels(where, X), _digits(where, y)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _check_shapes(where: str, x_shape, y_shape) -> None:
    x_shape, y_shape = tuple(x_shape), tuple(y_shape)
    if len(x_shape) != 4 or x_shape[:3] != IMAGE_SHAPE:
        raise DataError(f"{where}: X must have shape (32, 32, 3, n) (got {x_shape})")
    n = x_shape[3]
    if n == 0:
        raise DataError(f"{where}: holds no images (X has shape {x_shape})")
    if y_shape not in ((n, 1), (n,), (1, n)):
        raise DataError(f"{where}: y must have shape (n, 1) with n = {n} images (got {y_shape})")


def _pixels(where: str, X: np.ndarray) -> np.ndarray:
    if X.dtype == np.uint8:
        return X
    numeric = np.issubdtype(X.dtype, np.number)
    if not (numeric and np.all((X >= 0) & (X <= 255) & (X == np.round(X)))):
        raise DataError(f"{where}: X must hold 8-bit pixel values 0..255 (got dtype {X.dtype})")
    return X.astype(np.uint8)


def _digits(where: str, y: np.ndarray) -> np.ndarray:
    y = np.asarray(y).ravel()
    if not np.issubdtype(y.dtype, np.number):
        raise DataError(f"{where}: labels y must be numbers 1..10 (got dtype {y.dtype})")
    bad = ~np.isin(y, np.arange(1, N_CLASSES + 1))
    if bad.any():
        values = ", ".join(str(v.item()) for v in np.unique(y[bad])[:3])
        raise DataError(f"{where}: labels must be 1..10, 10 for digit 0 (got {values})")
    return (y.astype(np.int64) % N_CLASSES).astype(np.uint8)


# -- the .npy cache -----------------------------------------------------------------------------


def cache_paths(mat_path: Path) -> tuple[Path, Path]:
    stem = mat_path.with_suffix("")
    return stem.with_name(stem.name + ".X.npy"), stem.with_name(stem.name + ".y.npy")


def load_images(mat_path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """The images ``(n, 32, 32, 3)`` uint8 and digits ``(n,)`` of an SVHN file, from the ``.npy``
    cache beside it when that is newer than the file, else read from the ``.mat`` file and cached.

    Images from the cache are memory-mapped (read-only). Where the cache cannot be written (a
    read-only directory), the converted arrays are returned without caching.
    """
    mat_path = Path(mat_path)
    cached = _read_cache(mat_path)
    if cached is not None:
        return cached
    X, digits = read_mat(mat_path)
    x_path, y_path = cache_paths(mat_path)
    try:
        _write_images_npy(x_path, X)
        with atomic_open(y_path, "wb") as fh:
            np.save(fh, digits)
    except OSError:
        return np.ascontiguousarray(X.transpose(3, 0, 1, 2)), digits
    del X
    source_time = mat_path.stat().st_mtime_ns
    for path in (x_path, y_path):  # a source stamped in the future must not void its own cache
        if path.stat().st_mtime_ns < source_time:
            os.utime(path, ns=(source_time, source_time))
    return _read_cache(mat_path) or _fail_cache(x_path)


def _read_cache(mat_path: Path):
    x_path, y_path = cache_paths(mat_path)
    try:
        source_time = mat_path.stat().st_mtime_ns
        if min(x_path.stat().st_mtime_ns, y_path.stat().st_mtime_ns) < source_time:
            return None  # the .mat file was replaced after the cache was written
        images = np.load(x_path, mmap_mode="r")
        digits = np.load(y_path)
    except (OSError, ValueError):
        return None
    if (images.shape[1:] != IMAGE_SHAPE or images.dtype != np.uint8
            or digits.shape != (len(images),)):
        return None
    return images, digits


def _fail_cache(path: Path):
    raise DataError(f"SVHN cache '{path}': written but unreadable; delete it and run again")


def _write_images_npy(path: Path, X: np.ndarray) -> None:
    """Write ``X`` (32, 32, 3, n) as an ``.npy`` of shape (n, 32, 32, 3), in chunks, atomically."""
    n = X.shape[3]
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)), "fortran_order": False,
              "shape": (n, *IMAGE_SHAPE)}
    with atomic_open(path, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, header)
        for start in range(0, n, CONVERT_ROWS):
            chunk = X[..., start:start + CONVERT_ROWS].transpose(3, 0, 1, 2)
            fh.write(np.ascontiguousarray(chunk).tobytes())


# -- the task -----------------------------------------------------------------------------------


def svhn_dir(task_cfg) -> Path:
    """The directory of the SVHN files: ``task.path``, or the cache directory's ``svhn/``."""
    if not task_cfg.path:
        return SOURCES.get("svhn").directory()
    path = Path(task_cfg.path).expanduser()
    if path.is_file():
        raise DataError(f"task.path: must be the directory holding {FILES['train']} and "
                        f"{FILES['test']} for task svhn (got the file '{path}')")
    return path


def file_paths(task_cfg) -> dict[str, Path]:
    """The ``.mat`` files the config needs, checked to exist (one-line error naming the remedy)."""
    directory = svhn_dir(task_cfg)
    needed = ["train", "test"] + (["extra"] if task_cfg.train_set == "train+extra" else [])
    paths = {part: directory / FILES[part] for part in needed}
    missing = [p.name for p in paths.values() if not p.is_file()]
    if missing:
        extra = " --extra" if FILES["extra"] in missing else ""
        raise DataError(
            f"task.path: SVHN file{'s' if len(missing) > 1 else ''} {', '.join(missing)} not "
            f"found in '{directory}'; get {'them' if len(missing) > 1 else 'it'} with "
            f"`relaxsim data download svhn{extra}` or set task.path to the directory holding "
            f"{'them' if len(missing) > 1 else 'it'}")
    return paths


class SVHN:
    """SVHN cropped digits: 32x32 RGB images of house-number digits, 10 classes.
    Registered by name in :mod:`relaxsim.data.tasks` (this module is imported when first used)."""

    @classmethod
    def info(cls, task_cfg) -> TaskInfo:
        n_raw = n_raw_features(IMAGE_SHAPE, task_cfg.color, task_cfg.downsample)
        n_inputs = n_raw if task_cfg.projection == "none" else task_cfg.projected_inputs
        return TaskInfo(n_inputs=n_inputs, n_classes=N_CLASSES)

    @classmethod
    def min_sizes(cls, task_cfg) -> tuple[int, int, int]:
        info = cls.info(task_cfg)
        return info.n_inputs, info.n_classes, 1  # the training images: known once read

    @classmethod
    def check(cls, cfg: dict) -> None:
        task = cfg["task"]
        n_raw = n_raw_features(IMAGE_SHAPE, task["color"], task["downsample"])
        if task["projection"] != "none" and task["projected_inputs"] > n_raw:
            raise ConfigError("task.projected_inputs",
                              f"must be <= the {n_raw} inputs before the projection",
                              task["projected_inputs"])

    @classmethod
    def load(cls, task_cfg, steps: int | None = None) -> ImageDataset:
        paths = file_paths(task_cfg)
        parts = {part: load_images(path) for part, path in paths.items()}
        rng = np.random.default_rng(task_cfg.split_seed)
        n_train = len(parts["train"][1])
        n_val = max(1, round(n_train * task_cfg.val_fraction))
        if n_train - n_val < 1:
            raise DataError(f"SVHN file '{paths['train']}': {n_train} images are too few to carve "
                            f"a validation split (task.val_fraction = {task_cfg.val_fraction})")
        order = rng.permutation(n_train)
        train_rows, val_rows = np.sort(order[n_val:]), np.sort(order[:n_val])
        splits = {
            "train": [Segment(*parts["train"], train_rows)],
            "val": [Segment(*parts["train"], val_rows)],
            "test": [Segment(*parts["test"], np.arange(len(parts["test"][1])))],
        }
        if "extra" in parts:
            splits["train"].append(Segment(*parts["extra"], np.arange(len(parts["extra"][1]))))
        data = ImageDataset("svhn", cls.info(task_cfg), splits, features=None)
        data.features = fit_features(data, task_cfg.color, task_cfg.downsample,
                                     task_cfg.projection, task_cfg.projected_inputs, rng)
        return data
