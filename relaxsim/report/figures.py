"""The report's figures: matplotlib (Agg) drawings of runs and scans, returned as PNG bytes.

Each function takes plain data (lists, dicts as stored in ``result.json``, ``metrics.csv`` and the
scan store, a :class:`relaxsim.timing.Simulation`) and draws in memory: no file is written or read
on the way; :mod:`relaxsim.report.document` decides what to draw. :func:`plot_timeline` alone
writes a file, the one it is given (``relaxsim timing --plot``).
"""

from __future__ import annotations

import io

import numpy as np

DPI = 110
KIND_ORDER = ("RNN", "ReLaX-Net", "DNN")


def _figure(width: float = 6.4, height: float = 3.6):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png(fig, dpi: int = DPI) -> bytes:
    return _image(fig, "png", dpi)


def _image(fig, fmt: str, dpi: int = DPI) -> bytes:
    """The figure drawn as an image of format ``fmt``, in memory."""
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=dpi)
    return buf.getvalue()


def training_curves(rows: list[dict]) -> bytes:
    """Train and validation loss, and validation accuracy, per epoch (``metrics.csv`` rows)."""
    return _png(training_curves_figure(rows))


def training_curves_figure(rows: list[dict]):
    """The figure of :func:`training_curves`; epochs are whole numbers, so are the ticks."""
    from matplotlib.ticker import MaxNLocator

    epoch = [int(r["epoch"]) for r in rows]
    fig = _figure(8.0, 3.4)
    ax1, ax2 = fig.subplots(1, 2)
    ax1.plot(epoch, [float(r["train_loss"]) for r in rows], "o-", ms=3, label="train")
    ax1.plot(epoch, [float(r["val_loss"]) for r in rows], "s-", ms=3, label="validation")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("cross-entropy loss (nats)")
    ax1.legend()
    ax2.plot(epoch, [float(r["val_accuracy"]) for r in rows], "o-", ms=3, color="C2")
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("validation accuracy")
    for ax in (ax1, ax2):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(linewidth=0.3)
    return fig


def energy_and_speed(hw: dict) -> bytes:
    """Energy per inference by device kind (log scale) and latency / throughput of ReLaX-Net
    against the reprogrammed bank and the unrolled DNN (the ``hardware`` section of a result)."""
    return _png(energy_and_speed_figure(hw))


def energy_and_speed_figure(hw: dict):
    """The figure of :func:`energy_and_speed`."""
    fig = _figure(9.5, 3.4)
    ax1, ax2, ax3 = fig.subplots(1, 3)
    kinds = list(hw["energy_breakdown_j"])
    joules = [hw["energy_breakdown_j"][k] for k in kinds]
    ax1.bar(kinds, [max(j, 1e-30) * 1e12 for j in joules], color=["C0", "C1", "C2"][:len(kinds)])
    ax1.set_yscale("log")
    ax1.set_ylabel("energy per inference (pJ)")
    from relaxsim.devices import format_quantity

    ax1.set_title(f"total {format_quantity(hw['energy_per_inference_j'], 'energy')}", fontsize=9)
    archs = ["relaxnet", *hw.get("compare", {})]
    from relaxsim.hardware import ARCH_NAMES

    names = [ARCH_NAMES.get(a, a) for a in archs]
    fig_of = {"relaxnet": hw, **hw.get("compare", {})}
    ax2.bar(names, [fig_of[a]["latency_s"] * 1e9 for a in archs], color="C4")
    ax2.set_yscale("log")
    ax2.set_ylabel("latency per inference (ns)")
    ax3.bar(names, [fig_of[a]["throughput_per_s"] for a in archs], color="C5")
    ax3.set_yscale("log")
    ax3.set_ylabel("throughput (inferences/s)")
    for ax in (ax1, ax2, ax3):
        ax.tick_params(axis="x", labelrotation=20, labelsize=8)
        ax.grid(axis="y", linewidth=0.3)
    return fig


def architecture_energy(archs: dict) -> bytes:
    """Energy per inference of each architecture, a stacked bar per architecture coloured by
    device kind (the ``architectures`` of a result's ``hardware`` section)."""
    return _png(architecture_energy_figure(archs))


