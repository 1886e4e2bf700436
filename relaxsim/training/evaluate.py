"""Evaluate a trained run's saved weights on another machine: ``relaxsim evaluate RUN_DIR``.

The designer's what-if: the same trained weights, a switch ten times slower, a noisier element, a
week of drift. Noise and programming draws make the accuracy a random variable, so it is averaged
over ``repeats`` independent draws and reported as mean and standard deviation.

An evaluation changes the machine, not the trained network: ``training.*`` keys (which cannot
change it) are refused, and so are ``network.*`` and ``task.*`` values that give the weights other
shapes; the rest (every ``hardware.*`` key, a ``task.path``, the network's dtype, ...) is accepted.
"""

from __future__ import annotations

import copy
import statistics
import warnings
import zipfile
from pathlib import Path

import numpy as np

from relaxsim.assembly import assemble
from relaxsim.config import apply_overrides, read_toml, validate
from relaxsim.data.tasks import load_task
from relaxsim.errors import HardwareWarning, RelaxsimError
from relaxsim.io import shape_mismatch
from relaxsim.training.engine import Engine, HardwareEngine
from relaxsim.training.loop import evaluate

ACCEPTS = ("evaluate accepts hardware.* keys, and network.* and task.* keys that keep the "
           "weights' shapes")


class WeightShapeError(RelaxsimError, ValueError):
    """Saved weights lack an array, or hold one in another shape than the network needs."""


def load_weights(path: Path, shapes: dict[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
    """The arrays of ``weights.npz``, checked against the shapes the config's network needs."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            params = {key: npz[key] for key in npz.files}
    except FileNotFoundError:
        raise RelaxsimError(f"{path}: not found (is this a run directory?)") from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise RelaxsimError(f"{path}: not a readable weights file ({exc})") from None
    bad = shape_mismatch(params, shapes)
    if bad is not None:
        key, found = bad
        if found is None:
            raise WeightShapeError(f"{path}: has no array {key!r} (has {', '.join(params)})")
        raise WeightShapeError(f"{path}: {key} has shape {found} but the config's network "
                               f"needs {shapes[key]}")
    return params


def evaluate_run(run_dir: str | Path, overrides: dict | None = None, repeats: int = 10,
                 seed: int = 0, split: str = "test") -> dict:
    """Accuracy of the weights saved in ``run_dir`` on the hardware of its config updated by
    ``overrides``: ``repeats`` independent programming and noise draws, and the ideal machine."""
    run_dir = Path(run_dir)
    if repeats < 1:
        raise RelaxsimError(f"--repeats: must be >= 1 (got {repeats})")
    overrides = dict(overrides or {})
    for key, value in overrides.items():
        if key.split(".")[0] == "training":
            raise RelaxsimError(f"--set {key}: an evaluation cannot change the training (got "
                                f"{value!r}); {ACCEPTS}")
    if not run_dir.is_dir():
        raise RelaxsimError(f"{run_dir}: not a run directory")
    saved = read_toml(run_dir / "config.toml")
    cfg = validate(apply_overrides(copy.deepcopy(saved), overrides))
    data = load_task(cfg)
    machine = assemble(cfg, data.info)
    net, hw = machine.network, machine.hardware
    try:
        params = load_weights(run_dir / "weights.npz", net.param_shapes())
    except WeightShapeError as exc:
        try:
            before = validate(saved).to_dict()
        except RelaxsimError:  # then every network.* and task.* key given is a suspect
            before = {}
        keys = _reshaping(overrides, before, cfg.to_dict())
        if not keys:
            raise
        raise RelaxsimError(f"--set {', '.join(keys)}: gives the trained weights other shapes "
                            f"({exc}); {ACCEPTS}") from None
    params = {k: v.astype(net.dtype) for k, v in params.items()}
    cautions = machine.cautions()
    for message in cautions:
        warnings.warn(message, HardwareWarning, stacklevel=2)
    engine = HardwareEngine(machine.network_on_hardware, hw, np.random.default_rng([seed, 0x4557]),
                            machine.inference_time_s)
    accuracies = [evaluate(engine, params, data, split)[1] for _ in range(repeats)]
    return {
        "run": str(run_dir),
        "split": split,
        "repeats": repeats,
        "accuracy_mean": statistics.fmean(accuracies),
        "accuracy_std": statistics.stdev(accuracies) if repeats > 1 else 0.0,
        "accuracies": accuracies,
        "accuracy_ideal": evaluate(Engine(net), params, data, split)[1],
        "hardware": {"switch": hw.switch.name, "weights": hw.weights.name,
                     "active": hw.active.name,
                     "latency_s": machine.timing.alone().latency(),
                     "coupling": machine.coupling_summary(), "warnings": cautions},
        "overrides": overrides,
    }


def _reshaping(overrides: dict, saved: dict, changed: dict) -> list[str]:
    """The ``network.*`` and ``task.*`` keys of ``overrides`` whose value differs between the
    run's resolved config ``saved`` and the ``changed`` one: those that can change shapes."""
    def get(tree, key):
        for part in key.split("."):
            tree = tree.get(part) if isinstance(tree, dict) else None
        return tree

    return [key for key in overrides if key.split(".")[0] in ("network", "task")
            and get(saved, key) != get(changed, key)]
