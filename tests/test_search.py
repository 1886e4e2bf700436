"""relaxsim search: the spec's checks, search quality on a synthetic problem, resume after a
stop or a SIGKILL, and a real trial's result against the same point run alone."""

from __future__ import annotations

import json
import math
import os
import signal
import statistics
import struct
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import tomli_w

from relaxsim.cli.app import main
from relaxsim.scans.search import (
    is_result_field,
    load_search_spec,
    open_study,
    search,
    status,
    trial_table,
)
from relaxsim.scans.spec import config_id
from relaxsim.scans.store import Store, flatten_metrics

ROOT = Path(__file__).resolve().parents[1]

# -- a synthetic problem: no training ----------------------------------------------------------

LR = (1e-4, 1e-1)
HIDDEN = (4, 64)
ENERGY_BOUND = 100e-12


def synthetic(lr: float, hidden: int) -> tuple[float, float]:
    """(accuracy, energy): accuracy peaks at lr = 5e-3, hidden = 40; the energy bound cuts the
    peak off, so the constrained optimum lies on the bound."""
    x = math.log10(lr)
    accuracy = 0.95 - 0.25 * ((x + 2.3) / 1.5) ** 2 - 0.3 * ((hidden - 40) / 30) ** 2
    return accuracy, hidden * (x + 5) * 1e-12


def evaluate(cfg):
    accuracy, energy = synthetic(cfg.training.lr, cfg.network.hidden)
    return {"test_accuracy": accuracy,
            "hardware": {"energy_per_inference_j": energy,
                         "latency_s": 1e-11 * cfg.network.hidden}}


def synthetic_spec(**search_keys) -> dict:
    search_table = {"objectives": ["test_accuracy:max"],
                    "constraints": ["hardware.energy_per_inference_j <= 100 pJ"],
                    "trials": 100, "seed": 0, "sampler": "tpe",
                    "space": {"training.lr": {"low": LR[0], "high": LR[1], "log": True},
                              "network.hidden": {"low": HIDDEN[0], "high": HIDDEN[1]}}}
    search_table.update(search_keys)
    return {"base": {"training": {"epochs": 1}}, "search": search_table}


def grid_optimum() -> tuple[float, int]:
    """The best feasible accuracy on a 20 x 21 grid of the space, and the grid's size."""
    lrs = np.logspace(math.log10(LR[0]), math.log10(LR[1]), 20)
    hiddens = range(HIDDEN[0], HIDDEN[1] + 1, 3)
    values = [synthetic(lr, h) for lr in lrs for h in hiddens]
    return max(a for a, e in values if e <= ENERGY_BOUND), len(values)


def trials_to_reach(rows: list[dict], target: float) -> int | None:
    """The number of trials the study needed for a feasible accuracy >= target."""
    for row in sorted(rows, key=lambda r: r["trial"]):
        if row["state"] == "complete" and row["feasible"] \
                and row["metrics"]["test_accuracy"] >= target:
            return row["trial"] + 1
    return None


def test_the_search_reaches_the_grid_optimum_in_a_quarter_of_the_grid(tmp_path):
    best, size = grid_optimum()
    budget = size // 4
    needed = []
    for seed in range(5):
        res = search(synthetic_spec(), tmp_path / f"s{seed}", trials=budget, seed=seed,
                     evaluate=evaluate, write_outputs=False)
        n = trials_to_reach(res.trials, 0.99 * best)
        needed.append(budget + 1 if n is None else n)
    print(f"grid optimum {best:.4f} on {size} points; trials to within 1 %: {needed}, "
          f"median {statistics.median(needed)}")
    assert statistics.median(needed) <= budget


def test_the_front_is_the_nondominated_feasible_trials(tmp_path):
    spec = synthetic_spec(objectives=["test_accuracy:max", "hardware.energy_per_inference_j:min"],
                          sampler="nsga2", population=8)
    res = search(spec, tmp_path / "s", trials=24, evaluate=evaluate)
    done = [r for r in res.trials if r["state"] == "complete" and r["feasible"]]
    assert res.front and all(r["feasible"] for r in res.front)
    for f in res.front:
        acc, energy = f["metrics"]["test_accuracy"], f["metrics"]["hardware.energy_per_inference_j"]
        assert not any(r["metrics"]["test_accuracy"] >= acc
                       and r["metrics"]["hardware.energy_per_inference_j"] <= energy
                       and r["values"] != f["values"] for r in done)
    out = tmp_path / "s"
    for name in ("front.csv", "front.json", "best.json", "front.png", "search.toml",
                 "study.journal"):
        assert (out / name).is_file(), name
    front = json.loads((out / "front.json").read_text())["front"]
    assert len(front) == len(res.front)
    assert set(front[0]["fields"]) == {"training.lr", "network.hidden"}
    header = (out / "front.csv").read_text().splitlines()[0].split(",")
    assert header[:2] == ["trial", "id"] and "hardware.energy_per_inference_j" in header
    best = json.loads((out / "best.json").read_text())
    chosen = best["all_constraints"]["test_accuracy"]
    assert chosen["metrics"]["hardware.energy_per_inference_j"] <= ENERGY_BOUND
    assert set(best["each_constraint"]) == {"hardware.energy_per_inference_j <= 1e-10"}


