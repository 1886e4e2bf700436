"""One experiment from config to results: what ``relaxsim run`` does, as a function."""

from __future__ import annotations

import csv
import io
import math
import shutil
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

from relaxsim import __version__
from relaxsim.assembly import assemble
from relaxsim.config import Config
from relaxsim.data.tasks import load_task
from relaxsim.errors import HardwareWarning, OutputExistsError
from relaxsim.io import exclusive_lock, remove_stale_temporaries, write_json, write_npz, write_text
from relaxsim.training import checkpoint
from relaxsim.training.checkpoint import CHECKPOINT
from relaxsim.training.engine import engines_for
from relaxsim.training.loop import evaluate, train

RESULT_FILES = ("result.json", "weights.npz", "metrics.csv", "config.toml")
# what `relaxsim report DIR` writes into a run directory (relaxsim.report.document.write_report's default):
# it describes the results it was made from, so it goes when they are replaced
REPORT_FILES = ("report.html", "report.md")
REPORT_FIGURES = "report_figures"


@contextmanager
def hold_output_dir(out: str | Path, flag: str = "--out"):
    """Hold the run directory ``out`` for the block: made if missing (and removed again if the
    block leaves it empty), locked so that a second run there is refused at once. The lock is
    the operating system's (``flock`` on the directory itself): nothing is written for it, and
    it goes with the process however it ends."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"{flag} {str(out)!r}: is a file, not a directory")
    busy = (f"{flag} {str(out)!r}: another relaxsim run holds this directory (it is running "
            "there now); wait for it to end, or choose another directory")
    with exclusive_lock(out, lambda holder: busy, directory=True, what=f"{flag} {str(out)!r}"):
        yield out


def check_output_dir(out: str | Path, overwrite: bool, unfinished: bool = True) -> Path:
    """Refuse a directory that holds an earlier run's results, or (``unfinished``) the checkpoint
    of a run that has not finished, unless ``overwrite``."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"--out {str(out)!r}: is a file, not a directory")
    if not overwrite:
        if unfinished and (out / CHECKPOINT).exists():
            raise OutputExistsError(
                f"--out {str(out)!r}: holds an unfinished run ({CHECKPOINT}); continue it with "
                f"relaxsim run --resume {str(out)!r}, or pass --overwrite to start again")
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
    ``overwrite``. While it trains, ``out/checkpoint.npz`` is written every
    ``training.checkpoint_every`` epochs (see :func:`resume`) and deleted at the end.
    """
    if out is None:
        return _execute(cfg, out, quiet, overwrite)
    with hold_output_dir(out):  # before anything is loaded: a second run here stops at once
        check_output_dir(out, overwrite)
        return _execute(cfg, out, quiet, overwrite)


def resume(out: str | Path, quiet: bool = True, cfg: Config | None = None) -> dict:
    """Continue the unfinished run in ``out`` from its checkpoint and finish it as :func:`run`
    would have: the same bytes of ``weights.npz``, the same metrics and result (but for the
    wall-clock ``seconds``). The config is the checkpoint's; ``cfg``, when given, must equal it.
    Results of another run in ``out`` are never replaced (unless the checkpoint's run was started
    with ``overwrite``).
    """
    if not Path(out).is_dir():
        checkpoint.locate(out)  # the one-line error, and no directory made for the lock
    with hold_output_dir(out, "--resume"):
        found = checkpoint.load(checkpoint.locate(out))
        if cfg is not None:
            found.check_config(cfg)
        found.check_results(out)
        return _execute(found.cfg, Path(out), quiet, overwrite=True, resume_from=found)


def _execute(cfg: Config, out: str | Path | None, quiet: bool, overwrite: bool,
             resume_from: checkpoint.Checkpoint | None = None) -> dict:
    t0 = time.perf_counter()
    seconds_before = resume_from.seconds if resume_from is not None else 0.0
    replaces = resume_from.replaces if resume_from is not None else overwrite
    data = load_task(cfg)
    machine = assemble(cfg, data.info)
    net, hw = machine.network, machine.hardware
    cautions = machine.cautions(settling=hw.mode != "ideal")
    for message in cautions:  # before the training: the user may stop it
        warnings.warn(message, HardwareWarning, stacklevel=3)
    train_engine, test_engine = engines_for(machine, cfg.training.seed)
    state = resume_from.restore(net, train_engine) if resume_from is not None else None
    after_epoch = None
    every = cfg.training.checkpoint_every
    if out is not None and every > 0:
        out = Path(out)
        if resume_from is not None:  # left by a process killed while writing
            remove_stale_temporaries(out, (CHECKPOINT,))

        def after_epoch(state):
            if state.epoch % every == 0:
                checkpoint.save(out / CHECKPOINT, cfg, state, train_engine,
                                seconds_before + time.perf_counter() - t0, replaces=replaces)

    trained = train(cfg, net, data, quiet=quiet, engines=(train_engine, train_engine),
                    state=state, after_epoch=after_epoch)
    test_loss, test_acc = evaluate(test_engine, trained.params, data, "test")
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
        "hardware": _hardware_summary(machine, train_engine, cautions,
                                      _trained_samples(cfg, data, len(trained.metrics))),
        "task": {"name": data.name, "n_inputs": data.info.n_inputs,
                 "n_classes": data.info.n_classes, "sizes": data.sizes()},
        "seconds": seconds_before + time.perf_counter() - t0,
        "relaxsim_version": __version__,
        "config": cfg.to_dict(),
    }
    if hw.mode == "deploy":  # what the trained network would have scored on an ideal machine
        result["test_accuracy_ideal"] = evaluate(net, trained.params, data, "test")[1]
    if data.info.text:  # next-character prediction: cross-entropy in bits per character
        result["test_bits_per_char"] = test_loss / math.log(2)
        result["val_bits_per_char"] = best["val_loss"] / math.log(2)
    if out is not None:
        # again: another process may have written there (our own checkpoint is expected)
        out = check_output_dir(out, overwrite, unfinished=False)
        out.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(out, (*RESULT_FILES, CHECKPOINT, *REPORT_FILES))
        _remove_report(out)  # first: a report never describes other results than those beside it
        write_npz(out / "weights.npz", trained.params)
        write_text(out / "metrics.csv", _metrics_csv(trained.metrics))
        write_text(out / "config.toml", cfg.to_toml())
        write_json(out / "result.json", result)
        (out / CHECKPOINT).unlink(missing_ok=True)  # last: until here a resume can finish the run
    return result


def _trained_samples(cfg: Config, data, epochs: int) -> tuple[int, int]:
    """Training samples and batches of ``epochs`` epochs over the training split."""
    return _samples_and_batches(cfg, data.size("train"), epochs)


def _samples_and_batches(cfg: Config, n_train: int, epochs: int) -> tuple[int, int]:
    return epochs * n_train, epochs * math.ceil(n_train / cfg.training.batch_size)


# The version whose machine figures (timing, devices, energy, training cost) a result of an
# earlier version lacks: relaxsim.scans reads such results with them worked out again
# (refigured), as they need the config and the task's sizes only, never the training.
FIGURES_SINCE = (0, 4, 0)


def refigured(result: dict) -> dict:
    """``result`` (a run's, as ``result.json`` holds it) with its machine's figures worked out
    by this version: the timing, device counts, static power, energy and the training's hardware
    cost from its config, task sizes, epochs and programming events; the accuracies, the
    coupling it trained with and its warnings stay as they were. ``hardware.figures_version``
    names the version that worked them out."""
    from relaxsim.config import validate
    from relaxsim.data.tasks import TaskInfo

    cfg = validate(result["config"])
    task = result["task"]
    machine = assemble(cfg, TaskInfo(n_inputs=int(task["n_inputs"]),
                                     n_classes=int(task["n_classes"])))
    old = result.get("hardware", {})
    samples, batches = _samples_and_batches(cfg, int(task["sizes"]["train"]),
                                            int(result["epochs"]))
    writes = (old.get("programming_events", 0) if cfg.hardware["mode"] == "hardware_aware"
              else math.ceil(batches / machine.hardware.update_every))
    # written before writes were counted: every device at every event
    wear = old.get("wear") or _wear(machine, None, writes)
    hardware = {**old, **machine.figures,
                "training": machine.training_cost(samples, batches, writes,
                                                  device_writes=wear["device_writes"]
                                                  if wear["tracked"] else None),
                "wear": wear, "figures_version": __version__}
    return {**result, "hardware": hardware}


def _wear(machine, train_engine, writes: int) -> dict:
    """The writes of a run (:func:`relaxsim.hardware.wear_summary`): counted by the engine's
    write histories, else every device written at each of ``writes`` programming events."""
    from relaxsim.energy import written_devices
    from relaxsim.hardware import wear_summary

    hw = machine.hardware
    wears = [getattr(train_engine, "wear", None), getattr(train_engine, "wear_in", None)]
    return wear_summary(wears, hw.weights.write_energy_j, writes,
                        written_devices(hw, machine.shape))


def _remove_report(out: Path) -> None:
    """Delete the report that ``relaxsim report`` wrote of earlier results in ``out``."""
    for name in REPORT_FILES:
        (out / name).unlink(missing_ok=True)
    figures_dir = out / REPORT_FIGURES
    if figures_dir.is_dir() and not figures_dir.is_symlink():
        shutil.rmtree(figures_dir)
    else:
        figures_dir.unlink(missing_ok=True)


def _hardware_summary(machine, train_engine, cautions: list[str],
                      trained_samples: tuple[int, int] = (0, 0)) -> dict:
    """The machine as the run used it: simulated timing and energy of one inference, the
    per-step coupling it gave the network (:meth:`Coupling.summary`), the settling warnings, and
    the simulated hardware time of training (forward passes and programming)."""
    hw, figures = machine.hardware, machine.figures
    train_s = getattr(train_engine, "clock_s", 0.0)
    programming_s = getattr(train_engine, "programming_s", 0.0)
    samples, batches = trained_samples
    writes = getattr(train_engine, "writes", None)
    if writes is None:  # trained off the machine: what it would have programmed
        writes = math.ceil(batches / hw.update_every)
    wear = _wear(machine, train_engine, writes)
    return {
        "mode": hw.mode,
        "switch": hw.switch.name, "weights": hw.weights.name, "active": hw.active.name,
        "pipelining": hw.pipelining,
        **figures,
        "training_hardware_time_s": train_s,
        "programming_fraction": programming_s / train_s if train_s > 0 else 0.0,
        "programming_events": getattr(train_engine, "writes", 0),
        # training as a hardware process: forward passes, readout, digital gradients,
        # programming (relaxsim.energy.training), in every mode as if the machine were in the loop
        "training": machine.training_cost(samples, batches, writes,
                                          device_writes=wear["device_writes"]
                                          if wear["tracked"] else None),
        # writes per device, worn-out devices, write energy (Hardware.wear; counted only for
        # an element with a finite endurance)
        "wear": wear,
        "coupling": machine.coupling_summary(),
        "warnings": list(cautions),
    }


def _metrics_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()
