"""``relaxsim report``: a self-contained HTML report (and its Markdown twin) of a run or a scan.

A :class:`Document` is a list of sections, each holding paragraphs, tables and figures (PNG bytes).
It renders to one HTML file with the figures embedded as base64 PNG (no network needed) and to a
Markdown file with the PNGs written beside it in ``<stem>_figures/``. :func:`run_report` and
:func:`scan_report` build the document of a run directory and of a scan store; each figure is drawn
only when its data exists, otherwise a sentence says why it is left out.
"""

from __future__ import annotations

import base64
import csv
import html
import json
import math
import re
import statistics
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from relaxsim.config import network_kind
from relaxsim.errors import RelaxsimError
from relaxsim.hardware import ARCH_NAMES, SETTLE_WARNING
from relaxsim.io import write_text
from relaxsim.report import figures
from relaxsim.scans.groups import (
    SIZE_FIELDS,
    Group,
    axis_unit,
    group_points,
    is_number,
    show_value,
    varied_fields,
    x_field,
)

CSS = """body{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #bbb;padding:.2em .6em;
text-align:left}th{background:#eee}figure{margin:1em 0}figure img{max-width:100%}
figcaption{font-size:.9em;color:#444}.pass{color:#080;font-weight:bold}
.fail{color:#b00;font-weight:bold}pre{background:#f6f6f6;padding:.5em;overflow-x:auto}"""


# -- the document ------------------------------------------------------------------------------

@dataclass
class Figure:
    name: str          # file stem and anchor: fig-<name>
    png: bytes
    caption: str


@dataclass
class Section:
    title: str
    anchor: str
    parts: list = field(default_factory=list)   # ("p", text) | ("table", head, rows) | Figure
    status: str | None = None                   # "PASS" / "FAIL" for validation checks

    def text(self, text: str) -> None:
        self.parts.append(("p", text))

    def pre(self, text: str) -> None:
        self.parts.append(("pre", text))

    def table(self, head: list[str], rows: list[list]) -> None:
        self.parts.append(("table", head, [[str(c) for c in row] for row in rows]))

    def figure(self, name: str, png: bytes, caption: str) -> None:
        self.parts.append(Figure(name, png, caption))


@dataclass
class Document:
    title: str
    sections: list[Section] = field(default_factory=list)

    def section(self, title: str, status: str | None = None) -> Section:
        anchor = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-") or "section"
        taken = {s.anchor for s in self.sections}
        base, n = anchor, 1
        while anchor in taken:
            n += 1
            anchor = f"{base}-{n}"
        sec = Section(title, anchor, status=status)
        self.sections.append(sec)
        return sec

    def figures(self) -> list[Figure]:
        return [p for s in self.sections for p in s.parts if isinstance(p, Figure)]

    def to_html(self) -> str:
        e = html.escape
        out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
               f"<title>{e(self.title)}</title><style>{CSS}</style></head><body>",
               f"<h1>{e(self.title)}</h1>", '<nav id="contents"><h2>Contents</h2><ol>']
        for s in self.sections:
            out.append(f'<li><a href="#{s.anchor}">{e(_title(s))}</a></li>')
        out.append("</ol>")
        figs = self.figures()
        if figs:
            out.append('<h3>Figures</h3><ol class="figures">')
            out += [f'<li><a href="#fig-{f.name}">{e(f.caption.split(".")[0])}</a></li>'
                    for f in figs]
            out.append("</ol>")
        out.append("</nav>")
        for s in self.sections:
            cls = f' class="{s.status.lower()}"' if s.status else ""
            out.append(f'<section id="{s.anchor}"><h2{cls}>{e(_title(s))}</h2>')
            for part in s.parts:
                if isinstance(part, Figure):
                    data = base64.b64encode(part.png).decode("ascii")
                    out.append(f'<figure id="fig-{part.name}"><img alt="{e(part.caption)}" '
                               f'src="data:image/png;base64,{data}">'
                               f"<figcaption>{e(part.caption)}</figcaption></figure>")
                elif part[0] == "p":
                    out.append(f"<p>{e(part[1])}</p>")
                elif part[0] == "pre":
                    out.append(f"<pre>{e(part[1])}</pre>")
                else:
                    _, head, rows = part
                    out.append("<table><thead><tr>" + "".join(f"<th>{e(h)}</th>" for h in head)
                               + "</tr></thead><tbody>")
                    out += ["<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>"
                            for row in rows]
                    out.append("</tbody></table>")
            out.append("</section>")
        out.append("</body></html>")
        return "\n".join(out) + "\n"

    def to_markdown(self, figure_dir: str) -> str:
        out = [f"# {self.title}", "", "## Contents", ""]
        out += [f"{i}. [{_title(s)}](#{s.anchor})" for i, s in enumerate(self.sections, 1)]
        for s in self.sections:
            out += ["", f'<a id="{s.anchor}"></a>', f"## {_title(s)}", ""]
            for part in s.parts:
                if isinstance(part, Figure):
                    out += [f'<a id="fig-{part.name}"></a>',
                            f"![{part.caption}]({figure_dir}/{part.name}.png)", "",
                            f"*{part.caption}*", ""]
                elif part[0] == "p":
                    out += [part[1], ""]
                elif part[0] == "pre":
                    out += ["```", part[1], "```", ""]
                else:
                    _, head, rows = part
                    out.append("| " + " | ".join(head) + " |")
                    out.append("|" + "---|" * len(head))
                    out += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |"
                            for row in rows]
                    out.append("")
        return "\n".join(out).rstrip() + "\n"

    def write(self, html_path: str | Path) -> tuple[Path, Path]:
        """Write ``html_path``, its Markdown twin (``.md``) and the twin's PNGs, atomically."""
        html_path = Path(html_path)
        if not html_path.parent.is_dir():
            raise RelaxsimError(f"--out {str(html_path)!r}: directory "
                                f"{str(html_path.parent)!r} does not exist")
        md_path = html_path.with_suffix(".md")
        fig_dir = html_path.parent / f"{html_path.stem}_figures"
        figs = self.figures()
        if figs:
            fig_dir.mkdir(exist_ok=True)
        for f in figs:
            from relaxsim.io import atomic_open

            with atomic_open(fig_dir / f"{f.name}.png", "wb") as fh:
                fh.write(f.png)
        write_text(md_path, self.to_markdown(fig_dir.name))
        write_text(html_path, self.to_html())
        return html_path, md_path