def architecture_energy_figure(archs: dict):
    """The figure of :func:`architecture_energy`: one bar per architecture, as high as its energy
    per inference (written on top of it), split into one colour per device kind (in the order of
    :data:`relaxsim.energy.KINDS`, a kind's colour the same in every bar; kinds that cost nothing
    anywhere are left out of the legend). When the totals span more than a decade the axis is
    logarithmic and each kind takes its share of the total as its share of the bar's drawn height
    (a stack of the joules themselves would give the lowest kind most of a log axis); on a linear
    axis that is the ordinary stack."""
    from relaxsim.devices import format_quantity
    from relaxsim.energy import KINDS
    from relaxsim.hardware import ARCH_NAMES

    names = list(archs)
    totals = [float(archs[a].get("energy_per_inference_j", 0.0)) for a in names]
    parts = [{k: float(v) for k, v in archs[a].get("energy_breakdown_j", {}).items()}
             for a in names]
    extra = [k for p in parts for k in p if k not in KINDS]
    kinds = [k for k in (*KINDS, *dict.fromkeys(extra)) if any(p.get(k, 0.0) > 0 for p in parts)]
    finite = [t for t in totals if np.isfinite(t)]
    log = wide_range(finite) and len(finite) == len(totals)
    top = max([t for t in finite if t > 0], default=1.0)
    floor = 10.0 ** (np.floor(np.log10(min(finite))) - 1) if log else 0.0

    def drawn(total: float, share: float) -> float:  # the height at ``share`` of a bar
        return floor * (total / floor) ** share if log else total * share

    fig = _figure(7.6, 3.8)
    ax = fig.add_subplot()
    x = np.arange(len(names))
    for i, (total, p) in enumerate(zip(totals, parts)):
        if not np.isfinite(total) or total <= 0:
            ax.text(x[i], floor if log else 0.0, format_quantity(total, "energy"), ha="center",
                    va="bottom", fontsize=8)
            continue
        whole = sum(v for v in p.values() if v > 0)
        if whole <= 0:  # no breakdown: a grey bar of the total
            ax.bar(x[i], total - floor, bottom=floor, width=0.6, color="0.7", gid="energy:?")
        done = 0.0
        for k in kinds:
            v = p.get(k, 0.0)
            if v <= 0 or whole <= 0:
                continue
            lo, hi = drawn(total, done / whole), drawn(total, (done + v) / whole)
            done += v
            ax.bar(x[i], hi - lo, bottom=lo, width=0.6, gid=f"energy:{k}",
                   color=_colour(_kind_index(k, kinds), max(len(KINDS), len(kinds))),
                   edgecolor="white", linewidth=0.3)
        ax.text(x[i], total * (1.3 if log else 1.0) + (0.0 if log else 0.015 * top),
                format_quantity(total, "energy"), ha="center", va="bottom", fontsize=8,
                gid="total")
    from matplotlib.patches import Patch
    from matplotlib.ticker import NullFormatter

    ax.set_xticks(x, [ARCH_NAMES.get(a, a) for a in names])
    if log:
        ax.set_yscale("log")
        ax.set_ylim(floor, top * 6)
        ax.yaxis.set_minor_formatter(NullFormatter())
    else:
        ax.set_ylim(0, top * 1.15)
    ax.yaxis.set_major_formatter(lambda v, _: "0" if v == 0 else format_quantity(v, "energy"))
    ax.set_ylabel("energy per inference" + (" (log axis)" if log else ""))
    ax.grid(axis="y", linewidth=0.3)
    handles = [Patch(color=_colour(_kind_index(k, kinds), max(len(KINDS), len(kinds))), label=k)
               for k in kinds]
    ax.legend(handles=handles[::-1], title="kind" + (": share of the bar" if log else ""),
              loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, title_fontsize=8)
    return fig


def _kind_index(kind: str, kinds: list[str]) -> int:
    """A device kind's colour index: its place in :data:`relaxsim.energy.KINDS` (the same colour
    in every figure), then after them in ``kinds``."""
    from relaxsim.energy import KINDS

    return KINDS.index(kind) if kind in KINDS else len(KINDS) + kinds.index(kind)


def accuracy_energy(series: dict[str, list[tuple[float, float, float, int]]],
                    metric: str = "test accuracy") -> bytes:
    """Test accuracy against energy per inference (J, log axis): per network kind, ``(energy,
    mean, std, n)`` points with the spread over the ``n`` seeds as error bars."""
    return _png(accuracy_energy_figure(series, metric))


