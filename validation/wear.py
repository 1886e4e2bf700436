"""Study: wear of photonic GST weights, and the accuracy it leaves, by update rate. A weight element
with a finite ``endurance_writes`` counts its writes per device (:class:`relaxsim.hardware.Wear`):
a programming event writes a device only when its level changes, a write past the endurance fails
and the device sticks (``failure = "last"``: at the value it held before that write), and the
gradient stops at a weight with a stuck device. ``pcm_photonic`` holds a weight in a differential
pair of 5-bit cells (31 level steps over ``[0, w_max]``) that survive 6,000 writes of 0.96 pJ.
Two parts:

- exact (the check): five programming events on a bank of four weights (eight devices), noise
  off, endurance 2, worked out by hand: which devices change level at each event (both devices of
  a pair when a weight changes sign), the writes per device after each event, the stuck devices
  and the values they stick at, the weights the bank then holds, the straight-through mask, the
  summary of the run (:func:`relaxsim.hardware.wear_summary`) and the write energy ``device
  writes x 0.96 pJ``; the last event repeats the one before and must write nothing, and a fresh
  bank programmed twice with the same weights is written once.
- accuracy (a measurement, no verdict): the default experiment's network (L_W = 2, L_T = 4) on the
  digits, N = 16, batch size 1 (1,168 batches an epoch, so ``update_every = 1`` programs the banks
  1,168 times an epoch), trained in mode ``hardware_aware`` with ``pcm_photonic`` weights at
  ``hardware.update_every`` 1, 10 and 100, at the sourced endurance of 6,000 writes and at a
  reduced one of 30, and in mode ``ideal`` as the reference; test accuracy, writes per device and
  worn-out share against training epochs, mean over seeds.

Why a reduced endurance: a device is written only when its 5-bit level changes, and Adam's steps
at the default learning rate (0.002) cross a level (2 / 31 = 0.065) every few dozen batches at
most, less and less as training converges. Measured on this network with ``update_every = 1``, the
most written device had 23 writes after 1 epoch, 64 after 10, 155 after 50 and 174 after 100
(116,800 programming events): the sourced 6,000 writes are never reached within any sensible
budget, and 300 neither. 30 writes are reached within the first epochs.

Each point is a separate run of E epochs (``relaxsim.run`` in process): its test accuracy is what
``relaxsim run`` reports, the weights of the best validation epoch among the first E, tested on the
machine as worn after E epochs (the test programs them onto the same devices; the stuck ones stay);
its wear is that machine's. The learning rate is constant, so a run of E epochs is the first E
epochs of a longer one. The validation accuracy of epoch E (the weights after E epochs, on the
machine as worn, without the selection) is listed beside it.

Times on a 2-core machine, kernels compiled: ``--quick`` (epochs 1, 2, 4, 8, 16; seed 0) 30 s,
the full study (epochs 1, 2, 4, 8, 16, 32; seeds 0-4) 5 min 26 s. As measured in the full study,
after 32 epochs the most written device has 113 writes (update_every 1), 116 (10) and 73 (100) at
the sourced endurance (mean over seeds; 133 in the worst seed), none worn out; at 30 writes 49 %,
49 % and 43 % of the devices are worn out (about one device of every pair: a weight stops
learning once one of its devices sticks, so its partner, at level 0, is hardly ever written
again), and the test accuracy moves by less than the spread over seeds (0.966, 0.962, 0.959
sourced; 0.963, 0.962, 0.957 reduced; ideal 0.957): a device stuck at its last level holds a
trained weight, and the digital input and output layers keep learning.

Run as ``python -m relaxsim.validation.wear [--quick] [--out DIR]``.
"""

from __future__ import annotations

import csv
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from relaxsim.errors import HardwareWarning

from .common import Check, write_rows
from .common import main as _main

