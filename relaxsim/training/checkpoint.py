"""Checkpoints: the state of an unfinished training, saved between epochs.

A run with an output directory writes ``DIR/checkpoint.npz`` after every
``training.checkpoint_every`` epochs (atomically: a write that fails or is killed leaves the
previous checkpoint as it was), and deletes it once the result files are written.
``relaxsim run --resume DIR`` continues from it and ends with the same bytes as a run that was
never interrupted.

The file is an ``.npz`` readable by ``np.load(..., allow_pickle=False)``: the current weights
(``params/W``, ...), the best weights so far (``best/W``, ...), the optimizer's moments
(``optimizer/m/W``, ...), the banks as the hardware engine programmed them (``engine/programmed/W``,
...) and one member ``meta``, UTF-8 JSON stored as bytes: the format, the relaxsim version, the
resolved config and its sha256, the epochs done, the best epoch and its accuracy, the metrics so
far, the state of the training generator, the optimizer's and the engine's scalars (among them the
engine's generator), the seconds trained so far and whether the run was started with
``overwrite`` (it may then replace the results of another run in its directory). ``meta`` is a
``uint8`` array: read it with ``json.loads(bytes(npz["meta"]))``.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from relaxsim import __version__
from relaxsim.config import Config, self_contained, validate
from relaxsim.errors import ConfigError, RelaxsimError
from relaxsim.io import read_toml, shape_mismatch, write_npz
from relaxsim.model import Network
from relaxsim.training.engine import Engine
from relaxsim.training.loop import TrainState, initial_state

CHECKPOINT = "checkpoint.npz"
FORMAT = 1


class CheckpointError(RelaxsimError, ValueError):
    """A checkpoint is missing, unreadable, or from another config or version."""


def config_digest(config: dict) -> str:
    """sha256 of a resolved config (as ``Config.to_dict`` gives it), independent of key order."""
    # an infinite field (bits = inf) reads "Infinity": the text of every finite config unchanged
    text = json.dumps(config, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def save(path: str | Path, cfg: Config, state: TrainState, engine: Engine,
         seconds: float, replaces: bool = False) -> None:
    """Write the checkpoint of ``state`` (and of ``engine``, the training engine) to ``path``;
    ``replaces``: the run was started with ``overwrite`` (see :attr:`Checkpoint.replaces`).

    Atomic: a reader, or a resumed run, sees the previous checkpoint or this one. A write that
    fails raises :class:`CheckpointError` and leaves the previous checkpoint in place.
    """
    path = Path(path)
    opt_arrays, opt_scalars = state.optimizer.state()
    engine_arrays, engine_scalars = engine.state()
    config = cfg.to_dict()
    meta = {
        "format": FORMAT,
        "relaxsim_version": __version__,
        "config_sha256": config_digest(config),
        "config": config,
        "epoch": state.epoch,
        "best_epoch": state.best.best_epoch,
        "best_accuracy": state.best_accuracy,
        "metrics": state.best.metrics,
        "rng": state.rng.bit_generator.state,
        "optimizer": opt_scalars,
        "engine": engine_scalars,
        "seconds": seconds,
        "overwrite": bool(replaces),
    }
    arrays = {"meta": np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)}
    for prefix, group in (("params", state.params), ("best", state.best.params),
                          ("optimizer", opt_arrays), ("engine", engine_arrays)):
        arrays.update({f"{prefix}/{key}": value for key, value in group.items()})
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_npz(path, arrays)
    except OSError as exc:
        raise CheckpointError(
            f"checkpoint {str(path)!r}: cannot write ({_one_line(exc)}); the previous "
            "checkpoint, if any, is kept") from None


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint as read from disk: its config, its scalars and its arrays."""

    path: Path
    cfg: Config
    meta: dict
    arrays: dict[str, np.ndarray]

    @property
    def epoch(self) -> int:
        """Epochs done when it was written."""
        return int(self.meta["epoch"])

    @property
    def seconds(self) -> float:
        """Wall-clock seconds the run had taken when it was written."""
        return float(self.meta["seconds"])

    @property
    def replaces(self) -> bool:
        """The run was started with ``overwrite``: finishing it may replace the results of
        another run in its directory (checkpoints written before this was recorded: no)."""
        return self.meta.get("overwrite") is True

    def check_results(self, directory: str | Path) -> None:
        """Refuse to finish this run in ``directory`` over the finished results of another
        config or seed, naming the first difference; unless :attr:`replaces`."""
        directory = Path(directory)
        if self.replaces:
            return
        where = f"--resume {str(directory)!r}"
        remedy = (f"move {CHECKPOINT} into an empty directory and resume it there, or move the "
                  "results away")
        theirs, source = None, None
        for source in ("result.json", "config.toml"):  # result.json is written last
            path = directory / source
            if not path.exists():
                continue
            try:
                if source == "result.json":
                    theirs = json.loads(path.read_text(encoding="utf-8"))["config"]
                else:
                    theirs = validate(read_toml(path, "config")).to_dict()
            except (OSError, ValueError, KeyError, TypeError, RelaxsimError):
                theirs = None
            break
        else:
            return  # no finished results (at most a part of ours, from a kill during the writes)
        if not isinstance(theirs, dict):
            raise CheckpointError(f"{where}: holds results ({source}) whose config cannot be "
                                  f"read, so they may be another run's; {remedy}")
        diff = first_difference(theirs, self.meta["config"])
        if diff is not None:
            key, found, ours = diff
            raise CheckpointError(
                f"{where}: holds the results of another run ({source}: {key} = {_show(found)}, "
                f"{CHECKPOINT}: {_show(ours)}); resuming would replace them; {remedy}")

    def check_config(self, cfg: Config) -> None:
        """Refuse ``cfg`` unless it is the checkpoint's config, naming the first difference."""
        diff = first_difference(self.cfg.to_dict(), cfg.to_dict())  # both self-contained
        if diff is not None:
            key, ours, theirs = diff
            raise CheckpointError(
                f"checkpoint {str(self.path)!r}: from another config: {key} differs "
                f"(checkpoint {_show(ours)}, config {_show(theirs)}); leave out the config "
                "file and --set to resume with the checkpoint's")

    def restore(self, net: Network, engine: Engine) -> TrainState:
        """The training state saved here, for ``net`` (built from :attr:`cfg`); ``engine``, the
        training engine, gets its saved state back."""
        state = initial_state(self.cfg, net)
        meta = self.meta
        try:
            shapes = {key: value.shape for key, value in state.params.items()}
            state.params.clear()
            state.params.update(self._group("params", shapes))
            state.best.params = self._group("best", shapes)
            state.best.best_epoch = int(meta["best_epoch"])
            state.best.metrics = [dict(row) for row in meta["metrics"]]
            state.best_accuracy = float(meta["best_accuracy"])
            state.epoch = self.epoch
            state.rng.bit_generator.state = meta["rng"]
            for prefix, owner in (("optimizer", state.optimizer), ("engine", engine)):
                try:
                    owner.restore(self._prefixed(prefix), meta[prefix])
                except KeyError as exc:
                    raise KeyError(f"{prefix}/{exc.args[0]}") from None
        except KeyError as exc:
            raise CheckpointError(f"checkpoint {str(self.path)!r}: incomplete or damaged "
                                  f"(no {exc.args[0]}); start again with --overwrite") from None
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f"checkpoint {str(self.path)!r}: incomplete or damaged "
                                  f"({_one_line(exc)}); start again with --overwrite") from None
        if len(state.best.metrics) != state.epoch:
            raise CheckpointError(f"checkpoint {str(self.path)!r}: holds metrics of "
                                  f"{len(state.best.metrics)} epochs, expected {state.epoch}")
        return state

    def _prefixed(self, prefix: str) -> dict[str, np.ndarray]:
        start = f"{prefix}/"
        return {k[len(start):]: v.copy() for k, v in self.arrays.items() if k.startswith(start)}

    def _group(self, prefix: str, shapes: dict[str, tuple]) -> dict[str, np.ndarray]:
        arrays = self._prefixed(prefix)
        bad = shape_mismatch(arrays, shapes)
        if bad is not None:
            key, found = bad
            if found is None:
                raise KeyError(f"{prefix}/{key}")
            raise ValueError(f"{prefix}/{key} has shape {found}, the network needs "
                             f"{shapes[key]}")
        return {key: arrays[key] for key in shapes}


