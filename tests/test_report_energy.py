"""The energy of a run report and a scan report: the per-architecture figure and tables of a run
(drawn from ``hardware.architectures`` and ``hardware.training``), a result written before those
existed still renders, and a scan report draws test accuracy against energy per inference."""

from __future__ import annotations

import html
import json

import pytest

import relaxsim
from relaxsim.devices import format_quantity
from relaxsim.hardware import ARCH_NAMES
from relaxsim.report import figures
from relaxsim.report.document import scan_report, write_report
from tests.test_report import TINY, assert_figures_embedded, parse, tiny_store
from tests.test_report_groups import BASE, caption, fake_store, table

RUN_FIGURES = ["training", "hardware", "architectures", "timeline"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "run"
    result = relaxsim.run(relaxsim.load_config(overrides=TINY), out=out)
    return out, result


def test_run_report_draws_and_tabulates_every_architecture(tiny_run, tmp_path):
    run_dir, result = tiny_run
    archs = result["hardware"]["architectures"]
    assert list(archs) == ["relaxnet", "rnn", "reprogram", "unrolled"]
    html_path, md_path = write_report(run_dir, tmp_path / "r.html")
    assert_figures_embedded(parse(html_path), RUN_FIGURES)
    png = tmp_path / "r_figures" / "architectures.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = md_path.read_text()
    text = html.unescape(html_path.read_text())
    assert "r_figures/architectures.png" in md
    for acc in archs.values():
        for cell in (f"{acc['tops_per_w']:.3g}",
                     format_quantity(acc["energy_per_inference_j"], "energy"),
                     format_quantity(acc["j_per_mac"], "energy"),
                     format_quantity(acc["static_power_total_w"], "power")):
            assert cell in md and cell in text, cell
    row = next(line for line in md.splitlines() if line.startswith("| TOPS/W |"))
    assert row == "| TOPS/W | " + " | ".join(f"{a['tops_per_w']:.3g}" for a in archs.values()) \
        + " |"
    head = next(line for line in md.splitlines() if line.startswith("| quantity | ReLaX-Net"))
    assert head == "| quantity | " + " | ".join(ARCH_NAMES[a] for a in archs) + " |"
    weights = next(line for line in md.splitlines() if line.startswith("| devices: weight "))
    assert weights == "| devices: weight elements | " + " | ".join(
        f"{a['devices']['weight_elements']:,}" for a in archs.values()) + " |"


def test_run_report_tabulates_the_training_cost(tiny_run, tmp_path):
    run_dir, result = tiny_run
    train = result["hardware"]["training"]
    _, md_path = write_report(run_dir, tmp_path / "r.html")
    md = md_path.read_text()
    assert "## Hardware: cost of training" in md
    for phase, joules in train["energy_j"].items():
        line = next(x for x in md.splitlines() if x.startswith(f"| {phase} |"))
        assert format_quantity(joules, "energy") in line
        if phase in train["time_s"]:
            assert format_quantity(train["time_s"][phase], "time") in line
    total = next(x for x in md.splitlines() if x.startswith("| total |"))
    assert format_quantity(train["energy_total_j"], "energy") in total
    assert format_quantity(train["time_total_s"], "time") in total
    assert f"{train['samples']:,} training samples" in md


def test_a_result_without_architectures_or_training_still_renders(tiny_run, tmp_path):
    src, result = tiny_run
    old = json.loads(json.dumps(result))
    del old["hardware"]["architectures"], old["hardware"]["training"]
    run_dir = tmp_path / "old"
    run_dir.mkdir()
    (run_dir / "result.json").write_text(json.dumps(old))
    for name in ("config.toml", "metrics.csv"):
        (run_dir / name).write_bytes((src / name).read_bytes())
    html_path, md_path = write_report(run_dir, tmp_path / "old.html")
    assert_figures_embedded(parse(html_path), ["training", "hardware", "timeline"])
    md = md_path.read_text()
    assert "Left out: result.json has no per-architecture accounts" in md
    assert "Left out: result.json has no hardware cost of training" in md
    assert "| TOPS/W |" not in md


def test_a_result_without_hardware_still_renders(tiny_run, tmp_path):
    src, result = tiny_run
    old = {k: v for k, v in result.items() if k != "hardware"}
    run_dir = tmp_path / "older"
    run_dir.mkdir()
    (run_dir / "result.json").write_text(json.dumps(old))
    (run_dir / "config.toml").write_bytes((src / "config.toml").read_bytes())
    html_path, _ = write_report(run_dir, tmp_path / "older.html")
    assert_figures_embedded(parse(html_path), ["timeline"])


def _stack(fig) -> dict[str, list]:
    """The bar segments of the architecture figure, by kind."""
    out: dict[str, list] = {}
    for p in fig.axes[0].patches:
        if (p.get_gid() or "").startswith("energy:"):
            out.setdefault(p.get_gid().split(":", 1)[1], []).append(p)
    return out


def test_the_architecture_bars_stack_to_their_totals(tiny_run):
    _, result = tiny_run
    archs = result["hardware"]["architectures"]
    fig = figures.architecture_energy_figure(archs)
    ax = fig.axes[0]
    totals = [a["energy_per_inference_j"] for a in archs.values()]
    assert ax.get_yscale() == ("log" if max(totals) / min(totals) > 10 else "linear")
    assert [t.get_text() for t in ax.get_xticklabels()] == [ARCH_NAMES[a] for a in archs]
    labels = [t.get_text() for t in ax.texts if t.get_gid() == "total"]
    assert labels == [format_quantity(t, "energy") for t in totals]
    stack = _stack(fig)
    assert set(stack) <= set(next(iter(archs.values()))["energy_breakdown_j"])
    tops = {}
    for bars in stack.values():
        for bar in bars:
            x = round(bar.get_x() + bar.get_width() / 2)
            tops[x] = max(tops.get(x, 0.0), bar.get_y() + bar.get_height())
    assert [tops[i] for i in range(len(archs))] == pytest.approx(totals, rel=1e-9)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert sorted(legend) == sorted(stack)


def test_alike_totals_stack_in_joules_on_a_linear_axis():
    archs = {"relaxnet": {"energy_per_inference_j": 3e-9,
                          "energy_breakdown_j": {"weights": 1e-9, "digital": 2e-9}},
             "rnn": {"energy_per_inference_j": 2e-9,
                     "energy_breakdown_j": {"weights": 0.5e-9, "digital": 1.5e-9, "adc": 0.0}}}
    fig = figures.architecture_energy_figure(archs)
    assert fig.axes[0].get_yscale() == "linear"
    stack = _stack(fig)
    assert sorted(stack) == ["digital", "weights"]  # a kind that costs nothing is not drawn
    assert [b.get_height() for b in stack["weights"]] == pytest.approx([1e-9, 0.5e-9])
    assert [b.get_y() for b in stack["digital"]] == pytest.approx([1e-9, 0.5e-9])


def test_scan_report_draws_accuracy_against_energy(tmp_path):
    store = tmp_path / "scan"
    records = tiny_store(store)
    doc = scan_report(store)
    assert "accuracy_energy" in {f.name for f in doc.figures()}
    assert "error bars: std over" in caption(doc, "accuracy_energy")
    html_path, _ = doc.write(tmp_path / "scan.html")
    assert_figures_embedded(parse(html_path), ["scaling", "accuracy_energy", "heatmap"])
    assert (tmp_path / "scan_figures" / "accuracy_energy.png").is_file()
    head, rows = table(doc, "energy / inference")
    done = [r for r in records if r.get("status") == "done"]
    banks23 = [r["result"]["hardware"]["energy_per_inference_j"] for r in done
               if (r["fields"]["network.banks"], r["fields"]["network.steps"]) == (2, 3)]
    mean = sum(banks23) / len(banks23)
    assert format_quantity(mean, "energy") in [r[head.index("energy / inference")] for r in rows]


def test_the_energy_figure_aggregates_seeds_as_the_table_does(tmp_path, monkeypatch):
    drawn = {}
    monkeypatch.setattr(figures, "accuracy_energy",
                        lambda series, metric="test accuracy": drawn.update(series=series)
                        or b"png")

    def accuracy(point):
        return 0.8 + 0.1 * (point.fields["network.banks"] == 2) \
            + 0.02 * point.fields["training.seed"]

    records = fake_store(tmp_path / "s", {"base": BASE, "seeds": [0, 1],
                                          "grid": {"network.banks": [1, 2]}}, accuracy)
    for r in records:  # the energy of a point: by its banks, a little different per seed
        r["result"]["hardware"] = {"energy_per_inference_j": 1e-9 * r["fields"]["network.banks"]
                                   * (1 + 0.1 * r["fields"]["training.seed"])}
        (tmp_path / "s" / "points" / f"{r['id']}.json").write_text(json.dumps(r))
    doc = scan_report(tmp_path / "s")
    assert sorted(drawn["series"]) == ["RNN", "ReLaX-Net (L_W = 2)"]
    (energy, mean, std, n), = drawn["series"]["ReLaX-Net (L_W = 2)"]
    assert energy == pytest.approx(2.1e-9) and mean == pytest.approx(0.91)
    assert std == pytest.approx(0.0141, abs=1e-4) and n == 2
    head, rows = table(doc, "energy / inference")
    assert [r[head.index("energy / inference")] for r in rows] == ["1.05 nJ", "2.1 nJ"]
    fig = figures.accuracy_energy_figure(drawn["series"])
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_xlabel().startswith("energy per inference")
    assert ax.get_legend().get_title().get_text() == "error bars: std over 2 seeds"


def test_a_scan_without_energies_says_why_the_figure_is_left_out(tmp_path):
    fake_store(tmp_path / "s", {"base": BASE, "grid": {"network.banks": [1, 2]}},
               lambda p: 0.9)
    doc = scan_report(tmp_path / "s")
    assert "accuracy_energy" not in {f.name for f in doc.figures()}
    assert "Left out: no finished point has an energy per inference" in doc.to_markdown("f")
