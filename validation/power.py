"""Study: the optical power budget, and the accuracy it allows. The laser power per channel
(``hardware.laser_power``) sets the power a detector receives and so, for an active element whose
``noise`` and ``detector_noise`` are ``auto`` (the default ``electronic_tanh``), the element noise
per step and the readout noise, both ``1 / SNR`` of the detector (:mod:`relaxsim.devices.budget`).
Two parts:

- closed forms (the check): for laser powers from 1 nW to 100 mW, the assembled machine's budget
  against the detector's SNR worked out by hand from its records (responsivity, thermal noise,
  RIN, the element's response time, the losses on the path):
  ``SNR = I / sqrt(2 q I B + i_n^2 B + 10^(RIN/10) I^2 B)`` with ``I = R P_rx``, the element and
  detector noise ``1 / SNR``, and the shot-noise limit ``sqrt(P_rx R / (2 q B))``; the element
  noise must fall as the power rises.
- accuracy (a measurement, no verdict): the default experiment trained in mode
  ``hardware_aware`` at several laser powers, and in mode ``ideal`` as the reference.

Run as ``python -m relaxsim.validation.power [--quick] [--out DIR]``.
"""

from __future__ import annotations

import itertools
import math
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from relaxsim.errors import HardwareWarning

from .common import Check, write_rows
from .common import main as _main

NAME = "power"
TITLE = "Power budget: accuracy against laser power"
RTOL = 1e-12          # SNR, noise, received power and loss: float64 rounding of the same sums
SHOT_RTOL = 1e-9      # the shot-noise limit, as tests/test_budget.py holds it
Q_E = 1.602176634e-19  # elementary charge, C (SI 2019, exact)
CLOSED_POWERS_W = tuple(float(p) for p in np.logspace(-9, -1, 12))  # 1 nW .. 100 mW
QUICK = {"powers": (1e-6, 1e-5, 1e-4, 1e-3), "epochs": 5, "hidden": 32, "seeds": (0,)}
FULL = {"powers": tuple(float(p) for p in np.logspace(-7, -2, 8)), "epochs": 20, "hidden": 64,
        "seeds": (0, 1)}


def power_setting(watts: float) -> str:
    """``hardware.laser_power`` for ``watts``, exactly (the float's shortest repr, in W)."""
    return f"{watts!r} W"


def show_power(watts: float) -> str:
    from relaxsim.devices import format_quantity

    return format_quantity(watts, "power", 3)


def machine(overrides: dict):
    import relaxsim

    return relaxsim.assemble(relaxsim.load_config(overrides=overrides))


def rel(got: float, want: float) -> float:
    return abs(got / want - 1.0)


def by_hand(hw, laser_w: float) -> dict:
    """The budget of the default machine (star switch, mirrored on the collecting side, O-E-O
    element without an explicit bandwidth) at ``laser_w``, from the device records: the path loss
    ``coupling + weights + 2 stages x switch insertion loss``, the noise bandwidth
    ``B = 1 / (4 tau)`` of the element's first-order response, and the detector's noise
    currents."""
    act = hw.active
    stages = 1 if hw.switch_topology == "star" else math.ceil(math.log2(hw.banks))
    loss_db = (hw.coupling_loss_db + hw.weights.insertion_loss_db
               + 2 * stages * hw.switch.insertion_loss_db)
    bw = 1.0 / (4.0 * act.response_time_s)
    R, i_n, rin = act.responsivity, act.thermal_noise, act.rin_db
    received = laser_w * 10.0 ** (-loss_db / 10.0)
    current = R * received
    shot = 2.0 * Q_E * current * bw
    thermal = i_n ** 2 * bw
    rin_var = 10.0 ** (rin / 10.0) * current ** 2 * bw
    snr = current / math.sqrt(shot + thermal + rin_var)
    parts = {"shot": shot, "thermal": thermal, "RIN": rin_var}
    return {"loss_db": loss_db, "bandwidth_hz": bw, "received_w": received, "snr": snr,
            "shot_snr": math.sqrt(received * R / (2.0 * Q_E * bw)),
            "laser_for_shot_limit_w": i_n ** 2 / (2.0 * Q_E * R) * 10.0 ** (loss_db / 10.0),
            "dominant": max(parts, key=parts.get),
            "shares": {k: v / (shot + thermal + rin_var) for k, v in parts.items()}}