def _title(s: Section) -> str:
    return f"{s.title}: {s.status}" if s.status else s.title


# -- formatting --------------------------------------------------------------------------------

def fmt_acc(x) -> str:
    """Accuracies as the command line prints them: ``0.9777``."""
    return "n/a" if x is None else f"{float(x):.4f}"


def fmt_quantity(x: float, dimension: str) -> str:
    from relaxsim.devices import format_quantity

    return format_quantity(float(x), dimension)


def fmt_rate(per_s: float) -> str:
    """Inferences per second with an SI prefix: ``3.689 G/s``."""
    return fmt_quantity(per_s, "frequency").replace("Hz", "/s")


def mean_std(values: list[float]) -> tuple[float, float]:
    return (statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0)


# -- a run -------------------------------------------------------------------------------------

def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise RelaxsimError(f"{path}: cannot be read as JSON ({exc})") from None
    if not isinstance(data, dict):
        raise RelaxsimError(f"{path}: not a JSON object")
    return data


def run_report(run_dir: str | Path) -> Document:
    """The report of a directory written by ``relaxsim run``."""
    d = Path(run_dir)
    res = _read_json(d / "result.json")
    cfg = res.get("config", {})
    net = cfg.get("network", {})
    task = res.get("task", {}).get("name", "?")
    doc = Document(f"relaxsim run report: {d.name}")

    s = doc.section("Summary")
    if net:
        schedule = net["schedule"] if isinstance(net["schedule"], str) else "explicit"
        s.text(f"{network_kind(int(net['banks']), int(net['steps']))} on {task}: N = {net['hidden']}, L_W = {net['banks']}, "
               f"L_T = {net['steps']} ({schedule}), {net['activation']}.")
    rows = [["test accuracy", fmt_acc(res.get("test_accuracy"))],
            ["validation accuracy (best epoch)", fmt_acc(res.get("val_accuracy"))],
            ["test loss (nats)", f"{res['test_loss']:.4f}" if "test_loss" in res else "n/a"],
            ["train loss at best epoch (nats)",
             f"{res['train_loss']:.4f}" if "train_loss" in res else "n/a"],
            ["best epoch", f"{res.get('best_epoch')} of {res.get('epochs')}"]]
    if "test_accuracy_ideal" in res:
        rows.append(["test accuracy on an ideal machine", fmt_acc(res["test_accuracy_ideal"])])
    if "test_bits_per_char" in res:
        rows.append(["test bits per character", f"{res['test_bits_per_char']:.4f}"])
    p = res.get("params", {})
    rows += [[f"parameters: {k}", f"{v:,}"] for k, v in p.items()]
    if "seconds" in res:
        rows.append(["wall time of the run", f"{res['seconds']:.1f} s"])
    rows.append(["relaxsim version", res.get("relaxsim_version", "?")])
    s.table(["quantity", "value"], rows)

    s = doc.section("Training curves")
    metrics = d / "metrics.csv"
    if metrics.is_file():
        with metrics.open(newline="") as fh:
            rows = list(csv.DictReader(fh))
        if rows:
            s.figure("training", figures.training_curves(rows),
                     f"Training curves: loss and validation accuracy per epoch "
                     f"({len(rows)} epochs; the best epoch by validation accuracy, "
                     f"{res.get('best_epoch')}, gave the saved weights).")
        else:
            s.text("Left out: metrics.csv holds no epochs.")
    else:
        s.text("Left out: the run directory has no metrics.csv.")

    hw = res.get("hardware")
    s = doc.section("Hardware: energy, latency and throughput")
    if hw and "energy_breakdown_j" in hw:
        _hardware_tables(s, hw)
        s.figure("hardware", figures.energy_and_speed(hw),
                 "Energy per inference by device kind (log scale), and latency and throughput "
                 "of ReLaX-Net against a single reprogrammed bank and an unrolled DNN, from the "
                 "SimPy model of the machine.")
    else:
        s.text("Left out: result.json has no hardware section (a run of an older relaxsim).")

    s = doc.section("Hardware: energy by architecture")
    archs = hw.get("architectures") if isinstance(hw, dict) else None
    if isinstance(archs, dict) and archs:
        s.text("The same network on four machines built from the same devices (see "
               "docs/energy.md): ReLaX-Net, the RNN (one bank), a single bank reprogrammed "
               "between steps and the unrolled DNN (L_T banks and element layers).")
        s.table(*_architecture_table(archs))
        s.figure("architectures", figures.architecture_energy(archs),
                 "Energy per inference by architecture, split by device kind: a bar's height is "
                 "its energy per inference (written on top), its colours each kind's share "
                 "(of the bar's drawn height, when the axis is logarithmic).")
    else:
        s.text("Left out: result.json has no per-architecture accounts (a run of an older "
               "relaxsim).")

    s = doc.section("Hardware: cost of training")
    train = hw.get("training") if isinstance(hw, dict) else None
    if isinstance(train, dict) and train.get("energy_j"):
        _training_table(s, train)
    else:
        s.text("Left out: result.json has no hardware cost of training (a run of an older "
               "relaxsim).")

    s = doc.section("Timeline of one inference")
    try:
        sim, title = _resimulate(d, cfg)
    except Exception as exc:  # noqa: BLE001  (a report must not die on an old config)
        s.text(f"Left out: the run's config could not be simulated again ({exc}).")
    else:
        s.text("Re-simulated from the run's config with Hardware.simulate(record=True): one row "
               "per bank, switch, active element and the readout, a bar per busy interval.")
        s.figure("timeline", figures.timeline(sim, title),
                 f"Timeline of one inference: {title}.")

    s = doc.section("Configuration")
    if (d / "config.toml").is_file():
        s.text("The resolved config (config.toml); `relaxsim run config.toml` repeats the run.")
        s.pre((d / "config.toml").read_text().rstrip())
    else:
        s.text("Left out: the run directory has no config.toml.")

    s = doc.section("Weights")
    wpath = d / "weights.npz"
    if wpath.is_file():
        with np.load(wpath) as z:
            s.table(["array", "shape", "RMS", "max |w|"],
                    [[k, "x".join(map(str, z[k].shape)), f"{np.sqrt(np.mean(z[k] ** 2)):.4g}",
                      f"{np.max(np.abs(z[k])):.4g}"] for k in z.files])
    else:
        s.text("Left out: the run directory has no weights.npz.")
    return doc