NAME = "wear"
TITLE = "Wear: accuracy against training epochs for photonic GST, by update rate"
PRESET = "pcm_photonic"
SOURCED_ENDURANCE = 6000      # Photonics 12(11) 1130 (2025), the preset's endurance_writes
REDUCED_ENDURANCE = 30
WRITE_ENERGY_J = 0.96e-12     # the preset's write_energy, as sourced
ENERGY_RTOL = 1e-12           # the parsed "0.96 pJ" against 0.96e-12: float64 rounding only
VALUE_ATOL = 1e-12            # the weights held, in the weights' units: float64 rounding of levels

# -- exact part ---------------------------------------------------------------------------------

BITS, W_MAX = 5, 2.0
STEP = W_MAX / (2 ** BITS - 1)  # one level of a device of a pair
EXACT_ENDURANCE = 2
WEIGHTS = ("a", "b", "c", "d")  # the bank (1, 2, 2): a b / c d
DEVICES = ("+", "-")            # a pair holds w = d+ - d-
# The weights asked for at each event, in levels (w = n STEP); 5.3 is asked for but lies on
# level 5. The last event repeats the one before.
EVENTS = (
    (5, -5, 0, 10),
    (5.3, -3, 0, -10),
    (7, -3, 4, 6),
    (9, 2, 4, 6),
    (9, 2, 4, 6),
)
# Worked by hand, endurance 2. A device's level is max(n, 0) (d+) or max(-n, 0) (d-); it is
# written when that level differs from the one it holds (every device at the first event),
# unless it is stuck; its third write fails and it sticks at the value it held.
#   1: every device written once (nothing was programmed).
#   2: a stays on level 5 (5.3); b- 5 -> 3; d changes sign: d+ 10 -> 0 and d- 0 -> 10.
#   3: a+ 5 -> 7; c+ 0 -> 4; d changes sign again: d+ 0 -> 6 and d- 10 -> 0 are both third
#      writes and fail: d+ sticks at 0, d- at 10, d holds -10.
#   4: a+ 7 -> 9 fails (third write): sticks at 7; b changes sign: b+ 0 -> 2 (second write), b- 3
#      -> 0 fails (third): sticks at 3, b holds 2 - 3 = -1; c and d unchanged.
#   5: the same weights as 4: no device's level changes, nothing is written.
# writes: (d+, d-) of a, b, c, d after the event; stuck: the stuck devices; held: the weights the
# bank holds, in levels; mask: the straight-through mask (0 where a device is stuck).
HAND = (
    {"written": 8, "writes": ((1, 1), (1, 1), (1, 1), (1, 1)), "stuck": (),
     "held": (5, -5, 0, 10), "mask": (1, 1, 1, 1)},
    {"written": 3, "writes": ((1, 1), (1, 2), (1, 1), (2, 2)), "stuck": (),
     "held": (5, -3, 0, -10), "mask": (1, 1, 1, 1)},
    {"written": 4, "writes": ((2, 1), (1, 2), (2, 1), (3, 3)), "stuck": ("d+", "d-"),
     "held": (7, -3, 4, -10), "mask": (1, 1, 1, 0)},
    {"written": 3, "writes": ((3, 1), (2, 3), (2, 1), (3, 3)), "stuck": ("a+", "b-", "d+", "d-"),
     "held": (7, -1, 4, -10), "mask": (0, 0, 1, 0)},
    {"written": 0, "writes": ((3, 1), (2, 3), (2, 1), (3, 3)), "stuck": ("a+", "b-", "d+", "d-"),
     "held": (7, -1, 4, -10), "mask": (0, 0, 1, 0)},
)
# the values the stuck devices hold, in levels: each the value before its failing write
HAND_STUCK_AT = {"a+": 7, "b-": 3, "d+": 0, "d-": 10}
HAND_SUMMARY = {"device_writes": 18, "writes_per_device_max": 3, "writes_per_device_mean": 2.25,
                "worn_out_share": 0.5}


