"""Scan specs and the results store, without a cluster: expansion, the equal-budget family, ids,
every bad input (one line, exit status 2 on the command line), corrupt files and the CSV export."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import tomllib
import warnings
from pathlib import Path

import pytest

import relaxsim
from relaxsim.cli.app import main
from relaxsim.config import load_config
from relaxsim.errors import RelaxsimError
from relaxsim.scans.spec import budget_family, config_id, expand, hidden_for, load_spec
from relaxsim.scans.store import ScanWarning, Store, csv_text, flatten_metrics

TINY = {"network": {"hidden": 8}, "training": {"epochs": 1}, "hardware": {"mode": "ideal"}}


def spec(**blocks) -> dict:
    return {"base": TINY, **blocks}


def fields(points) -> list[dict]:
    return [p.fields for p in points]


# -- expansion --------------------------------------------------------------------------------


def test_grid_is_the_cartesian_product_with_seeds_innermost():
    points = load_spec(spec(grid={"network.banks": [1, 2], "training.lr": [0.001, 0.01]},
                            seeds=[0, 1])).expand()
    assert len(points) == 8
    assert fields(points)[:3] == [
        {"network.banks": 1, "training.lr": 0.001, "training.seed": 0},
        {"network.banks": 1, "training.lr": 0.001, "training.seed": 1},
        {"network.banks": 1, "training.lr": 0.01, "training.seed": 0}]
    assert [p.config.network.banks for p in points] == [1, 1, 1, 1, 2, 2, 2, 2]
    assert len({p.id for p in points}) == 8


def test_zip_varies_axes_together_and_points_are_explicit():
    points = load_spec(spec(zip={"network.banks": [1, 4], "network.steps": [2, 8]})).expand()
    assert [(p.config.network.banks, p.config.network.steps) for p in points] == [(1, 2), (4, 8)]
    explicit = load_spec(spec(points=[{"network": {"banks": 1}}, {"training.epochs": 2}]))
    assert fields(explicit.expand()) == [{"network.banks": 1}, {"training.epochs": 2}]


def test_unquoted_dotted_keys_mean_the_same_and_device_tables_stay_whole():
    quoted = load_spec(spec(grid={"network.banks": [1, 2]})).expand()
    nested = load_spec(spec(grid={"network": {"banks": [1, 2]}})).expand()
    assert [p.id for p in quoted] == [p.id for p in nested]
    points = load_spec(spec(points=[{"hardware": {"switch": {"preset": "mems"}}}])).expand()
    assert points[0].fields == {"hardware.switch": {"preset": "mems"}}
    assert points[0].config.hardware.switch["preset"] == "mems"


def test_blocks_combine_as_a_product():
    points = load_spec(spec(points=[{"training.lr": 0.001}, {"training.lr": 0.01}],
                            grid={"network.banks": [1, 2]}, seeds=[3])).expand()
    assert fields(points) == [
        {"training.lr": lr, "network.banks": b, "training.seed": 3}
        for lr in (0.001, 0.01) for b in (1, 2)]


def test_a_spec_without_axes_is_its_base():
    points = load_spec(spec()).expand()
    assert len(points) == 1 and points[0].fields == {}
    assert points[0].config == load_config(None, {"network.hidden": 8, "training.epochs": 1,
                                                  "hardware.mode": "ideal"})


def test_repeated_configs_are_dropped():
    points, duplicates = expand(load_spec(spec(points=[{}, {"network.hidden": 8}, {}])))
    assert len(points) == 1 and duplicates == 2


def test_base_file_is_read_relative_to_the_spec(tmp_path):
    (tmp_path / "exp.toml").write_text("[network]\nhidden = 8\n[hardware]\nmode = 'ideal'\n")
    (tmp_path / "scan.toml").write_text('base = "exp.toml"\n[grid]\nnetwork.banks = [1, 2]\n')
    points = load_spec(tmp_path / "scan.toml").expand()
    # the same config, and so the same id, as relaxsim run exp.toml --set network.banks=2
    alone = load_config(tmp_path / "exp.toml", {"network.banks": 2})
    assert points[1].config == alone and points[1].id == config_id(alone)
    assert load_spec(tmp_path / "scan.toml").to_dict()["base"] == {
        "network": {"hidden": 8}, "hardware": {"mode": "ideal"}}  # inlined in the store


def test_config_id_is_sha256_of_canonical_json():
    from relaxsim.scans.spec import LATER_KEYS, canonical_config, legacy_config_id

    cfg = load_config()
    text = json.dumps(canonical_config(cfg), sort_keys=True, separators=(",", ":"))
    assert config_id(cfg) == hashlib.sha256(text.encode()).hexdigest()[:16]
    # quantities as written, without the keys added since at their defaults
    old = {s: {k: v for k, v in sec.items()
               if (s, k) not in LATER_KEYS}
           for s, sec in cfg.to_dict().items()}
    text = json.dumps(old, sort_keys=True, separators=(",", ":"))
    assert legacy_config_id(cfg) == hashlib.sha256(text.encode()).hexdigest()[:16]
    assert config_id(cfg) != config_id(cfg.replace({"training.seed": 1}))


# -- the equal-budget family ------------------------------------------------------------------


def test_hidden_width_solved_from_the_budget():
    assert hidden_for(8320, 2) == 64 and hidden_for(33280, 8) == 64
    assert hidden_for(8320, 1) == 91  # 91 * 92 = 8372, 0.6 % over
    assert hidden_for(5, 4) == 1


def test_budget_family_at_the_papers_budgets():
    family = budget_family({"params": [8320, 33280], "banks": [1, 2, 4, 8], "steps": [8],
                            "tolerance": 0.1})
    got = [(lab["budget"], f["network.banks"], f["network.hidden"], lab["kind"])
           for f, lab in family]
    assert got == [(8320, 1, 91, "RNN"), (8320, 2, 64, "ReLaX-Net"), (8320, 4, 45, "ReLaX-Net"),
                   (8320, 8, 32, "DNN"), (33280, 1, 182, "RNN"), (33280, 2, 128, "ReLaX-Net"),
                   (33280, 4, 91, "ReLaX-Net"), (33280, 8, 64, "DNN")]
    for f, lab in family:
        n, banks = f["network.hidden"], f["network.banks"]
        assert abs(banks * (n * n + n) - lab["budget"]) <= 0.1 * lab["budget"]


def test_budget_skips_more_banks_than_steps_and_drops_out_of_tolerance():
    family = budget_family({"params": [110], "banks": [1, 2, 4, 8], "steps": [4],
                            "tolerance": 0.05})
    # L_W = 8 > L_T = 4 is no network; L_W = 4: N = 5 gives 120 (9 % off), dropped
    assert [(f["network.banks"], f["network.hidden"]) for f, _ in family] == [(1, 10), (2, 7)]


def test_budget_points_carry_their_labels_and_sizes():
    points = load_spec(spec(budget={"params": [8320], "banks": [1, 8], "steps": [8]},
                            seeds=[0, 1])).expand()
    assert [(p.labels["kind"], p.config.network.hidden, p.config.network.banks,
             p.fields["training.seed"]) for p in points] == [
        ("RNN", 91, 1, 0), ("RNN", 91, 1, 1), ("DNN", 32, 8, 0), ("DNN", 32, 8, 1)]


# -- bad input: one line, exit status 2 ---------------------------------------------------------

BAD_SPECS = [
    ("unknown-field-grid", spec(grid={"network.hiden": [1]}),
     "grid: network.hiden: unknown key; did you mean 'network.hidden'?"),
    ("unknown-section", spec(zip={"netwrk.banks": [1]}),
     "zip: netwrk: unknown section; did you mean 'network'?"),
    ("unknown-field-points", spec(points=[{"training": {"sed": 1}}]),
     "points: training.sed: unknown key; did you mean 'training.seed'?"),
    ("unknown-field-base", {"base": {"network": {"hiden": 8}}},
     "base: network.hiden: unknown key; did you mean 'network.hidden'?"),
    ("empty-grid", spec(grid={}), "grid: no axes (an empty [grid] table)"),
    ("empty-axis", spec(grid={"network.banks": []}),
     "grid: network.banks: empty list; an axis needs at least one value"),
    ("axis-not-list", spec(grid={"network.banks": 2}),
     "grid: network.banks: must be a list of values (got 2)"),
    ("zip-lengths", spec(zip={"network.banks": [1, 2], "network.steps": [4]}),
     "zip: axes must have equal lengths (network.banks: 2, network.steps: 1)"),
    ("budget-unreachable", spec(budget={"params": [5], "banks": [4], "steps": [8],
                                        "tolerance": 0.01}),
     "budget.params = 5: no (N, L_W, L_T) reaches it within tolerance 0.01"),
    ("budget-no-network", spec(budget={"params": [8320], "banks": [8], "steps": [4]}),
     "budget: every L_W in budget.banks [8] exceeds every L_T in budget.steps [4]"),
    ("budget-missing-key", spec(budget={"params": [8320], "banks": [1]}),
     "budget.steps: is missing"),
    ("budget-unknown-key", spec(budget={"params": [1], "banks": [1], "steps": [1], "tol": 1}),
     "budget.tol: unknown key"),
    ("conflict", spec(grid={"network.banks": [1]}, budget={"params": [8320], "banks": [1],
                                                           "steps": [8]}),
     "network.banks: set by both grid and budget; a field may vary in one block only"),
    ("unknown-top-key", spec(seed=[1]), "unknown key 'seed'"),
    ("bad-seeds", spec(seeds=[-1]), "seeds: must be a list of integers >= 0"),
    ("bad-value", spec(grid={"network.banks": [8]}),
     "point network.banks = 8: network.banks: must be <= network.steps"),
    ("bad-type", spec(grid={"network.hidden": ["wide"]}),
     'point network.hidden = "wide": network.hidden: must be an integer'),
]


@pytest.mark.parametrize("data, fragment", [pytest.param(d, f, id=i) for i, d, f in BAD_SPECS])
def test_bad_spec_is_one_line_error(data, fragment):
    with pytest.raises(RelaxsimError) as info:
        load_spec(data).expand()
    assert fragment in str(info.value) and "\n" not in str(info.value)


def _toml(data) -> str:
    import tomli_w

    return tomli_w.dumps(data)


@pytest.mark.parametrize("data, fragment", [pytest.param(d, f, id=i) for i, d, f in BAD_SPECS
                                            if i in ("unknown-field-grid", "empty-grid",
                                                     "budget-unreachable", "bad-value")])
def test_bad_spec_on_the_command_line_exits_2(tmp_path, capsys, data, fragment):
    path = tmp_path / "scan.toml"
    path.write_text(_toml(data))
    assert main(["scan", str(path), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"relaxsim: error: {path}: ") and fragment in err
    assert err.count("\n") == 1


def test_missing_spec_and_non_scan_directory(tmp_path, capsys):
    assert main(["scan", str(tmp_path / "nope.toml"), "--dry-run"]) == 2
    assert "scan spec" in capsys.readouterr().err
    assert main(["scan", str(tmp_path), "--status"]) == 2
    assert "not a scan directory (no scan.toml)" in capsys.readouterr().err


def test_dry_run_lists_points_and_runs_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "s.toml"
    path.write_text(_toml(spec(budget={"params": [8320], "banks": [1, 2], "steps": [4]},
                               seeds=[0, 1])))
    assert main(["scan", str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == (f"{path}: 4 points; varied: budget, kind, network.hidden, network.banks, "
                      "network.steps, training.seed")
    assert out[1].split() == ["#", "id", "budget", "kind", "network.hidden", "network.banks",
                              "network.steps", "training.seed"]
    assert out[2].split()[2:] == ["8320", "RNN", "91", "1", "4", "0"]
    assert len(out) == 6 and not (tmp_path / "scans").exists()


# -- the store ---------------------------------------------------------------------------------


def _done_record(point) -> dict:
    """What a scan stores for a finished point (run here, in-process)."""
    return json.loads(json.dumps({"id": point.id, "status": "done", "fields": point.fields,
                                  "labels": point.labels,
                                  "result": relaxsim.run(point.config)}))


@pytest.fixture
def stored(tmp_path):
    s = load_spec(spec(grid={"network.banks": [1, 2]}))
    points = s.expand()
    store = Store(tmp_path / "store")
    store.attach(s, points)
    for p in points:
        store.save(_done_record(p))
    return s, points, store


def test_store_keeps_the_spec_and_refuses_another(stored, tmp_path):
    s, points, store = stored
    assert load_spec(store.spec_path).to_dict() == s.to_dict()
    assert store.attach(s, points) == 0
    other = load_spec(spec(grid={"network.banks": [1, 2]}, seeds=[5]))
    with pytest.raises(RelaxsimError, match=r"holds another scan \(2 of its 2 points are not in"):
        store.attach(other, other.expand())
    # an extension keeps every stored point: accepted, and becomes the stored spec
    wider = load_spec(spec(grid={"network.banks": [1, 2, 4]}))
    assert store.attach(wider, wider.expand()) == 1
    assert load_spec(store.spec_path).to_dict() == wider.to_dict()
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("mine")
    with pytest.raises(RelaxsimError, match="not empty and not a scan directory"):
        Store(tmp_path / "junk").attach(s, points)


CORRUPTIONS = {
    "truncated": lambda text: text[: len(text) // 2],
    "empty": lambda text: "",
    "not-an-object": lambda text: "[1, 2]",
    "wrong-id": lambda text: text.replace('"id": "', '"id": "0', 1),
    "edited-config": lambda text: text.replace('"hidden": 8', '"hidden": 9'),
    "bad-status": lambda text: text.replace('"status": "done"', '"status": "running"'),
}


@pytest.mark.parametrize("how", CORRUPTIONS)
def test_corrupt_file_is_a_warning_never_used(stored, how):
    _, points, store = stored
    path = store.path(points[0].id)
    path.write_text(CORRUPTIONS[how](path.read_text()))
    with pytest.warns(ScanWarning, match=rf"{path}: corrupt result file \(.+\); counted as"):
        state = store.status(points)
    assert [p.id for p, _ in state["missing"]] == [points[0].id]
    assert len(state["done"]) == 1


def test_status_and_export_on_the_command_line(stored, capsys, tmp_path):
    _, points, store = stored
    store.path(points[1].id).unlink()
    assert main(["scan", str(store.root), "--status"]) == 0
    assert capsys.readouterr().out == f"{store.root}: 2 points: 1 done, 0 failed, 1 missing\n"
    out = tmp_path / "r.csv"
    assert main(["scan", str(store.root), "--export", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert [(r["network.banks"], r["status"]) for r in rows] == [("1", "done"), ("2", "missing")]
    record = store.load(points[0].id)
    assert float(rows[0]["test_accuracy"]) == record["result"]["test_accuracy"]
    assert int(rows[0]["params.total"]) == record["result"]["params"]["total"]
    assert float(rows[0]["hardware.latency_s"]) == record["result"]["hardware"]["latency_s"]
    assert rows[1]["test_accuracy"] == ""


def test_corrupt_file_on_the_command_line_is_one_warning_line(stored, capsys):
    _, points, store = stored
    store.path(points[0].id).write_text("{")
    assert main(["scan", str(store.root), "--status"]) == 0
    err = capsys.readouterr().err
    assert err.startswith("relaxsim: warning: ") and "corrupt result file" in err
    assert err.count("\n") == 1


def test_metrics_are_flattened_without_the_config():
    flat = flatten_metrics({"test_accuracy": 0.9, "params": {"total": 10, "banks": 4},
                            "hardware": {"latency_s": 1e-9, "energy": {"switch": 1.0}},
                            "config": {"network": {"hidden": 8}}, "curve": [1, 2]})
    assert flat == {"test_accuracy": 0.9, "params.total": 10, "params.banks": 4,
                    "hardware.latency_s": 1e-9, "hardware.energy.switch": 1.0, "curve": [1, 2]}
    text = csv_text([{"id": "a", "status": "failed", "fields": {"network.banks": 2},
                      "labels": {}, "error": "DataError: gone\nmore"},
                     {"id": "b", "status": "done", "fields": {"network.banks": 1}, "labels": {},
                      "result": {"test_accuracy": 0.5}}])
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == ["id", "status", "network.banks", "test_accuracy", "error"]
    assert rows[0]["error"] == "DataError: gone" and rows[1]["test_accuracy"] == "0.5"


def test_importing_relaxsim_does_not_import_dask():
    import subprocess
    import sys

    code = "import sys, relaxsim; print('distributed' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert out.stdout.strip() == "False"


def test_no_warning_for_a_healthy_store(stored):
    _, points, store = stored
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(store.status(points)["done"]) == 2
    assert Path(store.spec_path).is_file()


def test_the_documented_spec_example_expands():
    page = (Path(__file__).parents[1] / "docs" / "scans.md").read_text(encoding="utf-8")
    section = page[page.index("## The spec"):]
    start = section.index("```toml\n") + len("```toml\n")
    data = tomllib.loads(section[start:section.index("```", start)])
    data.pop("base")  # a file of the reader's
    points = load_spec(data).expand()
    assert len(points) == 8 * 2 * 2 * 2 * 2 * 3  # budget family x points x zip x grid x seeds


def test_power_loss_and_bits_settings_are_one_point_however_written(tmp_path):
    from relaxsim.scans.spec import config_id

    ids = {config_id(load_config(overrides={"hardware.laser_power": v}))
           for v in ("1 mW", "1000 uW", 1e-3)}
    assert len(ids) == 1
    assert config_id(load_config(overrides={"hardware.input_bits": "inf"})) == config_id(
        load_config())


def test_a_measured_step_response_is_part_of_the_point_id(tmp_path):
    from relaxsim.scans.spec import config_id

    path = tmp_path / "step.csv"
    path.write_text("0,0\n1,0.5\n2,1\n")
    cfg = load_config(overrides={"hardware.switch.response": "measured",
                                 "hardware.switch.response_file": str(path)})
    before = config_id(cfg)
    path.write_text("0,0\n1,0.8\n2,1\n")  # the same path, another response
    assert config_id(cfg) != before
