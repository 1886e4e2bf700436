"""One experiment from config to results: what ``relaxsim run`` does, as a function."""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path

from . import __version__
from .config import Config
from .errors import OutputExistsError
from .io import write_json, write_npz, write_text
from .model import build
from .tasks import TASKS
from .training import train

RESULT_FILES = ("result.json", "weights.npz", "metrics.csv", "config.toml")


def check_output_dir(out: str | Path, overwrite: bool) -> Path:
    """Refuse a directory that holds an earlier run's results unless ``overwrite``."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"--out {str(out)!r}: is a file, not a directory")
    if not overwrite:
        found = [name for name in RESULT_FILES if (out / name).exists()]
        if found:
            raise OutputExistsError(
                f"--out {str(out)!r}: holds the results of an earlier run ({found[0]}); "
                "pass --overwrite to replace them, or choose another directory")
    return out


def run(cfg: Config, out: str | Path | None = None, quiet: bool = True,
        overwrite: bool = False) -> dict:
    """Train and evaluate the experiment ``cfg``; return the result dict (as in ``result.json``).

    With ``out``, also write ``result.json``, ``weights.npz`` (best weights), ``metrics.csv``
    (per epoch) and ``config.toml`` (resolved config) there. Files are written only after training
    succeeded, each atomically, ``result.json`` last; an existing run is never overwritten unless
    ``overwrite``.
    """
    t0 = time.perf_counter()
    if out is not None:
        check_output_dir(out, overwrite)
    data = TASKS.get(cfg.task.name, field="task.name").load(cfg.task)
    net = build(cfg, data.info)
    trained = train(cfg, net, data, quiet=quiet)
    test_loss, test_acc = net.evaluate(trained.params, data.x_test, data.y_test)
    best = trained.metrics[trained.best_epoch - 1]
    result = {
        "test_accuracy": test_acc,
        "test_loss": test_loss,
        "val_accuracy": best["val_accuracy"],
        "val_loss": best["val_loss"],
        "train_loss": best["train_loss"],
        "best_epoch": trained.best_epoch,
        "epochs": len(trained.metrics),
        "params": net.param_counts(),
        "task": {"name": data.name, "n_inputs": data.info.n_inputs,
                 "n_classes": data.info.n_classes, "sizes": data.sizes()},
        "seconds": time.perf_counter() - t0,
        "relaxsim_version": __version__,
        "config": cfg.to_dict(),
    }
    if out is not None:
        out = check_output_dir(out, overwrite)  # again: another process may have written there
        out.mkdir(parents=True, exist_ok=True)
        write_npz(out / "weights.npz", trained.params)
        write_text(out / "metrics.csv", _metrics_csv(trained.metrics))
        write_text(out / "config.toml", cfg.to_toml())
        write_json(out / "result.json", result)
    return result


def _metrics_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()