def tiny_machine(endurance: float = EXACT_ENDURANCE):
    """The default machine with ``pcm_photonic`` weights, noise off, ``endurance`` writes and
    ``failure = "last"``."""
    import relaxsim
    from relaxsim.hardware import build_hardware

    cfg = relaxsim.load_config(overrides={"hardware.weights": {
        "preset": PRESET, "program_noise": 0.0, "read_noise": 0.0,
        "endurance_writes": endurance, "failure": "last"}})
    return build_hardware(cfg.hardware, 1)


def bank(levels) -> np.ndarray:
    """The bank ``(1, 2, 2)`` holding the weights ``levels`` (a, b, c, d) in units of a level."""
    return (np.asarray(levels, dtype=np.float64) * STEP).reshape(1, 2, 2)


def device_name(k: int, j: int) -> str:
    return f"{WEIGHTS[j]}{DEVICES[k]}"


def exact_rows(events=None, hand=None, stuck_at=None, summary=None) -> list[dict]:
    """Program ``events`` in turn on a fresh bank of :func:`tiny_machine` and compare, after each
    event, with ``hand``: the devices written, the writes per device (exactly), the stuck set
    (exactly), the values the stuck devices hold against ``stuck_at`` and the weights held
    against ``hand["held"]`` (to :data:`VALUE_ATOL`), and the mask (exactly); after the last
    event also :func:`relaxsim.hardware.wear_summary` against ``summary`` and the write energy
    ``device_writes x 0.96 pJ`` (each ``None``: this module's :data:`EVENTS`, :data:`HAND`,
    :data:`HAND_STUCK_AT`, :data:`HAND_SUMMARY`). One row per event; ``mismatches`` lists what
    differs."""
    from relaxsim.hardware import wear_summary

    events = EVENTS if events is None else events
    hand = HAND if hand is None else hand
    stuck_at = HAND_STUCK_AT if stuck_at is None else stuck_at
    summary = HAND_SUMMARY if summary is None else summary
    hw = tiny_machine()
    wear = hw.wear((1, 2, 2))
    rng = np.random.default_rng(0)
    rows, total = [], 0
    for e, (levels, want) in enumerate(zip(events, hand, strict=True), start=1):
        before = wear.writes.copy()
        prog = hw.program(bank(levels), rng, wear)
        writes = wear.writes.reshape(2, 4)
        written = int((wear.writes - before).sum())
        total += written
        got_writes = tuple(tuple(int(writes[k, j]) for k in range(2)) for j in range(4))
        got_stuck = tuple(device_name(k, j) for j in range(4) for k in range(2)
                          if wear.stuck.reshape(2, 4)[k, j])
        held = prog.W.reshape(4)
        mask = tuple(int(m) for m in prog.mask.reshape(4))
        values = wear.value.reshape(2, 4)
        mismatches = []
        if written != want["written"]:
            mismatches.append(f"devices written {written}, by hand {want['written']}")
        if got_writes != tuple(tuple(p) for p in want["writes"]):
            mismatches.append(f"writes {got_writes}, by hand {want['writes']}")
        if set(got_stuck) != set(want["stuck"]):
            mismatches.append(f"stuck {got_stuck}, by hand {want['stuck']}")
        held_error = float(np.max(np.abs(held - np.asarray(want["held"]) * STEP)))
        if not held_error <= VALUE_ATOL:
            mismatches.append(f"weights held {tuple(np.round(held / STEP, 6))} levels, by hand "
                              f"{want['held']} (error {held_error:.1e})")
        if mask != tuple(want["mask"]):
            mismatches.append(f"mask {mask}, by hand {want['mask']}")
        stuck_error = 0.0
        for name in got_stuck:
            j, k = WEIGHTS.index(name[0]), DEVICES.index(name[1])
            if name not in stuck_at:
                mismatches.append(f"{name} stuck, no value by hand")
                continue
            err = abs(float(values[k, j]) - stuck_at[name] * STEP)
            stuck_error = max(stuck_error, err)
            if not err <= VALUE_ATOL:
                mismatches.append(f"{name} stuck at {values[k, j] / STEP:.6g} levels, by hand "
                                  f"{stuck_at[name]}")
        rows.append({"event": e, "levels": levels, "written": written, "writes": got_writes,
                     "stuck": got_stuck, "held": tuple(float(h) / STEP for h in held),
                     "mask": mask, "value_error": max(held_error, stuck_error),
                     "mismatches": mismatches})
    got = wear_summary([wear], hw.weights.write_energy_j, len(events), 8)
    last = rows[-1]["mismatches"]
    if not got["tracked"]:
        last.append("the writes were not counted")
    for key, want in summary.items():
        if got[key] != want:
            last.append(f"{key} {got[key]}, by hand {want}")
    if total != summary["device_writes"]:
        last.append(f"devices written over the events {total}, by hand "
                    f"{summary['device_writes']}")
    energy_error = abs(got["write_energy_j"] / (summary["device_writes"] * WRITE_ENERGY_J) - 1.0)
    if not energy_error <= ENERGY_RTOL:
        last.append(f"write energy {got['write_energy_j']:.6g} J, by hand "
                    f"{summary['device_writes']} x 0.96 pJ (relative error {energy_error:.1e})")
    rows[-1].update({"summary": got, "energy_error": energy_error})
    return rows


