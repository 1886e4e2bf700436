"""Quantities in scans: one point id per physical value however it is written, exports in SI units
with the unit in the column name, lists in results as JSON cells, stores written with the ids of
earlier versions resumed without running anything again; unquoted three-level grid keys; Ctrl-C
during a scan and during start-up."""

from __future__ import annotations

import csv
import io
import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from relaxsim.cli.app import main
from relaxsim.errors import RelaxsimError
from relaxsim.io import write_json, write_npz
from relaxsim.scans.spec import config_id, expand, legacy_config_id, load_spec
from relaxsim.scans.store import ScanNotice, Store, csv_text, sha256_file

TINY = {"network": {"hidden": 8}, "training": {"epochs": 1}, "hardware": {"mode": "ideal"}}
SPELLINGS = ["3.5 ps", 3.5e-12, "3500 fs"]  # one rise time, three ways


def rows_of(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


# -- one id per physical value --------------------------------------------------------------------

def test_three_spellings_of_one_quantity_are_one_point():
    spec = load_spec({"base": TINY, "grid": {"hardware.switch.rise_time": SPELLINGS}})
    points, duplicates = expand(spec)
    assert (len(points), duplicates) == (1, 2)
    assert points[0].config["hardware.switch"] == {"preset": "eo_mzi", "rise_time": "3.5 ps"}


def test_times_of_the_config_are_hashed_in_seconds():
    spec = load_spec({"base": TINY, "grid": {"hardware.clock": ["30 ps", 3e-11, "0.03 ns"],
                                             "hardware.drift_time": ["1 s", 1, "1000 ms"]}})
    points, _ = expand(spec)
    assert len(points) == 1
    assert len(expand(load_spec({"base": TINY, "grid": {
        "hardware.clock": ["30 ps", "31 ps", "auto"]}}))[0]) == 3  # different values stay


def test_each_spelling_alone_has_the_same_id():
    configs = [p.config for s in SPELLINGS for p in load_spec(
        {"base": TINY, "points": [{"hardware.switch.rise_time": s}]}).expand()]
    assert len({config_id(c) for c in configs}) == 1
    assert len({legacy_config_id(c) for c in configs}) == 3  # what earlier versions did
    assert [c["hardware.switch"]["rise_time"] for c in configs] == SPELLINGS  # kept as written


# -- the export ----------------------------------------------------------------------------------

def test_export_column_is_an_si_float_with_the_unit_in_its_name():
    records = [{"id": "a", "status": "missing", "labels": {},
                "fields": {"hardware.switch.rise_time": "3.5 ps", "hardware.clock": "30 ps",
                           "hardware.switch.energy_per_switch": "5 pJ", "network.banks": 2}},
               {"id": "b", "status": "missing", "labels": {},
                "fields": {"hardware.switch.rise_time": 2e-9, "hardware.clock": "auto",
                           "hardware.switch.energy_per_switch": 0, "network.banks": 4}}]
    rows = rows_of(csv_text(records))
    assert list(rows[0]) == ["id", "status", "hardware.switch.rise_time_s", "hardware.clock_s",
                             "hardware.switch.energy_per_switch_j", "network.banks"]
    assert [float(r["hardware.switch.rise_time_s"]) for r in rows] == [3.5e-12, 2e-9]
    assert [r["hardware.clock_s"] for r in rows] == ["3e-11", "auto"]  # "auto" is no quantity
    assert [float(r["hardware.switch.energy_per_switch_j"]) for r in rows] == [5e-12, 0.0]


def test_a_device_table_is_one_column_per_key():
    rows = rows_of(csv_text([
        {"id": "a", "status": "missing", "labels": {},
         "fields": {"hardware.switch": {"preset": "eo_mzi", "rise_time": "200 ps"}}},
        {"id": "b", "status": "missing", "labels": {}, "fields": {"hardware.switch": "mems"}}]))
    assert [(r["hardware.switch.preset"], r["hardware.switch.rise_time_s"]) for r in rows] == [
        ("eo_mzi", "2e-10"), ("mems", "")]


def test_lists_in_a_result_are_one_json_cell():
    coupling = {"switch_leak": [0.0, 0.25, 0.5], "carry_over": [1e-3, 1e-3, 1e-3]}
    rows = rows_of(csv_text([{"id": "a", "status": "done", "labels": {}, "fields": {},
                              "result": {"test_accuracy": 0.5,
                                         "hardware": {"coupling": coupling, "warnings": []},
                                         "config": {"network": {}}}}]))
    assert json.loads(rows[0]["hardware.coupling.switch_leak"]) == coupling["switch_leak"]
    assert json.loads(rows[0]["hardware.coupling.carry_over"]) == coupling["carry_over"]
    assert rows[0]["hardware.warnings"] == "[]"
    assert not any(k.startswith("config") for k in rows[0])


def test_scan_export_on_the_command_line_writes_seconds(tmp_path, capsys):
    root, points = old_store(tmp_path, {"grid": {"hardware.switch.rise_time": ["3.5 ps",
                                                                              "10 ps"]}})
    assert main(["scan", str(root), "--export", str(tmp_path / "r.csv")]) == 0
    rows = list(csv.DictReader((tmp_path / "r.csv").open()))
    assert [float(r["hardware.switch.rise_time_s"]) for r in rows] == [3.5e-12, 1e-11]
    assert [r["status"] for r in rows] == ["done", "done"]  # read under their old names
    assert [r["id"] for r in rows] == [p.id for p in points]


# -- stores written before: their ids ------------------------------------------------------------

def old_store(tmp_path: Path, blocks: dict, weights: bool = False) -> tuple[Path, list]:
    """A store as earlier versions wrote it: points named by the hash of the config as written.
    The result is a stand-in (the store checks the config it holds, not the metrics)."""
    spec = load_spec({"base": TINY, **blocks, **({"save_weights": True} if weights else {})})
    root = tmp_path / "old"
    (root / "points").mkdir(parents=True)
    (root / "scan.toml").write_text(spec.to_toml(), encoding="utf-8")
    points = spec.expand()
    for i, point in enumerate(points):
        old = legacy_config_id(point.config)
        assert old != point.id
        record = {"id": old, "status": "done", "fields": point.fields, "labels": point.labels,
                  "result": {"test_accuracy": 0.5 + i / 100, "config": point.config.to_dict()}}
        if weights:
            path = root / "points" / f"{old}.weights.npz"
            write_npz(path, {"W": np.full((2, 2), float(i))})
            record["weights_sha256"] = sha256_file(path)
        write_json(root / "points" / f"{old}.json", record)
    return root, points


@pytest.mark.parametrize("weights", [False, True], ids=["results", "with-weights"])
def test_store_with_the_old_ids_resumes_running_nothing(tmp_path, capsys, weights):
    blocks = {"grid": {"hardware.switch.rise_time": ["3.5 ps", "10 ps"]}, "seeds": [0, 1]}
    root, points = old_store(tmp_path, blocks, weights)
    assert main(["scan", str(root), "--status"]) == 0  # read-only: the old names are read
    assert "4 points: 4 done, 0 failed, 0 missing" in capsys.readouterr().out
    # no cluster is started for a scan with nothing to run
    assert main(["scan", str(root), "--quiet"]) == 0
    out, err = capsys.readouterr()
    assert "4 done, 0 failed (0 run now, 4 stored before)" in out
    assert err.count("\n") == 1 and err.startswith(f"relaxsim: {root}: 4 stored points renamed")
    names = sorted(p.name for p in (root / "points").iterdir())
    assert names == sorted(f"{p.id}{ext}" for p in points
                           for ext in ([".json", ".weights.npz"] if weights else [".json"]))
    store = Store(root)
    records = [store.load(p.id, weights=weights) for p in points]
    assert [r["result"]["test_accuracy"] for r in records] == [0.5, 0.51, 0.52, 0.53]
    assert main(["scan", str(root), "--quiet"]) == 0  # once only
    out, err = capsys.readouterr()
    assert "(0 run now, 4 stored before)" in out and err == ""


def test_the_python_api_resumes_an_old_store_with_a_notice(tmp_path):
    import relaxsim

    root, points = old_store(tmp_path, {"grid": {"hardware.clock": ["30 ps", "40 ps"]}})
    with pytest.warns(ScanNotice, match="2 stored points renamed"):
        results = relaxsim.scan(root / "scan.toml", out=root)
    assert (results.computed, results.reused) == (0, 2)
    assert [r["id"] for r in results] == [p.id for p in points]


def test_a_migration_killed_half_way_is_finished_by_the_next(tmp_path):
    root, points = old_store(tmp_path, {"grid": {"hardware.switch.rise_time": ["3.5 ps"]}},
                             weights=True)
    point, store = points[0], Store(root)
    old = legacy_config_id(point.config)
    # killed after the weights moved, before the record was written under its new name
    (root / "points" / f"{old}.weights.npz").rename(store.weights_path(point.id))
    spec = store.spec()
    with pytest.warns(ScanNotice, match="1 stored point renamed"):
        with store.session(spec, points):
            pass
    assert store.load(point.id, weights=True)["id"] == point.id
    # killed after the new record was written, before the old one went
    write_json(root / "points" / f"{old}.json", {**store.load(point.id), "id": old})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with store.session(spec, points):
            pass
    assert sorted(p.name for p in (root / "points").iterdir()) == [
        f"{point.id}.json", f"{point.id}.weights.npz"]


def test_an_old_file_is_no_stray(tmp_path, capsys):
    root, points = old_store(tmp_path, {"grid": {"hardware.switch.rise_time": ["3.5 ps"]}})
    assert Store(root).strays(points) == []


# -- the grid's unquoted keys ---------------------------------------------------------------------

def test_unquoted_three_level_grid_and_zip_keys(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text('[base.hardware]\nmode = "ideal"\n'
                    '[grid]\nhardware.switch.rise_time = ["2 ps", "4 ps"]\n'
                    '[zip]\nhardware.active.response_time = ["1 ps", "3 ps"]\n'
                    'network.banks = [1, 2]\n', encoding="utf-8")
    spec = load_spec(path)
    assert spec.grid == {"hardware.switch.rise_time": ["2 ps", "4 ps"]}
    assert list(spec.zip) == ["hardware.active.response_time", "network.banks"]
    points = spec.expand()
    assert [(p.config["hardware.switch"]["rise_time"], p.config["hardware.active"]["response_time"])
            for p in points] == [("2 ps", "1 ps"), ("4 ps", "1 ps"), ("2 ps", "3 ps"),
                                 ("4 ps", "3 ps")]
    assert load_spec(tmp_path / "s.toml").to_dict() == load_spec(spec.to_dict()).to_dict()


# -- Ctrl-C ---------------------------------------------------------------------------------------

TIMEOUT_S = 120  # no test waits longer than this for a subprocess
# about half a second per point: Ctrl-C lands while most are still to run
SLOW = {"base": {"network": {"hidden": 8}, "training": {"epochs": 2, "batch_size": 1},
                 "hardware": {"mode": "ideal"}},
        "grid": {"network.banks": [1, 2]}, "seeds": list(range(10))}


def wait_for(condition, what: str) -> None:
    import time

    deadline = time.monotonic() + TIMEOUT_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def session_alive(pgid: int) -> bool:
    import os

    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_ctrl_c_during_a_scan_is_one_line_with_the_command_that_resumes_it(tmp_path):
    """SIGINT to the whole process group, as the terminal sends it: driver and workers."""
    import os
    import shlex
    import signal
    import subprocess
    import sys

    import tomli_w

    pytest.importorskip("distributed")
    spec = tmp_path / "slow.toml"
    spec.write_text(tomli_w.dumps(SLOW), encoding="utf-8")
    out = tmp_path / "s"
    driver = subprocess.Popen(
        [sys.executable, "-m", "relaxsim", "scan", str(spec), "--out", str(out), "--workers", "2",
         "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True, cwd=tmp_path)
    try:
        wait_for(lambda: len(list(out.glob("points/*.json"))) >= 1 or driver.poll() is not None,
                 "a point stored by the scan")
        assert driver.poll() is None, "the scan ended before Ctrl-C"
        os.killpg(driver.pid, signal.SIGINT)
        stdout, stderr = driver.communicate(timeout=TIMEOUT_S)
        wait_for(lambda: not session_alive(driver.pid), "the worker processes to end")
    finally:
        if session_alive(driver.pid):
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait(TIMEOUT_S)
    assert driver.returncode == 130
    stored = len(list(out.glob("points/*.json")))
    assert 1 <= stored < 20
    command = f"relaxsim scan {spec} --out {out} --workers 2 --quiet"
    assert stderr == (f"relaxsim: scan interrupted: {stored} of 20 points stored in {out}/; "
                      f"resume with `{command}`\n")
    assert stdout == f"scan: 20 points, results in {out}/ (on 2 local workers)\n"
    assert shlex.split(command)[2:] == [str(spec), "--out", str(out), "--workers", "2", "--quiet"]


def test_the_interrupt_message_of_a_resumed_store(tmp_path, capsys):
    import argparse

    from relaxsim.cli.scan import interrupted

    root, points = old_store(tmp_path, {"grid": {"network.banks": [1, 2, 3]}})
    (root / "points" / f"{legacy_config_id(points[2].config)}.json").unlink()
    args = argparse.Namespace(target=str(root), workers=None, address="tcp://h:8786",
                              retry_failed=True, save_weights=False, quiet=False)
    assert interrupted(args, points, Store(root)) == 130
    assert capsys.readouterr().err == (
        f"relaxsim: scan interrupted: 2 of 3 points stored in {root}/; resume with "
        f"`relaxsim scan {root} --address tcp://h:8786 --retry-failed`\n")


SIGINT_ON_IMPORT = '''
import os, signal, sys

class CtrlC:
    """Ctrl-C, a real SIGINT, while relaxsim's module MODULE is being imported."""

    def find_spec(self, name, path=None, target=None):
        if name == "MODULE":
            os.kill(os.getpid(), signal.SIGINT)
        return None

sys.meta_path.insert(0, CtrlC())
'''


# the command's own module (imported before its main runs), and the config (imported by main)
@pytest.mark.parametrize("module", ["relaxsim.cli.app", "relaxsim.config"])
@pytest.mark.parametrize("how", ["console-script", "python-m"])
def test_ctrl_c_while_the_command_starts_is_one_line(tmp_path, how, module):
    import os
    import subprocess
    import sys

    (tmp_path / "sitecustomize.py").write_text(SIGINT_ON_IMPORT.replace("MODULE", module),
                                               encoding="utf-8")
    script = Path(sys.executable).parent / "relaxsim"
    if how == "console-script" and not script.is_file():
        pytest.skip("the relaxsim console script is not installed beside this python")
    command = [str(script)] if how == "console-script" else [sys.executable, "-m", "relaxsim"]
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    done = subprocess.run(command + ["config"], capture_output=True, text=True, env=env,
                          timeout=TIMEOUT_S)
    assert (done.returncode, done.stdout, done.stderr) == (130, "", "relaxsim: interrupted\n")


def test_ctrl_c_while_another_program_imports_relaxsim_is_its_own(tmp_path):
    import os
    import subprocess
    import sys

    (tmp_path / "sitecustomize.py").write_text(SIGINT_ON_IMPORT.replace("MODULE", "relaxsim.runner"),
                                               encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", "import relaxsim; relaxsim.run"], capture_output=True,
                          text=True, env=env, timeout=TIMEOUT_S)
    assert done.returncode != 0 and done.stderr.rstrip().endswith("KeyboardInterrupt")


def test_ctrl_c_while_main_builds_its_parser(monkeypatch, capsys):
    import relaxsim.cli.app as cli

    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "build_parser", interrupted)
    assert main(["config"]) == 130
    assert capsys.readouterr().err == "relaxsim: interrupted\n"


def test_the_report_of_a_store_not_yet_resumed_counts_its_old_ids_as_done(tmp_path):
    from relaxsim.report.document import _missing

    root, points = old_store(tmp_path, {"grid": {"hardware.switch.rise_time": ["3.5 ps", "1 ns"]}})
    assert _missing(root) == 0
    (root / "points" / f"{legacy_config_id(points[0].config)}.json").unlink()
    assert _missing(root) == 1


def test_a_scan_field_misplaced_on_the_hardware_gets_the_configs_hint():
    with pytest.raises(RelaxsimError) as info:
        load_spec({"grid": {"hardware.rise_time": ["1 ps", "2 ps"]}})
    assert str(info.value) == ("scan spec: grid: hardware.rise_time: unknown key; did you mean "
                               "'hardware.switch.rise_time'?")


def test_legacy_ids_are_the_ids_earlier_stores_hold():
    """Pinned: what the stores written before point ids read quantities in SI units hold for
    these configs (computed by that code), so that a change to the config's schema or defaults
    that would stop migration from finding them fails here."""
    from relaxsim.config import load_config
    from relaxsim.scans.spec import legacy_config_id

    assert legacy_config_id(load_config()) == "eff946dd98c0e1cb"
    assert legacy_config_id(load_config(overrides={"hardware.clock": "40 ps",
                                                   "network.banks": 1})) == "946ef975333df7a3"


@pytest.mark.parametrize("version, alpha, mode, banks, stale", [
    ("0.1.0", 0.5, "hardware_aware", 1, True),   # the carry-over fix of 0.2.0 changes it
    ("0.1.0", 0.5, "deploy", 1, True),
    ("0.1.0", 0.5, "ideal", 2, False),           # no machine: no carry-over, no switch
    ("0.1.0", 0.0, "ideal", 1, False),
    ("0.2.0", 0.0, "hardware_aware", 1, True),   # the signal physics of 0.3.0 changes it
    ("0.2.0", 0.0, "hardware_aware", 2, True),   # (the budget's noise: with one bank too)
    ("0.2.0", 0.0, "ideal", 2, False),
    ("0.3.0", 0.5, "hardware_aware", 2, True),   # the weight elements of 0.4.0 change it
    ("0.3.0", 0.5, "ideal", 2, False),
])
def test_a_point_stored_before_a_fix_that_changes_it_runs_again(tmp_path, version, alpha, mode,
                                                                banks, stale):
    from relaxsim.scans.spec import load_spec
    from relaxsim.scans.store import ScanWarning, Store

    spec = load_spec({"base": {"network": {"hidden": 8, "alpha": alpha, "banks": banks},
                               "hardware": {"mode": mode}}, "seeds": [0]})
    (point,) = spec.expand()
    store = Store(tmp_path / "store")
    store.attach(spec, [point])
    record = {"id": point.id, "status": "done", "fields": point.fields, "labels": point.labels,
              "result": {"config": point.config.to_dict(), "test_accuracy": 0.5,
                         "relaxsim_version": version}}
    store.path(point.id).write_text(json.dumps(record))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        state = store.status([point])
    assert len(state["missing" if stale else "done"]) == 1
    messages = [str(w.message) for w in caught if issubclass(w.category, ScanWarning)]
    fix = {"0.1.0": "the carry-over fix of 0.2.0", "0.2.0": "the signal physics of 0.3.0",
           "0.3.0": "the weight elements of 0.4.0"}[version]
    assert messages == ([f"{store.path(point.id)}: written by relaxsim {version}, before "
                         f"{fix}, which changes this point's results; counted as missing"]
                        if stale else [])
