"""The report's figures: matplotlib (Agg) drawings of runs and scans, returned as PNG bytes.

Each function takes plain data (lists, dicts as stored in ``result.json``, ``metrics.csv`` and the
scan store) and knows nothing of files; :mod:`relaxsim.report` decides what to draw.
"""

from __future__ import annotations

import io
import os
import tempfile

import numpy as np

DPI = 110
ARCH_NAMES = {"relaxnet": "ReLaX-Net", "reprogram": "reprogrammed bank",
              "unrolled": "unrolled DNN"}
KIND_ORDER = ("RNN", "ReLaX-Net", "DNN")


def _figure(width: float = 6.4, height: float = 3.6):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def training_curves(rows: list[dict]) -> bytes:
    """Train and validation loss, and validation accuracy, per epoch (``metrics.csv`` rows)."""
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
        ax.grid(linewidth=0.3)
    return _png(fig)


def energy_and_speed(hw: dict) -> bytes:
    """Energy per inference by device kind (log scale) and latency / throughput of ReLaX-Net
    against the reprogrammed bank and the unrolled DNN (the ``hardware`` section of a result)."""
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
    return _png(fig)


def timeline(sim, title: str = "") -> bytes:
    """The event trace of ``sim`` as a timeline, drawn by ``relaxsim timing --plot``'s code."""
    from .timingcli import plot_timeline

    fd, path = tempfile.mkstemp(suffix=".png")
    os.close(fd)
    try:
        plot_timeline(sim, path, title)
        with open(path, "rb") as fh:
            return fh.read()
    finally:
        os.unlink(path)


def scaling(series: dict[str, list[tuple[float, float, float, int]]]) -> bytes:
    """Test accuracy against bank-parameter count: per network kind, ``(params, mean, std, n)``
    points with the spread over seeds as error bars."""
    fig = _figure(6.4, 3.8)
    ax = fig.add_subplot()
    markers = {"RNN": "s", "ReLaX-Net": "o", "DNN": "^"}
    for i, kind in enumerate(sorted(series, key=_kind_key)):
        pts = sorted(series[kind])
        x = [p[0] for p in pts]
        ax.errorbar(x, [p[1] for p in pts], yerr=[p[2] for p in pts],
                    marker=markers.get(kind.split(" ")[0], "D"),
                    capsize=3, label=kind, color=f"C{i}",
                    linestyle="-" if len(pts) > 1 else "none")
    ax.set_xscale("log")
    ax.set_xlabel("bank parameters $L_W (N^2 + N)$")
    ax.set_ylabel("test accuracy (mean ± std over seeds)")
    ax.grid(linewidth=0.3)
    ax.legend()
    return _png(fig)


def heatmap(banks: list[int], steps: list[int], acc: np.ndarray, hidden: int) -> bytes:
    """Mean test accuracy over an (L_W, L_T) grid at fixed N; NaN cells (no result) blank."""
    fig = _figure(5.2, 4.0)
    ax = fig.add_subplot()
    masked = np.ma.masked_invalid(acc)
    im = ax.imshow(masked, origin="lower", cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(steps)), [str(s) for s in steps])
    ax.set_yticks(range(len(banks)), [str(b) for b in banks])
    ax.set_xlabel("steps $L_T$")
    ax.set_ylabel("weight banks $L_W$")
    ax.set_title(f"mean test accuracy at N = {hidden}", fontsize=10)
    for i in range(len(banks)):
        for j in range(len(steps)):
            if np.isfinite(acc[i, j]):
                light = im.norm(acc[i, j]) > 0.5  # viridis is light at its top end
                ax.text(j, i, f"{acc[i, j]:.3f}", ha="center", va="center", fontsize=8,
                        color="black" if light else "white")
    fig.colorbar(im, ax=ax, label="test accuracy")
    return _png(fig)


def _kind_key(kind: str):
    """RNN, then ReLaX-Net (any L_W), then DNN, then anything else."""
    base = kind.split(" ")[0]
    return (KIND_ORDER.index(base) if base in KIND_ORDER else len(KIND_ORDER), kind)