def repeat_writes(levels=EVENTS[0]) -> tuple[int, int]:
    """A fresh bank of :func:`tiny_machine` (the sourced endurance) programmed twice with the same
    weights: the devices written by the first event and by the second (0 by hand)."""
    hw = tiny_machine(SOURCED_ENDURANCE)
    wear = hw.wear((1, 2, 2))
    rng = np.random.default_rng(0)
    hw.program(bank(levels), rng, wear)
    first = int(wear.writes.sum())
    hw.program(bank(levels), rng, wear)
    return first, int(wear.writes.sum()) - first


# -- the measurement ----------------------------------------------------------------------------

QUICK = {"epochs": (1, 2, 4, 8, 16), "seeds": (0,), "hidden": 16, "batch": 1,
         "update_every": (1, 10, 100), "endurances": (SOURCED_ENDURANCE, REDUCED_ENDURANCE)}
FULL = {"epochs": (1, 2, 4, 8, 16, 32), "seeds": (0, 1, 2, 3, 4), "hidden": 16, "batch": 1,
        "update_every": (1, 10, 100), "endurances": (SOURCED_ENDURANCE, REDUCED_ENDURANCE)}


def endurance_label(endurance: int) -> str:
    return "sourced" if endurance == SOURCED_ENDURANCE else "reduced"


def settings(plan: dict) -> list[dict]:
    """The machines of ``plan``: ``hardware_aware`` at every endurance and update rate, then
    ``ideal``."""
    out = [{"machine": "hardware_aware", "endurance": end, "update_every": ue,
            "overrides": {"hardware.mode": "hardware_aware", "hardware.update_every": ue,
                          "hardware.weights": {"preset": PRESET, "endurance_writes": end}}}
           for end in plan["endurances"] for ue in plan["update_every"]]
    out.append({"machine": "ideal", "endurance": None, "update_every": None,
                "overrides": {"hardware.mode": "ideal",
                              "hardware.weights": {"preset": PRESET}}})
    return out


def one_run(overrides: dict) -> dict:
    """``relaxsim.run`` of ``overrides`` in a scratch directory: its result and the validation
    accuracy of its last epoch (``metrics.csv``)."""
    import relaxsim

    cfg = relaxsim.load_config(overrides=overrides)
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", HardwareWarning)
        t0 = time.perf_counter()
        res = relaxsim.run(cfg, out=Path(tmp) / "run", quiet=True)
        seconds = time.perf_counter() - t0
        with open(Path(tmp) / "run" / "metrics.csv", newline="") as fh:
            last = list(csv.DictReader(fh))[-1]
    return {"result": res, "last_val_accuracy": float(last["val_accuracy"]), "seconds": seconds}


