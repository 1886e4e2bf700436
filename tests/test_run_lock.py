"""One run at a time in an output directory, results that only their own run replaces, a report
that goes with the results it describes, and what ``run`` and ``evaluate`` print.

A run holds an OS lock (``flock``) on its directory from before its data is loaded to its last
write: a second ``relaxsim run --out DIR`` or ``--resume DIR`` is refused at once, and the lock
dies with its process (a SIGKILLed run leaves nothing stale). ``--resume`` never replaces the
finished results of another config or seed; ``--overwrite`` removes the previous report once the
new results are written.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import relaxsim
import relaxsim.runner as runner
from relaxsim.report.document import write_report
from relaxsim.runner import RESULT_FILES, hold_output_dir
from relaxsim.training.checkpoint import CHECKPOINT, CheckpointError
from tests.datafiles import write_text
from tests.test_resume import CASES, assert_one_line_error, interrupt_at, invoke, set_args, snapshot

SMALL = CASES["ideal-adam"]  # hidden 16, 4 epochs, ideal
REPORT = {"report.html", "report.md", "report_figures"}


def no_loading(monkeypatch):
    """Make loading a task fail the test: a refused run must stop before it."""
    def refuse(cfg):
        raise AssertionError("the task was loaded")

    monkeypatch.setattr(runner, "load_task", refuse)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished run of SMALL (seed 0)."""
    out = tmp_path_factory.mktemp("finished") / "run"
    relaxsim.run(relaxsim.load_config(overrides=SMALL), out=out)
    return out


def interrupted(out, overrides, overwrite=False):
    """A run of ``overrides`` into ``out`` stopped in epoch 3: ``out`` holds its checkpoint."""
    mp = pytest.MonkeyPatch()
    interrupt_at(mp, epoch=3, batch=1)
    try:
        with pytest.raises(KeyboardInterrupt):
            relaxsim.run(relaxsim.load_config(overrides=overrides), out=out, overwrite=overwrite)
    finally:
        mp.undo()
    return out


# -- the lock ----------------------------------------------------------------------------------