def closed_form_rows(powers=CLOSED_POWERS_W) -> list[dict]:
    """For every laser power: the assembled default machine's budget and noise against
    :func:`by_hand`. ``error``: the largest relative error of the loss, bandwidth, received
    power, SNR, the laser power where shot noise passes thermal noise, the element noise against
    ``1 / budget.snr`` and against ``1 / SNR`` by hand, and the detector noise against
    ``1 / SNR``; ``shot_error``: the shot-noise limit's."""
    rows = []
    for p in powers:
        hw = machine({"hardware.mode": "hardware_aware",
                      "hardware.laser_power": power_setting(p)}).hardware
        b, want = hw.budget, by_hand(hw, p)
        errors = {
            "laser": rel(hw.laser_power_w, p),
            "loss": rel(b.loss_db, want["loss_db"]),
            "bandwidth": rel(b.bandwidth_hz, want["bandwidth_hz"]),
            "received": rel(b.received_w, want["received_w"]),
            "snr": rel(b.snr, want["snr"]),
            "laser_for_shot_limit": rel(b.laser_for_shot_limit_w,
                                        want["laser_for_shot_limit_w"]),
            "element_vs_budget": rel(hw.element_sigma, 1.0 / b.snr),
            "element_vs_hand": rel(hw.element_sigma, 1.0 / want["snr"]),
            "detector_vs_hand": rel(hw.detector_sigma, 1.0 / want["snr"]),
        }
        worst = max(errors, key=errors.get) if max(errors.values()) > 0 else "none"
        rows.append({
            "laser_w": p, "received_w": b.received_w, "loss_db": b.loss_db,
            "bandwidth_hz": b.bandwidth_hz, "snr": b.snr, "expected_snr": want["snr"],
            "shot_snr": b.shot_snr, "expected_shot_snr": want["shot_snr"],
            "element_sigma": hw.element_sigma, "detector_sigma": hw.detector_sigma,
            "dominant": want["dominant"], "shares": want["shares"],
            "laser_for_shot_limit_w": b.laser_for_shot_limit_w,
            "error": max(errors.values()), "worst": worst, "errors": errors,
            "shot_error": rel(b.shot_snr, want["shot_snr"])})
    return rows


def monotone(rows: list[dict]) -> bool:
    """Whether the element noise falls strictly as the laser power rises."""
    ordered = sorted(rows, key=lambda r: r["laser_w"])
    return all(b["element_sigma"] < a["element_sigma"] for a, b in itertools.pairwise(ordered))


def accuracy_rows(plan: dict) -> tuple[list[dict], dict]:
    """The default experiment (N = ``plan["hidden"]``, ``plan["epochs"]`` epochs) trained in mode
    ``hardware_aware`` at every laser power of ``plan`` and in mode ``ideal``, for every seed:
    one row per power (its budget, the accuracy per seed, mean and sample std), and the ideal
    row."""
    import relaxsim

    base = {"network.hidden": plan["hidden"], "training.epochs": plan["epochs"]}

    def train(overrides: dict) -> dict:
        accs, seconds, res = [], 0.0, None
        for seed in plan["seeds"]:
            cfg = relaxsim.load_config(overrides={**base, **overrides, "training.seed": seed})
            t0 = time.perf_counter()
            with warnings.catch_warnings():  # the starved detectors are the point of the study
                warnings.simplefilter("ignore", HardwareWarning)
                res = relaxsim.run(cfg, quiet=True)
            seconds += time.perf_counter() - t0
            accs.append(float(res["test_accuracy"]))
        return {"accuracies": accs, "mean": statistics.fmean(accs),
                "std": statistics.stdev(accs) if len(accs) > 1 else 0.0, "seconds": seconds,
                "chance": 1.0 / res["task"]["n_classes"]}

    rows = []
    for p in plan["powers"]:
        overrides = {"hardware.mode": "hardware_aware", "hardware.laser_power": power_setting(p)}
        hw = machine({**base, **overrides}).hardware
        b = hw.budget
        rows.append({"laser_w": p, "received_w": b.received_w, "snr": b.snr,
                     "element_sigma": hw.element_sigma, "detector_sigma": hw.detector_sigma,
                     "laser_for_shot_limit_w": b.laser_for_shot_limit_w, **train(overrides)})
    ideal = train({"hardware.mode": "ideal"})
    return rows, ideal