def accuracy_rows(plan: dict) -> list[dict]:
    """One row per machine of :func:`settings` and epoch count of ``plan``: every seed's run of
    that many epochs, the test accuracy per seed, mean and sample std, the last epoch's
    validation accuracy, and the wear (writes per device, worn-out share, device writes, write
    energy; in mode ``ideal`` none are counted) as means over the seeds."""
    base = {"network.hidden": plan["hidden"], "training.batch_size": plan["batch"],
            "training.checkpoint_every": 0}
    rows = []
    for s in settings(plan):
        for epochs in plan["epochs"]:
            runs = [one_run({**base, **s["overrides"], "training.epochs": epochs,
                             "training.seed": seed}) for seed in plan["seeds"]]
            accs = [float(r["result"]["test_accuracy"]) for r in runs]
            wears = [r["result"]["hardware"]["wear"] for r in runs]
            counted = s["machine"] != "ideal"

            def mean(key, wears=wears, counted=counted):
                return statistics.fmean(float(w[key]) for w in wears) if counted else 0.0

            rows.append({
                "machine": s["machine"], "endurance": s["endurance"],
                "update_every": s["update_every"], "epochs": epochs,
                "accuracies": accs, "mean": statistics.fmean(accs),
                "std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
                "last_val": statistics.fmean(r["last_val_accuracy"] for r in runs),
                "best_epoch": [int(r["result"]["best_epoch"]) for r in runs],
                "events": statistics.fmean(r["result"]["hardware"]["programming_events"]
                                           for r in runs),
                "writes_max": mean("writes_per_device_max"),
                "writes_max_top": max(int(w["writes_per_device_max"]) for w in wears)
                if counted else 0,
                "writes_mean": mean("writes_per_device_mean"),
                "worn_out_share": mean("worn_out_share"),
                "device_writes": mean("device_writes"),
                "write_energy_j": mean("write_energy_j"),
                "seconds": sum(r["seconds"] for r in runs),
                "chance": 1.0 / runs[0]["result"]["task"]["n_classes"]})
    return rows


def label(row: dict) -> str:
    if row["machine"] == "ideal":
        return "ideal"
    return (f"update_every {row['update_every']}, endurance {row['endurance']:,} "
            f"({endurance_label(row['endurance'])})")


def accuracy_figure(rows: list[dict], plan: dict) -> bytes:
    """Three panels against training epochs (log axis): test accuracy, worn-out share and the
    writes of the most written device (log axis, the two endurances marked); one colour per
    update rate, solid at the sourced endurance, dashed at the reduced one; black: ideal."""
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8.0, 9.0), layout="constrained")
    FigureCanvasAgg(fig)
    acc_ax, worn_ax, writes_ax = fig.subplots(3, 1, sharex=True)
    epochs = np.array(plan["epochs"])
    seeds = len(plan["seeds"])
    for end in plan["endurances"]:
        style = "-" if end == SOURCED_ENDURANCE else "--"
        for i, ue in enumerate(plan["update_every"]):
            line = [r for r in rows if r["endurance"] == end and r["update_every"] == ue]
            mean = np.array([r["mean"] for r in line])
            color = f"C{i}"
            name = f"update_every {ue}, endurance {end:,}"
            acc_ax.plot(epochs, mean, style, marker="o", markersize=3, color=color, label=name)
            worn_ax.plot(epochs, [r["worn_out_share"] for r in line], style, marker="o",
                         markersize=3, color=color)
            writes_ax.plot(epochs, [r["writes_max"] for r in line], style, marker="o",
                           markersize=3, color=color)
    ideal = [r for r in rows if r["machine"] == "ideal"]
    acc_ax.plot(epochs, [r["mean"] for r in ideal], "-", marker="s", markersize=3, color="k",
                label="ideal")
    for end in plan["endurances"]:
        writes_ax.axhline(end, color="0.4", linestyle=":" if end == SOURCED_ENDURANCE else "-.",
                          linewidth=1.0, label=f"endurance {end:,} ({endurance_label(end)})")
    acc_ax.set_ylabel("test accuracy" + (f" (mean of {seeds} seeds)" if seeds > 1 else ""))
    acc_ax.legend(fontsize=7, loc="upper left", ncol=2)
    worn_ax.set_ylabel("worn-out share of devices")
    worn_ax.set_ylim(-0.02, 0.55)
    writes_ax.set_ylabel("writes of the most written device")
    writes_ax.set_yscale("log")
    writes_ax.legend(fontsize=7, loc="lower right")
    writes_ax.set_xlabel("training epochs")
    writes_ax.set_xscale("log", base=2)
    writes_ax.set_xticks(epochs, [str(e) for e in epochs])
    for ax in (acc_ax, worn_ax, writes_ax):
        ax.grid(linewidth=0.3, which="both")
    acc_ax.set_title(f"digits, L_W = 2, L_T = 4, N = {plan['hidden']}, batch {plan['batch']}, "
                     f"{PRESET} (5 bits, differential), seed{'s' if seeds > 1 else ''} "
                     f"{', '.join(map(str, plan['seeds']))}", fontsize=9)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return buf.getvalue()


