"""Study: switch leak, coherent against incoherent, star against tree. A switch of finite
extinction ratio ER leaks ``e = 10^(-ER/10)`` of the signal into every bank it does not select
(:mod:`relaxsim.devices.routing`). Two parts:

- closed forms (the check): the mixing vectors ``m[t, j]`` of assembled machines (L_W = 4,
  L_T = 8) against the settled port powers worked out by hand, for every topology (star, tree),
  collecting side (mirrored switch, combiner) and optical signal domain (coherent in phase,
  incoherent) at ER = 10 ... 30 dB. A lossless star with a combiner leaks ``m_other /
  m_selected = sqrt(e / (1 - (L_W - 1) e))`` coherently and ``e / (1 - (L_W - 1) e)``
  incoherently; in a tree every level whose bit differs from the selected bank's multiplies the
  port power by ``e / (1 - e)``.
- accuracy (a measurement, no verdict): the default experiment trained on machines with a 15 dB
  switch (coherent and incoherent, star and tree) and in mode ``ideal``.

Run as ``python -m relaxsim.validation.leak [--quick] [--out DIR]``.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import numpy as np

from .common import Check, write_rows
from .common import main as _main

NAME = "leak"
TITLE = "Switch leak: coherent vs incoherent, star vs tree"
RTOL = 1e-6           # the settled shares are products of e and 1 - e: float64 rounding only
ERS_DB = (10.0, 15.0, 20.0, 25.0, 30.0)
BANKS, STEPS = 4, 8
SETTLE_TOL = 1e-9     # auto clock: the switching steps' transient is negligible too
CASES = [(topology, mux, signal) for topology in ("star", "tree")
         for mux in ("combiner", "switch") for signal in ("coherent", "incoherent")]

ACCURACY_ER_DB = 15.0
ACCURACY_NET = {"network.banks": BANKS, "network.steps": STEPS, "network.hidden": 32}
MACHINES = [  # (label, overrides)
    ("ideal", {"hardware.mode": "ideal"}),
    *((f"{signal} {topology}",
       {"hardware.mode": "hardware_aware", "hardware.signal": signal,
        "hardware.switch_topology": topology,
        "hardware.switch.extinction_ratio": f"{ACCURACY_ER_DB:g} dB"})
      for topology in ("star", "tree") for signal in ("coherent", "incoherent")),
]


def floor(er_db: float) -> float:
    """The extinction floor ``e = 10^(-ER/10)``, a power fraction."""
    return 10.0 ** (-er_db / 10.0)


def levels(banks: int, topology: str) -> int:
    return 1 if topology == "star" else math.ceil(math.log2(banks))


def exponent(mux: str, signal: str) -> float:
    """The power of the port power ``P`` in the share: a coherent field through a combiner
    ``sqrt(P)``, through a mirrored switch ``sqrt(P)`` twice; incoherent powers ``P`` through a
    combiner, ``P^2`` through a mirrored switch."""
    return {("combiner", "coherent"): 0.5, ("switch", "coherent"): 1.0,
            ("combiner", "incoherent"): 1.0, ("switch", "incoherent"): 2.0}[mux, signal]


def settled_shares(banks: int, k: int, topology: str, mux: str, signal: str,
                   e: float) -> np.ndarray:
    """Every bank's settled share of a step on bank ``k``, from the port powers: a lossless star
    sends ``e`` to every other bank and the rest, ``1 - (L_W - 1) e``, to ``k``; a tree, per
    level, ``1 - e`` where the bank's bit equals ``k``'s and ``e`` where not, multiplied over
    the levels."""
    if topology == "star":
        P = np.full(banks, e)
        P[k] = 1.0 - (banks - 1) * e
    else:
        P = np.ones(banks)
        for level in range(levels(banks, topology)):
            for j in range(banks):
                P[j] *= (1.0 - e) if (j >> level) & 1 == (k >> level) & 1 else e
    return P ** exponent(mux, signal)


def leak_ratio(e: float, mux: str, signal: str, differing: int = 1,
               on: float | None = None) -> float:
    """``m_other / m_selected`` for a bank ``differing`` switch levels away from the selected one
    (a star: 1 for every other bank): ``(e / on)^(differing * exponent)`` with ``on`` the
    selected port's power (``1 - e`` for a 1 x 2 stage, ``1 - (L_W - 1) e`` for a star), i.e.
    ``sqrt(e / on)`` coherent and ``e / on`` incoherent through a star and combiner."""
    on = 1.0 - e if on is None else on
    return (e / on) ** (differing * exponent(mux, signal))


def differing_levels(banks: int, j: int, k: int, topology: str) -> int:
    if j == k:
        return 0
    return 1 if topology == "star" else (j ^ k).bit_count()


def machine(overrides: dict):
    import relaxsim

    return relaxsim.assemble(relaxsim.load_config(overrides=overrides))


def closed_form_rows(ers_db=ERS_DB, banks: int = BANKS, steps: int = STEPS) -> list[dict]:
    """For every case of :data:`CASES` and extinction ratio: the machine's mixing vectors
    (blocked schedule, auto clock settled to :data:`SETTLE_TOL`) against the settled shares and
    leak ratios worked out by hand. ``error``: the largest relative error of any share and of
    any ratio ``m[t, j] / m[t, k]`` over the steps that do not switch (exact steady state);
    ``switching_error``: the same over the switching steps (settled by the auto clock; their
    largest transition remainder is ``remainder``); ``ratio`` / ``expected_ratio``: the largest
    ``m_other / m_selected`` measured and worked out."""
    rows = []
    for topology, mux, signal in CASES:
        for er in ers_db:
            e = floor(er)
            asm = machine({"network.banks": banks, "network.steps": steps,
                           "network.schedule": "blocked", "hardware.mode": "hardware_aware",
                           "hardware.clock": "auto", "hardware.settle_tolerance": SETTLE_TOL,
                           "hardware.signal": signal, "hardware.leak_phase": "in_phase",
                           "hardware.switch_topology": topology, "hardware.mux": mux,
                           "hardware.switch.extinction_ratio": f"{er:g} dB"})
            coupling, schedule = asm.coupling, [int(k) for k in asm.schedule]
            mix = np.asarray(coupling.mix, dtype=np.float64)
            switching = np.asarray(coupling.switching, dtype=bool)
            errors, ratios = np.zeros(len(schedule)), []
            on = 1.0 - (banks - 1) * e if topology == "star" else 1.0 - e
            for t, k in enumerate(schedule):
                want = settled_shares(banks, k, topology, mux, signal, e)
                want_ratio = np.array([leak_ratio(e, mux, signal,
                                                  differing_levels(banks, j, k, topology), on)
                                       for j in range(banks)])
                got_ratio = mix[t] / mix[t, k]
                errors[t] = max(np.max(np.abs(mix[t] / want - 1.0)),
                                np.max(np.abs(got_ratio / want_ratio - 1.0)))
                if not switching[t]:
                    ratios.append(max(got_ratio[j] for j in range(banks) if j != k))
            gaps = np.asarray(coupling.gaps, dtype=np.float64)[switching]
            remainder = (float(np.max(asm.hardware.switch.remainder(gaps)))
                         if gaps.size else 0.0)
            rows.append({
                "topology": topology, "mux": mux, "signal": signal, "er_db": er, "e": e,
                "expected_ratio": leak_ratio(e, mux, signal, on=on), "ratio": max(ratios),
                "error": float(np.max(errors[~switching])), "steps": int(np.sum(~switching)),
                "switching_error": (float(np.max(errors[switching])) if switching.any()
                                    else 0.0),
                "switching_steps": int(np.sum(switching)), "remainder": remainder})
    return rows


def leak_label(asm) -> tuple[float, float]:
    """The largest ``m_other / m_selected`` and their sum over the other banks, on the first
    step (it does not switch: settled), of an assembled machine; ``(0, 0)`` in mode ``ideal``
    (no device effects) or without a switch."""
    mix = asm.coupling.mix if asm.config.hardware["mode"] != "ideal" else None
    if mix is None:
        return 0.0, 0.0
    k = int(asm.schedule[0])
    ratio = np.delete(np.asarray(mix[0], dtype=np.float64) / mix[0][k], k)
    return float(np.max(ratio)), float(np.sum(ratio))


def accuracy_rows(epochs: int) -> list[dict]:
    """The default experiment (L_W = 4, L_T = 8, N = 32) trained ``epochs`` epochs on every
    machine of :data:`MACHINES`, seed 0: test accuracy, settled leak and wall time."""
    import relaxsim

    rows = []
    for label, overrides in MACHINES:
        cfg = relaxsim.load_config(overrides={**ACCURACY_NET, "training.epochs": epochs,
                                              **overrides})
        worst, total = leak_label(relaxsim.assemble(cfg))
        t0 = time.perf_counter()
        res = relaxsim.run(cfg)
        rows.append({"machine": label, "leak": worst, "leak_sum": total,
                     "test_accuracy": float(res["test_accuracy"]),
                     "test_loss": float(res["test_loss"]), "best_epoch": res["best_epoch"],
                     "seconds": time.perf_counter() - t0})
    return rows


def accuracy_figure(rows: list[dict], epochs: int) -> bytes:
    """Bars of the test accuracy per machine, the settled leak ratio under each label."""
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8.0, 4.0), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    labels = [r["machine"] + ("\nno switch leak" if r["leak"] == 0 else
                              f"\nleak {r['leak']:.2g}\n(sum {r['leak_sum']:.2g})")
              for r in rows]
    acc = [r["test_accuracy"] for r in rows]
    bars = ax.bar(range(len(rows)), acc, color=[f"C{i}" for i in range(len(rows))])
    for bar, a in zip(bars, acc):
        ax.annotate(f"{a:.4f}", (bar.get_x() + bar.get_width() / 2, a), ha="center",
                    va="bottom", fontsize=8, xytext=(0, 2), textcoords="offset points")
    ax.set_xticks(range(len(rows)), labels, fontsize=8)
    ax.set_ylim(max(0.0, min(acc) - 0.05), 1.0)
    ax.set_ylabel("test accuracy")
    ax.set_title(f"digits, L_W = {BANKS}, L_T = {STEPS}, N = 32, {epochs} epochs; "
                 f"switch ER {ACCURACY_ER_DB:g} dB, mirrored switch", fontsize=9)
    ax.grid(axis="y", linewidth=0.3)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return buf.getvalue()


def check(quick: bool, out: Path) -> Check:
    epochs = 3 if quick else 15
    closed = closed_form_rows()
    worst = max(r["error"] for r in closed)
    rows = [[r["topology"], r["mux"], r["signal"], f"{r['er_db']:g}", f"{r['e']:.6g}",
             f"{r['expected_ratio']:.10g}", f"{r['ratio']:.10g}", f"{r['error']:.1e}",
             r["steps"], f"{r['switching_error']:.1e}", f"{r['remainder']:.1e}"]
            for r in closed]
    acc = accuracy_rows(epochs)
    out.mkdir(parents=True, exist_ok=True)
    write_rows(out, f"{NAME}.accuracy",
               ["machine", "leak m_other/m_selected (largest)", "leak (sum over banks)",
                "test accuracy", "test loss", "best epoch", "seconds"],
               [[r["machine"], f"{r['leak']:.6g}", f"{r['leak_sum']:.6g}",
                 f"{r['test_accuracy']:.4f}", f"{r['test_loss']:.6f}", r["best_epoch"],
                 f"{r['seconds']:.2f}"] for r in acc])
    star = {r["signal"]: r["ratio"] for r in closed
            if (r["topology"], r["mux"], r["er_db"]) == ("star", "combiner", ACCURACY_ER_DB)}
    summary = (f"largest relative error {worst:.1e} over {len(closed)} machines "
               f"(star + combiner at {ACCURACY_ER_DB:g} dB: leak {star['coherent']:.4g} coherent, "
               f"{star['incoherent']:.4g} incoherent); test accuracy after {epochs} epochs at "
               f"{ACCURACY_ER_DB:g} dB: "
               + ", ".join(f"{r['machine']} {r['test_accuracy']:.4f}" for r in acc))
    return Check(
        NAME, TITLE, worst <= RTOL,
        method=(f"relaxsim.assemble with L_W = {BANKS}, L_T = {STEPS}, blocked schedule, "
                f"auto clock settled to {SETTLE_TOL:g}, leak_phase in_phase; coupling.mix "
                "against the settled port powers worked out by hand (star: 1 - e selected, e "
                "the others; tree: per level 1 - e same bit, e other bit) raised to 1/2 "
                "(coherent, combiner), 1 (coherent, switch; incoherent, combiner) or 2 "
                "(incoherent, switch); the largest relative error of any share and any ratio "
                "m[t, j] / m[t, k] over the steps that do not switch (the switching steps' "
                "error and transition remainder are listed, not judged). Accuracy (not "
                f"judged): relaxsim.run, L_W = {BANKS}, L_T = {STEPS}, N = 32, {epochs} epochs, "
                f"seed 0, mode ideal and hardware_aware at {ACCURACY_ER_DB:g} dB (default "
                "devices otherwise: mirrored switch, auto clock) in "
                f"{NAME}.accuracy.csv and the figure"),
        tolerance=f"<= {RTOL:g} relative (float64 products of e and 1 - e)",
        summary=summary,
        head=["topology", "collecting side", "signal", "ER (dB)", "e",
              "leak ratio, closed form", "leak ratio, machine",
              "max relative error (steady steps)", "steady steps",
              "max relative error (switching steps)", "largest remainder (switching steps)"],
        rows=rows,
        figure=accuracy_figure(acc, epochs),
        caption=(f"Test accuracy after {epochs} epochs per machine (switch ER "
                 f"{ACCURACY_ER_DB:g} dB, in phase); under each label the settled leak "
                 "m_other / m_selected of the most leaking bank and the sum over the other "
                 "banks. One training seed (0)."))


if __name__ == "__main__":
    sys.exit(_main(sys.modules[__name__]))
