"""Your own data: ``task.name = "arrays"`` with ``task.path`` an ``.npz`` or a ``.csv`` file.

- ``.npz``: arrays ``x_train``, ``y_train``, ``x_test``, ``y_test`` and optionally ``x_val``,
  ``y_val`` (else the validation split is carved from the training one with ``task.split_seed``
  and ``task.val_fraction``). Inputs 2-D ``(n, D)`` for static input, 3-D ``(n, L_T, D)`` for
  sequences (``network.input_injection = "sequence"``, ``network.steps = L_T``).
- ``.csv``: one row per sample, a header naming the columns; the label column is
  ``task.label``, every other column an input. Test and validation splits are carved with
  ``task.split_seed``, ``task.test_fraction`` and ``task.val_fraction``.

Labels must be the integers ``0 .. C-1`` (``C`` = the largest label + 1, at least 2); inputs
finite. The inputs are used as given (no standardisation). Every problem is one line naming
``task.path`` and what is wrong.
"""

from __future__ import annotations

import csv
import functools
import os
from pathlib import Path

import numpy as np

from relaxsim.errors import ConfigError, DataError

from .tasks import ArrayDataset, TaskInfo, split_indices

FIELD = "task.path"
REQUIRED = ("x_train", "y_train", "x_test", "y_test")


def _fail(message: str, path) -> DataError:
    return DataError(f"{FIELD}: {message} (got {str(path)!r})")


def _path(task_cfg) -> Path:
    if not task_cfg.path:
        raise ConfigError(FIELD, "must name an .npz or .csv file for task.name = 'arrays'",
                          '""')
    path = Path(task_cfg.path).expanduser()
    if path.suffix.lower() not in (".npz", ".csv"):
        raise ConfigError(FIELD, "must be an .npz or a .csv file", repr(str(path)))
    return path


def read(task_cfg) -> dict[str, np.ndarray]:
    """The splits of the file (validated), as arrays ``x_*`` (float64) and ``y_*`` (int64)."""
    path = _path(task_cfg)
    try:
        st = os.stat(path)
    except OSError as err:
        raise _fail(f"cannot read the file ({err.strerror})", path) from None
    return _read(str(path), st.st_mtime_ns, st.st_size, task_cfg.label,
                 task_cfg.val_fraction, task_cfg.test_fraction, task_cfg.split_seed)


@functools.lru_cache(maxsize=4)
def _read(path: str, mtime: int, size: int, label: str, val_fraction: float,
          test_fraction: float, seed: int) -> dict[str, np.ndarray]:
    p = Path(path)
    if p.suffix.lower() == ".npz":
        data = _read_npz(p)
    else:
        data = _csv_splits(_read_csv(p, label), test_fraction, val_fraction, seed)
    for split in ("train", "val", "test"):
        if f"x_{split}" in data and len(data[f"x_{split}"]) != len(data[f"y_{split}"]):
            raise _fail(f"x_{split} has {len(data[f'x_{split}'])} samples but y_{split} "
                        f"{len(data[f'y_{split}'])}", p)
    if "x_val" not in data:  # carved from the training split
        n = len(data["y_train"])
        order = np.random.default_rng(seed).permutation(n)
        n_val = max(1, round(n * val_fraction))
        if n - n_val < 1:
            raise _fail(f"holds {n} training samples: too few to carve a validation split",
                        path)
        va, tr = order[:n_val], order[n_val:]
        data["x_val"], data["y_val"] = data["x_train"][va], data["y_train"][va]
        data["x_train"], data["y_train"] = data["x_train"][tr], data["y_train"][tr]
    _check(data, p)
    return data


