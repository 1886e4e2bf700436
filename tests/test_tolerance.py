"""Tolerance sweeps: the switch leak against the clock in closed form, deploy points equal to a
direct evaluation, retrain points equal to a run alone, resuming without recomputing, the
interpolation of the tolerance, bad specs as one line."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import tomli_w

import relaxsim
from relaxsim.cli.app import main
from relaxsim.config import load_config
from relaxsim.scans import tolerance as T
from relaxsim.training.evaluate import evaluate_run

pytestmark = pytest.mark.filterwarnings("ignore::relaxsim.errors.HardwareWarning")

TINY = {"network": {"hidden": 8}, "training": {"epochs": 1}, "hardware": {"mode": "deploy"}}
CLOCK = {"field": "hardware.clock", "from": "11 ps", "to": "40 ps", "points": 4,
         "scale": "log", "mode": "deploy", "drop": 0.01, "repeats": 2, "seeds": [0, 1]}


def write_spec(path: Path, tolerance: dict, base: dict | None = None) -> Path:
    path.write_text(tomli_w.dumps({"base": TINY if base is None else base,
                                   "tolerance": tolerance}), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def deployed(tmp_path_factory):
    """The clock sweep in deploy mode, run once for the module."""
    root = tmp_path_factory.mktemp("deploy")
    spec = write_spec(root / "clock.toml", CLOCK)
    return T.tolerance(spec, root / "out"), root


def mzi_leak(clock_s: float, cfg) -> float:
    """``e_ER + (1 - 2 e_ER) cos^2(pi/2 (1 - exp(-w / tau)))``, ``w = clock - T_MM``,
    ``tau = rise / 1.3564`` (docs/timing.md): 1.3564 is the 10-90 % rise of the MZI's shape in
    units of tau, ``x(0.9) - x(0.1)`` with ``sin^2(pi/2 (1 - exp(-x))) = share``."""
    def x(share):
        return -math.log(1.0 - (2.0 / math.pi) * math.asin(math.sqrt(share)))

    rise_in_tau = x(0.9) - x(0.1)
    assert rise_in_tau == pytest.approx(1.3564, abs=1e-4)
    hw = relaxsim.assemble(cfg).hardware
    e = 10.0 ** (-hw.switch.extinction_ratio_db / 10.0)
    tau = hw.switch.rise_time_s / rise_in_tau
    w = clock_s - hw.propagation_time_s
    return e + (1.0 - 2.0 * e) * math.cos(math.pi / 2 * (1.0 - math.exp(-w / tau))) ** 2


def test_switch_leak_against_clock_is_the_closed_form(deployed):
    result, _ = deployed
    assert len(result["points"]) == 4
    cfg = load_config(None, {"network.hidden": 8})
    for point in result["points"]:
        expected = mzi_leak(point["value"], cfg)
        assert point["switch_leak"] == pytest.approx(expected, rel=0, abs=1e-12)
        # every switching step leaks the same; the first step does not switch
        steps = point["switch_leak_steps"]
        assert steps[0] == 0.0
        np.testing.assert_allclose(steps[1:], expected, rtol=0, atol=1e-12)
    # the values are the log sweep in SI units, both ends exact
    values = [p["value"] for p in result["points"]]
    assert values[0] == 11e-12 and values[-1] == 40e-12
    np.testing.assert_allclose(np.diff(np.log(values)), math.log(40 / 11) / 3, rtol=1e-12)


def test_deploy_point_equals_a_direct_evaluation(deployed):
    result, root = deployed
    point = result["points"][1]
    for seed in (0, 1):
        direct = evaluate_run(root / "out" / "trained" / f"seed-{seed}",
                              {"hardware.clock": point["value"]}, repeats=2, seed=seed)
        assert point["accuracies"][str(seed)] == direct["accuracies"]
        assert point["per_seed"][str(seed)] == direct["accuracy_mean"]
    pooled = point["accuracies"]["0"] + point["accuracies"]["1"]
    assert point["accuracy_mean"] == pytest.approx(np.mean(pooled), abs=1e-15)
    assert point["accuracy_std"] == pytest.approx(np.std(pooled, ddof=1), abs=1e-15)
    # the trained weights are those of `relaxsim run` of the base with the seed
    alone = relaxsim.run(load_config(None, {"network.hidden": 8, "training.epochs": 1,
                                            "hardware.mode": "deploy", "training.seed": 1}))
    stored = json.loads((root / "out" / "trained" / "seed-1" / "result.json").read_text())
    assert stored["test_accuracy"] == alone["test_accuracy"]


def test_outputs_are_written(deployed):
    result, root = deployed
    out = root / "out"
    for name in (T.CURVE_CSV, T.CURVE_JSON, T.FIGURE, T.REPORT, T.SPEC_FILE):
        assert (out / name).is_file(), name
    rows = list(csv.DictReader((out / T.CURVE_CSV).open()))
    assert [float(r["hardware.clock_s"]) for r in rows] == [p["value"] for p in result["points"]]
    assert float(rows[2]["accuracy_seed_1"]) == result["points"][2]["per_seed"]["1"]
    assert json.loads((out / T.CURVE_JSON).read_text())["tolerance"] == result["tolerance"]
    assert (out / T.FIGURE).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "**Tolerance:**" in (out / T.REPORT).read_text()


def test_a_second_invocation_recomputes_nothing(deployed, monkeypatch, capsys):
    result, root = deployed
    out = root / "out"
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*")
              if p.is_file() and (p.parent.name == "points" or p.parent.parent.name == "trained")}
    import relaxsim.runner
    import relaxsim.training.evaluate

    def refuse(*args, **kwargs):
        raise AssertionError("recomputed")

    monkeypatch.setattr(relaxsim.runner, "run", refuse)
    monkeypatch.setattr(relaxsim.runner, "resume", refuse)
    monkeypatch.setattr(relaxsim.training.evaluate, "evaluate_run", refuse)
    assert main(["tolerance", str(root / "clock.toml"), "--out", str(out), "--quiet"]) == 0
    assert "0 computed, 10 reused" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    again = json.loads((out / T.CURVE_JSON).read_text())
    assert again["points"] == result["points"] and again["tolerance"] == result["tolerance"]


def test_a_killed_sweep_keeps_what_finished(tmp_path, monkeypatch):
    spec = write_spec(tmp_path / "s.toml", {**CLOCK, "seeds": [0]})
    import relaxsim.training.evaluate

    real, calls = relaxsim.training.evaluate.evaluate_run, []

    def dying(*args, **kwargs):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(relaxsim.training.evaluate, "evaluate_run", dying)
    with pytest.raises(KeyboardInterrupt):
        T.tolerance(spec, tmp_path / "out")
    assert len(list((tmp_path / "out" / "points").glob("*.json"))) == 2
    monkeypatch.setattr(relaxsim.training.evaluate, "evaluate_run", real)
    result = T.tolerance(spec, tmp_path / "out")
    assert (result.computed, result.reused) == (2, 3)  # 2 evaluations; the training and 2 reused


def test_retrain_point_equals_a_run_alone(client, tmp_path):
    spec = write_spec(tmp_path / "r.toml", {**CLOCK, "mode": "retrain", "points": 2,
                                            "seeds": [3]},
                      base={**TINY, "hardware": {"mode": "hardware_aware"}})
    result = T.tolerance(spec, tmp_path / "out", client=client)
    assert result.computed == 2
    for point in result["points"]:
        alone = relaxsim.run(load_config(None, {
            "network.hidden": 8, "training.epochs": 1, "hardware.mode": "hardware_aware",
            "training.seed": 3, "hardware.clock": point["value"]}))
        assert point["accuracies"]["3"] == [alone["test_accuracy"]]
        assert point["switch_leak"] == relaxsim.assemble(load_config(None, {
            "network.hidden": 8, "hardware.clock": point["value"]})).coupling_summary()[
                "switch_leak"][1]
    again = T.tolerance(spec, tmp_path / "out", client=client)
    assert (again.computed, again.reused) == (0, 2)
    assert again["points"] == result["points"]
    assert (tmp_path / "out" / "scan" / "scan.toml").is_file()


# -- the tolerance of a curve ------------------------------------------------------------------


def test_crossing_of_a_falling_curve_linear_and_log():
    x = [1.0, 2.0, 4.0, 8.0]
    y = [0.9, 0.9, 0.8, 0.6]
    # falls below 0.85 between x = 2 (0.9) and 4 (0.8), halfway
    assert T.crossing(x, y, 0.85, 0, log=False) == pytest.approx(3.0, abs=1e-12)
    assert T.crossing(x, y, 0.85, 0, log=True) == pytest.approx(math.sqrt(8.0), abs=1e-12)
    assert T.crossing(x, y, 0.5, 0, log=False) is None
    assert T.crossing(x, y, 0.95, 0, log=False) == 1.0  # below from the start


def test_find_tolerance_of_a_rising_curve_with_a_known_crossing():
    # accuracy rises with x (a clock): the reference is the high end, the tolerance a minimum
    x = list(np.geomspace(1e-12, 1e-9, 7))  # 1 ps ... 1 ns, half a decade apart
    mean = [0.50, 0.70, 0.90, 0.95, 0.98, 1.00, 1.00]
    std = [0.02] * 7
    tol = T.find_tolerance(x, mean, std, drop=0.04, log=True)
    assert tol["direction"] == "min" and tol["reference_end"] == "high"
    assert tol["reference"] == 1.0 and tol["threshold"] == pytest.approx(0.96)
    # between x[3] (0.95) and x[4] (0.98): t = (0.98 - 0.96) / 0.03 = 2/3 of the way down from
    # x[4] in log x
    expected = 10 ** (math.log10(x[4]) + (2 / 3) * (math.log10(x[3]) - math.log10(x[4])))
    assert tol["value"] == pytest.approx(expected, rel=1e-12)
    lo, hi = tol["interval"]
    # mean + std crosses 0.96 between x[2] (0.92) and x[3] (0.97); mean - std between x[4]
    # (0.96: not below) and x[3] (0.93)
    assert lo == pytest.approx(10 ** (math.log10(x[3]) + 0.2 * (math.log10(x[2])
                                                                - math.log10(x[3]))), rel=1e-12)
    assert hi == pytest.approx(10 ** (math.log10(x[4]) + (0.0 / 0.03)
                                      * (math.log10(x[3]) - math.log10(x[4]))), rel=1e-12)
    assert lo < tol["value"] < hi
    assert not tol["beyond_sweep"]


def test_find_tolerance_of_a_falling_curve_and_one_that_never_drops():
    x = [0.0, 1.0, 2.0, 3.0]
    tol = T.find_tolerance(x, [0.9, 0.88, 0.80, 0.7], [0, 0, 0, 0], drop=0.05, log=False)
    assert tol["direction"] == "max" and tol["reference"] == 0.9
    assert tol["value"] == pytest.approx(1.0 + (0.88 - 0.85) / (0.88 - 0.80), abs=1e-12)
    assert tol["interval"] == [pytest.approx(tol["value"])] * 2
    flat = T.find_tolerance(x, [0.9, 0.9, 0.89, 0.88], [0.0] * 4, drop=0.05, log=False)
    assert flat["beyond_sweep"] and flat["value"] == 3.0 and flat["interval"] == [None, None]


# -- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize("change, words", [
    ({"from": "1 ns", "to": "1 ps"}, ["tolerance.from", "low > high"]),
    ({"from": "3 dB"}, ["tolerance.from", "time", "3 dB"]),
    ({"field": "hardware.clok"}, ["tolerance.field", "hardware.clok", "unknown key"]),
    ({"field": "hardware.switch.speed"}, ["tolerance.field", "hardware.switch.speed"]),
    ({"points": 1}, ["tolerance.points", ">= 2"]),
    ({"mode": "fast"}, ["tolerance.mode", "fast", "deploy, retrain"]),
    ({"drop": 0}, ["tolerance.drop", "(0, 1)"]),
    ({"drop": -0.1}, ["tolerance.drop"]),
    ({"scale": "cubic"}, ["tolerance.scale", "log, linear"]),
    ({"from": "0 s", "scale": "log"}, ["tolerance.from", "log scale"]),
    ({"train_on": "other"}, ["tolerance.train_on"]),
    ({"field": "network.hidden"}, ["tolerance.field", "network.hidden"]),
    ({"speed": 1}, ["tolerance.speed", "unknown key"]),
])
def test_bad_spec_is_one_line_and_writes_nothing(tmp_path, capsys, change, words):
    spec = write_spec(tmp_path / "bad.toml", {**CLOCK, **change})
    out = tmp_path / "out"
    assert main(["tolerance", str(spec), "--out", str(out)]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and captured.out == ""
    assert lines[0].startswith("relaxsim: error: ")
    for word in words:
        assert word in lines[0], (word, lines[0])
    assert not out.exists()


def test_a_base_without_device_effects_is_refused_in_deploy_mode(tmp_path, capsys):
    spec = write_spec(tmp_path / "s.toml", CLOCK, base={**TINY, "hardware": {"mode": "ideal"}})
    assert main(["tolerance", str(spec), "--out", str(tmp_path / "out")]) == 2
    assert "base: hardware.mode" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_an_occupied_directory_is_refused(tmp_path, capsys):
    spec = write_spec(tmp_path / "s.toml", CLOCK)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "mine.txt").write_text("keep")
    assert main(["tolerance", str(spec), "--out", str(tmp_path / "out")]) == 2
    assert "not a tolerance directory" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["mine.txt"]
