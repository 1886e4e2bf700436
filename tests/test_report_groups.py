"""A scan report groups by every varied field, seeds aggregated over ``seeds`` only, and draws
the metric against a varied numeric field; the figures' axes suit their data (log only over more
than a decade, whole epochs, a colour per inference, short intervals visible). The stores are
written directly (point records with made-up results), so nothing here trains."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from relaxsim.report import figures
from relaxsim.report.document import scan_report
from relaxsim.scans.spec import load_spec

BASE = {"network": {"hidden": 6}, "training": {"epochs": 1}, "hardware": {"mode": "ideal"}}


def fake_result(config, accuracy: float) -> dict:
    """What a finished point's result holds, as far as a scan report reads it."""
    net = config.network
    return {"test_accuracy": accuracy, "val_accuracy": accuracy - 0.01,
            "params": {"banks": net.banks * (net.hidden ** 2 + net.hidden), "total": 1000},
            "config": config.to_dict()}


def fake_store(root: Path, spec_data: dict, accuracy) -> list[dict]:
    """A scan store in the real layout (scan.toml, points/<id>.json), every point done, with
    ``accuracy(point)`` as its test accuracy."""
    spec = load_spec(spec_data)
    (root / "points").mkdir(parents=True)
    (root / "scan.toml").write_text(spec.to_toml())
    records = []
    for point in spec.expand():
        record = json.loads(json.dumps({
            "id": point.id, "fields": point.fields, "labels": point.labels, "status": "done",
            "result": fake_result(point.config, accuracy(point))}))
        (root / "points" / f"{point.id}.json").write_text(json.dumps(record))
        records.append(record)
    return records


def table(doc, head_word: str):
    """The (head, rows) of the first table whose head names ``head_word``."""
    for sec in doc.sections:
        for part in sec.parts:
            if isinstance(part, tuple) and part[0] == "table" and head_word in part[1]:
                return part[1], part[2]
    raise AssertionError(f"no table with a {head_word!r} column")


def caption(doc, name: str) -> str:
    return next(f.caption for f in doc.figures() if f.name == name)


RISE_TIMES = ["1 ps", "3.5 ps", "10 ps", "30 ps"]


def rise_accuracy(point) -> float:
    return 0.9 - 0.01 * RISE_TIMES.index(point.fields["hardware.switch.rise_time"])


def test_a_rise_time_grid_gives_one_row_per_value(tmp_path):
    fake_store(tmp_path / "s", {"base": {**BASE, "hardware": {"mode": "ideal", "clock": "30 ps"}},
                                "grid": {"hardware.switch.rise_time": RISE_TIMES}},
               rise_accuracy)
    doc = scan_report(tmp_path / "s")
    head, rows = table(doc, "hardware.switch.rise_time")
    col = head.index("hardware.switch.rise_time")
    assert [r[col] for r in rows] == ["1 ps", "3.5 ps", "10 ps", "30 ps"]
    acc = head.index("test accuracy")
    assert [r[acc] for r in rows] == ["0.9000", "0.8900", "0.8800", "0.8700"]
    assert [r[head.index("seeds")] for r in rows] == ["1"] * 4
    text = doc.to_markdown("f")
    assert "rise_time" in text and "mean ± std over seeds" not in text
    assert "one seed per point: no error bars" in caption(doc, "scaling")
    assert "hardware.switch.rise_time (ps)" in caption(doc, "scaling")


def test_two_values_and_two_seeds_give_two_rows_of_two_seeds(tmp_path):
    def accuracy(point):
        return 0.8 + 0.1 * (point.fields["training.lr"] > 0.001) + 0.02 * point.fields[
            "training.seed"]

    fake_store(tmp_path / "s", {"base": BASE, "seeds": [0, 1],
                                "grid": {"training.lr": [0.001, 0.002]}}, accuracy)
    doc = scan_report(tmp_path / "s")
    head, rows = table(doc, "training.lr")
    assert len(rows) == 2
    assert [r[head.index("training.lr")] for r in rows] == ["0.001", "0.002"]
    assert [r[head.index("seeds")] for r in rows] == ["2", "2"]
    assert rows[0][head.index("test accuracy")] == "0.8100 ± 0.0141"
    assert rows[1][head.index("test accuracy")] == "0.9100 ± 0.0141"
    assert "error bars: std over 2 seeds" in caption(doc, "scaling")


