"""The command line, through ``relaxsim.cli.app.main(argv)`` in-process and once as a real process."""

from __future__ import annotations

import contextlib
import csv
import importlib.util
import io
import json
import math
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

from relaxsim.cli.app import main
from relaxsim.config import load_config


# The table of bad inputs lives in test_config.py; load it by path so that it works whatever
# pytest's import mode.
def _load_config_tests():
    name = "_relaxsim_test_config_cases"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            name, Path(__file__).with_name("test_config.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up while it executes
        spec.loader.exec_module(module)
    return sys.modules[name]


BAD_INPUTS = _load_config_tests().BAD_INPUTS

FAST = ["--set", "training.epochs=1", "--set", "network.hidden=8"]
RESULT_FILES = {"result.json", "weights.npz", "metrics.csv", "config.toml"}


def toml_literal(value) -> str:
    """``value`` as the text of a ``--set key=value``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_literal(v) for v in value) + "]"
    raise TypeError(value)


def bad_argv(bad, tmp: Path) -> list[str]:
    """Command-line arguments (after the command) that give the bad input ``bad``."""
    argv = []
    path = bad.path(tmp)
    if path is not None:
        argv.append(str(path))
    for key, value in bad.overrides.items():
        argv += ["--set", f"{key}={toml_literal(value)}"]
    return argv


def invoke(argv, capsys):
    """Run ``relaxsim ARGV`` in-process: ``(exit status, stdout, stderr)``."""
    capsys.readouterr()
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def snapshot(directory: Path) -> dict[str, bytes]:
    """Every file under ``directory`` (relative path -> bytes)."""
    return {str(p.relative_to(directory)): p.read_bytes()
            for p in sorted(directory.rglob("*")) if p.is_file()}


def assert_one_line_error(status, out, err, *fragments):
    assert status == 2
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("relaxsim: error: ")
    for fragment in fragments:
        assert fragment in lines[0]
    assert "Traceback" not in err


def run_quiet(argv) -> tuple[int, str, str]:
    """``main(argv)`` with stdout and stderr captured, for fixtures wider than a test."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main([str(a) for a in argv])
    return status, out.getvalue(), err.getvalue()


# -- bad input: exit 2, one line, nothing written ---------------------------------------------


@pytest.mark.parametrize("bad", BAD_INPUTS)
def test_run_bad_input_exits_2_with_one_line(bad, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # a default runs/ directory would land here
    argv = bad_argv(bad, tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    out_dir = tmp_path / "out"
    status, out, err = invoke(["run", *argv, "--out", out_dir, "--quiet"], capsys)
    assert_one_line_error(status, out, err, *bad.fragments)
    assert not out_dir.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == before


@pytest.mark.parametrize("bad", BAD_INPUTS)
def test_run_bad_input_without_out_creates_no_runs_dir(bad, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    argv = bad_argv(bad, tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    status, out, err = invoke(["run", *argv, "--quiet"], capsys)
    assert_one_line_error(status, out, err, *bad.fragments)
    assert not (tmp_path / "runs").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == before


@pytest.mark.parametrize("bad", [b for b in BAD_INPUTS if b.values[0].stage == "load"])
def test_config_command_bad_input_exits_2(bad, tmp_path, capsys):
    status, out, err = invoke(["config", *bad_argv(bad, tmp_path)], capsys)
    assert_one_line_error(status, out, err, *bad.fragments)


@pytest.mark.parametrize("text", ["network.hidden", "hidden=8", "=8", "network.=8"])
@pytest.mark.parametrize("command", ["run", "config"])
def test_malformed_set_exits_2(command, text, tmp_path, capsys):
    out_dir = tmp_path / "out"
    extra = ["--out", out_dir, "--quiet"] if command == "run" else []
    status, out, err = invoke([command, "--set", text, *extra], capsys)
    assert_one_line_error(status, out, err, f"--set {text!r}: expected section.key=value")
    assert not out_dir.exists()


def _subprocess_cases():
    wanted = {"unknown-key-close", "banks-gt-steps-cyclic", "input-injection-sequence-on-digits",
              "file-missing", "file-invalid-toml"}
    return [b for b in BAD_INPUTS if b.values[0].id in wanted]


@pytest.mark.parametrize("bad", _subprocess_cases())
def test_real_process_exits_2_without_traceback(bad, tmp_path):
    out_dir = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "relaxsim", "run", *bad_argv(bad, tmp_path),
         "--out", str(out_dir), "--quiet"],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
        env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("relaxsim: error: ")
    for fragment in bad.fragments:
        assert fragment in lines[0]
    assert not out_dir.exists()


# -- a successful run ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    """``relaxsim run --out DIR --quiet --set training.epochs=2`` (the default network)."""
    out_dir = tmp_path_factory.mktemp("run") / "result"
    status, out, err = run_quiet(["run", "--out", out_dir, "--quiet",
                                  "--set", "training.epochs=2"])
    assert status == 0, err
    return out_dir, out


def test_run_writes_the_result_files(default_run):
    out_dir, _ = default_run
    assert {p.name for p in out_dir.iterdir()} == RESULT_FILES  # no temporary files left


def test_run_result_json(default_run):
    out_dir, _ = default_run
    result = json.loads((out_dir / "result.json").read_text(encoding="utf-8"))
    for key in ("test_accuracy", "val_accuracy", "train_loss", "params", "config", "seconds"):
        assert key in result
    assert 0 <= result["test_accuracy"] <= 1 and 0 <= result["val_accuracy"] <= 1
    assert math.isfinite(result["train_loss"]) and result["train_loss"] > 0
    assert result["seconds"] > 0
    assert result["epochs"] == 2 and result["best_epoch"] in (1, 2)
    assert set(result["params"]) == {"banks", "input", "readout", "total"}
    expected = load_config(overrides={"training.epochs": 2})
    assert result["config"] == expected.to_dict()


def test_run_parameter_counts(default_run):
    out_dir, out = default_run
    result = json.loads((out_dir / "result.json").read_text(encoding="utf-8"))
    cfg = load_config(overrides={"training.epochs": 2})
    N, L_W = cfg.network.hidden, cfg.network.banks
    p = result["params"]
    assert p["banks"] == L_W * (N * N + N)
    assert p["input"] == N * 64
    assert p["readout"] == 10 * N + 10
    assert p["total"] == p["banks"] + p["input"] + p["readout"]
    assert f"total {p['total']:,}" in out


def test_run_weights(default_run):
    out_dir, _ = default_run
    N, L_W = 64, 2
    with np.load(out_dir / "weights.npz") as npz:
        shapes = {k: npz[k].shape for k in npz.files}
        assert all(np.all(np.isfinite(npz[k])) for k in npz.files)
    assert shapes == {"W_in": (N, 64), "W": (L_W, N, N), "b": (L_W, N), "W_out": (10, N),
                      "b_out": (10,)}
    result = json.loads((out_dir / "result.json").read_text(encoding="utf-8"))
    assert sum(math.prod(s) for s in shapes.values()) == result["params"]["total"]


def test_run_metrics_csv(default_run):
    out_dir, _ = default_run
    with open(out_dir / "metrics.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    assert len(rows) == 3  # header + 2 epochs
    header = rows[0]
    assert {"epoch", "train_loss", "val_loss", "val_accuracy"} <= set(header)
    assert [row[header.index("epoch")] for row in rows[1:]] == ["1", "2"]
    result = json.loads((out_dir / "result.json").read_text(encoding="utf-8"))
    best = rows[result["best_epoch"]]
    assert float(best[header.index("val_accuracy")]) == result["val_accuracy"]
    assert float(best[header.index("train_loss")]) == result["train_loss"]


def test_run_config_toml(default_run):
    out_dir, _ = default_run
    saved = out_dir / "config.toml"
    assert tomllib.loads(saved.read_text(encoding="utf-8")) == \
        load_config(overrides={"training.epochs": 2}).to_dict()
    assert load_config(saved) == load_config(overrides={"training.epochs": 2})


def test_run_summary(default_run):
    out_dir, out = default_run
    first = out.splitlines()[0]
    assert first.startswith("ReLaX-Net on digits: N = 64, L_W = 2, L_T = 4 (cyclic), tanh")
    assert "test accuracy" in out and str(out_dir) in out


def test_run_into_empty_existing_dir(tmp_path, capsys):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    status, _, err = invoke(["run", "--out", out_dir, "--quiet", *FAST], capsys)
    assert status == 0, err
    assert {p.name for p in out_dir.iterdir()} == RESULT_FILES


def test_run_without_out_writes_under_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    status, out, err = invoke(["run", "--quiet", *FAST], capsys)
    assert status == 0, err
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert {p.name for p in run_dir.iterdir()} == RESULT_FILES
    assert f"runs/{run_dir.name}/" in out


def test_run_from_config_file(tmp_path, capsys):
    path = tmp_path / "exp.toml"
    path.write_text("[network]\nhidden = 6\nbanks = 3\nsteps = 3\n\n[training]\nepochs = 1\n",
                    encoding="utf-8")
    out_dir = tmp_path / "out"
    status, out, err = invoke(["run", path, "--out", out_dir, "--quiet"], capsys)
    assert status == 0, err
    result = json.loads((out_dir / "result.json").read_text(encoding="utf-8"))
    assert result["config"] == load_config(path).to_dict()
    assert result["params"]["banks"] == 3 * (36 + 6)


# -- existing results ------------------------------------------------------------------------


def test_existing_results_are_kept_without_overwrite(tmp_path, capsys):
    out_dir = tmp_path / "out"
    status, _, err = invoke(["run", "--out", out_dir, "--quiet", *FAST], capsys)
    assert status == 0, err
    before = snapshot(out_dir)
    assert set(before) == RESULT_FILES

    status, out, err = invoke(["run", "--out", out_dir, "--quiet", *FAST,
                               "--set", "training.seed=1"], capsys)
    assert_one_line_error(status, out, err, "--overwrite", str(out_dir))
    assert snapshot(out_dir) == before

    status, out, err = invoke(["run", "--out", out_dir, "--quiet", *FAST,
                               "--set", "training.seed=1", "--overwrite"], capsys)
    assert status == 0, err
    after = snapshot(out_dir)
    assert set(after) == RESULT_FILES
    assert after["weights.npz"] != before["weights.npz"]  # really replaced
    result = json.loads(after["result.json"])
    assert result["config"]["training"]["seed"] == 1


@pytest.mark.parametrize("name", sorted(RESULT_FILES))
def test_any_single_result_file_blocks_a_run(name, tmp_path, capsys):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (out_dir / name).write_bytes(b"earlier")
    status, out, err = invoke(["run", "--out", out_dir, "--quiet", *FAST], capsys)
    assert_one_line_error(status, out, err, "--overwrite", name)
    assert snapshot(out_dir) == {name: b"earlier"}


def test_out_is_a_file(tmp_path, capsys):
    target = tmp_path / "out"
    target.write_bytes(b"not a directory")
    for extra in ([], ["--overwrite"]):
        status, out, err = invoke(["run", "--out", target, "--quiet", *FAST, *extra], capsys)
        assert_one_line_error(status, out, err, "is a file, not a directory")
        assert target.read_bytes() == b"not a directory"


@pytest.fixture(scope="module")
def earlier_template(tmp_path_factory):
    """The results of one small run, trained once and copied for each test that needs them."""
    out_dir = tmp_path_factory.mktemp("earlier") / "out"
    status, _, err = run_quiet(["run", "--out", out_dir, "--quiet", *FAST])
    assert status == 0, err
    return out_dir


@pytest.fixture
def earlier_run(earlier_template, tmp_path):
    out_dir = tmp_path / "out"
    shutil.copytree(earlier_template, out_dir)
    return out_dir, snapshot(out_dir)


@pytest.mark.parametrize("bad", [
    b for b in BAD_INPUTS
    if b.values[0].id in {"hidden-0", "lr-nan", "schedule-bank-unused", "activation-unknown",
                          "input-injection-sequence-on-digits", "file-invalid-toml",
                          "file-missing"}])
def test_failed_run_with_overwrite_keeps_old_files(bad, earlier_run, tmp_path, capsys):
    out_dir, before = earlier_run
    status, out, err = invoke(["run", *bad_argv(bad, tmp_path), "--out", out_dir, "--quiet",
                               "--overwrite"], capsys)
    assert_one_line_error(status, out, err, *bad.fragments)
    assert snapshot(out_dir) == before


# -- determinism and network kinds -----------------------------------------------------------


def test_same_config_and_seed_give_identical_results(tmp_path, capsys):
    args = ["--quiet", "--set", "training.epochs=2", "--set", "network.hidden=8"]
    for name in ("a", "b"):
        status, _, err = invoke(["run", "--out", tmp_path / name, *args], capsys)
        assert status == 0, err
    a, b = snapshot(tmp_path / "a"), snapshot(tmp_path / "b")
    assert a["weights.npz"] == b["weights.npz"]
    assert a["config.toml"] == b["config.toml"]
    ra, rb = json.loads(a["result.json"]), json.loads(b["result.json"])
    del ra["seconds"], rb["seconds"]
    assert ra == rb

    def metrics(raw):
        rows = list(csv.DictReader(io.StringIO(raw.decode())))
        for row in rows:
            del row["seconds"]
        return rows

    assert metrics(a["metrics.csv"]) == metrics(b["metrics.csv"])
    # (that another seed gives other weights is checked in
    # test_existing_results_are_kept_without_overwrite)


@pytest.mark.parametrize("sets, kind, counts", [
    (["network.banks=1"], "RNN", (1, 4)),
    (["network.banks=3", "network.steps=3"], "DNN", (3, 3)),
])  # the default L_W = 2, L_T = 4 is "ReLaX-Net": test_run_summary
def test_summary_names_the_network_kind(sets, kind, counts, tmp_path, capsys):
    argv = ["run", "--out", tmp_path / "out", "--quiet", *FAST]
    for s in sets:
        argv += ["--set", s]
    status, out, err = invoke(argv, capsys)
    assert status == 0, err
    L_W, L_T = counts
    first = out.splitlines()[0]
    assert first.startswith(f"{kind} on digits: N = 8, L_W = {L_W}, L_T = {L_T}")
    result = json.loads((tmp_path / "out" / "result.json").read_text(encoding="utf-8"))
    assert result["params"]["banks"] == L_W * (8 * 8 + 8)


# -- relaxsim config -------------------------------------------------------------------------


def test_config_command_prints_resolved_toml(capsys):
    status, out, err = invoke(["config", "--set", "network.hidden=8"], capsys)
    assert status == 0 and err == ""
    assert "hidden = 8" in out.splitlines()
    assert tomllib.loads(out) == load_config(overrides={"network.hidden": 8}).to_dict()


def test_config_command_without_arguments_prints_default(capsys):
    status, out, _ = invoke(["config"], capsys)
    assert status == 0
    assert tomllib.loads(out) == load_config().to_dict()


def test_config_command_reads_a_file(tmp_path, capsys):
    path = tmp_path / "exp.toml"
    path.write_text('[network]\nactivation = "relu"\n', encoding="utf-8")
    status, out, _ = invoke(["config", path, "--set", "network.schedule=[0, 1, 1, 0]"], capsys)
    assert status == 0
    printed = tomllib.loads(out)
    assert printed["network"]["activation"] == "relu"
    assert printed["network"]["schedule"] == [0, 1, 1, 0]
    saved = tmp_path / "printed.toml"
    saved.write_text(out, encoding="utf-8")
    assert load_config(saved) == load_config(path, {"network.schedule": [0, 1, 1, 0]})


def test_network_kind():
    from relaxsim.config import network_kind

    assert network_kind(1, 4) == "RNN"
    assert network_kind(4, 4) == "DNN"
    assert network_kind(2, 4) == "ReLaX-Net"
    assert network_kind(1, 1) == "DNN"  # one bank used once: a one-layer network


def test_huge_integer_for_a_float_key_exits_2(capsys):
    status, out, err = invoke(["config", "--set", "training.lr=1" + "0" * 400], capsys)
    assert_one_line_error(status, out, err, "training.lr: ")