def test_units_and_integer_and_categorical_fields_in_si():
    spec = load_search_spec({"base": {}, "search": {
        "objectives": ["test_accuracy:max"],
        "constraints": ["hardware.latency_s <= 1 ns"],
        "space": {"hardware.switch.rise_time": {"low": "1 ps", "high": "1 ns", "log": True},
                  "network.banks": {"low": 1, "high": 4},
                  "hardware.weights.preset": ["thermo_optic", "pcm"]}}})
    rise, banks, preset = spec.space.values()
    assert (rise.kind, rise.low, rise.high, rise.log) == ("float", 1e-12, 1e-9, True)
    assert (banks.kind, banks.low, banks.high) == ("int", 1, 4)
    assert preset.choices == ("thermo_optic", "pcm")
    assert spec.constraints[0].bound == pytest.approx(1e-9)
    assert load_search_spec(spec.to_dict()).to_dict() == spec.to_dict()


# -- resume --------------------------------------------------------------------------------------

class Counting:
    def __init__(self):
        self.ids: list[str] = []

    def __call__(self, cfg):
        self.ids.append(config_id(cfg))
        return evaluate(cfg)


def _kept(rows):
    return {r["trial"]: (r["fields"], r["values"]) for r in rows if r["state"] == "complete"}


def test_resume_with_more_trials_keeps_every_trial_once(tmp_path):
    out = tmp_path / "s"
    first, second = Counting(), Counting()
    a = search(synthetic_spec(sampler="nsga2", population=6), out, trials=9, evaluate=first)
    b = search(synthetic_spec(sampler="nsga2", population=6), out, trials=20, evaluate=second)
    assert len(a.trials) == 9 and len(b.trials) == 20
    assert [r["trial"] for r in b.trials] == list(range(20))
    before = _kept(a.trials)
    after = _kept(b.trials)
    assert all(after[n] == before[n] for n in before)
    assert b.counts["done"] == 20 and b.counts["running"] == 0
    assert not set(first.ids) & set(second.ids)  # nothing stored was run again
    assert len(set(first.ids + second.ids)) == len(first.ids + second.ids)
    # the same call again runs nothing
    third = Counting()
    c = search(synthetic_spec(sampler="nsga2", population=6), out, trials=20, evaluate=third)
    assert not third.ids and len(c.trials) == 20


DRIVER = """
import sys, time
sys.path.insert(0, {tests!r})
from test_search import evaluate, synthetic_spec
from relaxsim.scans.search import search

def slow(cfg):
    time.sleep(0.15)
    return evaluate(cfg)

search(synthetic_spec(sampler="tpe"), sys.argv[1], trials=40, evaluate=slow)
"""


def test_a_driver_killed_mid_study_resumes_it(tmp_path):
    out = tmp_path / "s"
    script = tmp_path / "driver.py"
    script.write_text(DRIVER.format(tests=str(ROOT / "tests")))
    proc = subprocess.Popen([sys.executable, str(script), str(out)], cwd=tmp_path)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            time.sleep(0.2)
            if (out / "study.journal").is_file():
                try:
                    if status(out)["done"] >= 6:
                        break
                except Exception:  # noqa: BLE001  (the journal half written)
                    pass
        else:
            pytest.fail("the driver did not get going")
        time.sleep(0.07)  # somewhere inside a trial
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    spec = load_search_spec(synthetic_spec(sampler="tpe"))
    rows = trial_table(open_study(out, spec))
    stored = {p.stem for p in (out / "points").glob("*.json")}
    before = _kept(rows)
    running = [r["trial"] for r in rows if r["state"] == "running"]
    assert 6 <= len(before) < 40

    again = Counting()
    res = search(synthetic_spec(sampler="tpe"), out, trials=20, evaluate=again)
    assert [r["trial"] for r in res.trials] == list(range(20))
    assert all(r["state"] == "complete" for r in res.trials)  # the abandoned trial re-asked
    after = _kept(res.trials)
    assert all(after[n] == before[n] for n in before)  # each finished trial kept, once
    assert not set(again.ids) & stored  # and none run again
    store = Store(out)
    for row in res.trials:
        record = store.load(row["id"])
        assert record["result"]["test_accuracy"] == row["metrics"]["test_accuracy"]
    assert len(again.ids) <= 20 - len(before)  # each new trial evaluated at most once
    print(f"killed after {len(before)} finished trials, {len(running)} asked but not told")


# -- a real trial ------------------------------------------------------------------------------