@pytest.mark.parametrize("exists", [False, True], ids=["new-dir", "existing-dir"])
def test_second_run_is_refused_before_loading_anything(exists, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    if exists:
        out.mkdir()
    with hold_output_dir(out):  # as a first run holds it while it trains
        (out / "marker").write_text("the first run's")
        before = snapshot(tmp_path)
        no_loading(monkeypatch)
        for extra in ([], ["--overwrite"]):
            status, stdout, err = invoke(["run", "--out", out, "--quiet", *extra,
                                          *set_args(SMALL)], capsys)
            assert_one_line_error(status, stdout, err, f"--out {str(out)!r}",
                                  "another relaxsim run holds this directory")
            assert snapshot(tmp_path) == before
        (out / "marker").unlink()
    # a directory made for the lock and left empty goes again; one that was there stays
    assert out.is_dir() == exists


def test_second_resume_is_refused_before_loading_anything(tmp_path, monkeypatch, capsys):
    out = interrupted(tmp_path / "run", SMALL)
    before = snapshot(tmp_path)
    with hold_output_dir(out):
        no_loading(monkeypatch)
        status, stdout, err = invoke(["run", "--resume", out, "--quiet"], capsys)
    assert_one_line_error(status, stdout, err, f"--resume {str(out)!r}",
                          "another relaxsim run holds this directory")
    assert snapshot(tmp_path) == before


def test_the_lock_leaves_nothing_in_the_directory(tmp_path):
    out = tmp_path / "run"
    relaxsim.run(relaxsim.load_config(overrides=SMALL), out=out)
    assert sorted(p.name for p in out.iterdir()) == sorted(RESULT_FILES)
    with hold_output_dir(tmp_path / "a" / "b"):
        assert (tmp_path / "a" / "b").is_dir()
    assert not (tmp_path / "a").exists()  # parents made for it go too


def test_a_directory_removed_before_the_lock_is_taken_is_made_again(tmp_path, monkeypatch):
    """The holder before us may remove the directory it made between our open and our flock:
    the lock is then on a directory that no longer has the name, so it is taken again."""
    import fcntl

    out = tmp_path / "run"
    real_flock, calls = fcntl.flock, []

    def flock_after_removal(fd, op):
        if not calls and op & fcntl.LOCK_EX:
            out.rmdir()  # as a failed run that made it removes it on leaving
        calls.append(op)
        return real_flock(fd, op)

    monkeypatch.setattr(fcntl, "flock", flock_after_removal)
    with hold_output_dir(out):
        assert out.is_dir()
        (out / "x").write_text("kept")
    assert len([op for op in calls if op & fcntl.LOCK_EX]) == 2
    assert (out / "x").read_text() == "kept"


def test_concurrent_processes_one_refused_and_sigkill_leaves_no_stale_lock(tmp_path):
    """A real run trains; a second run and a resume in the same directory are refused at once
    and change nothing of the first's; once the first is SIGKILLed, its checkpoint resumes."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "NUMBA_NUM_THREADS": "1"}
    out = tmp_path / "run"
    long_run = {**SMALL, "training.epochs": 100_000}  # trains until it is killed
    first = subprocess.Popen([sys.executable, "-m", "relaxsim", "run", "--out", str(out),
                              "--quiet", *set_args(long_run)], cwd=tmp_path, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240  # a bound on the wait, not a measurement
        while not (out / CHECKPOINT).exists():
            assert first.poll() is None, first.stderr.read()
            assert time.monotonic() < deadline
            time.sleep(0.01)
        for argv in (["--out", str(out), *set_args({**long_run, "training.seed": 1})],
                     ["--out", str(out), "--overwrite", *set_args(long_run)],
                     ["--resume", str(out)]):
            second = subprocess.run([sys.executable, "-m", "relaxsim", "run", "--quiet", *argv],
                                    cwd=tmp_path, env=env, capture_output=True, text=True,
                                    timeout=300)
            assert second.returncode == 2, second.stderr
            lines = second.stderr.splitlines()
            assert len(lines) == 1 and "another relaxsim run holds this directory" in lines[0]
            assert str(out) in lines[0] and second.stdout == ""
            assert first.poll() is None  # the first still trains
            names = {p.name for p in out.iterdir()}
            assert CHECKPOINT in names and not names & set(RESULT_FILES), names
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    remaining = {p.name for p in out.iterdir() if not p.name.endswith(".tmp")}
    assert remaining == {CHECKPOINT}
    with np.load(out / CHECKPOINT, allow_pickle=False) as npz:  # still the first run's
        meta = json.loads(bytes(npz["meta"]))
    assert meta["config"]["training"]["seed"] == 0
    # the dead process's lock is gone: a resume takes the directory and trains
    mp = pytest.MonkeyPatch()
    interrupt_at(mp, epoch=meta["epoch"] + 1, batch=1)
    try:
        with pytest.raises(KeyboardInterrupt):
            relaxsim.resume(out)
    finally:
        mp.undo()


# -- --resume never replaces another run's results ---------------------------------------------


@pytest.mark.parametrize("kept", ["result.json", "config.toml"])
def test_resume_refuses_the_results_of_another_seed(kept, finished, tmp_path, capsys):
    out = tmp_path / "run"
    shutil.copytree(finished, out)
    if kept == "config.toml":  # results whose result.json is gone: config.toml tells
        (out / "result.json").unlink()
    other = interrupted(tmp_path / "other", {**SMALL, "training.seed": 1})
    shutil.copy(other / CHECKPOINT, out / CHECKPOINT)  # beside the finished seed-0 results
    before = snapshot(out)
    status, stdout, err = invoke(["run", "--resume", out, "--quiet"], capsys)
    assert_one_line_error(status, stdout, err, f"--resume {str(out)!r}",
                          "holds the results of another run",
                          f"{kept}: training.seed = 0, {CHECKPOINT}: 1",
                          "move checkpoint.npz into an empty directory")
    assert snapshot(out) == before  # byte for byte
    with pytest.raises(CheckpointError, match="holds the results of another run"):
        relaxsim.resume(out)
    assert snapshot(out) == before
    # the remedy works: the checkpoint alone, in an empty directory
    moved = tmp_path / "moved"
    moved.mkdir()
    shutil.move(out / CHECKPOINT, moved / CHECKPOINT)
    result = relaxsim.resume(moved)
    assert result["config"]["training"]["seed"] == 1
    assert {p.name: p.read_bytes() for p in out.iterdir()} == {
        k: v for k, v in before.items() if k != CHECKPOINT}


def test_resume_refuses_results_whose_config_cannot_be_read(finished, tmp_path, capsys):
    out = tmp_path / "run"
    shutil.copytree(finished, out)
    (out / "result.json").write_text("{}\n", encoding="utf-8")
    other = interrupted(tmp_path / "other", SMALL)
    shutil.copy(other / CHECKPOINT, out / CHECKPOINT)
    before = snapshot(out)
    status, stdout, err = invoke(["run", "--resume", out, "--quiet"], capsys)
    assert_one_line_error(status, stdout, err, "holds results (result.json) whose config "
                          "cannot be read")
    assert snapshot(out) == before


def test_a_run_started_with_overwrite_still_resumes_over_the_old_results(finished, tmp_path,
                                                                       capsys):
    """--overwrite asked for the old results to go: its checkpoint says so, and --resume
    (which the Ctrl-C hint proposes) finishes it."""
    out = tmp_path / "run"
    shutil.copytree(finished, out)
    interrupted(out, {**SMALL, "training.seed": 1}, overwrite=True)
    status, _, err = invoke(["run", "--resume", out, "--quiet"], capsys)
    assert status == 0, err
    result = json.loads((out / "result.json").read_text(encoding="utf-8"))
    assert result["config"]["training"]["seed"] == 1
    assert sorted(p.name for p in out.iterdir()) == sorted(RESULT_FILES)


# -- --overwrite and the report of the old results ---------------------------------------------


@pytest.fixture(scope="module")
def reported(finished, tmp_path_factory):
    """The finished run with its report (report.html, report.md, report_figures/)."""
    out = tmp_path_factory.mktemp("reported") / "run"
    shutil.copytree(finished, out)
    write_report(out)
    assert REPORT <= {p.name for p in out.iterdir()}
    return out


def test_overwrite_removes_the_report_of_the_old_results(reported, tmp_path, capsys):
    out = tmp_path / "run"
    shutil.copytree(reported, out)
    (out / ".report.md.abc123.tmp").write_text("half a report")  # a killed report's temporary
    status, _, err = invoke(["run", "--out", out, "--quiet", "--overwrite",
                             *set_args({**SMALL, "training.seed": 1})], capsys)
    assert status == 0, err
    assert sorted(p.name for p in out.iterdir()) == sorted(RESULT_FILES)


def test_a_failed_overwrite_keeps_the_report_with_its_results(reported, tmp_path, capsys):
    out = tmp_path / "run"
    shutil.copytree(reported, out)
    (out / "report_figures").mkdir(exist_ok=True)
    before = snapshot(out)
    status, stdout, err = invoke(["run", "--out", out, "--quiet", "--overwrite",
                                  *set_args(SMALL), "--set", "training.lr=1e308",
                                  "--set", "training.checkpoint_every=0"], capsys)
    assert_one_line_error(status, stdout, err, "training diverged")
    assert snapshot(out) == before


# -- what run and evaluate print ---------------------------------------------------------------


def test_deploy_summary_prints_the_ideal_accuracy(tmp_path, capsys):
    status, stdout, err = invoke(["run", "--out", tmp_path / "run", "--quiet",
                                  *set_args({**SMALL, "hardware.mode": "deploy"})], capsys)
    assert status == 0, err
    result = json.loads((tmp_path / "run" / "result.json").read_text(encoding="utf-8"))
    assert f"  ideal machine   {result['test_accuracy_ideal']:.4f}" in stdout.splitlines()[2]


def test_text_summary_prints_bits_per_character(tmp_path, capsys):
    text = write_text(tmp_path / "input.txt")
    status, stdout, err = invoke(
        ["run", "--out", tmp_path / "run", "--quiet", "--set", "task.name=shakespeare",
         "--set", "network.input_injection=sequence", "--set", f"task.path={text}",
         "--set", "network.hidden=16", "--set", "training.epochs=1",
         "--set", "task.text_fraction=0.3", "--set", "hardware.mode=ideal"], capsys)
    assert status == 0, err
    result = json.loads((tmp_path / "run" / "result.json").read_text(encoding="utf-8"))
    assert (f"  bits per char   {result['test_bits_per_char']:.4f} test | "
            f"{result['val_bits_per_char']:.4f} val (best epoch)") in stdout.splitlines()


def test_evaluate_header_shows_the_overrides(finished, capsys):
    status, stdout, err = invoke(["evaluate", finished, "--repeats", "1",
                                  "--set", "hardware.clock=100 ps",
                                  "--set", "hardware.weights.read_noise=0.01",
                                  "--set", "hardware.weights.w_max=4"], capsys)
    assert status == 0, err
    assert stdout.splitlines()[1] == ("  overrides  hardware.clock = 100 ps, "
                                      "hardware.weights.read_noise = 0.01, "
                                      "hardware.weights.w_max = 4")
    status, stdout, err = invoke(["evaluate", finished, "--repeats", "1"], capsys)
    assert status == 0, err
    assert stdout.splitlines()[1] == "  overrides  none (the run's own config)"


@pytest.mark.parametrize("setting, fragments", [
    ("training.epochs=100", ["--set training.epochs: an evaluation cannot change the training "
                             "(got 100)"]),
    ("training.seed=3", ["--set training.seed: an evaluation cannot change the training"]),
    ("network.hidden=8", ["--set network.hidden: gives the trained weights other shapes",
                          "W_in has shape (16, 64) but the config's network needs (8, 64)"]),
    ("network.banks=4", ["--set network.banks: gives the trained weights other shapes"]),
])
def test_evaluate_refuses_keys_that_are_not_an_evaluation(setting, fragments, finished,
                                                          tmp_path, capsys):
    before = snapshot(finished)
    status, stdout, err = invoke(["evaluate", finished, "--repeats", "1", "--set", setting,
                                  "--json", tmp_path / "e.json"], capsys)
    assert_one_line_error(status, stdout, err, *fragments,
                          "evaluate accepts hardware.* keys, and network.* and task.* keys "
                          "that keep the weights' shapes")
    assert snapshot(finished) == before and not (tmp_path / "e.json").exists()


def test_evaluate_accepts_network_keys_that_keep_the_shapes(finished, capsys):
    for setting in ("network.hidden=16", "network.dtype=float32"):
        status, _, err = invoke(["evaluate", finished, "--repeats", "1", "--set", setting],
                                capsys)
        assert status == 0, err
