"""Checkpoints, ``relaxsim run --resume DIR`` and the divergence guard.

A run interrupted anywhere and resumed must end with the same bytes as one never interrupted
(``weights.npz``, ``config.toml``; ``metrics.csv`` and ``result.json`` but for the wall-clock
``seconds``); bad input is one line, exit 2, and leaves every file as it was.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import relaxsim
import relaxsim.training.checkpoint as ckpt_module
import relaxsim.training.optim as optim
from relaxsim.cli.app import main
from relaxsim.io import write_npz
from relaxsim.training.checkpoint import CHECKPOINT
from tests.conftest import interrupt_at

RESULT_FILES = {"result.json", "weights.npz", "metrics.csv", "config.toml"}
SMALL = {"network.hidden": 16, "training.epochs": 4}
# The hardware state must round-trip: PCM weights drift (per-weight exponents drawn at
# programming), read noise, and banks reprogrammed every 5 batches (so a checkpoint falls between
# two programmings); the default switch has timing jitter.
PCM = {"hardware.weights": {"preset": "pcm"}, "hardware.update_every": 5}
CASES = {
    "ideal-adam": {**SMALL, "hardware.mode": "ideal"},
    "ideal-sgd-momentum": {**SMALL, "hardware.mode": "ideal", "training.optimizer": "sgd",
                           "training.lr": 0.05, "training.momentum": 0.9},
    "hardware_aware": {**SMALL, "hardware.mode": "hardware_aware"},
    "hardware_aware-pcm": {**SMALL, "hardware.mode": "hardware_aware", **PCM},
    "deploy-pcm": {**SMALL, "hardware.mode": "deploy", **PCM},
    "every-3": {**SMALL, "training.checkpoint_every": 3},
}


def set_args(overrides: dict) -> list[str]:
    argv = []
    for key, value in overrides.items():
        if isinstance(value, dict):
            for field, v in value.items():
                argv += ["--set", f"{key}.{field}={json.dumps(v)}"]
        else:
            argv += ["--set", f"{key}={json.dumps(value)}"]
    return argv


def snapshot(directory: Path) -> dict[str, bytes]:
    """Every file under ``directory`` (relative path -> bytes)."""
    return {str(p.relative_to(directory)): p.read_bytes()
            for p in sorted(directory.rglob("*")) if p.is_file()}


def comparable(directory: Path) -> dict:
    """The results of a finished run, wall-clock ``seconds`` left out."""
    files = snapshot(directory)
    assert set(files) == RESULT_FILES, sorted(files)  # no checkpoint, no temporary file
    result = json.loads(files["result.json"])
    del result["seconds"]
    metrics = list(csv.DictReader(io.StringIO(files["metrics.csv"].decode())))
    for row in metrics:
        del row["seconds"]
    return {"weights.npz": files["weights.npz"], "config.toml": files["config.toml"],
            "metrics": metrics, "result": result}


def invoke(argv, capsys):
    capsys.readouterr()
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def assert_one_line_error(status, out, err, *fragments):
    assert status == 2, err
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("relaxsim: error: ")
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert "Traceback" not in err


@pytest.fixture(scope="module")
def references(tmp_path_factory):
    """Uninterrupted runs, one per case, made when first asked for."""
    made = {}

    def reference(name: str) -> dict:
        if name not in made:
            out = tmp_path_factory.mktemp("reference") / name
            relaxsim.run(relaxsim.load_config(overrides=CASES[name]), out=out)
            made[name] = comparable(out)
        return made[name]

    return reference


# -- resumed runs end with the same bytes ------------------------------------------------------


@pytest.mark.parametrize("name", sorted(CASES))
def test_interrupted_then_resumed_is_bit_identical(name, references, tmp_path, monkeypatch):
    out = tmp_path / "run"
    cfg = relaxsim.load_config(overrides=CASES[name])
    every = cfg.training.checkpoint_every
    with monkeypatch.context() as patch:
        interrupt_at(patch, epoch=4 if every == 3 else 3, batch=7)
        with pytest.raises(KeyboardInterrupt):
            relaxsim.run(cfg, out=out)
    assert sorted(p.name for p in out.iterdir()) == [CHECKPOINT]  # no result file yet
    assert ckpt_module.load(out / CHECKPOINT).epoch == (3 if every == 3 else 2)
    result = relaxsim.resume(out)
    assert comparable(out) == references(name)
    assert result["best_epoch"] == references(name)["result"]["best_epoch"]


def test_interrupted_twice_and_on_the_cli(references, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    argv = ["run", "--out", out, "--quiet", *set_args(CASES["hardware_aware-pcm"])]
    with monkeypatch.context() as patch:
        interrupt_at(patch, epoch=2, batch=1)
        status, _, err = invoke(argv, capsys)
    assert status == 130
    assert f"relaxsim run --resume {str(out)!r}" in err  # says how to continue
    with monkeypatch.context() as patch:
        interrupt_at(patch, epoch=4, batch=3)
        status, _, err = invoke(["run", "--resume", out, "--quiet"], capsys)
    assert status == 130
    assert ckpt_module.load(out / CHECKPOINT).epoch == 3
    status, stdout, err = invoke(["run", "--resume", out, "--quiet"], capsys)
    assert status == 0, err
    assert "N = 16" in stdout and f"results         {out}/" in stdout
    assert comparable(out) == references("hardware_aware-pcm")


def test_resume_with_the_same_config_given_again(references, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    sets = set_args(CASES["hardware_aware"])
    with monkeypatch.context() as patch:
        interrupt_at(patch, epoch=2, batch=2)
        invoke(["run", "--out", out, "--quiet", *sets], capsys)
    status, _, err = invoke(["run", "--resume", out, "--quiet", *sets], capsys)
    assert status == 0, err
    assert comparable(out) == references("hardware_aware")


def test_killed_during_the_final_writes(references, tmp_path, monkeypatch):
    """Killed after weights.npz was written but before result.json: the checkpoint is still there
    and a resume finishes the run; the temporary file the kill left behind is cleaned up."""
    out = tmp_path / "run"
    cfg = relaxsim.load_config(overrides=CASES["ideal-adam"])
    import relaxsim.runner as runner

    real_write_json = runner.write_json

    def killed(path, data):
        (Path(path).parent / f".{Path(path).name}.x1y2z3.tmp").write_text("{\"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "write_json", killed)
    with pytest.raises(KeyboardInterrupt):
        relaxsim.run(cfg, out=out)
    monkeypatch.setattr(runner, "write_json", real_write_json)
    assert {"weights.npz", CHECKPOINT, ".result.json.x1y2z3.tmp"} <= {p.name for p in
                                                                      out.iterdir()}
    relaxsim.resume(out)
    assert comparable(out) == references("ideal-adam")


def test_failed_checkpoint_write_keeps_the_previous_one(references, tmp_path, monkeypatch,
                                                        capsys):
    """The disk fills up half-way through the third checkpoint: the run stops with one line, the
    second checkpoint is kept byte for byte, no temporary file is left, and a resume finishes."""
    out = tmp_path / "run"
    argv = ["run", "--out", out, "--quiet", *set_args(CASES["ideal-adam"])]
    written, members = [], []
    real_write_npz, real_write_array = ckpt_module.write_npz, np.lib.format.write_array

    def counting_write_npz(path, arrays):
        members.clear()
        real_write_npz(path, arrays)
        written.append(Path(path).read_bytes())

    def filling_write_array(fh, array, **kwargs):
        members.append(1)
        if len(written) == 2 and len(members) == 3:
            fh.write(b"\0" * 100)
            raise OSError(28, "No space left on device")
        real_write_array(fh, array, **kwargs)

    monkeypatch.setattr(ckpt_module, "write_npz", counting_write_npz)
    monkeypatch.setattr(np.lib.format, "write_array", filling_write_array)
    status, out_text, err = invoke(argv, capsys)
    assert_one_line_error(status, out_text, err, CHECKPOINT, "cannot write",
                          "No space left on device", "previous checkpoint")
    assert snapshot(out) == {CHECKPOINT: written[1]}  # epoch 2's, byte for byte
    monkeypatch.undo()
    relaxsim.resume(out)
    assert comparable(out) == references("ideal-adam")


def test_checkpoint_every_0_writes_none(tmp_path, monkeypatch):
    out = tmp_path / "run"
    cfg = relaxsim.load_config(overrides={**SMALL, "training.checkpoint_every": 0})
    with monkeypatch.context() as patch:
        interrupt_at(patch, epoch=3, batch=1)
        with pytest.raises(KeyboardInterrupt):
            relaxsim.run(cfg, out=out)
    assert not out.exists()


def test_run_without_out_writes_no_checkpoint(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    relaxsim.run(relaxsim.load_config(overrides={**SMALL, "training.epochs": 1}))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("update_every", [1, 3])
def test_checkpoint_contents(tmp_path, monkeypatch, update_every):
    out = tmp_path / "run"
    cfg = relaxsim.load_config(overrides={**CASES["hardware_aware-pcm"],
                                          "hardware.update_every": update_every})
    with monkeypatch.context() as patch:
        interrupt_at(patch, epoch=2, batch=1)
        with pytest.raises(KeyboardInterrupt):
            relaxsim.run(cfg, out=out)
    with np.load(out / CHECKPOINT, allow_pickle=False) as npz:
        names = set(npz.files)
        meta = json.loads(npz["meta"].tobytes())
    params = {"W_in", "W", "b", "W_out", "b_out"}
    assert {f"params/{k}" for k in params} | {f"best/{k}" for k in params} <= names
    assert {f"optimizer/m/{k}" for k in params} | {f"optimizer/v/{k}" for k in params} <= names
    # the banks as written, the key their drift exponents are drawn from, the devices'
    # conductances (PCM statistics) and every device's write history (PCM wears out): kept
    # even when every batch writes anew, as a device keeps its value where its level stays
    programmed = {"engine/programmed/W", "engine/programmed/mask", "engine/programmed/devices"}
    assert programmed <= names and isinstance(meta["engine"]["nu_key"], int)
    assert {f"engine/wear/{k}" for k in ("level", "value", "writes", "stuck")} <= names
    assert meta["epoch"] == 1 and meta["relaxsim_version"] == relaxsim.__version__
    assert meta["config"] == cfg.to_dict()
    assert meta["config_sha256"] == ckpt_module.config_digest(cfg.to_dict())
    assert meta["engine"]["writes"] > 0 and meta["optimizer"]["t"] > 0
    assert len(meta["metrics"]) == 1


# -- the output directory ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def unfinished_template(tmp_path_factory):
    """A run of CASES["ideal-adam"] interrupted in epoch 3: its directory holds a checkpoint."""
    out = tmp_path_factory.mktemp("unfinished") / "run"
    mp = pytest.MonkeyPatch()
    interrupt_at(mp, epoch=3, batch=1)
    try:
        with pytest.raises(KeyboardInterrupt):
            relaxsim.run(relaxsim.load_config(overrides=CASES["ideal-adam"]), out=out)
    finally:
        mp.undo()
    return out


@pytest.fixture(scope="module")
def finished_template(tmp_path_factory):
    out = tmp_path_factory.mktemp("finished") / "run"
    relaxsim.run(relaxsim.load_config(overrides=CASES["ideal-adam"]), out=out)
    return out


@pytest.fixture
def unfinished(unfinished_template, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(unfinished_template, out)
    return out


def test_run_out_refuses_an_unfinished_run(unfinished, references, capsys):
    before = snapshot(unfinished)
    status, out, err = invoke(["run", "--out", unfinished, "--quiet",
                               *set_args(CASES["ideal-adam"])], capsys)
    assert_one_line_error(status, out, err, "unfinished run", CHECKPOINT,
                          f"relaxsim run --resume {str(unfinished)!r}", "--overwrite")
    assert snapshot(unfinished) == before
    status, _, err = invoke(["run", "--out", unfinished, "--quiet", "--overwrite",
                             *set_args(CASES["ideal-adam"])], capsys)
    assert status == 0, err
    assert comparable(unfinished) == references("ideal-adam")


# -- bad input: one line, exit 2, every file as it was ------------------------------------------


def _truncate(run: Path) -> None:
    data = (run / CHECKPOINT).read_bytes()
    (run / CHECKPOINT).write_bytes(data[: len(data) // 2])


def _garbage(run: Path) -> None:
    (run / CHECKPOINT).write_bytes(b"these bytes are not an npz file\n" * 8)


def _edit_meta(run: Path, change) -> None:
    with np.load(run / CHECKPOINT, allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    meta = json.loads(arrays["meta"].tobytes())
    change(meta)
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    write_npz(run / CHECKPOINT, arrays)


def _other_version(run: Path) -> None:
    _edit_meta(run, lambda meta: meta.update(relaxsim_version="0.0.1"))


def _config_tampered(run: Path) -> None:
    _edit_meta(run, lambda meta: meta["config"]["network"].update(hidden=8))


def _missing_array(run: Path) -> None:
    with np.load(run / CHECKPOINT, allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files if name != "optimizer/m/W"}
    write_npz(run / CHECKPOINT, arrays)


def _remove_checkpoint(run: Path) -> None:
    (run / CHECKPOINT).unlink()


def _empty_dir(run: Path) -> None:
    shutil.rmtree(run)
    run.mkdir()


def _no_dir(run: Path) -> None:
    shutil.rmtree(run)


def _finished(run: Path, finished: Path) -> None:
    shutil.rmtree(run)
    shutil.copytree(finished, run)


def _file(run: Path) -> None:
    shutil.rmtree(run)
    run.write_bytes(b"a file")


BAD = [  # (id, prepare the directory, extra argv after "run", fragments of the message)
    ("truncated", _truncate, ["--resume", "{run}"],
     [f"checkpoint '{{run}}/{CHECKPOINT}'", "unreadable, truncated or not a checkpoint"]),
    ("garbage", _garbage, ["--resume", "{run}"],
     [f"checkpoint '{{run}}/{CHECKPOINT}'", "unreadable, truncated or not a checkpoint"]),
    ("missing-array", _missing_array, ["--resume", "{run}"],
     [f"checkpoint '{{run}}/{CHECKPOINT}'", "incomplete or damaged", "optimizer/m/W"]),
    ("other-version", _other_version, ["--resume", "{run}"],
     ["written by relaxsim 0.0.1", f"this is relaxsim {relaxsim.__version__}"]),
    ("config-tampered", _config_tampered, ["--resume", "{run}"],
     ["config does not match its sha256"]),
    ("other-config", None, ["--resume", "{run}", "--set", "network.hidden=32",
                            "--set", "training.epochs=4", "--set", "hardware.mode=\"ideal\""],
     [f"checkpoint '{{run}}/{CHECKPOINT}'", "from another config",
      "network.hidden differs (checkpoint 16, config 32)"]),
    ("other-config-file", None, ["{run}/../exp.toml", "--resume", "{run}"],
     [f"checkpoint '{{run}}/{CHECKPOINT}'", "from another config",
      "network.hidden differs (checkpoint 16, config 64)"]),
    ("no-dir", _no_dir, ["--resume", "{run}"], ["--resume '{run}'", "no such directory"]),
    ("a-file", _file, ["--resume", "{run}"], ["--resume '{run}'", "is a file"]),
    ("no-checkpoint", _empty_dir, ["--resume", "{run}"],
     ["--resume '{run}'", f"holds no {CHECKPOINT}"]),
    ("no-checkpoint-partial", _remove_checkpoint, ["--resume", "{run}"],
     ["--resume '{run}'", f"holds no {CHECKPOINT}"]),
    ("finished", _finished, ["--resume", "{run}"], ["--resume '{run}'", "the run is finished"]),
    ("resume-and-out", None, ["--resume", "{run}", "--out", "{run}/../other"],
     ["--resume '{run}'", "cannot be combined with --out"]),
    ("resume-and-overwrite", None, ["--resume", "{run}", "--overwrite"],
     ["--resume '{run}'", "cannot be combined with --overwrite"]),
    ("every-negative", None, ["--out", "{run}", "--set", "training.checkpoint_every=-1"],
     ["training.checkpoint_every: must be >= 0 (got -1)"]),
    ("every-float", None, ["--out", "{run}", "--set", "training.checkpoint_every=1.5"],
     ["training.checkpoint_every: must be an integer (got 1.5)"]),
    ("every-string", None, ["--out", "{run}", "--set", "training.checkpoint_every=often"],
     ["training.checkpoint_every: must be an integer (got 'often')"]),
    ("every-negative-resume", None, ["--resume", "{run}", "--set",
                                     "training.checkpoint_every=-1"],
     ["training.checkpoint_every: must be >= 0 (got -1)"]),
]


@pytest.mark.parametrize("case_id, prepare, argv, fragments", BAD, ids=[b[0] for b in BAD])
def test_bad_input_exits_2_and_changes_nothing(case_id, prepare, argv, fragments, unfinished,
                                               finished_template, tmp_path, capsys):
    run = unfinished
    (tmp_path / "exp.toml").write_text("[training]\nepochs = 4\n\n[hardware]\nmode = \"ideal\"\n",
                                       encoding="utf-8")
    if prepare is _finished:
        prepare(run, finished_template)
    elif prepare is not None:
        prepare(run)
    before = snapshot(tmp_path)
    fill = lambda text: str(text).replace("{run}", str(run))  # noqa: E731
    status, out, err = invoke(["run", "--quiet", *map(fill, argv)], capsys)
    assert_one_line_error(status, out, err, *map(fill, fragments))
    assert snapshot(tmp_path) == before  # every file byte-identical, nothing added
    assert not (tmp_path / "other").exists()


def test_results_beside_a_checkpoint_are_finished_again(unfinished, references, capsys):
    """Results and a checkpoint side by side (killed between writing result.json and deleting the
    checkpoint, or a run started with --overwrite over earlier results): `run --out` refuses,
    `run --resume` finishes the checkpoint's run."""
    saved = (unfinished / CHECKPOINT).read_bytes()
    relaxsim.resume(unfinished)
    (unfinished / CHECKPOINT).write_bytes(saved)
    status, out, err = invoke(["run", "--out", unfinished, "--quiet"], capsys)
    assert_one_line_error(status, out, err, "unfinished run", "--resume")
    status, _, err = invoke(["run", "--resume", unfinished, "--quiet"], capsys)
    assert status == 0, err
    assert comparable(unfinished) == references("ideal-adam")