def _hardware_tables(s: Section, hw: dict) -> None:
    s.table(["quantity", "value"], [
        ["mode", hw.get("mode", "?")],
        ["devices (switch / weights / active)",
         f"{hw.get('switch')} / {hw.get('weights')} / {hw.get('active')}"],
        ["pipelining", hw.get("pipelining", "?")],
        ["energy per inference", fmt_quantity(hw["energy_per_inference_j"], "energy")],
        *[[f"  energy: {k}", fmt_quantity(v, "energy")]
          for k, v in hw["energy_breakdown_j"].items()],
        ["simulated hardware time of training (forward passes and programming; every phase: below)",
         fmt_quantity(hw.get("training_hardware_time_s", 0.0), "time")],
        ["programming share of that time", f"{100 * hw.get('programming_fraction', 0.0):.2f} %"],
    ])
    archs = {"relaxnet": hw, **hw.get("compare", {})}
    s.table(["architecture", "latency per inference", "throughput (inferences/s)",
             "latency ratio"],
            [[ARCH_NAMES.get(a, a), fmt_quantity(f["latency_s"], "time"),
              fmt_rate(f["throughput_per_s"]), f"{f['latency_s'] / hw['latency_s']:.3g}x"]
             for a, f in archs.items()])


def _count(x) -> str:
    """A count with thousands separators (counts may be stored as floats: ``2336.0``)."""
    x = float(x)
    return f"{x:,.0f}" if x.is_integer() else f"{x:,.4g}"


def _tops(x) -> str:
    """TOPS/W as ``relaxsim timing`` prints it: ``0.195``."""
    return f"{float(x):.3g}"