def accuracy_energy_figure(series: dict[str, list[tuple[float, float, float, int]]],
                           metric: str = "test accuracy"):
    """The figure of :func:`accuracy_energy`: markers without lines (the points of one kind are
    not a sweep of energy), the x axis logarithmic and read in joules with SI prefixes."""
    from matplotlib.ticker import NullFormatter

    from relaxsim.devices import format_quantity

    fig, ax, several = _series_axes(series, lines=False)
    ax.set_xscale("log")
    energies = [p[0] for pts in series.values() for p in pts]
    if energies:  # room either side, so that even alike energies have a tick or two
        ax.set_xlim(min(energies) / 1.5, max(energies) * 1.5)
    decades = np.log10(ax.get_xlim()[1] / ax.get_xlim()[0])
    ax.xaxis.set_major_formatter(lambda v, _: format_quantity(v, "energy"))
    if decades <= 2:  # few decades: label the minor ticks too (only 2 and 5 over a decade)
        ax.xaxis.set_minor_formatter(
            lambda v, _: format_quantity(v, "energy")
            if decades <= 0.6 or f"{v:.0e}"[0] in "25" else "")
        ax.tick_params(axis="x", which="both", labelsize=8)
    else:
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("energy per inference (log axis)")
    ax.set_ylabel(f"{metric} (mean ± std)" if several else metric)
    ax.grid(linewidth=0.3)
    ax.legend(title=spread_text([p[3] for pts in series.values() for p in pts]),
              title_fontsize=8, fontsize=8)
    return fig


TIMELINE_DPI = 130
TIMELINE_FORMATS = ("png", "svg", "pdf")


def timeline(sim, title: str = "") -> bytes:
    """The event trace of ``sim`` as a timeline (:func:`timeline_figure`), as PNG bytes."""
    return _png(timeline_figure(sim, title), dpi=TIMELINE_DPI)


def timeline_format(path) -> str:
    """The image format of ``path`` from its suffix, one of :data:`TIMELINE_FORMATS`."""
    from relaxsim.io import suffix_format

    return suffix_format(path, TIMELINE_FORMATS, "image format")


def plot_timeline(sim, path, title: str = "") -> None:
    """Draw the busy intervals of ``sim`` as a timeline (:func:`timeline_figure`: a row per bank,
    switch, active element, programmer and readout, a bar per busy interval, a colour per
    inference, short intervals kept visible beside long ones) into the file ``path``, in the
    format of its suffix (:func:`timeline_format`). The image is drawn in memory, then written
    atomically."""
    fmt = timeline_format(path)
    from relaxsim.io import atomic_open

    data = _image(timeline_figure(sim, title), fmt, dpi=TIMELINE_DPI)
    with atomic_open(path, "wb") as fh:
        fh.write(data)


SLIVER = 0.005       # a bar narrower than this share of the axis would vanish: drawn this wide
BREAK_AFTER = 0.08   # idle stretches (only longer bars running) over this share of the span ...
BREAK_WIDTH = 0.05   # ... are cut to this share of the drawn axis, when some bar is a sliver
LEGEND_MAX = 40      # more inferences than this: a colour bar instead of a legend