def test_a_trial_stores_what_the_point_run_alone_gives(tmp_path, capsys):
    from relaxsim.runner import run

    spec = {"base": {"network": {"hidden": 8}, "training": {"epochs": 1}},
            "search": {"objectives": ["test_accuracy:max", "hardware.energy_per_inference_j:min"],
                       "constraints": ["hardware.latency_s <= 1 us"],
                       "trials": 2, "seed": 0, "sampler": "nsga2",
                       "space": {"hardware.weights.preset": ["thermo_optic", "pcm"]}}}
    path = tmp_path / "tiny.toml"
    path.write_text(tomli_w.dumps(spec))
    out = tmp_path / "out"
    assert main(["search", str(path), "--out", str(out), "--workers", "1", "--quiet"]) == 0
    assert "search: 2 done, 0 failed" in capsys.readouterr().out
    store = Store(out)
    records = [store.load(p.stem) for p in sorted((out / "points").glob("*.json"))]
    assert records and all(r["status"] == "done" for r in records)
    for record in records:
        cfg = load_search_spec(path).config(record["fields"])
        assert config_id(cfg) == record["id"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            alone = run(cfg, quiet=True)
        assert struct.pack("<d", record["result"]["test_accuracy"]) == \
            struct.pack("<d", alone["test_accuracy"])
    metrics = flatten_metrics(records[0]["result"])
    numeric = [k for k, v in metrics.items()
               if isinstance(v, (int, float)) and not isinstance(v, bool)]
    assert all(is_result_field(k) for k in numeric), [k for k in numeric
                                                      if not is_result_field(k)]
    assert main(["search", str(out), "--status"]) == 0
    line = capsys.readouterr().out
    assert "2 of 2 trials: 2 done" in line and "0 running" in line
    assert (out / "front.png").stat().st_size > 0


# -- bad input -----------------------------------------------------------------------------------

def _with(block: str, key: str, value) -> dict:
    spec = synthetic_spec()
    spec["search"] = dict(spec["search"])
    if block == "space":
        spec["search"]["space"] = {**spec["search"]["space"], key: value}
    else:
        spec["search"][key] = value
    return spec


@pytest.mark.parametrize("spec, words", [
    (_with("space", "network.hidden", {"low": 64, "high": 4}),
     ["search.space", "network.hidden", "low 64 > high 4"]),
    (_with("space", "hardware.switch.rise_time", {"low": "1 pJ", "high": "1 ns"}),
     ["search.space", "hardware.switch.rise_time", "low"]),
    (_with("search", "objectives", ["hardware.energy_j:min"]),
     ["search.objectives", "hardware.energy_j", "not a field of a run's result"]),
    (_with("search", "constraints", ["hardware.area_m2 <= 1"]),
     ["search.constraints", "hardware.area_m2", "no such metric"]),
    (_with("search", "sampler", "cmaes"),
     ["search.sampler", "cmaes", "nsga2, tpe"]),
    (_with("space", "network.banks", {"low": 1, "high": 9}),
     ["search.space", "network.banks = 9"]),
])
def test_bad_input_is_one_line_and_nothing_is_written(tmp_path, capsys, spec, words):
    path = tmp_path / "bad.toml"
    path.write_text(tomli_w.dumps(spec))
    out = tmp_path / "out"
    assert main(["search", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("relaxsim: error: "), err
    for word in words:
        assert word in err, err
    assert not out.exists()


def test_a_directory_of_another_search_is_refused(tmp_path, capsys):
    out = tmp_path / "s"
    search(synthetic_spec(), out, trials=2, evaluate=evaluate, write_outputs=False)
    other = synthetic_spec()
    other["search"]["objectives"] = ["val_accuracy:max"]
    path = tmp_path / "other.toml"
    path.write_text(tomli_w.dumps(other))
    assert main(["search", str(path), "--out", str(out)]) == 2
    assert "holds another search" in capsys.readouterr().err


def test_search_writes_only_its_directory(tmp_path):
    out = tmp_path / "s"
    search(synthetic_spec(), out, trials=3, evaluate=evaluate)
    assert os.listdir(tmp_path) == ["s"]
    text = textwrap.dedent((out / "search.toml").read_text())
    assert "objectives" in text


def test_a_tie_in_one_objective_is_broken_by_the_other():
    from types import SimpleNamespace

    from relaxsim.scans.search import best_trials

    spec = SimpleNamespace(objectives=[("test_accuracy", "max"),
                                       ("hardware.energy_per_inference_j", "min")],
                           constraints=[])
    rows = [{"trial": t, "id": str(t), "fields": {}, "state": "complete", "feasible": True,
             "metrics": {"test_accuracy": acc, "hardware.energy_per_inference_j": e}}
            for t, acc, e in ((0, 0.442, 37e-9), (1, 0.451, 37e-9), (2, 0.451, 40e-9))]
    best = best_trials(rows, spec)["all_constraints"]
    assert best["hardware.energy_per_inference_j"]["trial"] == 1  # same energy, more accurate
    assert best["test_accuracy"]["trial"] == 1  # same accuracy, less energy