def _architecture_table(archs: dict) -> tuple[list[str], list[list[str]]]:
    """The architectures side by side, as ``relaxsim timing`` prints them: banks, throughput,
    devices by kind, static power, energy per inference, MACs, energy per MAC, TOPS/W. A figure
    an account lacks is ``n/a``."""
    from relaxsim.energy import DEVICE_KINDS

    names = list(archs)

    def row(label: str, key: str, fmt) -> list[str]:
        return [label, *(fmt(archs[a][key]) if archs[a].get(key) is not None else "n/a"
                         for a in names)]

    devices = [k for k in DEVICE_KINDS if any(k in archs[a].get("devices", {}) for a in names)]
    devices += [k for a in names for k in archs[a].get("devices", {}) if k not in devices]
    rows = [row("banks", "banks", _count),
            row("throughput (inferences/s)", "throughput_per_s", fmt_rate),
            row("latency per inference", "latency_s", lambda x: fmt_quantity(x, "time"))]
    rows += [[f"devices: {k.replace('_', ' ')}",
              *(_count(archs[a]["devices"][k]) if k in archs[a].get("devices", {}) else "n/a"
                for a in names)] for k in devices]
    rows += [row("static power", "static_power_total_w", lambda x: fmt_quantity(x, "power")),
             row("energy per inference", "energy_per_inference_j",
                 lambda x: fmt_quantity(x, "energy")),
             row("MACs per inference", "macs_per_inference", _count),
             row("energy per MAC (J/MAC)", "j_per_mac", lambda x: fmt_quantity(x, "energy")),
             row("TOPS/W", "tops_per_w", _tops)]
    return ["quantity", *(ARCH_NAMES.get(a, a) for a in names)], rows


TRAINING_PHASES = ("forward", "readout", "digital", "programming", "static")


def _training_table(s: Section, train: dict) -> None:
    """The hardware time and energy of the run's training, by phase."""
    times, energy = train.get("time_s", {}), train.get("energy_j", {})
    total = train.get("energy_total_j", sum(energy.values()))
    phases = [p for p in TRAINING_PHASES if p in times or p in energy]
    phases += [p for p in (*times, *energy) if p not in phases]
    said = [f"{_count(train[k])} {what}" for k, what in (
        ("samples", "training samples"), ("batches", "batches"),
        ("programming_events", "programming events of the banks"),
        ("digital_macs", "multiply-accumulates on the digital processor")) if k in train]
    s.text("Training on the machine" + (f" ({', '.join(said)})" if said else "")
           + ": the phases one after another; the static power runs through the phases after "
           "the forward pass (docs/energy.md).")
    rows = [[p, fmt_quantity(times[p], "time") if p in times else "(during the others)",
             fmt_quantity(energy[p], "energy") if p in energy else "n/a",
             f"{100 * energy[p] / total:.1f} %" if p in energy and total > 0 else "n/a"]
            for p in dict.fromkeys(phases)]
    rows.append(["total",
                 fmt_quantity(train.get("time_total_s", sum(times.values())), "time"),
                 fmt_quantity(total, "energy"), "100 %" if total > 0 else "n/a"])
    s.table(["phase", "hardware time", "energy", "share of the energy"], rows)


def _resimulate(d: Path, cfg_dict: dict):
    from relaxsim.assembly import assemble
    from relaxsim.config import load_config, validate
    from relaxsim.hardware import describe_clock

    cfg = load_config(d / "config.toml") if (d / "config.toml").is_file() else validate(cfg_dict)
    net = cfg.network
    machine = assemble(cfg)
    hw = machine.hardware
    sim = machine.timing.trace(1, pipelining="sequential")
    title = (f"{network_kind(net.banks, net.steps)} L_W = {net.banks}, "
             f"L_T = {net.steps}, {describe_clock(hw)}: "
             f"{fmt_quantity(sim.latency(), 'time')} per inference")
    return sim, title


# -- a scan ------------------------------------------------------------------------------------

def load_points(store_dir: Path) -> list[dict]:
    """The stored points, each checked as a scan checks it: a file that is not a usable record
    is reported as a failed point saying why."""
    from relaxsim.scans.store import read_point_file

    points = []
    for path in sorted((store_dir / "points").glob("*.json")):
        rec, problem = read_point_file(path)
        points.append(rec if rec is not None else {
            "id": path.stem, "status": "failed", "error": f"unusable result file: {problem}"})
    return points


