"""Tasks: datasets with their splits, registered by name.

A task is a class with ``info(task_cfg) -> TaskInfo`` (cheap: the input dimension and class count
the network is built for) and ``load(task_cfg) -> Dataset`` (the split, standardised data).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .registry import Registry

TASKS: Registry = Registry("task")


@dataclass(frozen=True)
class TaskInfo:
    """What the network needs to know of a task to be built."""

    n_inputs: int
    n_classes: int
    sequence: bool = False  # samples are sequences of L_T input vectors (input_injection = sequence)


@dataclass(frozen=True)
class Dataset:
    """Train, validation and test splits: inputs ``(n, D)`` float, labels ``(n,)`` int64."""

    name: str
    info: TaskInfo
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.y_train), "val": len(self.y_val), "test": len(self.y_test)}


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


@TASKS.register("digits")
class Digits:
    """The 1,797 handwritten digits (8x8 pixels, 10 classes) that scikit-learn ships."""

    info_ = TaskInfo(n_inputs=64, n_classes=10)

    @classmethod
    def info(cls, task_cfg) -> TaskInfo:
        return cls.info_

    @classmethod
    def load(cls, task_cfg) -> Dataset:
        from sklearn.datasets import load_digits

        bunch = load_digits()
        x = bunch.data.astype(np.float64)
        y = bunch.target.astype(np.int64)
        tr, va, te = split_indices(len(y), task_cfg.val_fraction, task_cfg.test_fraction,
                                   task_cfg.split_seed)
        x_tr, x_va, x_te = standardise(x[tr], x[va], x[te])
        return Dataset("digits", cls.info_, x_tr, y[tr], x_va, y[va], x_te, y[te])
