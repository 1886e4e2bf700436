"""``relaxsim report``: the HTML of a tiny run and a tiny scan store parses, embeds every figure
its table of contents lists, shows the measured numbers; bad input is one line and exit 2."""

from __future__ import annotations

import html
import json
from html.parser import HTMLParser
from pathlib import Path

import pytest

import relaxsim
from relaxsim.cli.app import main
from relaxsim.report.document import write_report
from relaxsim.scans.spec import load_spec

TINY = {"network.hidden": 8, "training.epochs": 2}


class Page(HTMLParser):
    """The anchors of the table of contents, and per element id the images inside it."""

    def __init__(self):
        super().__init__()
        self.toc, self.ids, self.images, self.stack, self.in_nav = [], set(), {}, [], False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "nav":
            self.in_nav = True
        if self.in_nav and tag == "a" and a.get("href", "").startswith("#"):
            self.toc.append(a["href"][1:])
        if tag == "img":  # void element: count it for every open element with an id
            for ident in self.stack:
                if ident:
                    self.images.setdefault(ident, []).append(a.get("src", ""))
            return
        self.stack.append(a.get("id"))
        if "id" in a:
            self.ids.add(a["id"])

    def handle_endtag(self, tag):
        if tag == "nav":
            self.in_nav = False
        if tag != "img" and self.stack:
            self.stack.pop()


def parse(path: Path) -> Page:
    page = Page()
    page.feed(path.read_text())
    page.close()
    return page


def assert_figures_embedded(page: Page, figures: list[str]):
    assert page.toc, "no table of contents"
    for anchor in page.toc:
        assert anchor in page.ids, f"TOC entry #{anchor} has no target"
    figs = [a for a in page.toc if a.startswith("fig-")]
    assert sorted(figs) == sorted(f"fig-{name}" for name in figures)
    for anchor in figs:
        srcs = page.images.get(anchor, [])
        assert srcs and srcs[0].startswith("data:image/png;base64,"), anchor
        assert len(srcs[0]) > 1000


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "run"
    result = relaxsim.run(relaxsim.load_config(overrides=TINY), out=out)
    return out, result


def test_run_report_embeds_its_figures_and_numbers(tiny_run, capsys):
    run_dir, result = tiny_run
    assert main(["report", str(run_dir)]) == 0
    html_path = run_dir / "report.html"
    assert str(html_path) in capsys.readouterr().out
    page = parse(html_path)
    assert_figures_embedded(page, ["training", "hardware", "architectures", "timeline"])
    text = html_path.read_text()
    assert f"{result['test_accuracy']:.4f}" in text
    assert f"{result['val_accuracy']:.4f}" in text
    assert f"{result['params']['total']:,}" in text
    assert "<script" not in text and "http://" not in text and "https://" not in text
    md = (run_dir / "report.md").read_text()
    assert f"{result['test_accuracy']:.4f}" in md
    for name in ("training", "hardware", "timeline"):
        png = run_dir / "report_figures" / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"report_figures/{name}.png" in md


def test_run_report_says_why_a_figure_is_left_out(tiny_run, tmp_path):
    src, _ = tiny_run
    run_dir = tmp_path / "partial"
    run_dir.mkdir()
    for name in ("result.json", "config.toml"):
        (run_dir / name).write_bytes((src / name).read_bytes())
    html_path, _ = write_report(run_dir, tmp_path / "out.html")
    page = parse(html_path)
    assert_figures_embedded(page, ["hardware", "architectures", "timeline"])
    assert "Left out: the run directory has no metrics.csv." in html_path.read_text()


def tiny_store(root: Path) -> list[dict]:
    """A scan store in the real layout: a (L_W, L_T) grid at N = 6, two seeds, one failed point."""
    spec = load_spec({"description": "tiny grid", "seeds": [0, 1],
                      "base": {"network": {"hidden": 6}, "training": {"epochs": 1},
                               "hardware": {"mode": "ideal"}},
                      "grid": {"network.banks": [1, 2], "network.steps": [2, 3]}})
    (root / "points").mkdir(parents=True)
    (root / "scan.toml").write_text(spec.to_toml())
    records = []
    for i, point in enumerate(spec.expand()):
        record = {"id": point.id, "fields": point.fields, "labels": point.labels}
        if i == 0:
            record.update(status="failed", config=point.config.to_dict(),
                          error="MemoryError: out of memory\nmore", traceback="...")
        else:
            record.update(status="done", result=relaxsim.run(point.config))
        record = json.loads(json.dumps(record))
        (root / "points" / f"{point.id}.json").write_text(json.dumps(record))
        records.append(record)
    return records


def test_scan_report_scaling_heatmap_and_failed_points(tmp_path):
    store = tmp_path / "scan"
    records = tiny_store(store)
    out = tmp_path / "scan-report.html"
    assert main(["report", str(store), "--out", str(out)]) == 0
    page = parse(out)
    assert_figures_embedded(page, ["scaling", "accuracy_energy", "heatmap"])
    text = out.read_text()
    assert "MemoryError: out of memory" in text  # the failed point is listed
    assert records[0]["id"] in text
    done = [r["result"]["test_accuracy"] for r in records[1:]
            if (r["fields"]["network.banks"], r["fields"]["network.steps"]) == (2, 3)]
    assert len(done) == 2
    mean = sum(done) / 2
    assert f"{mean:.3f}" in text or f"{mean:.4f}" in text
    assert (tmp_path / "scan-report.md").is_file()


@pytest.mark.parametrize("setup", ["empty", "missing", "file", "bad_json"])
def test_bad_report_input_is_one_line_exit_2(setup, tmp_path, capsys):
    target = tmp_path / "x"
    if setup == "empty":
        target.mkdir()
    elif setup == "file":
        target.write_text("hello")
    elif setup == "bad_json":
        target.mkdir()
        (target / "result.json").write_text("{not json")
    assert main(["report", str(target)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("relaxsim: error: ") and "\n" not in err and "Traceback" not in err


@pytest.mark.parametrize("damage, why", [
    (lambda r: r.update(result="x"), "no result with its config"),
    (lambda r: r["result"].pop("test_accuracy"), "no test accuracy in its result"),
    (lambda r: r["result"].update(hardware=None), "its result's hardware is not a table"),
    (lambda r: r["result"]["config"]["network"].update(steps=0), "its config is invalid"),
    (lambda r: r.update(id="elsewhere"), "its id 'elsewhere' is not its file name"),
])
def test_a_damaged_point_is_reported_as_failed_saying_why(tmp_path, capsys, damage, why):
    store = tmp_path / "scan"
    records = tiny_store(store)
    broken, pid = records[1], records[1]["id"]
    damage(broken)
    (store / "points" / f"{pid}.json").write_text(json.dumps(broken))
    out = tmp_path / "scan-report.html"
    assert main(["report", str(store), "--out", str(out)]) == 0, capsys.readouterr().err
    text = html.unescape(out.read_text())
    assert "unusable result file: " + why in text