def scan_report(store_dir: str | Path) -> Document:
    """The report of a scan store (``scan.toml``, ``points/*.json``)."""
    from relaxsim.io import read_toml

    d = Path(store_dir)
    spec = read_toml(d / "scan.toml", "scan spec")
    recs = load_points(d)
    done = [r for r in recs if r.get("status") == "done" and "result" in r]
    failed = [r for r in recs if r.get("status") != "done" or "result" not in r]
    missing = _missing(d)
    doc = Document(f"relaxsim scan report: {d.name}")

    s = doc.section("Summary")
    if spec.get("description"):
        s.text(str(spec["description"]))
    s.table(["points", "count"], [["done", len(done)], ["failed", len(failed)],
                                  ["missing (not yet run)", "n/a" if missing is None else missing]])

    varied = varied_fields(spec, recs)
    groups = group_points(done, varied)
    xf = x_field(groups, varied)
    s = doc.section(f"Accuracy against {xf}" if xf else "Accuracy against bank parameters")
    if groups:
        _accuracy_table(s, groups, varied)
        _scaling_figure(s, groups, varied)
    else:
        s.text("Left out: the store holds no finished point.")

    s = doc.section("Accuracy against energy per inference")
    if groups:
        _energy_figure(s, groups)
    else:
        s.text("Left out: the store holds no finished point.")

    s = doc.section("Accuracy over the (L_W, L_T) grid")
    grid = _grid(groups, varied)
    if grid is None:
        s.text("Left out: no fixed N has finished points over at least two L_W and two L_T "
               "values.")
    else:
        hidden, banks, steps, acc, note = grid
        s.figure("heatmap", figures.heatmap(banks, steps, acc, hidden, note),
                 f"Mean test accuracy over the (L_W, L_T) grid at N = {hidden}"
                 + (f", {note}" if note else "") + " (blank: no finished point).")

    cautioned = [r for r in done if r["result"].get("hardware", {}).get("warnings")]
    if cautioned:  # the section appears only where the clock left some device unsettled
        s = doc.section("Machine warnings")
        s.text("Points whose machine the step timing leaves unsettled (switch leak or element "
               f"carry-over above {100 * SETTLE_WARNING:g} % on some step, see `relaxsim timing`):"
               " their accuracy says "
               "more about the clock than about the architecture.")
        s.table(["id", "point", "warning"],
                [[r.get("id", "?"), _describe(r), w] for r in cautioned
                 for w in r["result"]["hardware"]["warnings"]])

    s = doc.section("Failed points")
    if failed:
        s.table(["id", "point", "error"],
                [[r.get("id", "?"), _describe(r), str(r.get("error", "")).splitlines()[0]
                  if r.get("error") else ""] for r in failed])
    else:
        s.text("None: every stored point finished.")
    return doc


SIZE_NAMES = {"network.hidden": "N", "network.banks": "L_W", "network.steps": "L_T"}


def _accuracy_table(s: Section, groups: list[Group], varied: list[str]) -> None:
    """One row per combination of the varied fields' values: a column per varied field (the
    network sizes in the L_W, L_T and N columns), the seeds' mean ± std in the accuracy."""
    others = [n for n in varied if n not in SIZE_FIELDS]
    budgets = any(g.budget is not None for g in groups)
    several = any(g.seeds > 1 for g in groups)
    rows = []
    for g in groups:
        results = g.results
        acc = mean_std([x["test_accuracy"] for x in results])
        pbanks = statistics.fmean(x["params"]["banks"] for x in results)
        energy = group_energy(g)
        rows.append(([f"{g.budget:,}" if isinstance(g.budget, int) else str(g.budget)]
                     if budgets else [])
                    + [show_value(n, v) for n, v in zip(varied, g.values) if n in others]
                    + [g.kind, g.banks, g.steps, g.hidden, f"{pbanks:,.0f}",
                       f"{acc[0]:.4f} ± {acc[1]:.4f}" if len(results) > 1 else fmt_acc(acc[0]),
                       len(results),
                       fmt_acc(statistics.fmean(x["val_accuracy"] for x in results)),
                       fmt_quantity(energy, "energy") if energy is not None else "n/a"])
    sizes = [f"{n} ({SIZE_NAMES[n]})" for n in varied if n in SIZE_FIELDS]
    s.text("Varied: " + (", ".join(others + sizes) or "nothing (the base config)")
           + f"; one row per combination ({len(groups)} rows). "
           + ("Test accuracy: mean ± standard deviation over the seeds of each row"
              if several else "Test accuracy of each row's single seed (no spread)")
           + "; RNN: L_W = 1, DNN: L_W = L_T, ReLaX-Net in between.")
    s.table((["bank budget"] if budgets else []) + others
            + ["network", "L_W", "L_T", "N", "bank params", "test accuracy", "seeds",
               "val accuracy", "energy / inference"], rows)


def group_energy(g: Group) -> float | None:
    """The energy per inference of a group: the mean over its seeds of the results'
    ``hardware.energy_per_inference_j`` (None when a seed's result has none, a result of an older
    relaxsim)."""
    energy = [(x.get("hardware") or {}).get("energy_per_inference_j") for x in g.results]
    if not energy or None in energy:
        return None
    return statistics.fmean(float(e) for e in energy)