def write_accuracy(out: Path, rows: list[dict], plan: dict) -> str:
    seeds = ", ".join(map(str, plan["seeds"]))
    return write_rows(out, f"{NAME}.accuracy", [
        "machine", "endurance (writes)", "endurance", "update_every", "epochs", "seeds",
        "test accuracy per seed", "mean test accuracy", "std", "best epoch per seed",
        "validation accuracy of the last epoch (mean)", "programming events (mean)",
        "writes per device, max (mean over seeds)", "writes per device, max (largest seed)",
        "writes per device, mean", "worn-out share", "device writes", "write energy (J)",
        "seconds"],
        [[r["machine"], "" if r["endurance"] is None else r["endurance"],
          "" if r["endurance"] is None else endurance_label(r["endurance"]),
          "" if r["update_every"] is None else r["update_every"], r["epochs"], seeds,
          " ".join(f"{a:.4f}" for a in r["accuracies"]), f"{r['mean']:.4f}", f"{r['std']:.4f}",
          " ".join(map(str, r["best_epoch"])), f"{r['last_val']:.4f}", *wear_cells(r),
          f"{r['seconds']:.2f}"] for r in rows])


def wear_cells(row: dict) -> list:
    """The wear columns of ``row``; blank in mode ``ideal``, where no machine is written."""
    if row["machine"] == "ideal":
        return [""] * 7
    return [f"{row['events']:.6g}", f"{row['writes_max']:.6g}", row["writes_max_top"],
            f"{row['writes_mean']:.6g}", f"{row['worn_out_share']:.4f}",
            f"{row['device_writes']:.6g}", f"{row['write_energy_j']:.6g}"]


