"""Tasks: datasets with their splits, registered by name.

A task is a class registered in :data:`TASKS` with

- ``info(task_cfg) -> TaskInfo``: the input dimension and class count the network is built for
  (cheap: reads no images);
- ``load(task_cfg, steps) -> Dataset``: the splits (``steps`` is the network's ``L_T``, the context
  length of sequence tasks; static tasks ignore it); a task whose sizes depend on more of the config
  (MNIST-1D: the input injection) has ``info_of(cfg)`` and ``load_config(cfg)`` instead
  (:func:`task_info`, :func:`load_task`);
- optionally ``check(cfg)``: checks of the resolved config (plain nested dicts) that involve the
  task, raising :class:`~relaxsim.errors.ConfigError`; called by config validation;
- optionally ``min_sizes(task_cfg) -> (n_inputs, n_classes, n_train)``: lower bounds known without
  reading the data, for config validation's memory estimate (without it: 1, 1, 1).

The digits live here; SVHN (:mod:`relaxsim.data.svhn`) and Shakespeare (:mod:`relaxsim.data.text`) are
registered by name and imported when first used (config validation does not read them).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from relaxsim.errors import DataError
from relaxsim.registry import Registry

TASKS: Registry = Registry("task")
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class TaskInfo:
    """What the network needs to know of a task to be built."""

    n_inputs: int
    n_classes: int
    sequence: bool = False  # samples are sequences of L_T input vectors (input_injection = sequence)
    text: bool = False  # next-character prediction: results also report bits per character


class Dataset:
    """Train, validation and test splits that hand out float minibatches.

    A dataset keeps its data in whatever compact form suits it (float arrays for the small digits,
    uint8 images, token ids) and builds the float inputs of one minibatch at a time in
    :meth:`batch`, so that no float copy of a large data set ever exists. Subclasses set ``name``
    and ``info`` and implement :meth:`labels` and :meth:`batch`.
    """

    name: str
    info: TaskInfo

    def labels(self, split: str) -> np.ndarray:
        """The labels ``(n,)`` int64 of ``split`` (``"train"``, ``"val"`` or ``"test"``)."""
        raise NotImplementedError

    def batch(self, split: str, idx: np.ndarray, dtype=np.float64) -> np.ndarray:
        """The inputs of the samples ``idx`` of ``split``: ``(B, D)``, or ``(B, L_T, D)`` for
        sequence tasks, of ``dtype``, C-contiguous."""
        raise NotImplementedError

    def size(self, split: str) -> int:
        return len(self.labels(split))

    def sizes(self) -> dict[str, int]:
        return {split: self.size(split) for split in SPLITS}

    def chunks(self, split: str, rows: int, dtype=np.float64
               ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``(x, y)`` for consecutive chunks of at most ``rows`` samples, covering ``split``."""
        y = self.labels(split)
        for start in range(0, len(y), rows):
            idx = np.arange(start, min(start + rows, len(y)))
            yield self.batch(split, idx, dtype), y[idx]


def check_split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"split: must be one of {', '.join(SPLITS)} (got {split!r})")
    return split


@dataclass(frozen=True)
class ArrayDataset(Dataset):
    """A small dataset held in memory as float arrays: inputs ``(n, D)``, labels ``(n,)`` int64."""

    name: str
    info: TaskInfo
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    def labels(self, split: str) -> np.ndarray:
        return getattr(self, f"y_{check_split(split)}")

    def batch(self, split: str, idx: np.ndarray, dtype=np.float64) -> np.ndarray:
        return np.ascontiguousarray(getattr(self, f"x_{check_split(split)}")[idx], dtype=dtype)


def load_task(cfg) -> Dataset:
    """The dataset of the config ``cfg``, with the context length ``network.steps`` (a task
    whose layout depends on more of the config, e.g. the input injection, has ``load_config``)."""
    task = TASKS.get(cfg.task.name, field="task.name")
    if hasattr(task, "load_config"):
        return task.load_config(cfg)
    return task.load(cfg.task, steps=cfg.network.steps)


def task_info(cfg) -> TaskInfo:
    """What the network needs to know of ``cfg``'s task, without reading its data (a task
    whose sizes depend on more of the config has ``info_of(cfg)``)."""
    task = TASKS.get(cfg.task.name, field="task.name")
    if hasattr(task, "info_of"):
        return task.info_of(cfg)
    return task.info(cfg.task)


def split_indices(n: int, val_fraction: float, test_fraction: float, seed: int):
    """Shuffle ``range(n)`` with ``seed`` and cut it into train, validation and test indices."""
    order = np.random.default_rng(seed).permutation(n)
    n_test = max(1, round(n * test_fraction))
    n_val = max(1, round(n * val_fraction))
    return order[n_test + n_val:], order[n_test:n_test + n_val], order[:n_test]


def standardise(train: np.ndarray, *others: np.ndarray):
    """Scale every feature to zero mean and unit variance using the training split's statistics.

    Features that are constant in the training split (e.g. the always-blank border pixels of the
    digits) are only centred.
    """
    mean = train.mean(axis=0)
    std = train.std(axis=0)
    std[std < 1e-8] = 1.0
    return tuple((x - mean) / std for x in (train, *others))


DIGITS_SAMPLES = 1797  # images in scikit-learn's digits


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """The digits scikit-learn ships, ``(x (1797, 64) float64, y int64)``, read from its data
    file (``sklearn/datasets/data/digits.csv.gz``) without importing scikit-learn, whose import
    takes about two seconds; through ``sklearn.datasets.load_digits`` if the file is elsewhere."""
    import importlib.util

    spec = importlib.util.find_spec("sklearn")
    if spec is None:
        raise DataError("task.name: 'digits' needs scikit-learn, which ships the data "
                        "(pip install scikit-learn)")
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / \
        "digits.csv.gz"
    if path.is_file():
        data = np.loadtxt(path, delimiter=",")
        return np.ascontiguousarray(data[:, :-1]), data[:, -1].astype(np.int64)
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    return bunch.data.astype(np.float64), bunch.target.astype(np.int64)


@TASKS.register("digits")
class Digits:
    """The 1,797 handwritten digits (8x8 pixels, 10 classes) that scikit-learn ships."""

    info_ = TaskInfo(n_inputs=64, n_classes=10)

    @classmethod
    def info(cls, task_cfg) -> TaskInfo:
        return cls.info_

    @classmethod
    def min_sizes(cls, task_cfg) -> tuple[int, int, int]:
        n = DIGITS_SAMPLES
        held_out = (max(1, round(n * task_cfg.test_fraction))
                    + max(1, round(n * task_cfg.val_fraction)))
        return cls.info_.n_inputs, cls.info_.n_classes, max(1, n - held_out)

    @classmethod
    def load(cls, task_cfg, steps: int | None = None) -> Dataset:
        x, y = load_digits()
        tr, va, te = split_indices(len(y), task_cfg.val_fraction, task_cfg.test_fraction,
                                   task_cfg.split_seed)
        x_tr, x_va, x_te = standardise(x[tr], x[va], x[te])
        return ArrayDataset("digits", cls.info_, x_tr, y[tr], x_va, y[va], x_te, y[te])


# The file-based tasks, known by name at once; their modules (readers, downloads, features) are
# imported when a config names them.
TASKS.register_lazy("svhn", "relaxsim.data.svhn:SVHN")
TASKS.register_lazy("shakespeare", "relaxsim.data.text:Shakespeare")
TASKS.register_lazy("mnist1d", "relaxsim.data.mnist1d:MNIST1D")
TASKS.register_lazy("arrays", "relaxsim.data.arrays:Arrays")