def _energy_figure(s: Section, groups: list[Group]) -> None:
    """Test accuracy against energy per inference, one point per group (the seeds' mean and
    spread, as in the table), one marker and colour per network kind."""
    series = defaultdict(list)
    left = 0
    for g in groups:
        energy = group_energy(g)
        if energy is None or not np.isfinite(energy) or energy <= 0:
            left += 1
            continue
        kind = _line_name(g, [], {"steps": False, "hidden": False, "budget": False}, None)
        series[kind].append((energy, *mean_std([x["test_accuracy"] for x in g.results]),
                             g.seeds))
    if not series:
        s.text("Left out: no finished point has an energy per inference (results of an older "
               "relaxsim, or of a machine that costs nothing).")
        return
    spread = figures.spread_text([p[3] for pts in series.values() for p in pts])
    s.figure("accuracy_energy", figures.accuracy_energy(dict(series)),
             "Test accuracy against the machine's energy per inference (log axis), one point "
             f"per row of the table, one marker per network kind ({spread})."
             + (f" {left} row{'s' if left != 1 else ''} without an energy left out." if left
                else ""))


def _line_name(g: Group, varied: list[str], parts: dict[str, bool], skip: str | None) -> str:
    """A figure line's name: the network kind, then whatever else tells its groups apart."""
    name = g.kind if g.kind != "ReLaX-Net" else f"ReLaX-Net (L_W = {g.banks})"
    if parts["steps"]:  # one line per depth, else lines zig-zag between depths
        name += f", L_T = {g.steps}"
    if parts["hidden"]:
        name += f", N = {g.hidden}"
    if parts["budget"]:
        name += f", budget {g.budget:,}" if isinstance(g.budget, int) else f", budget {g.budget}"
    for n, v in zip(varied, g.values):
        if n not in SIZE_FIELDS and n != skip and parts.get(n):
            name += f", {n} = {show_value(n, v)}"
    return name


def _scaling_figure(s: Section, groups: list[Group], varied: list[str]) -> None:
    """Accuracy against the first numeric varied field other than the network sizes, one line per
    combination of the rest; else against bank parameters, one line per network kind."""
    xf = x_field(groups, varied)
    parts = {"steps": len({g.steps for g in groups}) > 1,
             "hidden": xf is not None and len({g.hidden for g in groups}) > 1,
             "budget": xf is not None and len({g.budget for g in groups}) > 1}
    for i, n in enumerate(varied):
        parts.setdefault(n, len({g.values[i] for g in groups}) > 1)
    series = defaultdict(list)
    if xf is None:
        for g in groups:
            pbanks = statistics.fmean(x["params"]["banks"] for x in g.results)
            series[_line_name(g, varied, parts, None)].append(
                (pbanks, *mean_std([x["test_accuracy"] for x in g.results]), g.seeds))
        x_label, against = figures.BANK_PARAMS_LABEL, "bank-parameter count"
    else:
        col = varied.index(xf)
        unit, size = axis_unit(xf, [g.values[col] for g in groups])
        for g in groups:
            series[_line_name(g, varied, parts, xf)].append(
                (g.values[col] / size, *mean_std([x["test_accuracy"] for x in g.results]),
                 g.seeds))
        x_label = f"{xf} ({unit})" if unit else xf
        against = x_label
    spread = figures.spread_text([g.seeds for g in groups])
    s.figure("scaling", figures.scaling(series, x_label),
             f"Test accuracy against {against}, one line per "
             + ("network kind" if xf is None else "combination of the other varied fields")
             + f" ({spread}).")


def _describe(rec: dict) -> str:
    items = {**rec.get("labels", {}), **rec.get("fields", {})}
    return ", ".join(f"{k} = {v}" for k, v in items.items()) or "(base)"


def _missing(d: Path) -> int | None:
    """Points of the spec with no result file in the store (None: the spec cannot be expanded)."""
    try:
        from relaxsim.scans.store import Store

        store = Store(d)
        points = store.spec().expand()
    except Exception:  # noqa: BLE001  (a spec this relaxsim cannot expand: count unknown)
        return None
    return sum(not store.holds(p) for p in points)


def _grid(groups: list[Group], varied: list[str]):
    """The (L_W, L_T) grid at one N and one value of every other varied field (the one with the
    most cells): ``(hidden, banks, steps, mean accuracy array, note)`` or None."""
    cells = defaultdict(lambda: defaultdict(list))
    for g in groups:
        others = tuple((n, v) for n, v in zip(varied, g.values) if n not in SIZE_FIELDS)
        cells[(g.hidden, others)][(g.banks, g.steps)] += [x["test_accuracy"] for x in g.results]
    best = None
    for (hidden, others), by_cell in cells.items():
        banks = sorted({b for b, _ in by_cell})
        steps = sorted({t for _, t in by_cell})
        if len(banks) >= 2 and len(steps) >= 2 and (best is None or len(by_cell) > best[0]):
            acc = np.full((len(banks), len(steps)), np.nan)
            for (b, t), v in by_cell.items():
                acc[banks.index(b), steps.index(t)] = statistics.fmean(v)
            note = ", ".join(f"{n} = {show_value(n, v)}" for n, v in others)
            best = (len(by_cell), hidden, banks, steps, acc, note)
    return None if best is None else best[1:]


