"""MNIST-1D (Greydanus 2020, arXiv:2011.14439): 5,000 sequences of 40 values, 10 classes.

The data are generated offline by the ``mnist1d`` package's own generator
(``mnist1d.data.make_dataset``) with its published default arguments (``get_dataset_args()``:
5,000 samples, seed 42, an 80/20 train/test split), so that they are the benchmark's data set;
``task.shuffle_seq = true`` gives its published variant with the 40 positions shuffled by one
fixed permutation. The first generation (a few seconds) is cached as an ``.npz`` in the data
directory (``$RELAXSIM_DATA`` or ``~/.cache/relaxsim``, or ``task.path``); later runs read it.

Splits: the generator's 4,000 training and 1,000 test sequences; the validation split is carved
from the training ones with ``task.split_seed`` and ``task.val_fraction`` (``task.test_fraction``
is not used: the test split is the benchmark's). Inputs as the generator scales them (centred,
unit standard deviation over the whole set).

Injection: static (``network.input_injection = every_step`` or ``first_step``: the 40 values as
one input vector) or ``sequence``: ``task.chunk`` values per step, ``L_T = 40 / chunk`` steps.

Published reference accuracies (Greydanus 2020, the paper's table; test split): logistic
regression 32 %, MLP 68 %, CNN 94 %, GRU 91 %, human 96 %.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from relaxsim.errors import ConfigError, DataError
from relaxsim.io import atomic_open

from .tasks import ArrayDataset, TaskInfo

LENGTH = 40     # values per sequence (the generator's final_seq_length)
CLASSES = 10
N_TRAIN = 4000  # the generator's 80/20 split of 5,000
REFERENCE = {"logistic regression": 0.32, "MLP": 0.68, "CNN": 0.94, "GRU": 0.91}


def _sequence(cfg) -> bool:
    return cfg["network"]["input_injection"] == "sequence"


def cache_path(task_cfg) -> Path:
    """Where the generated set is cached: ``task.path`` (a directory) or the data directory."""
    from .download import data_dir

    base = Path(task_cfg.path).expanduser() if task_cfg.path else data_dir()
    return base / "mnist1d" / f"mnist1d{'_shuffle' if task_cfg.shuffle_seq else ''}.npz"


def generate(shuffle_seq: bool) -> dict[str, np.ndarray]:
    """The set as the ``mnist1d`` package generates it with its published defaults (the global
    numpy random state it seeds is restored afterwards)."""
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError:
        raise DataError("task.name: 'mnist1d' needs the mnist1d package, which generates the "
                        "data (pip install mnist1d)") from None
    args = get_dataset_args()
    args.shuffle_seq = bool(shuffle_seq)
    state = np.random.get_state()
    try:
        data = make_dataset(args)
    finally:
        np.random.set_state(state)
    return {"x": np.asarray(data["x"], dtype=np.float64),
            "y": np.asarray(data["y"], dtype=np.int64),
            "x_test": np.asarray(data["x_test"], dtype=np.float64),
            "y_test": np.asarray(data["y_test"], dtype=np.int64)}


def read(task_cfg) -> dict[str, np.ndarray]:
    """The cached set, generated (and cached, atomically) when missing or unreadable."""
    path = cache_path(task_cfg)
    try:
        with np.load(path) as f:
            data = {k: f[k] for k in ("x", "y", "x_test", "y_test")}
        if data["x"].shape == (N_TRAIN, LENGTH):
            return data
    except (OSError, KeyError, ValueError):
        pass
    data = generate(task_cfg.shuffle_seq)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_open(path, "wb") as fh:
            np.savez(fh, **data)
    except OSError:
        pass  # a read-only place: generated again next time
    return data


def carve(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Training and validation indices of ``n`` training samples: a permutation by ``seed``,
    the first ``max(1, round(n val_fraction))`` for validation."""
    order = np.random.default_rng(seed).permutation(n)
    n_val = max(1, round(n * val_fraction))
    return order[n_val:], order[:n_val]


class MNIST1D:
    """MNIST-1D: 40-value sequences, 10 classes; static or sequence injection."""

    sequence = True  # its samples can be fed as sequences

    @classmethod
    def info(cls, task_cfg) -> TaskInfo:
        """Static input (the 40 values); :meth:`info_of` knows the injection."""
        return TaskInfo(n_inputs=LENGTH, n_classes=CLASSES)

    @classmethod
    def info_of(cls, cfg) -> TaskInfo:
        """The sizes for a config: ``chunk`` inputs per step with sequence injection."""
        if cfg.network.input_injection == "sequence":
            return TaskInfo(n_inputs=cfg.task.chunk, n_classes=CLASSES, sequence=True)
        return cls.info(cfg.task)

    @classmethod
    def min_sizes(cls, task_cfg) -> tuple[int, int, int]:
        return 1, CLASSES, N_TRAIN // 2

    @classmethod
    def check(cls, cfg: dict) -> None:
        chunk, steps = cfg["task"]["chunk"], cfg["network"]["steps"]
        if not _sequence(cfg):
            return
        if LENGTH % chunk:
            raise ConfigError("task.chunk", f"must divide the {LENGTH} values of a sequence",
                              str(chunk), "one of 1, 2, 4, 5, 8, 10, 20, 40")
        if steps != LENGTH // chunk:
            raise ConfigError("network.steps", f"must be 40 / task.chunk = {LENGTH // chunk} "
                              "with sequence input (one chunk of the sequence per step)",
                              str(steps), f"set network.steps = {LENGTH // chunk}")

    @classmethod
    def load_config(cls, cfg) -> ArrayDataset:
        """The splits for a config (static or sequence layout)."""
        task_cfg = cfg.task
        data = read(task_cfg)
        tr, va = carve(len(data["y"]), task_cfg.val_fraction, task_cfg.split_seed)
        x, y = data["x"], data["y"]
        x_tr, x_va, x_te = x[tr], x[va], data["x_test"]
        info = cls.info_of(cfg)
        if info.sequence:
            chunk = task_cfg.chunk
            x_tr, x_va, x_te = (a.reshape(len(a), LENGTH // chunk, chunk)
                                for a in (x_tr, x_va, x_te))
        return ArrayDataset("mnist1d", info, np.ascontiguousarray(x_tr), y[tr],
                            np.ascontiguousarray(x_va), y[va], np.ascontiguousarray(x_te),
                            data["y_test"])