def test_one_quantity_in_several_spellings_is_one_value(tmp_path):
    fake_store(tmp_path / "s", {"base": BASE, "points": [
        {"hardware.switch.rise_time": "3.5 ps"}, {"hardware.switch.rise_time": "10 ps"},
        {"hardware.switch.rise_time": "3500 fs", "training.seed": 1}]}, lambda p: 0.9)
    head, rows = table(scan_report(tmp_path / "s"), "hardware.switch.rise_time")
    cells = [(r[head.index("hardware.switch.rise_time")], r[head.index("seeds")]) for r in rows]
    assert cells == [("3.5 ps", "2"), ("10 ps", "1")]


def test_the_scaling_figure_draws_the_metric_against_the_varied_field(tmp_path, monkeypatch):
    drawn = {}
    monkeypatch.setattr(figures, "scaling", lambda series, x_label=figures.BANK_PARAMS_LABEL,
                        metric="test accuracy": drawn.update(series=series, x_label=x_label)
                        or b"png")
    fake_store(tmp_path / "s", {"base": BASE, "grid": {
        "hardware.switch.rise_time": ["1 ps", "10 ps", "100 ps"], "network.banks": [1, 2]}},
        lambda p: 0.9)
    doc = scan_report(tmp_path / "s")
    assert any(sec.title == "Accuracy against hardware.switch.rise_time" for sec in doc.sections)
    assert drawn["x_label"] == "hardware.switch.rise_time (ps)"
    assert sorted(drawn["series"]) == ["RNN", "ReLaX-Net (L_W = 2)"]
    assert [p[0] for p in sorted(drawn["series"]["RNN"])] == pytest.approx([1, 10, 100])
    ax = figures.scaling_figure(drawn["series"], drawn["x_label"]).axes[0]
    assert ax.get_xscale() == "log" and ax.get_xlabel() == "hardware.switch.rise_time (ps)"
    assert ax.get_legend().get_title().get_text() == "one seed per point: no error bars"


def test_network_size_scans_keep_bank_parameters_on_x(tmp_path):
    fake_store(tmp_path / "s", {"base": BASE, "seeds": [0, 1],
                                "grid": {"network.banks": [1, 2], "network.steps": [2, 3]}},
               lambda p: 0.8 + 0.01 * p.fields["training.seed"])
    doc = scan_report(tmp_path / "s")
    head, rows = table(doc, "L_W")
    assert len(rows) == 4 and all(r[head.index("seeds")] == "2" for r in rows)
    assert "bank-parameter count" in caption(doc, "scaling")
    assert {f.name for f in doc.figures()} == {"scaling", "heatmap"}


# -- figure axes ---------------------------------------------------------------------------------

def test_equal_budget_axis_is_linear_over_a_narrow_range():
    series = {"RNN": [(8372, 0.9, 0.01, 3)], "ReLaX-Net (L_W = 2)": [(8280, 0.92, 0.01, 3)],
              "DNN": [(8320, 0.91, 0.01, 3)]}
    assert figures.scaling_figure(series).axes[0].get_xscale() == "linear"
    wide = {"RNN": [(8320, 0.9, 0.01, 3), (332800, 0.95, 0.01, 3)]}
    assert figures.scaling_figure(wide).axes[0].get_xscale() == "log"


def test_epoch_axes_have_whole_ticks():
    rows = [{"epoch": e, "train_loss": 1.0 / e, "val_loss": 1.1 / e, "val_accuracy": 0.5 + e / 10}
            for e in (1, 2, 3)]
    fig = figures.training_curves_figure(rows)
    fig.canvas.draw()
    for ax in fig.axes:
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks


def _sim(overrides: dict, n: int):
    import relaxsim
    from relaxsim.hardware import build_hardware
    from relaxsim.schedules import resolve

    cfg = relaxsim.load_config(overrides=overrides)
    net = cfg.network
    hw = build_hardware(cfg.hardware)
    return hw.simulate(resolve(net.schedule, net.banks, net.steps), net.banks,
                       pipelining=cfg.hardware.pipelining, n=n, record=True)


def _bars(fig) -> list:
    return [p for p in fig.axes[0].patches if p.get_gid() == "busy"]


def _bar_colours(fig) -> set:
    return {tuple(np.round(p.get_facecolor(), 4)) for p in _bars(fig)
            if p.get_facecolor()[:3] != (0.55, 0.55, 0.55)}