def check(quick: bool, out: Path) -> Check:
    plan = QUICK if quick else FULL
    exact = exact_rows()
    first, again = repeat_writes()
    mismatches = [f"event {r['event']}: {m}" for r in exact for m in r["mismatches"]]
    if again != 0:
        mismatches.append(f"the same weights programmed twice: {again} devices written again")
    if first != 8:
        mismatches.append(f"a fresh bank's first event wrote {first} devices, by hand 8")
    passed = not mismatches
    summ = exact[-1]["summary"]
    rows = [[r["event"], " ".join(f"{n:g}" for n in r["levels"]), r["written"],
             " ".join(f"{p}/{m}" for p, m in r["writes"]), " ".join(r["stuck"]) or "-",
             " ".join(f"{h:.6g}" for h in r["held"]), " ".join(map(str, r["mask"])),
             f"{r['value_error']:.1e}", "; ".join(r["mismatches"]) or "none"]
            for r in exact]

    acc = accuracy_rows(plan)
    out.mkdir(parents=True, exist_ok=True)
    write_accuracy(out, acc, plan)
    last = max(plan["epochs"])
    seeds = ", ".join(map(str, plan["seeds"]))
    at_last = [r for r in acc if r["epochs"] == last]

    def point(r):
        if r["machine"] == "ideal":
            return f"ideal {r['mean']:.4f}"
        return (f"update_every {r['update_every']} {r['mean']:.4f} (most written device "
                f"{r['writes_max']:.4g} writes, worn out {r['worn_out_share']:.1%})")

    parts = [f"endurance {end:,} ({endurance_label(end)}): "
             + ", ".join(point(r) for r in at_last if r["endurance"] == end)
             for end in plan["endurances"]]
    summary = (f"{'no mismatch' if passed else f'{len(mismatches)} MISMATCHES'} with the hand "
               f"count over {len(EVENTS)} events on 4 differential pairs (endurance "
               f"{EXACT_ENDURANCE}: {summ['device_writes']} device writes, "
               f"{summ['worn_out_share']:.0%} of the devices stuck at the value before their "
               f"failing write, write energy "
               f"{summ['write_energy_j']:.4g} J = {summ['device_writes']} x 0.96 pJ; a repeated "
               f"event writes {again} devices); test accuracy after {last} epochs (digits, "
               f"N = {plan['hidden']}, batch {plan['batch']}, "
               f"{'mean over seeds ' + seeds if len(plan['seeds']) > 1 else 'seed ' + seeds}): "
               + "; ".join(parts) + "; " + point(at_last[-1]))
    return Check(
        NAME, TITLE, passed,
        method=(f"relaxsim.hardware.build_hardware of the default machine with {PRESET} weights "
                f"(5 bits, differential pairs, noise off, endurance_writes = "
                f"{EXACT_ENDURANCE}, failure = last); Hardware.program of {len(EVENTS)} banks of "
                "four weights in turn on one Wear, against the hand count: the devices written "
                "per event, the writes per device, the stuck set, the stuck values (the value "
                "before the failing write), the weights held, the straight-through mask, "
                "wear_summary (writes max and mean, worn-out share, device writes) and the "
                "write energy device writes x 0.96 pJ; the last event repeats the one before, "
                "and a fresh bank is programmed twice with the same weights. Accuracy (not "
                "judged): relaxsim.run in process on the digits, L_W = 2, L_T = 4, "
                f"N = {plan['hidden']}, batch size {plan['batch']}, mode hardware_aware with "
                f"{PRESET} at update_every {', '.join(map(str, plan['update_every']))} and "
                f"endurance {SOURCED_ENDURANCE:,} (sourced) and {REDUCED_ENDURANCE} (reduced: "
                f"{SOURCED_ENDURANCE:,} is never reached), and mode ideal; one run per epoch "
                f"count ({', '.join(map(str, plan['epochs']))}) and seed ({seeds}): the test "
                "accuracy of the best validation epoch tested on the machine as worn at the "
                "end, the last epoch's validation accuracy, the run's wear; in "
                f"{NAME}.accuracy.csv and the figure"),
        tolerance=("writes per device, devices written, stuck set, mask and summary counts equal "
                   f"to the hand count; weights and stuck values <= {VALUE_ATOL:g} absolute "
                   f"(float64 levels); write energy <= {ENERGY_RTOL:g} relative"),
        summary=summary,
        head=["event", "weights asked for (levels a b c d)", "devices written",
              "writes d+/d- (a b c d)", "stuck devices", "weights held (levels)", "mask",
              "largest value error", "mismatches with the hand count"],
        rows=rows,
        figure=accuracy_figure(acc, plan),
        caption=(f"Test accuracy, worn-out share and the writes of the most written device "
                 f"against training epochs (digits, N = {plan['hidden']}, batch "
                 f"{plan['batch']}, seeds {seeds}), one colour per hardware.update_every; solid: "
                 f"the sourced endurance of {SOURCED_ENDURANCE:,} writes, dashed: a reduced "
                 f"endurance of {REDUCED_ENDURANCE}; black: mode ideal. Each point is a separate "
                 "run of that many epochs; the standard deviation over the seeds is in "
                 f"{NAME}.accuracy.csv."))


if __name__ == "__main__":
    sys.exit(_main(sys.modules[__name__]))