# -- entry point -------------------------------------------------------------------------------

def report(path: str | Path, metric: str | None = None, against: str | None = None,
           front: list[str] | None = None) -> Document:
    """The report of ``path``: a run directory, a scan store, a search (``search.toml``) or a
    tolerance study (``tolerance.toml``; its retrain mode's scan store). For stores: ``metric``
    (a result field, default ``test_accuracy``) against the varied field ``against``, and the
    Pareto front of the two metrics of ``front`` (``["test_accuracy:max",
    "hardware.energy_per_inference_j:min"]``; a search's objectives by default), the seeds
    aggregated (:func:`metric_sections`)."""
    d = Path(path)
    if not d.is_dir():
        raise RelaxsimError(f"{path}: not a directory; give a run directory (result.json), "
                            "a scan store (scan.toml), a search (search.toml) or a tolerance "
                            "study (tolerance.toml)")
    if (d / "result.json").is_file():
        if metric or against or front:
            raise RelaxsimError("--metric, --against, --front: for a scan store, a search or a "
                                "tolerance study (a run has one point)")
        return run_report(d)
    if (d / "tolerance.toml").is_file():
        if (d / "scan" / "scan.toml").is_file():  # retrain mode: its points are a scan
            doc = scan_report(d / "scan")
            metric_sections(doc, d / "scan", metric, against, front)
            return doc
        return tolerance_report(d, metric, against, front)
    if (d / "scan.toml").is_file():
        doc = scan_report(d)
        metric_sections(doc, d, metric, against, front)
        return doc
    if (d / "search.toml").is_file():
        return search_report(d, metric, against, front)
    raise RelaxsimError(f"{path}: not a run directory (result.json), scan store (scan.toml), "
                        "search (search.toml) or tolerance study (tolerance.toml)")


def write_report(path: str | Path, out: str | Path | None = None, metric: str | None = None,
                 against: str | None = None, front: list[str] | None = None
                 ) -> tuple[Path, Path]:
    """Build the report of ``path`` and write it to ``out`` (default ``path/report.html``)."""
    doc = report(path, metric, against, front)
    return doc.write(Path(out) if out else Path(path) / "report.html")


# -- any metric against any varied field, and the front of any two ----------------------------

def metric_value(result: dict, name: str) -> float | None:
    """The result field ``name`` (dotted: ``hardware.latency_s``) as a finite number, or None."""
    node: Any = result
    for part in name.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    if isinstance(node, bool) or not isinstance(node, (int, float)) or not math.isfinite(node):
        return None
    return float(node)


def _check_metric(name: str, results: list[dict], option: str) -> None:
    if results and all(metric_value(r, name) is None for r in results):
        raise RelaxsimError(f"{option} {name!r}: not a numeric result field of any finished "
                            "point (e.g. test_accuracy, hardware.energy_per_inference_j, "
                            "hardware.latency_s, params.banks)")


def parse_front(front: list[str] | None) -> list[tuple[str, str]] | None:
    """``["m1:max", "m2:min"]`` -> ``[("m1", "max"), ("m2", "min")]`` (``max`` when left out)."""
    if front is None:
        return None
    if len(front) != 2:
        raise RelaxsimError(f"--front {','.join(front)!r}: give two metrics, e.g. "
                            "test_accuracy:max,hardware.energy_per_inference_j:min")
    out = []
    for item in front:
        name, _, way = item.partition(":")
        way = way or "max"
        if way not in ("max", "min") or not name:
            raise RelaxsimError(f"--front {item!r}: a metric as NAME:max or NAME:min")
        out.append((name, way))
    return out


def pareto(points: list[tuple[float, float]], ways: tuple[str, str]) -> list[int]:
    """Indices of the points no other point beats in both metrics (``max``/``min`` each)."""
    sign = [1.0 if w == "max" else -1.0 for w in ways]
    keyed = [(sign[0] * a, sign[1] * b) for a, b in points]
    front = []
    for i, (a, b) in enumerate(keyed):
        if not any((c >= a and e >= b) and (c > a or e > b) for j, (c, e) in enumerate(keyed)
                   if j != i):
            front.append(i)
    return front


