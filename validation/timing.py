"""Study: the SimPy timing model (``relaxsim.timing``) against the closed forms of one inference
alone and, pipelined, against Little's law and the bottleneck's service rate on hand-worked cases.

Run as ``python -m relaxsim.validation.timing [--quick] [--out DIR]``.
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import numpy as np

from relaxsim.timing import TimingSpec, closed_form_step, simulate

from .common import Check
from .common import main as _main

NAME = "timing"
TITLE = "Timing against the closed forms and Little's law"
CLOSED_FORM_RTOL = 1e-12  # sums of a few float64 times: a few ulp
THROUGHPUT_RTOL = 1e-9    # steady-state figures from differences of event times
PS = 1e-12

PARAMETER_SETS = [  # T_MM, T_switch, T_state, T_program, T_readout (ps)
    (10.0, 4.0, 3.0, 50.0, 2.0), (10.0, 3.0, 55.26, 2180.0, 10.0),
    (7.3, 11.0035, 11.0035, 1e6, 0.0), (0.5, 800.0, 0.0, 0.25, 3.3), (25.0, 0.0, 0.0, 0.0, 0.0)]
ARCHS = [("relaxnet", 2, (0, 1, 0, 1, 0)), ("relaxnet", 3, (0, 1, 2, 0, 1, 2)),
         ("reprogram", 1, (0, 1, 2, 3, 4)), ("unrolled", 4, (0, 1, 2, 3))]
# (spec overrides, throughput per ps) of hand-worked pipelined steady states
PIPELINES = [
    (dict(schedule=(0, 0, 0, 0), banks=1, in_flight=6), 1 / 40.0, "RNN, 6 in flight: bank"),
    (dict(schedule=(0, 1, 0), in_flight=4), 1 / 20.0, "bank 0 serves 2 steps"),
    (dict(schedule=(0, 1, 0, 1), t_readout=100.0, in_flight=8), 1 / 100.0, "slow readout"),
    (dict(in_flight=1), 1 / 43.0, "one in flight: 1 / latency"),
    (dict(schedule=(0, 1, 2), banks=3, architecture="unrolled", in_flight=2), 1 / 15.0,
     "unrolled: a layer per step, the last held through the readout (T_MM + T_state + "
     "T_readout)"),
    (dict(schedule=(0, 1, 2), banks=3, architecture="unrolled", clock=20.0, t_readout=0.0),
     1 / 20.0, "unrolled, clock 20 ps: one inference per tick"),
    (dict(schedule=(0, 1, 0, 1), clock=20.0, in_flight=2), 2 / 82.0,
     "ReLaX-Net, clock 20 ps, 2 sets: 2 per 4 ticks + readout"),
    (dict(schedule=(0, 1, 2), banks=1, architecture="reprogram", in_flight=4),
     4 / (3 * 50.0 + 12 * 10.0), "reprogrammed bank, shared programming"),
]


def spec(**kw) -> TimingSpec:
    base = dict(schedule=(0, 1, 0), banks=2, t_mm=10.0, t_switch=4.0, t_state=3.0,
                t_program=50.0, t_readout=2.0, clock=None)
    return TimingSpec(**{**base, **kw})


def steady_state(sim):
    """Mean number in the system, mean residence (admission to the last element freed) and
    throughput over the steady-state window, from the inferences' event times."""
    a, b = sim.steady_window()
    t0, t1 = sim.completions[a][0], sim.completions[b][0]
    in_flight = sum(max(0.0, min(inf.freed, t1) - max(inf.admitted, t0))
                    for inf in sim.inferences) / (t1 - t0)
    ended = [inf for inf in sim.inferences if t0 < inf.done <= t1]
    residence = sum(inf.residence for inf in ended) / len(ended)
    return in_flight, residence, len(ended) / (t1 - t0)


def check(quick: bool, out: Path) -> Check:
    rows, worst_cf, worst_ll = [], 0.0, 0.0
    sets = PARAMETER_SETS[:2] if quick else PARAMETER_SETS
    for (t_mm, t_sw, t_st, t_prog, t_ro), (arch, banks, schedule) in itertools.product(sets, ARCHS):
        s = spec(schedule=schedule, banks=banks, t_mm=t_mm * PS, t_switch=t_sw * PS,
                 t_state=t_st * PS, t_program=t_prog * PS, t_readout=t_ro * PS,
                 architecture=arch)
        inf = simulate(s).inferences[0]
        step = {"relaxnet": t_mm + max(t_sw, t_st), "reprogram": t_mm + max(t_prog, t_st),
                "unrolled": t_mm + t_st}[arch] * PS
        T = len(schedule)
        latency = (T * t_mm + (T - 1) * (step / PS - t_mm) + t_st + t_ro) * PS
        err = max(abs(closed_form_step(s) - step) / step,
                  float(np.max(np.abs(np.diff(inf.arrive) - step))) / step,
                  abs(inf.latency - latency) / latency)
        worst_cf = max(worst_cf, err)
        rows.append(["closed form", f"{arch} {schedule}, T_MM {t_mm} ps, T_sw {t_sw} ps, "
                     f"T_state {t_st} ps", f"{latency:.4g} s", f"{inf.latency:.4g} s",
                     f"{err:.1e}"])
    for kw, throughput, what in PIPELINES:
        sim = simulate(spec(pipelining="pipelined", **kw), record=False)
        in_flight, latency, rate = steady_state(sim)
        errors = [abs(sim.throughput() - throughput) / throughput,
                  abs(in_flight - rate * latency) / in_flight]
        if kw.get("architecture") != "unrolled" and kw.get("clock") is None:
            # the element sets are the bottleneck's: never idle
            errors.append(abs(in_flight - kw["in_flight"]) / kw["in_flight"])
        err = max(errors)
        worst_ll = max(worst_ll, err)
        rows.append(["Little's law", what, f"{throughput:.4g} /ps",
                     f"{sim.throughput():.4g} /ps; L = {in_flight:.4g}, "
                     f"lambda W = {rate * latency:.4g}", f"{err:.1e}"])
    return Check(
        NAME, TITLE, worst_cf < CLOSED_FORM_RTOL and worst_ll < THROUGHPUT_RTOL,
        method=("one inference alone: per-step arrival gaps and latency of the simulation "
                "against T_MM + max(T_switch, T_state) (ReLaX-Net), T_MM + max(T_program, "
                "T_state) (reprogrammed), T_MM + T_state (unrolled); pipelined: throughput "
                "against the bottleneck's service rate, mean number in the system L against "
                "throughput x mean residence (admission to the last element freed) over the "
                "steady-state window"),
        tolerance=(f"closed forms < {CLOSED_FORM_RTOL:g} relative (a few ulp); pipelined "
                   f"< {THROUGHPUT_RTOL:g} relative (differences of event times)"),
        summary=(f"closed forms: worst relative error {worst_cf:.1e}; Little's law and "
                 f"bottleneck: worst {worst_ll:.1e}"),
        head=["law", "case", "expected", "simulated", "relative error"], rows=rows)


if __name__ == "__main__":
    sys.exit(_main(sys.modules[__name__]))