def timeline_figure(sim, title: str = ""):
    """The busy intervals of ``sim`` (:meth:`relaxsim.timing.Simulation.busy_intervals`, from the
    rows of its trace: ``sim`` ran with ``record=True``) as a timeline: one row per bank, switch,
    active element (and programmer, readout), a bar per busy interval coloured by inference (one
    colour each, named in a legend; grey: the programmer).

    Short intervals stay visible beside long ones (a microsecond switch beside picosecond steps):
    when some bar would be thinner than :data:`SLIVER` of the axis, every stretch longer than
    :data:`BREAK_AFTER` of the span in which only longer bars run is cut out of the axis (a grey
    band marked with the time it skips; ticks give the real time after each cut). A bar still
    thinner than :data:`SLIVER` is drawn that wide, and its row's label gives the real duration.
    """
    from matplotlib.patches import Patch
    from matplotlib.ticker import FixedLocator

    from relaxsim.devices.units import display_unit

    rows = sim.busy_intervals()
    names = list(rows)
    every = [(a, b) for ivs in rows.values() for a, b, _, _ in ivs]
    end = max((b for _, b in every), default=sim.end) or 1.0
    warp = _TimeWarp(every, end)
    total = warp(end)
    unit, size = display_unit(end, "time")
    n_inf = max([len(sim.inferences)] + [i + 1 for ivs in rows.values() for *_, i, _ in ivs])
    fig = _figure(10.0, 1.2 + 0.42 * max(len(names), 1))
    ax = fig.add_subplot()
    labels = []
    for y, name in enumerate(names):
        short = []
        for start, stop, inference, label in rows[name]:
            left, right = warp(start), warp(stop)
            width = max(right - left, SLIVER * total)
            if right - left < 0.03 * total:
                short.append(stop - start)
            colour = "0.55" if inference < 0 else _colour(inference, n_inf)
            ax.barh(y, width, left=left, height=0.62, color=colour, edgecolor="black",
                    linewidth=0.4, gid="busy")
            if right - left > 0.03 * total:
                ax.text((left + right) / 2, y, label, ha="center", va="center", fontsize=7,
                        color="white" if _dark(colour) else "black")
        labels.append(name + (f"  ({_durations(short)})" if short and warp.cuts else ""))
    for a, b in warp.cuts:
        ax.axvspan(warp(a), warp(b), color="0.9", zorder=0)
        ax.text((warp(a) + warp(b)) / 2, -0.56, _fmt_time(b - a), ha="center", va="bottom",
                fontsize=6.5, color="0.25")
    ax.set_yticks(range(len(names)), labels)
    ax.set_ylim(len(names) - 0.5, -0.5 - (0.35 if warp.cuts else 0.0))  # top row first
    ax.set_xlim(0, total * 1.01)
    if warp.cuts:
        ticks = warp.ticks()
        ax.xaxis.set_major_locator(FixedLocator([warp(t) for t, _ in ticks]))
        ax.set_xticklabels([label for _, label in ticks], fontsize=8)
        ax.set_xlabel("time (grey bands: stretches cut out of the axis, as long as written on "
                      "them; +t: time since the last cut)")
    else:
        ax.xaxis.set_major_formatter(lambda x, _: f"{x / size:g}")
        ax.set_xlabel(f"time ({unit})")
    ax.set_title(title, fontsize=10)
    ax.grid(axis="x", linewidth=0.3)
    if 1 < n_inf <= LEGEND_MAX:
        per_col = max(len(names), 4)
        ax.legend(handles=[Patch(color=_colour(i, n_inf), label=str(i)) for i in range(n_inf)],
                  title="inference", loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=7,
                  title_fontsize=7, ncols=-(-n_inf // per_col), handlelength=1.0,
                  columnspacing=0.8)
    elif n_inf > LEGEND_MAX:
        from matplotlib.cm import ScalarMappable
        from matplotlib.colors import Normalize

        mappable = ScalarMappable(Normalize(0, n_inf - 1), _colour_map(n_inf))
        fig.colorbar(mappable, ax=ax, label="inference", pad=0.01)
    n = len(sim.inferences)
    fig.supxlabel(f"labels: inference:step (switch: inference>bank); colour: inference; {n} "
                  f"inference{'s' if n != 1 else ''}", x=0.995, ha="right", fontsize=7,
                  color="0.3")
    return fig


class _TimeWarp:
    """Real time -> drawn position, with the idle stretches (only bars longer than
    :data:`BREAK_AFTER` of the span running) cut down to :data:`BREAK_WIDTH` of the axis, when
    some interval would be a sliver; the identity otherwise."""

    def __init__(self, intervals: list[tuple[float, float]], end: float):
        self.cuts: list[tuple[float, float]] = []
        self.end = end
        if intervals and min(b - a for a, b in intervals) < SLIVER * end:
            keep = sorted((a, b) for a, b in intervals if b - a < BREAK_AFTER * end)
            windows: list[list[float]] = []
            for a, b in keep:
                if windows and a <= windows[-1][1]:
                    windows[-1][1] = max(windows[-1][1], b)
                else:
                    windows.append([a, b])
            edges = [0.0] + [x for w in windows for x in w] + [end]
            for a, b in zip(edges[::2], edges[1::2]):
                if b - a > BREAK_AFTER * end:
                    self.cuts.append((a, b))
        # each cut takes BREAK_WIDTH of the drawn axis, all of them together at most half
        share = min(BREAK_WIDTH * len(self.cuts), 0.5)
        kept = end - sum(b - a for a, b in self.cuts)
        self.gap = kept * share / (1 - share) / max(len(self.cuts), 1)

    def __call__(self, t: float) -> float:
        x = t
        for a, b in self.cuts:
            if t >= b:
                x -= (b - a) - self.gap
            elif t > a:
                x -= (t - a) - self.gap * (t - a) / (b - a)
                break
        return x

    def ticks(self) -> list[tuple[float, str]]:
        """``(real time, label)`` of the ticks: the start of each stretch between cuts at its
        real time, round offsets within it as ``+40 ps`` (absolute times would differ only in
        digits too far down to print)."""
        from matplotlib.ticker import MaxNLocator

        total = self(self.end)
        starts = [0.0] + [b for _, b in self.cuts]
        stops = [a for a, _ in self.cuts] + [self.end]
        out: list[tuple[float, str]] = []
        for a, b in zip(starts, stops):
            out.append((a, _fmt_time(a)))
            share = (self(b) - self(a)) / total
            if b <= a or share < 0.1:
                continue
            for off in MaxNLocator(nbins=max(1, int(10 * share))).tick_values(0.0, b - a):
                if (self(a + off) - self(a) > 0.07 * total
                        and self(b) - self(a + off) > 0.03 * total):
                    out.append((a + off, f"+{_fmt_time(off)}" if a > 0 else _fmt_time(off)))
        return out


def _dark(colour) -> bool:
    """True when white text reads better than black on ``colour`` (relative luminance < 0.5)."""
    from matplotlib.colors import to_rgb

    r, g, b = to_rgb(colour)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b < 0.5


def _fmt_time(t: float) -> str:
    from relaxsim.devices import format_quantity

    return "0" if t == 0 else format_quantity(t, "time")


def _durations(seconds: list[float]) -> str:
    """``10 ps`` when the intervals are alike, ``10 ps to 40 ps`` when not."""
    lo, hi = min(seconds), max(seconds)
    if hi - lo <= 1e-3 * hi:
        return _fmt_time(hi)
    return f"{_fmt_time(lo)} to {_fmt_time(hi)}"


BANK_PARAMS_LABEL = "bank parameters $L_W (N^2 + N)$"


def scaling(series: dict[str, list[tuple[float, float, float, int]]],
            x_label: str = BANK_PARAMS_LABEL, metric: str = "test accuracy") -> bytes:
    """Test accuracy against bank-parameter count (or against ``x_label``, a varied field): per
    line, ``(x, mean, std, n)`` points with the spread over the ``n`` seeds as error bars."""
    return _png(scaling_figure(series, x_label, metric))


def scaling_figure(series: dict[str, list[tuple[float, float, float, int]]],
                   x_label: str = BANK_PARAMS_LABEL, metric: str = "test accuracy"):
    """The figure of :func:`scaling`. The x axis is logarithmic only when the values span more
    than a decade; the legend's title says what the error bars are (:func:`spread_text`)."""
    fig, ax, several = _series_axes(series, lines=True)
    if wide_range([p[0] for pts in series.values() for p in pts]):
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(lambda v, _: f"{v:g}")  # 1, 10, 100 rather than 10^k
        ax.xaxis.set_minor_formatter(lambda v, _: f"{v:g}"  # 2, 3, 5 between, if room
                                     if str(f"{v:g}")[0] in "25" else "")
    ax.set_xlabel(x_label)
    ax.set_ylabel(f"{metric} (mean ± std)" if several else metric)
    ax.grid(linewidth=0.3)
    ax.legend(title=spread_text([p[3] for pts in series.values() for p in pts]),
              title_fontsize=8, fontsize=8)
    return fig


def _series_axes(series: dict[str, list[tuple[float, float, float, int]]], lines: bool):
    """A figure with one marker style per network kind, ``(x, mean, std, n)`` points with the
    spread over seeds as error bars when any point has several, joined by lines (``lines``, when
    a kind has several points) or not. Returns ``(fig, ax, several)``."""
    fig = _figure(6.4, 3.8)
    ax = fig.add_subplot()
    markers = {"RNN": "s", "ReLaX-Net": "o", "DNN": "^"}
    several = any(p[3] > 1 for pts in series.values() for p in pts)
    for i, kind in enumerate(sorted(series, key=_kind_key)):
        pts = sorted(series[kind])
        ax.errorbar([p[0] for p in pts], [p[1] for p in pts],
                    yerr=[p[2] for p in pts] if several else None,
                    marker=markers.get(kind.split(" ")[0], "D"), capsize=3, label=kind,
                    color=_colour(i, len(series)),
                    linestyle="-" if lines and len(pts) > 1 else "none")
    return fig, ax, several


def spread_text(seed_counts: list[int]) -> str:
    """What a figure's error bars are, given the seeds behind each point."""
    counts = sorted(set(seed_counts))
    if not counts or counts == [1]:
        return "one seed per point: no error bars"
    many = str(counts[0]) if len(counts) == 1 else f"{counts[0]} to {counts[-1]}"
    return f"error bars: std over {many} seeds"


def wide_range(values, decades: float = 1.0) -> bool:
    """True when the positive ``values`` span more than ``decades`` decades (a log axis helps)."""
    vals = [float(v) for v in values]
    if not vals or min(vals) <= 0:
        return False
    return max(vals) / min(vals) > 10.0 ** decades


def _colour(i: int, n: int):
    """Colour ``i`` of ``n`` distinct ones: tab10 up to 10, tab20 up to 20, else an even sample
    of a perceptual colour map (every inference or line its own colour)."""
    from matplotlib import colormaps

    if n <= 10:
        return colormaps["tab10"](i)
    if n <= 20:  # the ten dark tab20 colours, then their light twins
        return colormaps["tab20"](2 * i if i < 10 else 2 * (i - 10) + 1)
    return _colour_map(n)(i / (n - 1))


def _colour_map(n: int):
    """The colour map of more than 20 inferences or lines: turbo without its darkest ends."""
    from matplotlib import colormaps
    from matplotlib.colors import ListedColormap

    return ListedColormap(colormaps["turbo"](np.linspace(0.05, 0.95, max(n, 2))))


def heatmap(banks: list[int], steps: list[int], acc: np.ndarray, hidden: int,
            note: str = "") -> bytes:
    """Mean test accuracy over an (L_W, L_T) grid at fixed N; NaN cells (no result) blank."""
    return _png(heatmap_figure(banks, steps, acc, hidden, note))


def heatmap_figure(banks: list[int], steps: list[int], acc: np.ndarray, hidden: int,
                   note: str = ""):
    """The figure of :func:`heatmap`; ``note`` (the other varied fields' values) goes in the
    title."""
    fig = _figure(5.2, 4.0)
    ax = fig.add_subplot()
    masked = np.ma.masked_invalid(acc)
    im = ax.imshow(masked, origin="lower", cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(steps)), [str(s) for s in steps])
    ax.set_yticks(range(len(banks)), [str(b) for b in banks])
    ax.set_xlabel("steps $L_T$")
    ax.set_ylabel("weight banks $L_W$")
    ax.set_title(f"mean test accuracy at N = {hidden}" + (f", {note}" if note else ""),
                 fontsize=10)
    for i in range(len(banks)):
        for j in range(len(steps)):
            if np.isfinite(acc[i, j]):
                light = im.norm(acc[i, j]) > 0.5  # viridis is light at its top end
                ax.text(j, i, f"{acc[i, j]:.3f}", ha="center", va="center", fontsize=8,
                        color="black" if light else "white")
    fig.colorbar(im, ax=ax, label="test accuracy")
    return fig