# -- divergence ------------------------------------------------------------------------------


def _batches_per_epoch(cfg) -> int:
    from relaxsim.data.tasks import load_task

    n = len(load_task(cfg).labels("train"))
    return -(-n // cfg.training.batch_size)


@pytest.mark.parametrize("earlier", [False, True], ids=["fresh", "over-earlier-results"])
def test_nan_weights_with_a_finite_loss_stop_the_run(earlier, finished_template, tmp_path,
                                                     monkeypatch, capsys):
    out = tmp_path / "run"
    if earlier:
        shutil.copytree(finished_template, out)
    earlier_files = snapshot(out) if earlier else {}
    cfg = relaxsim.load_config(overrides=CASES["ideal-adam"])
    per_epoch = _batches_per_epoch(cfg)
    steps = []
    real_step = optim.Adam.step

    def poisoned(self, params, grads):
        real_step(self, params, grads)
        steps.append(1)
        if len(steps) == 2 * per_epoch + 5:  # epoch 3, batch 5
            params["W_out"][1, 2] = np.nan

    checkpoints = []
    real_save = ckpt_module.save

    def recording_save(path, *args, **kwargs):
        real_save(path, *args, **kwargs)
        checkpoints.append(Path(path).read_bytes())

    monkeypatch.setattr(optim.Adam, "step", poisoned)
    monkeypatch.setattr(ckpt_module, "save", recording_save)
    argv = ["run", "--out", out, "--quiet", *set_args(CASES["ideal-adam"])]
    if earlier:
        argv.append("--overwrite")
    status, stdout, err = invoke(argv, capsys)
    assert_one_line_error(status, stdout, err, "training diverged at epoch 3, batch 5",
                          "W_out", "nan")
    assert len(checkpoints) == 2
    assert snapshot(out) == {**earlier_files, CHECKPOINT: checkpoints[-1]}


def test_absurd_learning_rate_diverges_with_exit_2(tmp_path, capsys):
    out = tmp_path / "run"
    status, stdout, err = invoke(["run", "--out", out, "--quiet", *set_args(CASES["ideal-adam"]),
                                  "--set", "training.lr=1e308"], capsys)
    assert_one_line_error(status, stdout, err, "training diverged at epoch 1, batch ",
                          "training.lr")
    assert not (out / "result.json").exists()


# -- a real process, killed -------------------------------------------------------------------


KILL_CASE = {**SMALL, "training.epochs": 12}


def test_sigkilled_process_resumes_to_the_same_bytes(tmp_path):
    # Every process here loads the kernels from numba's cache (this one writes it if needed):
    # freshly compiled kernels can differ from cached ones in the last bit.
    relaxsim.run(relaxsim.load_config(overrides={**KILL_CASE, "training.epochs": 1}))
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "NUMBA_NUM_THREADS": "1"}
    reference = tmp_path / "reference"
    subprocess.run([sys.executable, "-m", "relaxsim", "run", "--out", str(reference), "--quiet",
                    *set_args(KILL_CASE)], cwd=tmp_path, env=env, check=True,
                   capture_output=True, timeout=300)
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "relaxsim", "run", "--out", str(out),
                             "--quiet", *set_args(KILL_CASE)], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not (out / CHECKPOINT).exists() and proc.poll() is None:
            assert time.monotonic() < deadline
            time.sleep(0.005)
        time.sleep(random.Random().uniform(0.0, 0.3))
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    if (out / CHECKPOINT).exists():  # (unless it finished before the kill)
        done = subprocess.run([sys.executable, "-m", "relaxsim", "run", "--resume", str(out),
                               "--quiet"], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, done.stderr
    assert comparable(out) == comparable(reference)


def test_an_infinite_device_field_checkpoints_and_resumes(tmp_path, monkeypatch):
    """``hardware.weights.bits = inf`` (no quantisation): the checkpoint's config digest reads
    it (it raised on writing the first checkpoint), and a resume ends as a run never killed."""
    overrides = {"hardware.weights.bits": math.inf, "network.hidden": 8, "training.epochs": 3}
    reference = tmp_path / "reference"
    relaxsim.run(relaxsim.load_config(overrides=overrides), out=reference)
    out = tmp_path / "run"
    with monkeypatch.context() as patch:
        interrupt_at(patch, epoch=2, batch=3)
        with pytest.raises(KeyboardInterrupt):
            relaxsim.run(relaxsim.load_config(overrides=overrides), out=out)
    relaxsim.resume(out)
    assert comparable(out) == comparable(reference)