def test_pipelined_timeline_has_a_colour_per_inference():
    sim = _sim({"hardware.pipelining": "pipelined", "hardware.in_flight": 8}, 17)
    fig = figures.timeline_figure(sim, "t")
    assert len(_bar_colours(fig)) == 17
    legend = fig.axes[0].get_legend()
    assert [t.get_text() for t in legend.get_texts()] == [str(i) for i in range(17)]


@pytest.mark.parametrize("clock", ["30 ps", "auto"])
def test_slow_switch_timeline_shows_picosecond_intervals(clock):
    """A 1.2 us switch beside 10 ps bank passes: the idle stretches are cut out of the axis, so
    the bank bars are drawn at least a sliver wide and the ticks read in picoseconds."""
    sim = _sim({"hardware.switch.rise_time": "1.2 us", "hardware.clock": clock}, 2)
    fig = figures.timeline_figure(sim, "t")
    ax = fig.axes[0]
    span = ax.get_xlim()[1] - ax.get_xlim()[0]
    assert min(p.get_width() for p in _bars(fig)) >= figures.SLIVER * span
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    rows = [t.get_text() for t in ax.get_yticklabels()]
    # the real durations are written where the drawing cannot show them to scale
    assert any(re.search(r"\d ps", text) for text in ticks + rows), (ticks, rows)
    assert any(re.search(r"\d(\.\d+)? us", text) for text in ticks + rows), (ticks, rows)


def test_ordinary_timeline_axis_is_uncut():
    sim = _sim({}, 1)
    fig = figures.timeline_figure(sim, "t")
    assert fig.axes[0].get_xlabel().startswith("time (")
    assert "grey" not in fig.axes[0].get_xlabel()


def test_points_on_an_unsettled_machine_are_listed_with_their_warning(tmp_path):
    line = "hardware.clock = 12 ps leaves switch eo_mzi leaking 28.7 % of the signal ..."

    def accuracy(point):
        return 0.9

    records = fake_store(tmp_path / "s", {"base": BASE, "grid": {"hardware.clock": ["12 ps",
                                                                                    "1 ns"]}},
                         accuracy)
    assert "Machine warnings" not in scan_report(tmp_path / "s").to_markdown("f")
    fast = next(r for r in records if r["fields"]["hardware.clock"] == "12 ps")
    fast["result"]["hardware"] = {"warnings": [line]}
    (tmp_path / "s" / "points" / f"{fast['id']}.json").write_text(json.dumps(fast))
    head, rows = table(scan_report(tmp_path / "s"), "warning")
    assert rows == [[fast["id"], "hardware.clock = 12 ps", line]]


def test_the_cut_time_axis_is_continuous_and_increasing():
    """The warp of a timeline with cuts maps real time to drawn position without a jump or a
    step back: inside a cut it shrinks the stretch to the cut's drawn width, outside it moves."""
    intervals = [(0.0, 1e-11), (1e-11, 1.2e-6), (2e-11, 3e-11), (1.2e-6, 1.21e-6),
                 (2.4e-6, 2.41e-6)]
    warp = figures._TimeWarp(intervals, 2.41e-6)
    assert len(warp.cuts) == 2
    t = np.linspace(0.0, 2.41e-6, 20001)
    x = np.array([warp(v) for v in t])
    assert x[0] == 0.0 and np.all(np.diff(x) > 0)
    assert np.max(np.abs(np.diff(x))) < 10 * np.max(np.diff(t))  # no jump
    for a, b in warp.cuts:  # a cut is drawn as wide as its gap
        assert warp(b) - warp(a) == pytest.approx(warp.gap, rel=1e-9)
    uncut = figures._TimeWarp([(0.0, 1e-9), (1e-9, 2e-9)], 2e-9)
    assert uncut.cuts == [] and uncut(1.5e-9) == 1.5e-9


def test_an_unquoted_three_level_grid_key_is_one_varied_field():
    import tomllib

    from relaxsim.scans.groups import varied_fields

    spec = tomllib.loads('[grid]\nhardware.switch.rise_time = ["3.5 ps", "20 ps"]\n'
                         '[zip]\nnetwork.banks = [1, 2]\n')
    assert varied_fields(spec, []) == ["hardware.switch.rise_time", "network.banks"]