def metric_sections(doc: Document, store_dir: Path, metric: str | None, against: str | None,
                    front: list[str] | None, spec: Mapping | None = None) -> None:
    """Add to ``doc`` the sections of a store's points: ``metric`` against the varied numeric
    field ``against`` (the seeds of each combination aggregated: mean and std), and the front of
    two metrics. Nothing is added when neither is asked for."""
    from relaxsim.io import read_toml

    if not (metric or against or front):
        return
    if spec is None:
        spec = read_toml(store_dir / "scan.toml", "scan spec")
    recs = load_points(store_dir)
    done = [r for r in recs if r.get("status") == "done" and "result" in r]
    varied = varied_fields(spec, recs)
    groups = group_points(done, varied)
    metric = metric or "test_accuracy"
    results = [r["result"] for r in done]
    _check_metric(metric, results, "--metric")
    if against is not None and against not in varied:
        raise RelaxsimError(f"--against {against!r}: not a field the points vary; they vary "
                            f"{', '.join(varied) or 'nothing'}")
    field = against or x_field(groups, varied)
    if field is not None or against is not None:
        i = varied.index(field)
        s = doc.section(f"{metric} against {field}")
        series: dict[str, list] = defaultdict(list)
        for g in groups:
            x = g.values[i]
            ys = [v for v in (metric_value(r, metric) for r in g.results) if v is not None]
            if not is_number(x) or not ys:
                continue
            rest = ", ".join(show_value(n, v) for n, v in zip(varied, g.values)
                             if n != field and n not in SIZE_FIELDS)
            label = g.kind + (f" {rest}" if rest else "")
            m, sd = mean_std(ys)
            series[label].append((float(x), m, sd, len(ys)))
        if series:
            unit, scale = axis_unit(field, [p[0] for pts in series.values() for p in pts])
            scaled = {k: [(x / scale, m, sd, n) for x, m, sd, n in v] for k, v in series.items()}
            s.figure("metric_against", figures.scaling(
                scaled, f"{field} ({unit})" if unit else field, metric),
                f"{metric} against {field} (mean ± std over the seeds of each point).")
        else:
            s.text(f"Left out: no finished point has a numeric {field} and {metric}.")
    pair = parse_front(front)
    if pair is not None:
        for name, _ in pair:
            _check_metric(name, results, "--front")
        s = doc.section(f"Front of {pair[0][0]} ({pair[0][1]}) and {pair[1][0]} ({pair[1][1]})")
        rows, pts = [], []
        for g in groups:
            a = [metric_value(r, pair[0][0]) for r in g.results]
            b = [metric_value(r, pair[1][0]) for r in g.results]
            if None in a or None in b or not a:
                continue
            pts.append((statistics.fmean(a), statistics.fmean(b)))
            rows.append(", ".join(f"{n} = {show_value(n, v)}" for n, v in zip(varied, g.values))
                        or "the base config")
        idx = pareto(pts, (pair[0][1], pair[1][1]))
        s.text(f"{len(idx)} of {len(pts)} points on the front (no other point is better in "
               "both; the seeds of a point averaged).")
        s.table(["point", pair[0][0], pair[1][0]],
                [[rows[i], f"{pts[i][0]:.6g}", f"{pts[i][1]:.6g}"]
                 for i in sorted(idx, key=lambda i: pts[i][1])])
        if pts:
            s.figure("front", figures.front_figure_png(pts, idx, pair),
                     f"Every point (grey) and the front (red) of {pair[0][0]} and {pair[1][0]}.")


def search_report(d: Path, metric: str | None, against: str | None,
                  front: list[str] | None) -> Document:
    """The report of a search: its trials as points, a metric against a searched field, and the
    front of two metrics (by default its first two objectives)."""
    from relaxsim.io import read_toml

    spec = read_toml(d / "search.toml", "search spec")
    recs = load_points(d)
    done = [r for r in recs if r.get("status") == "done" and "result" in r]
    doc = Document(f"relaxsim search report: {d.name}")
    s = doc.section("Summary")
    s.table(["trials stored", "count"], [["done", len(done)], ["failed", len(recs) - len(done)]])
    objectives = (spec.get("search") or {}).get("objectives") or []
    if front is None and len(objectives) >= 2:
        front = [str(o) for o in objectives[:2]]
    metric_sections(doc, d, metric or "test_accuracy", against, front, spec={})
    return doc


def tolerance_report(d: Path, metric: str | None, against: str | None,
                     front: list[str] | None) -> Document:
    """The report of a deploy-mode tolerance study: its curve (accuracy against the swept
    field), from ``curve.json``."""
    if front or (metric and metric != "test_accuracy"):
        raise RelaxsimError("--metric, --front: a deploy tolerance study measures test accuracy "
                            "only (its curve.json)")
    curve = json.loads((d / "curve.json").read_text(encoding="utf-8"))
    doc = Document(f"relaxsim tolerance report: {d.name}")
    s = doc.section("The curve")
    png = d / "tolerance.png"
    if png.is_file():
        s.figure("tolerance", png.read_bytes(), "Test accuracy against the swept field "
                 "(mean and spread over seeds and draws), the tolerance marked.")
    text = curve.get("summary") or curve.get("tolerance")
    if text:
        s.text(str(text) if not isinstance(text, dict) else json.dumps(text))
    return doc