def _kind_key(kind: str):
    """RNN, then ReLaX-Net (any L_W), then DNN, then anything else."""
    base = kind.split(" ")[0]
    return (KIND_ORDER.index(base) if base in KIND_ORDER else len(KIND_ORDER), kind)


def front_figure_png(points: list[tuple[float, float]], front: list[int],
                     pair: list[tuple[str, str]]) -> bytes:
    """Every point of two metrics (grey) and the Pareto front among them (red, joined in the
    order of the second metric); an axis logarithmic when its values span more than a decade."""
    fig = _figure(6.4, 4.2)
    ax = fig.add_subplot()
    xs, ys = [p[1] for p in points], [p[0] for p in points]
    ax.scatter(xs, ys, color="0.6", s=18, label="points")
    on = sorted(front, key=lambda i: points[i][1])
    ax.plot([points[i][1] for i in on], [points[i][0] for i in on], "o-", color="C3",
            label="front")
    if wide_range(xs) and min(xs) > 0:
        ax.set_xscale("log")
    if wide_range(ys) and min(ys) > 0:
        ax.set_yscale("log")
    ax.set_xlabel(f"{pair[1][0]} ({pair[1][1]})")
    ax.set_ylabel(f"{pair[0][0]} ({pair[0][1]})")
    ax.grid(linewidth=0.3)
    ax.legend(fontsize=8)
    return _png(fig)
