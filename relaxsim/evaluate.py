"""Evaluate a trained run's saved weights on another machine: ``relaxsim evaluate RUN_DIR``.

The designer's what-if: the same trained weights, a switch ten times slower, a noisier element, a
week of drift. Noise and programming draws make the accuracy a random variable, so it is averaged
over ``repeats`` independent draws and reported as mean and standard deviation.
"""

from __future__ import annotations

import statistics
import zipfile
from pathlib import Path

import numpy as np

from .config import apply_overrides, read_toml, validate
from .engine import Engine, HardwareEngine
from .errors import RelaxsimError
from .hardware import build_hardware
from .io import shape_mismatch
from .model import build
from .tasks import load_task
from .training import evaluate


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
            raise RelaxsimError(f"{path}: has no array {key!r} (has {', '.join(params)})")
        raise RelaxsimError(f"{path}: {key} has shape {found} but the config's network needs "
                            f"{shapes[key]}")
    return params


def evaluate_run(run_dir: str | Path, overrides: dict | None = None, repeats: int = 10,
                 seed: int = 0, split: str = "test") -> dict:
    """Accuracy of the weights saved in ``run_dir`` on the hardware of its config updated by
    ``overrides``: ``repeats`` independent programming and noise draws, and the ideal machine."""
    run_dir = Path(run_dir)
    if repeats < 1:
        raise RelaxsimError(f"--repeats: must be >= 1 (got {repeats})")
    if not run_dir.is_dir():
        raise RelaxsimError(f"{run_dir}: not a run directory")
    cfg = validate(apply_overrides(read_toml(run_dir / "config.toml"), overrides))
    data = load_task(cfg)
    net = build(cfg, data.info)
    params = load_weights(run_dir / "weights.npz", net.param_shapes())
    params = {k: v.astype(net.dtype) for k, v in params.items()}
    hw = build_hardware(cfg.hardware)
    net_hw = net.on(hw.coupling(net.schedule, net.alpha, cfg.network.activation, net.dtype))
    engine = HardwareEngine(net_hw, hw, np.random.default_rng([seed, 0x4557]))
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
                     "latency_s": hw.simulate(net.schedule, net.banks,
                                              pipelining="sequential").latency()},
        "overrides": dict(overrides or {}),
    }
