"""A table of bad inputs, through the command line: config files, device presets, data files, scan
specs and stores, and command options.

Every case runs ``relaxsim.cli.app.main`` in-process, in a fresh working directory that holds the
case's files, and checks what the user sees and what is left behind: exit status 2, one non-empty
line on stderr naming the field or file and the offending value, no traceback, and every file and
directory of the working tree as it was (no result, cache or output file written, nothing changed).
Checkpoints are covered by tests/test_resume.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from relaxsim.cli.app import main
from tests.datafiles import svhn_arrays, write_mat, write_svhn

TMP = "{tmp}"  # replaced by the case's working directory in argv and in the expected fragments


@dataclass(frozen=True)
class Case:
    """argv (``{tmp}`` for the working directory), the files it needs, and what stderr names."""

    argv: tuple[str, ...]
    fragments: tuple[str, ...]  # each must appear in the error line
    setup: Callable[[Path], None] | None = None


def case(argv: str | list[str], *fragments: str, setup=None) -> Case:
    return Case(tuple(argv.split() if isinstance(argv, str) else argv), fragments, setup)


# -- file makers ------------------------------------------------------------------------------

def text_file(name: str, text: str):
    def make(tmp: Path):
        path = tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return make


def bytes_file(name: str, data: bytes):
    def make(tmp: Path):
        (tmp / name).write_bytes(data)
    return make


def config(text: str):
    return text_file("exp.toml", text)


def both(*makers):
    def make(tmp: Path):
        for maker in makers:
            maker(tmp)
    return make


def svhn_dir(tmp: Path):
    write_svhn(tmp / "svhn", (("train", 20), ("test", 10)))


def bad_train_mat(**arrays):
    def make(tmp: Path):
        write_svhn(tmp / "svhn", (("test", 10),))
        write_mat(tmp / "svhn" / "train_32x32.mat", **arrays)
    return make


def truncated_train_mat(tmp: Path):
    svhn_dir(tmp)
    path = tmp / "svhn" / "train_32x32.mat"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def good_images(n: int = 10):
    X, y, _ = svhn_arrays(n, np.random.default_rng(0))
    return X, y


def scan_store(tmp: Path, name: str = "store", spec: str | None = None):
    """A scan store made the way `relaxsim scan` makes it (the spec kept, no point run)."""
    from relaxsim.scans.spec import expand, load_spec
    from relaxsim.scans.store import Store

    spec_path = tmp / "a.toml"
    spec_path.write_text(spec or SCAN_A, encoding="utf-8")
    loaded = load_spec(spec_path)
    Store(tmp / name).attach(loaded, expand(loaded)[0])


def run_dir(weights: bytes | None = None):
    """A directory that looks like a run: its config, and (optionally) weights."""
    def make(tmp: Path):
        (tmp / "run").mkdir()
        (tmp / "run" / "config.toml").write_text("[network]\nhidden = 8\n", encoding="utf-8")
        if weights is not None:
            (tmp / "run" / "weights.npz").write_bytes(weights)
    return make


def run_with_weights(hidden_in_weights: int = 4):
    """A run directory of an ideal N = 4 network on the digits, with zero weights saved (for
    ``hidden_in_weights = 4``; another width gives weights of the wrong shape)."""
    def make(tmp: Path):
        from relaxsim.io import write_npz

        (tmp / "run").mkdir()
        (tmp / "run" / "config.toml").write_text(
            '[network]\nhidden = 4\n[hardware]\nmode = "ideal"\n', encoding="utf-8")
        n = hidden_in_weights
        write_npz(tmp / "run" / "weights.npz", {
            "W_in": np.zeros((n, 64)), "W": np.zeros((2, n, n)), "b": np.zeros((2, n)),
            "W_out": np.zeros((10, n)), "b_out": np.zeros(10)})
    return make


def svhn_header_v73(tmp: Path):
    """A MATLAB v7.3 (HDF5) train file: scipy cannot read those."""
    write_svhn(tmp / "svhn", (("test", 10),))
    header = b"MATLAB 7.3 MAT-file, HDF5 schema 1.00 .".ljust(116, b" ") + bytes(8) + b"\x00\x02IM"
    (tmp / "svhn" / "train_32x32.mat").write_bytes(header + bytes(512))


SCAN_A = ('[base.network]\nhidden = 8\n[base.training]\nepochs = 1\n'
          '[grid]\n"network.banks" = [1, 2]\n')
SCAN_B = ('[base.network]\nhidden = 8\n[base.training]\nepochs = 1\n'
          '[grid]\n"network.steps" = [6]\n')
SWITCH = 'kind = "switch"\n'
RUN = ["run", "--quiet", "--out", "{tmp}/out"]
SVHN = ["--set", "task.name=svhn", "--set", "task.path={tmp}/svhn"]
TEXT = ["--set", "task.name=shakespeare", "--set", "network.banks=1"]

CASES = {
    # -- config files ------------------------------------------------------------------------
    "config-int-as-string": case(
        "config {tmp}/exp.toml", "network.hidden: must be an integer", "'64'",
        setup=config('[network]\nhidden = "64"\n')),
    "config-int-as-float": case(
        "config {tmp}/exp.toml", "network.steps: must be an integer", "(got 4.0)",
        setup=config("[network]\nsteps = 4.0\n")),
    "config-bool-as-number": case(
        "config {tmp}/exp.toml", "training.lr: must be a number", "(got true)",
        setup=config("[training]\nlr = true\n")),
    "config-list-as-string": case(
        "config {tmp}/exp.toml", "task.name: must be a string", "['digits']",
        setup=config('[task]\nname = ["digits"]\n')),
    "config-unknown-key": case(
        RUN + ["{tmp}/exp.toml"], "network.hiden: unknown key", "'network.hidden'",
        setup=config("[network]\nhiden = 32\n")),
    "config-unknown-section": case(
        RUN + ["{tmp}/exp.toml"], "netwrok: unknown section", "'network'",
        setup=config("[netwrok]\nhidden = 32\n")),
    "config-section-not-a-table": case(
        "config {tmp}/exp.toml", "network: must be a table of keys", "(got 5)",
        setup=config("network = 5\n")),
    "config-nan": case(
        RUN + ["{tmp}/exp.toml"], "training.lr: must be a finite number > 0", "(got nan)",
        setup=config("[training]\nlr = nan\n")),
    "config-inf": case(
        "config {tmp}/exp.toml", "network.alpha: must be in [0, 1)", "(got inf)",
        setup=config("[network]\nalpha = inf\n")),
    "config-float-overflow": case(
        "config {tmp}/exp.toml", "training.momentum: must be in [0, 1)", "(got inf)",
        setup=config("[training]\nmomentum = 1e400\n")),
    "config-negative-size": case(
        RUN + ["{tmp}/exp.toml"], "network.hidden: must be >= 1", "(got -3)",
        setup=config("[network]\nhidden = -3\n")),
    "config-zero-steps": case(
        "config {tmp}/exp.toml", "network.steps: must be >= 1", "(got 0)",
        setup=config("[network]\nsteps = 0\nbanks = 1\n")),
    "config-zero-batch": case(
        RUN + ["{tmp}/exp.toml"], "training.batch_size: must be >= 1", "(got 0)",
        setup=config("[training]\nbatch_size = 0\n")),
    "config-banks-above-steps": case(
        RUN + ["{tmp}/exp.toml"], "network.banks: must be <= network.steps", "(got 8 > 4)",
        setup=config("[network]\nbanks = 8\n")),
    "config-schedule-bank-out-of-range": case(
        "config {tmp}/exp.toml", "network.schedule: entries must be bank indices in 0..1",
        "(got 5)", setup=config("[network]\nschedule = [0, 5, 1, 0]\n")),
    "config-schedule-length": case(
        "config {tmp}/exp.toml", "network.schedule: must list one bank per step",
        "(got 3 entries)", setup=config("[network]\nschedule = [0, 1, 0]\n")),
    "config-schedule-unknown-name": case(
        "config {tmp}/exp.toml", "network.schedule", "'cyclc'",
        setup=config('[network]\nschedule = "cyclc"\n')),
    "config-activation-unknown": case(
        "config {tmp}/exp.toml", "network.activation", "'tanhh'", "'tanh'",
        setup=config('[network]\nactivation = "tanhh"\n')),
    "config-dtype": case(
        "config {tmp}/exp.toml", "network.dtype: must be one of float64, float32",
        "(got 'float16')", setup=config('[network]\ndtype = "float16"\n')),
    "config-fractions-leave-no-training-data": case(
        "config {tmp}/exp.toml", "task.test_fraction: must leave data for training",
        "(got 0.5 + 0.5)", setup=config("[task]\nval_fraction = 0.5\ntest_fraction = 0.5\n")),
    "config-time-in-wrong-unit": case(
        RUN + ["{tmp}/exp.toml"], "hardware.propagation_time: must be a time", '"10 pJ"',
        setup=config('[hardware]\npropagation_time = "10 pJ"\n')),
    "config-time-in-unknown-unit": case(
        "config {tmp}/exp.toml", "hardware.readout_time: must be a time", '"10 parsec"',
        'unknown unit "parsec"', setup=config('[hardware]\nreadout_time = "10 parsec"\n')),
    "config-negative-time": case(
        "config {tmp}/exp.toml", "hardware.drift_time: must be a finite time >= 0",
        "(got '-1 day')", setup=config('[hardware]\ndrift_time = "-1 day"\n')),
    "config-clock-zero": case(
        "config {tmp}/exp.toml", "hardware.clock: must be a finite time > 0 or 'auto'",
        "(got '0 ps')", setup=config('[hardware]\nclock = "0 ps"\n')),
    "config-clock-below-propagation": case(
        "config {tmp}/exp.toml", "hardware.clock: must be longer than hardware.propagation_time",
        "(got 5 ps <= 10 ps)", setup=config('[hardware]\nclock = "5 ps"\n')),
    "config-shakespeare-static-input": case(
        "config {tmp}/exp.toml", "network.input_injection: must be 'sequence'",
        "(got 'every_step')",
        setup=config('[task]\nname = "shakespeare"\n[network]\ninput_injection = "every_step"\n')),
    "config-invalid-toml": case(
        RUN + ["{tmp}/exp.toml"], "config file '{tmp}/exp.toml': invalid TOML",
        setup=config("[network\nhidden = 3\n")),
    "config-not-utf8": case(
        "config {tmp}/exp.toml", "config file '{tmp}/exp.toml': cannot read",
        setup=bytes_file("exp.toml", b"[network]\nhidden = 3 # \xff\xfe\n")),
    "config-missing-file": case(
        RUN + ["{tmp}/nope.toml"], "config file '{tmp}/nope.toml': not found"),
    "config-is-a-directory": case(
        "config {tmp}", "config file '{tmp}': is a directory"),
    "config-hidden-too-large-for-memory": case(
        RUN + ["{tmp}/exp.toml"], "network.hidden: must be small enough for the run to fit in "
        "memory", "(got 1000000)", setup=config("[network]\nhidden = 1000000\n")),
    "config-steps-too-large-for-memory": case(
        RUN + ["{tmp}/exp.toml"], "network.steps: must be small enough", "(got 100000000000)",
        setup=config("[network]\nsteps = 100000000000\nbanks = 1\n")),
    "config-banks-too-large-for-memory": case(
        "config {tmp}/exp.toml", "network.banks: must be small enough", "(got 1000000000)",
        setup=config("[network]\nsteps = 1000000000\nbanks = 1000000000\nhidden = 10\n"
                     "[training]\nbatch_size = 1\n")),
    "config-in-flight-too-large-for-memory": case(
        ["timing", "--set", "hardware.pipelining=pipelined", "--set",
         "hardware.in_flight=1000000000000"], "hardware.in_flight: must be small enough",
        "(got 1000000000000)"),
    "set-without-equals": case(
        "config --set network.hidden", "--set 'network.hidden': expected section.key=value"),
    "set-into-a-value": case(
        "config {tmp}/exp.toml --set network.hidden.x=1", "network.hidden: is a value, not a table",
        "(got 64)", setup=config("[network]\nhidden = 64\n")),
    "set-a-table-for-a-value": case(
        "config --set network.hidden.x=1", "network.hidden: must be an integer",
        "(got { x = 1 })"),
    # -- device presets ----------------------------------------------------------------------
    "preset-unknown-name": case(
        RUN + ["--set", "hardware.switch.preset=eo_mzii"], "hardware.switch.preset",
        "'eo_mzii'", "'eo_mzi'"),
    "preset-not-a-table": case(
        "config --set hardware.switch=5", "hardware.switch: must be a table", "(got 5)"),
    "preset-override-unknown-field": case(
        "config --set hardware.switch.rise=1", "hardware.switch.rise: unknown key",
        "rise_time"),
    "preset-override-wrong-unit": case(
        ["config", "--set", "hardware.active.response_time=3 dB"],
        "hardware.active.response_time: must be a time", '"3 dB"'),
    "preset-override-bad-choice": case(
        ["config", "--set", "hardware.weights.sign=tripolar"], "hardware.weights.sign",
        "tripolar"),
    "preset-file-wrong-unit": case(
        ["config", "--set", "hardware.switch.preset={tmp}/sw.toml"],
        "preset file '{tmp}/sw.toml': rise_time: must be a time", '"5 pJ"',
        setup=text_file("sw.toml", SWITCH + 'rise_time = "5 pJ"\n')),
    "preset-file-negative-time": case(
        RUN + ["--set", "hardware.switch.preset={tmp}/sw.toml"],
        "preset file '{tmp}/sw.toml': jitter: must be >= 0 s", "-2 ps",
        setup=text_file("sw.toml", SWITCH + 'jitter = "-2 ps"\n')),
    "preset-file-without-kind": case(
        ["config", "--set", "hardware.switch.preset={tmp}/sw.toml"],
        "preset file '{tmp}/sw.toml': kind", "(got nothing)",
        setup=text_file("sw.toml", 'rise_time = "5 ps"\n')),
    "preset-file-of-another-kind": case(
        ["config", "--set", "hardware.switch.preset={tmp}/sw.toml"],
        "preset file '{tmp}/sw.toml': kind: must be \"switch\"", '"weight"',
        setup=text_file("sw.toml", 'kind = "weight"\n')),
    "preset-file-unknown-field": case(
        ["config", "--set", "hardware.switch.preset={tmp}/sw.toml"],
        "preset file '{tmp}/sw.toml': rise_tme: unknown key", "rise_time",
        setup=text_file("sw.toml", SWITCH + 'rise_tme = "5 ps"\n')),
    "preset-file-missing": case(
        ["config", "--set", "hardware.switch.preset={tmp}/nope/sw.toml"],
        "preset file '{tmp}/nope/sw.toml': not found"),
    "devices-unknown-name": case("devices eo_mzii", "'eo_mzii'", "'eo_mzi'"),
    "devices-unknown-kind": case("devices gate/eo_mzi", "'gate'"),
    "devices-directory-missing": case(
        "devices --devices {tmp}/nope", "'{tmp}/nope': not a directory"),
    "devices-directory-with-bad-file": case(
        "devices --devices {tmp}/mine", "preset file '{tmp}/mine/x.toml': kind", '"gizmo"',
        setup=text_file("mine/x.toml", 'kind = "gizmo"\n')),
    # -- data files --------------------------------------------------------------------------
    "svhn-missing-files": case(
        RUN + SVHN, "task.path: SVHN files", "not found in '{tmp}/svhn'",
        setup=lambda tmp: (tmp / "svhn").mkdir()),
    "svhn-truncated-mat": case(
        RUN + SVHN, "SVHN file '{tmp}/svhn/train_32x32.mat'", setup=truncated_train_mat),
    "svhn-not-a-mat-file": case(
        RUN + SVHN, "SVHN file '{tmp}/svhn/train_32x32.mat': not a readable MATLAB .mat file",
        setup=both(svhn_dir, bytes_file("svhn/train_32x32.mat", b"<html>404</html>"))),
    "svhn-mat-without-X": case(
        RUN + SVHN, "SVHN file '{tmp}/svhn/train_32x32.mat': has no variable 'X'",
        setup=bad_train_mat(images=good_images()[0], y=good_images()[1])),
    "svhn-mat-wrong-shape": case(
        RUN + SVHN, "'{tmp}/svhn/train_32x32.mat'", "X must have shape (32, 32, 3, n)",
        "(got (32, 32, 2, 10))",
        setup=bad_train_mat(X=good_images()[0][:, :, :2], y=good_images()[1])),
    "svhn-mat-labels-out-of-range": case(
        RUN + SVHN, "'{tmp}/svhn/train_32x32.mat'", "labels must be 1..10", "(got 11)",
        setup=bad_train_mat(X=good_images()[0], y=np.full((10, 1), 11, np.uint8))),
    "svhn-path-is-a-file": case(
        RUN + ["--set", "task.name=svhn", "--set", "task.path={tmp}/x.mat"],
        "task.path: must be the directory", "'{tmp}/x.mat'", setup=bytes_file("x.mat", b"x")),
    "text-empty": case(
        RUN + TEXT + ["--set", "task.path={tmp}/t.txt"], "text file '{tmp}/t.txt': is empty",
        setup=text_file("t.txt", "")),
    "text-not-utf8": case(
        RUN + TEXT + ["--set", "task.path={tmp}/t.txt"],
        "text file '{tmp}/t.txt': not UTF-8 text (byte 0xff at offset 2)",
        setup=bytes_file("t.txt", b"ab\xff\xfecd" * 10)),
    "text-missing": case(
        RUN + TEXT + ["--set", "task.path={tmp}/t.txt"], "text file '{tmp}/t.txt' not found"),
    "text-too-short-for-steps": case(
        RUN + TEXT + ["--set", "task.path={tmp}/t.txt", "--set", "network.steps=16"],
        "text file '{tmp}/t.txt': too short", "network.steps = 16",
        setup=text_file("t.txt", "abcdefghij" * 10)),
    # -- scan specs and stores ---------------------------------------------------------------
    "scan-unknown-key": case(
        "scan {tmp}/s.toml --dry-run", "{tmp}/s.toml: unknown key 'gird'",
        "'grid'", setup=text_file("s.toml", '[gird]\n"network.banks" = [1, 2]\n')),
    "scan-grid-unknown-field": case(
        "scan {tmp}/s.toml --dry-run", "grid: network.hiden: unknown key", "'network.hidden'",
        setup=text_file("s.toml", '[grid]\n"network.hiden" = [8]\n')),
    "scan-empty-grid": case(
        "scan {tmp}/s.toml --dry-run", "{tmp}/s.toml: grid: no axes",
        setup=text_file("s.toml", "[grid]\n")),
    "scan-empty-axis": case(
        "scan {tmp}/s.toml --dry-run", "grid: network.banks: empty list",
        setup=text_file("s.toml", '[grid]\n"network.banks" = []\n')),
    "scan-axis-not-a-list": case(
        "scan {tmp}/s.toml --dry-run", "grid: network.banks: must be a list", "(got 2)",
        setup=text_file("s.toml", '[grid]\n"network.banks" = 2\n')),
    "scan-negative-seed": case(
        "scan {tmp}/s.toml --dry-run", "seeds: must be a list of integers >= 0", "[0, -1]",
        setup=text_file("s.toml", "seeds = [0, -1]\n")),
    "scan-seeds-as-string": case(
        "scan {tmp}/s.toml --dry-run", "seeds: must be a list of integers >= 0", '(got "0")',
        setup=text_file("s.toml", 'seeds = "0"\n')),
    "scan-bad-point-value": case(
        "scan {tmp}/s.toml --dry-run", "point network.banks = 0", "network.banks: must be >= 1",
        "(got 0)", setup=text_file("s.toml", '[grid]\n"network.banks" = [1, 0]\n')),
    "scan-budget-missing-params": case(
        "scan {tmp}/s.toml --dry-run", "budget.params: is missing",
        setup=text_file("s.toml", "[budget]\nbanks = [1]\nsteps = [4]\n")),
    "scan-missing-base-file": case(
        "scan {tmp}/s.toml --dry-run", "base config '{tmp}/nope.toml': not found",
        setup=text_file("s.toml", 'base = "nope.toml"\n')),
    "scan-invalid-toml": case(
        "scan {tmp}/s.toml --dry-run", "scan spec '{tmp}/s.toml': invalid TOML",
        setup=text_file("s.toml", "[grid\n")),
    "scan-corrupt-store-spec": case(
        "scan {tmp}/store --status", "scan spec '{tmp}/store/scan.toml': invalid TOML",
        setup=both(scan_store, text_file("store/scan.toml", "garbage [[\n"))),
    "scan-directory-not-a-store": case(
        "scan {tmp}/store --status", "{tmp}/store: not a scan directory (no scan.toml)",
        setup=lambda tmp: (tmp / "store").mkdir()),
    "scan-store-of-another-spec": case(
        "scan {tmp}/b.toml --out {tmp}/store --quiet", "{tmp}/store: holds another scan",
        "{tmp}/b.toml", setup=both(scan_store, text_file("b.toml", SCAN_B))),
    "scan-out-not-empty": case(
        "scan {tmp}/b.toml --out {tmp}/other --quiet", "--out '{tmp}/other': not empty",
        setup=both(text_file("b.toml", SCAN_B), text_file("other/notes.txt", "mine\n"))),
    "scan-workers-zero": case(
        "scan {tmp}/b.toml --workers 0", "--workers: must be >= 1", "(got 0)",
        setup=text_file("b.toml", SCAN_B)),
    # -- command options ---------------------------------------------------------------------
    "run-out-holds-results": case(
        "run --quiet --out {tmp}/old", "--out '{tmp}/old': holds the results of an earlier run",
        setup=text_file("old/result.json", "{}\n")),
    "run-out-is-a-file": case(
        "run --quiet --out {tmp}/old", "--out '{tmp}/old': is a file",
        setup=text_file("old", "not a directory\n")),
    "evaluate-not-a-directory": case(
        "evaluate {tmp}/nope", "{tmp}/nope: not a run directory"),
    "evaluate-directory-not-a-run": case(
        "evaluate {tmp}/run", "config file '{tmp}/run/config.toml': not found",
        setup=lambda tmp: (tmp / "run").mkdir()),
    "evaluate-unreadable-weights": case(
        "evaluate {tmp}/run --repeats 1", "{tmp}/run/weights.npz: not a readable weights file",
        setup=run_dir(b"PK\x03\x04 truncated")),
    "evaluate-missing-weights": case(
        "evaluate {tmp}/run --repeats 1", "{tmp}/run/weights.npz: not found", setup=run_dir()),
    "evaluate-bad-set": case(
        ["evaluate", "{tmp}/run", "--set", "hardware.clock=-5 ps"],
        "hardware.clock: must be a finite time > 0", "'-5 ps'", setup=run_dir()),
    "evaluate-zero-repeats": case(
        "evaluate {tmp}/run --repeats 0", "--repeats: must be >= 1", "(got 0)",
        setup=run_dir()),
    "timing-bad-set-value": case(
        ["timing", "--set", "hardware.pipelining=pipelind"], "hardware.pipelining",
        "(got 'pipelind')", "'pipelined'"),
    "run-bad-jitter-draws": case(
        ["run", "--set", "hardware.jitter_draws=inference"], "hardware.jitter_draws",
        "must be one of batch, sample", "(got 'inference')"),
    "timing-bad-set-key": case(
        "timing --set clock=5", "--set 'clock=5': expected section.key=value"),
    "timing-jitter-above-clock": case(
        ["timing", "--set", "hardware.clock=30 ps", "--set", "hardware.switch.jitter=50 ps"],
        "hardware.switch.jitter: must be smaller than hardware.clock"),
    "timing-trace-into-missing-directory": case(
        "timing --trace {tmp}/nodir/t.csv", "--trace '{tmp}/nodir/t.csv'",
        "directory '{tmp}/nodir' does not exist"),
    "timing-zero-inferences": case(
        "timing --inferences 0", "--inferences: must be >= 1", "(got 0)"),
    "report-not-a-run": case("report {tmp}/empty", "{tmp}/empty",
                             setup=lambda tmp: (tmp / "empty").mkdir()),
    "data-download-unknown-set": case(
        "data download mnist --dir {tmp}/data", "'mnist'"),
    # -- more config files -------------------------------------------------------------------
    "config-integer-beyond-float": case(
        "config {tmp}/exp.toml", "network.hidden: must be small enough", "9999999999",
        setup=config("[network]\nhidden = " + "9" * 400 + "\n")),
    "config-sequence-input-for-digits": case(
        RUN + ["--set", "network.input_injection=sequence"], "network.input_injection",
        "(got 'sequence')"),
    "config-projection-beyond-inputs": case(
        RUN + SVHN + ["--set", "task.projection=pca", "--set", "task.projected_inputs=5000"],
        "task.projected_inputs: must be <= the 3072 inputs", "(got 5000)", setup=svhn_dir),
    # -- more device presets -----------------------------------------------------------------
    "preset-file-negative-extinction": case(
        ["config", "--set", "hardware.switch.preset={tmp}/sw.toml"],
        "preset file '{tmp}/sw.toml': extinction_ratio: must be > 0 dB", "(got -3 dB)",
        setup=text_file("sw.toml", SWITCH + 'extinction_ratio = "-3 dB"\n')),
    "preset-file-zero-bits": case(
        ["config", "--set", "hardware.weights.preset={tmp}/w.toml"],
        "preset file '{tmp}/w.toml': bits: must be >= 1", "(got 0)",
        setup=text_file("w.toml", 'kind = "weight"\nbits = 0\n')),
    "preset-file-fractional-bits": case(
        ["config", "--set", "hardware.weights.preset={tmp}/w.toml"],
        "preset file '{tmp}/w.toml': bits: must be a whole number", "(got 1.5)",
        setup=text_file("w.toml", 'kind = "weight"\nbits = 1.5\n')),
    "preset-file-unknown-drift": case(
        ["config", "--set", "hardware.weights.preset={tmp}/w.toml"],
        "preset file '{tmp}/w.toml': drift: must be one of", '"sometimes"',
        setup=text_file("w.toml", 'kind = "weight"\ndrift = "sometimes"\n')),
    "preset-file-sources-not-a-table": case(
        ["config", "--set", "hardware.weights.preset={tmp}/w.toml"],
        "preset file '{tmp}/w.toml': sources: must be a table", "(got 5)",
        setup=text_file("w.toml", 'kind = "weight"\nsources = 5\n')),
    "preset-file-unknown-transfer": case(
        ["config", "--set", "hardware.active.preset={tmp}/a.toml"],
        "preset file '{tmp}/a.toml': transfer: must be", '"cubic"',
        setup=text_file("a.toml", 'kind = "active"\ntransfer = "cubic"\n')),
    "preset-file-infinite-noise": case(
        ["config", "--set", "hardware.active.preset={tmp}/a.toml"],
        "preset file '{tmp}/a.toml': noise: must be finite", "(got inf)",
        setup=text_file("a.toml", 'kind = "active"\nnoise = "inf"\n')),
    "preset-file-time-overflow": case(
        ["config", "--set", "hardware.switch.preset={tmp}/sw.toml"],
        "preset file '{tmp}/sw.toml': rise_time: must be finite", "(got inf s)",
        setup=text_file("sw.toml", SWITCH + 'rise_time = "1e400 s"\n')),
    "preset-name-not-a-string": case(
        "config --set hardware.switch.preset=5", "hardware.switch.preset: must be a preset name",
        "(got 5)"),
    # -- more data files ---------------------------------------------------------------------
    "svhn-mat-without-images": case(
        RUN + SVHN, "SVHN file '{tmp}/svhn/train_32x32.mat': holds no images",
        "(32, 32, 3, 0)", setup=bad_train_mat(X=good_images()[0][..., :0],
                                              y=good_images()[1][:0])),
    "svhn-mat-v73": case(
        RUN + SVHN, "SVHN file '{tmp}/svhn/train_32x32.mat': not a readable MATLAB .mat file",
        "v7.3", setup=svhn_header_v73),
    "svhn-mat-labels-as-text": case(
        RUN + SVHN, "'{tmp}/svhn/train_32x32.mat'", "labels y must be numbers", "<U1",
        setup=bad_train_mat(X=good_images()[0], y=np.array([["a"]] * 10))),
    "svhn-mat-labels-nan": case(
        RUN + SVHN, "'{tmp}/svhn/train_32x32.mat'", "labels must be 1..10", "(got nan)",
        setup=bad_train_mat(X=good_images()[0], y=np.full((10, 1), np.nan))),
    "text-directory-without-input": case(
        RUN + TEXT + ["--set", "task.path={tmp}/corpus"],
        "text file '{tmp}/corpus/input.txt' not found",
        setup=lambda tmp: (tmp / "corpus").mkdir()),
    "text-input-is-a-directory": case(
        RUN + TEXT + ["--set", "task.path={tmp}/corpus"],
        "text file '{tmp}/corpus/input.txt': cannot read",
        setup=lambda tmp: (tmp / "corpus" / "input.txt").mkdir(parents=True)),
    "text-fraction-leaves-nothing": case(
        RUN + TEXT + ["--set", "task.path={tmp}/t.txt", "--set", "task.text_fraction=1e-9"],
        "text file '{tmp}/t.txt': too short", "the train part has 0 characters",
        setup=text_file("t.txt", "to be or not to be " * 100)),
    "text-path-with-nul": case(
        RUN + TEXT + ["--set", 'task.path="{tmp}/a\\u0000b.txt"'],
        "task.path: text file '{tmp}/a\\x00b.txt': not a valid file name"),
    # -- more scan specs and stores ----------------------------------------------------------
    "scan-zip-unequal-lengths": case(
        "scan {tmp}/s.toml --dry-run", "zip: axes must have equal lengths",
        "network.banks: 2, network.hidden: 1",
        setup=text_file("s.toml", '[zip]\n"network.banks" = [1, 2]\n"network.hidden" = [8]\n')),
    "scan-grid-section-without-key": case(
        "scan {tmp}/s.toml --dry-run", "grid: network: a field is section.key",
        setup=text_file("s.toml", "[grid]\nnetwork = [1]\n")),
    "scan-field-in-two-blocks": case(
        "scan {tmp}/s.toml --dry-run", "network.banks: set by both grid and zip",
        setup=text_file("s.toml", '[grid]\n"network.banks" = [1]\n[zip]\n'
                                  '"network.banks" = [2]\n')),
    "scan-budget-tolerance": case(
        "scan {tmp}/s.toml --dry-run", "budget.tolerance: must be a number in [0, 1)", "(got 1)",
        setup=text_file("s.toml", "[budget]\nparams = [100]\nbanks = [1]\nsteps = [4]\n"
                                  "tolerance = 1\n")),
    "scan-budget-banks-above-steps": case(
        "scan {tmp}/s.toml --dry-run", "every L_W in budget.banks [8] exceeds every L_T",
        setup=text_file("s.toml", "[budget]\nparams = [100]\nbanks = [8]\nsteps = [4]\n")),
    "scan-seeds-booleans": case(
        "scan {tmp}/s.toml --dry-run", "seeds: must be a list of integers >= 0", "(got [true])",
        setup=text_file("s.toml", "seeds = [true]\n")),
    "scan-base-not-a-table": case(
        "scan {tmp}/s.toml --dry-run", "base: must be a config file name or a table", "(got 5)",
        setup=text_file("s.toml", "base = 5\n")),
    "scan-base-section-not-a-table": case(
        "scan {tmp}/s.toml --dry-run", "base: network: must be a table of keys", "(got 5)",
        setup=text_file("s.toml", "[base]\nnetwork = 5\n")),
    "scan-points-not-tables": case(
        "scan {tmp}/s.toml --dry-run", "points: must be a list of tables",
        setup=text_file("s.toml", "points = [1]\n")),
    "scan-device-axis-not-a-table": case(
        "scan {tmp}/s.toml --dry-run", "point hardware.switch = 5",
        "hardware.switch: must be a table", "(got 5)",
        setup=text_file("s.toml", '[grid]\n"hardware.switch" = [5]\n')),
    "scan-point-too-large-for-memory": case(
        "scan {tmp}/s.toml --dry-run", "point network.hidden = 10000000",
        "network.hidden: must be small enough", "(got 10000000)",
        setup=text_file("s.toml", '[grid]\n"network.hidden" = [8, 10000000]\n')),
    "scan-store-with-out": case(
        "scan {tmp}/store --out {tmp}/other", "--out '{tmp}/other': a scan directory is its own "
        "output", setup=scan_store),
    "scan-workers-and-address": case(
        "scan {tmp}/b.toml --workers 2 --address tcp://127.0.0.1:1",
        "--workers: the cluster at --address has its own workers",
        setup=text_file("b.toml", SCAN_B)),
    "scan-export-into-missing-directory": case(
        "scan {tmp}/store --export {tmp}/nodir/x.csv", "--export", "{tmp}/nodir",
        setup=scan_store),
    "scan-export-onto-a-directory": case(
        "scan {tmp}/store --export {tmp}/store", "--export", "{tmp}/store",
        setup=scan_store),
    # -- more command options ----------------------------------------------------------------
    "evaluate-weights-of-another-width": case(
        "evaluate {tmp}/run --repeats 1", "{tmp}/run/weights.npz: W_in has shape (5, 64)",
        "needs (4, 64)", setup=run_with_weights(5)),
    "evaluate-json-into-missing-directory": case(
        "evaluate {tmp}/run --repeats 1 --json {tmp}/nodir/e.json", "--json", "{tmp}/nodir",
        setup=run_with_weights()),
    "evaluate-json-onto-a-directory": case(
        "evaluate {tmp}/run --repeats 1 --json {tmp}/run", "--json", "{tmp}/run",
        setup=run_with_weights()),
    "timing-json-into-missing-directory": case(
        "timing --json {tmp}/nodir/t.json", "--json '{tmp}/nodir/t.json'",
        "directory '{tmp}/nodir' does not exist"),
    "report-out-into-missing-directory": case(
        "report {tmp}/run --out {tmp}/nodir/r.html", "--out '{tmp}/nodir/r.html'",
        "directory '{tmp}/nodir' does not exist",
        setup=both(run_with_weights(), text_file("run/result.json", "{}\n"))),
}


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every file (its bytes) and directory (None) under ``root``."""
    return {str(p.relative_to(root)): (None if p.is_dir() else p.read_bytes())
            for p in sorted(root.rglob("*"))}


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    capsys.readouterr()
    status = main(argv)
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """An empty working directory, with the data cache and user presets pointing into it."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("RELAXSIM_DATA", str(work / "cache"))
    monkeypatch.delenv("RELAXSIM_DEVICES", raising=False)
    return work


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_one_line_and_changes_nothing(name, workdir, capsys):
    bad = CASES[name]
    if bad.setup is not None:
        bad.setup(workdir)
    before = snapshot(workdir)
    argv = [arg.replace(TMP, str(workdir)) for arg in bad.argv]
    status, out, err = run_cli(argv, capsys)
    assert "Traceback" not in out + err
    lines = err.splitlines()
    assert status == 2, (status, err)
    assert len(lines) == 1 and lines[0].startswith("relaxsim: error: ") and lines[0].strip() \
        != "relaxsim: error:", err
    for fragment in bad.fragments:
        assert fragment.replace(TMP, str(workdir)) in lines[0], (fragment, lines[0])
    after = snapshot(workdir)
    assert sorted(after) == sorted(before), "files or directories were created or removed"
    changed = [path for path in before if before[path] != after[path]]
    assert changed == [], f"changed: {changed}"


def test_the_table_is_large():
    assert len(CASES) >= 40