def locate(directory: str | Path) -> Path:
    """The checkpoint of the unfinished run in ``directory``; one-line errors when there is none."""
    directory = Path(directory)
    where = f"--resume {str(directory)!r}"
    if not directory.exists():
        raise CheckpointError(f"{where}: no such directory")
    if not directory.is_dir():
        raise CheckpointError(f"{where}: is a file, not a directory")
    path = directory / CHECKPOINT
    if not path.is_file():
        if (directory / "result.json").exists():
            raise CheckpointError(f"{where}: the run is finished (result.json, no {CHECKPOINT}); "
                                  "nothing to resume")
        raise CheckpointError(f"{where}: holds no {CHECKPOINT}; nothing to resume (start the run "
                              f"with relaxsim run --out {str(directory)!r})")
    return path


def load(path: str | Path) -> Checkpoint:
    """Read and check a checkpoint: readable, complete, of this relaxsim version and format, its
    config intact (sha256) and valid. Every failure is one :class:`CheckpointError` line."""
    path = Path(path)
    where = f"checkpoint {str(path)!r}"
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}  # reads every member: CRC checked
        meta = json.loads(arrays.pop("meta").tobytes().decode("utf-8"))
        if not isinstance(meta, dict):
            raise ValueError("meta is not a JSON object")
    except FileNotFoundError:
        raise CheckpointError(f"{where}: not found") from None
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        raise CheckpointError(f"{where}: unreadable, truncated or not a checkpoint "
                              f"({_one_line(exc)}); start again with --overwrite") from None
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{where}: format {_show(meta.get('format'))}, this relaxsim "
                              f"reads format {FORMAT}")
    version = meta.get("relaxsim_version")
    if version != __version__:
        raise CheckpointError(f"{where}: written by relaxsim {version}, this is relaxsim "
                              f"{__version__}; resume with relaxsim {version}, or start again "
                              "with --overwrite")
    config = meta.get("config")
    try:
        intact = isinstance(config, dict) and config_digest(config) == meta.get("config_sha256")
    except (TypeError, ValueError):
        intact = False
    if not intact:
        raise CheckpointError(f"{where}: its config does not match its sha256 (damaged); start "
                              "again with --overwrite")
    try:
        # a checkpoint written before device files were kept inline names them by path
        cfg = self_contained(validate(config))
    except ConfigError as exc:
        raise CheckpointError(f"{where}: its config is not valid here: {exc}") from None
    return Checkpoint(path=path, cfg=cfg, meta=meta, arrays=arrays)


def first_difference(a: Any, b: Any, prefix: str = "") -> tuple[str, Any, Any] | None:
    """The first dotted key (sorted order) where the nested dicts ``a`` and ``b`` differ, with
    both values (``None`` where a key is absent); ``None`` when they are equal."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            diff = first_difference(a.get(key), b.get(key), f"{prefix}.{key}" if prefix else key)
            if diff is not None:
                return diff
        return None
    return None if a == b and type(a) is type(b) else (prefix, a, b)


def _show(value: Any) -> str:
    if isinstance(value, dict) and isinstance(value.get("path"), str) and "kind" in value:
        return f"the preset file {value['path']!r}"  # an inline device preset: its file names it
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_show(v)}" for k, v in value.items()) + "}"
    return repr(value) if isinstance(value, str) else str(value)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