def _read_npz(p: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(p, allow_pickle=False) as f:
            names = set(f.files)
            missing = [k for k in REQUIRED if k not in names]
            if missing:
                raise _fail(f"has no array {', '.join(missing)} (it needs x_train, y_train, "
                            "x_test, y_test; x_val, y_val optional)", p)
            if ("x_val" in names) != ("y_val" in names):
                raise _fail("has only one of x_val and y_val (give both or neither)", p)
            data = {k: f[k] for k in names if k in REQUIRED + ("x_val", "y_val")}
    except DataError:
        raise
    except (OSError, ValueError) as err:
        raise _fail(f"is not a readable .npz file ({err})", p) from None
    return data


def _read_csv(p: Path, label: str) -> dict[str, np.ndarray]:
    try:
        with open(p, newline="") as fh:
            rows = [r for r in csv.reader(fh) if r]
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise _fail(f"is not a readable CSV file ({err})", p) from None
    if len(rows) < 3:
        raise _fail("must be a CSV file with a header and at least 2 rows", p)
    head = [h.strip() for h in rows[0]]
    if label not in head:
        raise _fail(f"has no column {label!r} (task.label; columns: {', '.join(head)})", p)
    li = head.index(label)
    try:
        values = np.array([[float(c) for c in r] for r in rows[1:]], dtype=np.float64)
    except ValueError:
        raise _fail("holds a value that is not a number", p) from None
    if values.ndim != 2 or values.shape[1] != len(head):
        raise _fail(f"has rows of other lengths than its header's {len(head)} columns", p)
    x = np.delete(values, li, axis=1)
    y = values[:, li]
    return {"x": x, "y": y}


def _labels(y: np.ndarray, name: str, p: Path) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1:
        raise _fail(f"{name} must be 1-D (got shape {y.shape})", p)
    if y.dtype.kind == "f":
        if not np.all(np.isfinite(y)) or np.any(y != np.round(y)):
            raise _fail(f"{name} holds labels that are not integers", p)
    elif y.dtype.kind not in "iu":
        raise _fail(f"{name} holds labels that are not integers", p)
    if np.any(y < 0):
        raise _fail(f"{name} holds negative labels (labels are 0 .. C-1)", p)
    return y.astype(np.int64)


def _check(data: dict, p: Path) -> None:
    for split in ("train", "val", "test"):
        x, y = data[f"x_{split}"], data[f"y_{split}"]
        if x.ndim not in (2, 3):
            raise _fail(f"x_{split} must be 2-D (n, inputs) or 3-D (n, steps, inputs) "
                        f"(got shape {x.shape})", p)
        if len(x) != len(y):
            raise _fail(f"x_{split} has {len(x)} samples but y_{split} {len(y)}", p)
        if len(x) == 0:
            raise _fail(f"x_{split} is empty", p)
        if x.dtype.kind not in "fiu" or not np.all(np.isfinite(x)):
            raise _fail(f"x_{split} holds values that are not finite numbers", p)
        data[f"x_{split}"] = np.ascontiguousarray(x, dtype=np.float64)
        data[f"y_{split}"] = _labels(y, f"y_{split}", p)
    shapes = {data[f"x_{s}"].shape[1:] for s in ("train", "val", "test")}
    if len(shapes) != 1:
        raise _fail("x_train, x_val and x_test must have the same shape but for their length "
                    f"(got {', '.join(str(s) for s in sorted(shapes))})", p)
    classes = max(int(data[f"y_{s}"].max()) for s in ("train", "val", "test")) + 1
    if classes < 2:
        raise _fail("holds labels of one class only (labels are 0 .. C-1, C >= 2)", p)
    present = np.unique(data["y_train"])
    if len(present) < classes:
        missing = sorted(set(range(classes)) - set(present.tolist()))[:5]
        raise _fail(f"y_train lacks classes {missing} of 0 .. {classes - 1} (labels must be "
                    "0 .. C-1, each trained)", p)


class Arrays:
    """Arrays of your own, from an ``.npz`` or a ``.csv`` file (``task.path``)."""

    sequence = True  # a 3-D file's samples are sequences

    @classmethod
    def info(cls, task_cfg) -> TaskInfo:
        data = read(task_cfg)
        x = data["x_train"]
        classes = max(int(data[f"y_{s}"].max()) for s in ("train", "val", "test")) + 1
        return TaskInfo(n_inputs=int(x.shape[-1]), n_classes=classes, sequence=x.ndim == 3)

    @classmethod
    def check(cls, cfg: dict) -> None:
        from types import SimpleNamespace

        task_cfg = SimpleNamespace(**cfg["task"])
        _path(task_cfg)
        data = read(task_cfg)
        x = data["x_train"]
        injection, steps = cfg["network"]["input_injection"], cfg["network"]["steps"]
        if x.ndim == 3:
            if injection != "sequence":
                raise ConfigError("network.input_injection",
                                  f"must be 'sequence' for the sequences of {task_cfg.path!r} "
                                  f"(shape {x.shape})", repr(injection))
            if steps != x.shape[1]:
                raise ConfigError("network.steps", f"must be the sequences' length "
                                  f"{x.shape[1]} of {task_cfg.path!r}", str(steps),
                                  f"set network.steps = {x.shape[1]}")

    @classmethod
    def load(cls, task_cfg, steps: int | None = None) -> ArrayDataset:
        data = read(task_cfg)
        return ArrayDataset("arrays", cls.info(task_cfg), data["x_train"], data["y_train"],
                            data["x_val"], data["y_val"], data["x_test"], data["y_test"])


def _csv_splits(data: dict, test_fraction: float, val_fraction: float, seed: int) -> dict:
    """A CSV's rows cut into train, validation and test by :func:`split_indices`."""
    x, y = data.pop("x"), data.pop("y")
    tr, va, te = split_indices(len(y), val_fraction, test_fraction, seed)
    return {"x_train": x[tr], "y_train": y[tr], "x_val": x[va], "y_val": y[va],
            "x_test": x[te], "y_test": y[te]}