def accuracy_figure(rows: list[dict], ideal: dict, plan: dict) -> bytes:
    """Test accuracy against laser power per channel (log axis; mean and spread over the seeds),
    the ideal accuracy, chance, where shot noise passes thermal noise, and the SNR on top."""
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    seeds = len(plan["seeds"])
    fig = Figure(figsize=(8.0, 4.6), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    powers = np.array([r["laser_w"] for r in rows])
    mean = np.array([r["mean"] for r in rows])
    if seeds > 1:
        std = np.array([r["std"] for r in rows])
        ax.fill_between(powers, mean - std, mean + std, color="C0", alpha=0.2, linewidth=0,
                        label="± std over seeds")
        for r in rows:
            ax.plot([r["laser_w"]] * seeds, r["accuracies"], ".", color="C0", alpha=0.4,
                    markersize=4)
    ax.plot(powers, mean, "o-", color="C0",
            label="hardware_aware" + (f" (mean of {seeds} seeds)" if seeds > 1 else ""))
    ax.axhline(ideal["mean"], color="C2", linewidth=1.2,
               label=f"ideal {ideal['mean']:.4f}" + (f" ± {ideal['std']:.4f}" if seeds > 1
                                                      else ""))
    ax.axhline(ideal["chance"], color="0.5", linestyle=":", linewidth=1.0,
               label=f"chance {ideal['chance']:.2g}")
    shot = rows[0]["laser_for_shot_limit_w"]
    ax.axvline(shot, color="C3", linestyle="--", linewidth=1.0,
               label=f"shot noise = thermal noise ({show_power(shot)})")
    lo, hi = min(powers.min(), shot), max(powers.max(), shot)
    ax.set_xscale("log")
    ax.set_xlim(lo / 2.0, hi * 2.0)
    ax.set_ylim(0.0, 1.02)
    ax.set_xlabel("laser power per channel (W)")
    ax.set_ylabel("test accuracy")
    ax.grid(linewidth=0.3, which="both")
    ax.legend(fontsize=8, loc="best")
    top = ax.secondary_xaxis("top")
    top.set_xticks(powers, [f"{r['snr']:.3g}" for r in rows], fontsize=7)
    top.minorticks_off()
    top.set_xlabel("detector SNR = 1 / element noise (at the points measured)", fontsize=8)
    ax.set_title(f"digits, L_W = 2, L_T = 4, N = {plan['hidden']}, {plan['epochs']} epochs, "
                 f"seed{'s' if seeds > 1 else ''} "
                 f"{', '.join(map(str, plan['seeds']))}; electronic_tanh, auto noise",
                 fontsize=9)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return buf.getvalue()


def check(quick: bool, out: Path) -> Check:
    plan = QUICK if quick else FULL
    closed = closed_form_rows()
    worst = max(closed, key=lambda r: r["error"])
    shot_worst = max(r["shot_error"] for r in closed)
    falls = monotone(closed)
    passed = worst["error"] <= RTOL and shot_worst <= SHOT_RTOL and falls
    rows = [[f"{r['laser_w']:.6g}", f"{r['received_w']:.6g}", f"{r['snr']:.10g}",
             f"{r['expected_snr']:.10g}", f"{r['shot_snr']:.10g}", f"{r['element_sigma']:.6g}",
             r["dominant"], f"{r['error']:.1e}" + (f" ({r['worst']})" if r["error"] > 0 else ""),
             f"{r['shot_error']:.1e}"]
            for r in closed]

    acc, ideal = accuracy_rows(plan)
    out.mkdir(parents=True, exist_ok=True)
    seeds = ", ".join(map(str, plan["seeds"]))
    write_rows(out, f"{NAME}.accuracy",
               ["machine", "laser power per channel (W)", "received power (W)", "SNR",
                "element noise", "detector noise", "seeds", "test accuracy per seed",
                "mean test accuracy", "std", "seconds"],
               [[f"hardware_aware {show_power(r['laser_w'])}", f"{r['laser_w']:.6g}",
                 f"{r['received_w']:.6g}", f"{r['snr']:.6g}", f"{r['element_sigma']:.6g}",
                 f"{r['detector_sigma']:.6g}", seeds,
                 " ".join(f"{a:.4f}" for a in r["accuracies"]), f"{r['mean']:.4f}",
                 f"{r['std']:.4f}", f"{r['seconds']:.2f}"] for r in acc]
               + [["ideal", "", "", "", "0", "0", seeds,
                   " ".join(f"{a:.4f}" for a in ideal["accuracies"]), f"{ideal['mean']:.4f}",
                   f"{ideal['std']:.4f}", f"{ideal['seconds']:.2f}"]])
    shot = closed[0]["laser_for_shot_limit_w"]
    which = f" ({worst['worst']})" if worst["error"] > 0 else ""
    summary = (f"largest relative error {worst['error']:.1e}{which} over "
               f"{len(closed)} laser powers {show_power(min(CLOSED_POWERS_W))} .. "
               f"{show_power(max(CLOSED_POWERS_W))}, shot-noise limit {shot_worst:.1e}, element "
               f"noise {'falls' if falls else 'does NOT fall'} with the power; shot noise passes "
               f"thermal noise above {show_power(shot)} per channel; test accuracy after "
               f"{plan['epochs']} epochs (N = {plan['hidden']}, "
               f"{'mean over seeds ' + seeds if len(plan['seeds']) > 1 else 'seed ' + seeds}): "
               + ", ".join(f"{show_power(r['laser_w'])} (SNR {r['snr']:.3g}) {r['mean']:.4f}"
                           for r in acc)
               + f"; ideal {ideal['mean']:.4f}")
    return Check(
        NAME, TITLE, passed,
        method=("relaxsim.assemble of the default machine (hardware_aware, electronic_tanh with "
                "auto noise) at 12 laser powers log-spaced from 1 nW to 100 mW; its budget "
                "against the closed forms worked out from the device records: loss = coupling + "
                "weights + 2 x switch insertion loss (star, mirrored switch), B = 1 / (4 tau) "
                "of the element's response, I = R P_rx, SNR = I / sqrt(2 q I B + i_n^2 B + "
                "10^(RIN/10) I^2 B), element and detector noise 1 / SNR, shot-noise limit "
                "sqrt(P_rx R / (2 q B)), the laser power where 2 q R P_rx = i_n^2; largest "
                "relative error of each. Accuracy (not judged): relaxsim.run in-process on the "
                f"digits, L_W = 2, L_T = 4, N = {plan['hidden']}, {plan['epochs']} epochs, "
                f"seeds {seeds}, mode hardware_aware at "
                f"{', '.join(show_power(p) for p in plan['powers'])} per channel and mode "
                f"ideal, in {NAME}.accuracy.csv and the figure"),
        tolerance=(f"<= {RTOL:g} relative (SNR, noise, losses: float64 rounding), "
                   f"<= {SHOT_RTOL:g} (shot-noise limit); element noise strictly falling"),
        summary=summary,
        head=["laser power (W)", "received power (W)", "SNR, machine", "SNR, by hand",
              "shot-noise limited SNR", "element noise", "dominant noise",
              "max relative error (which)", "shot-limit relative error"],
        rows=rows,
        figure=accuracy_figure(acc, ideal, plan),
        caption=(f"Test accuracy against laser power per channel ({plan['epochs']} epochs, "
                 f"N = {plan['hidden']}, seeds {seeds}); green: mode ideal; dashed: the laser "
                 "power where shot noise passes thermal noise; top axis: the detector SNR at "
                 "each point (element and readout noise 1 / SNR)."))


if __name__ == "__main__":
    sys.exit(_main(sys.modules[__name__]))
