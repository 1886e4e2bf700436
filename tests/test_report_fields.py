"""The report of a store draws any result field against any varied field, and the Pareto front
of any two result fields, seeds aggregated."""

from __future__ import annotations

import pytest

import relaxsim
from relaxsim.cli.app import main
from relaxsim.report.document import pareto, report
from relaxsim.scans.spec import load_spec
from relaxsim.scans.store import Store


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A scan store of 2 clocks x 2 seeds, each point run alone and saved as a scan saves it."""
    root = tmp_path_factory.mktemp("fields") / "store"
    spec = load_spec({"base": {"network": {"hidden": 8}, "training": {"epochs": 1}},
                      "grid": {"hardware": {"clock": ["40 ps", "200 ps"]}}, "seeds": [0, 1]})
    points = spec.expand()
    st = Store(root)
    st.attach(spec, points)
    for p in points:
        st.save({"id": p.id, "status": "done", "fields": p.fields, "labels": p.labels,
                 "result": relaxsim.run(p.config, quiet=True)})
    return root


def test_any_metric_against_a_varied_field_and_a_front(store):
    doc = report(store, metric="hardware.latency_s", against="hardware.clock",
                 front=["test_accuracy:max", "hardware.energy_per_inference_j:min"])
    names = [f.name for f in doc.figures()]
    assert "metric_against" in names and "front" in names
    titles = [s.title for s in doc.sections]
    assert "hardware.latency_s against hardware.clock" in titles
    assert any(t.startswith("Front of test_accuracy (max)") for t in titles)


def test_the_front_is_the_points_no_other_beats():
    pts = [(0.9, 5.0), (0.95, 6.0), (0.85, 4.0), (0.9, 6.0), (0.8, 7.0)]
    assert pareto(pts, ("max", "min")) == [0, 1, 2]
    assert pareto(pts, ("max", "max")) == [1, 4]


@pytest.mark.parametrize("args, message", [
    (["--against", "network.hidden"], "--against 'network.hidden': not a field the points "
                                      "vary; they vary hardware.clock"),
    (["--metric", "hardware.nothing"], "--metric 'hardware.nothing': not a numeric result "
                                       "field of any finished point"),
    (["--front", "test_accuracy:max"], "--front 'test_accuracy:max': give two metrics"),
])
def test_bad_report_options_are_one_line(store, capsys, args, message):
    assert main(["report", str(store), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"relaxsim: error: {message}")
