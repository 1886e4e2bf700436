"""Benchmark: forward + backward of the numba kernels against their numpy twins, side by side.

Run as ``relaxsim bench`` or ``python -m relaxsim.validation.bench``. Three variants are timed in
alternation within one run (the machines are shared and noisy): the numba kernels on the ideal
machine, the numba kernels with every physical effect on (per-sample switch leak into the previous
bank, carry-over, transmission, element and detector noise, a saturating transfer function), and
the numpy twin on the ideal machine. Reported: medians, numpy / numba (above 1: the kernels are
faster) and physics / ideal (the cost of the effects).

Then the SimPy timing model: its events per second on a long pipelined stream of the default
machine (``Simulation.events`` / wall time, trace off; the target is 200,000), and the share of a
training epoch of the default experiment that the timing simulation of a run takes (the coupling
arrays and ``Hardware.figures``, once per run, against one epoch).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

import numpy as np

from relaxsim import kernels, reference
from relaxsim.io import write_json

SIZES = (32, 128, 512)
BATCH = 256
STEPS = 8
BANKS = 4
INPUTS = 64
CLASSES = 10


def problem(N: int, B: int = BATCH, T: int = STEPS, L: int = BANKS, seed: int = 0):
    rng = np.random.default_rng(seed)
    params = {"W_in": rng.standard_normal((N, INPUTS)) / np.sqrt(INPUTS),
              "W": rng.standard_normal((L, N, N)) / np.sqrt(N), "b": np.zeros((L, N)),
              "W_out": rng.standard_normal((CLASSES, N)) / np.sqrt(N), "b_out": np.zeros(CLASSES)}
    sched = np.arange(T) % L
    return dict(params=params, X=rng.standard_normal((1, B, INPUTS)),
                slot=np.zeros(T, dtype=np.int64), sched=sched, prev=np.r_[sched[0], sched[:-1]],
                a=np.zeros(T), c=np.ones(T), eps=np.zeros(T), y=rng.integers(0, CLASSES, B))


def with_physics(p, seed: int = 1):
    """The same problem with every effect on: per-sample leak, noise, loss, SOA transfer."""
    rng = np.random.default_rng(seed)
    T, (_, B, _), N = len(p["sched"]), p["X"].shape, p["params"]["W"].shape[1]
    eps = rng.uniform(0.0, 0.05, (T, B))
    eps[0] = 0.0
    return {**p, "a": np.full(T, 0.1), "c": np.full(T, 0.9), "eps": eps, "tr": np.full(T, 0.95),
            "noise": 0.01 * rng.standard_normal((T, B, N)),
            "det": 0.01 * rng.standard_normal((B, N)), "act": 5, "act_params": (1.0, 2.0, 0.0)}


def numba_step(p):
    Z, tape = kernels.forward(p["params"], p["X"], p["slot"], p["sched"], p["prev"], p["a"],
                              p["c"], p["eps"], p.get("act", 0), p.get("noise"),
                              tr=p.get("tr"), det=p.get("det"), act_params=p.get("act_params"))
    _, gZ = kernels.loss(Z, p["y"])
    return kernels.backward(p["params"], tape, gZ)


def numpy_step(p):
    args = (p["params"], p["X"], p["slot"], p["sched"], p["prev"], p["a"], p["c"], p["eps"], 0)
    Z, H, U = reference.forward(*args)
    _, gZ = reference.loss(Z, p["y"])
    return reference.backward(*args, H, U, gZ)


SETTLE_S = 0.2  # pause before each timed block


def time_side_by_side(cases: dict, repeats: int, inner: int) -> dict[str, float]:
    """Median seconds per call of each ``name: (function, argument)``, timed in alternation."""
    for fn, arg in cases.values():  # warm up: JIT compilation and caches
        fn(arg)
    samples = {name: [] for name in cases}
    for _ in range(repeats):
        for name, (fn, arg) in cases.items():
            # numpy's multi-threaded BLAS keeps its threads spinning for a while after a call;
            # let them fall asleep so they do not steal the cores from the next variant
            time.sleep(SETTLE_S)
            t0 = time.perf_counter()
            for _ in range(inner):
                fn(arg)
            samples[name].append((time.perf_counter() - t0) / inner)
    return {name: statistics.median(s) for name, s in samples.items()}


EVENTS_TARGET = 200_000  # events per second the timing model must sustain


def timing_events_per_second(n: int, repeats: int) -> dict:
    """Events per second of the SimPy model: a stream of ``n`` inferences of the default machine,
    pipelined with 4 in flight, trace off; median of ``repeats``."""
    import relaxsim
    from relaxsim.hardware import build_hardware
    from relaxsim.schedules import resolve
    from relaxsim.timing import simulate

    cfg = relaxsim.load_config(overrides={"hardware.pipelining": "pipelined",
                                          "hardware.in_flight": 4})
    net = cfg.network
    spec = build_hardware(cfg.hardware).timing_spec(
        resolve(net.schedule, net.banks, net.steps), net.banks)
    simulate(spec, n=100, record=False)  # warm up
    rates, events = [], 0
    for _ in range(repeats):
        t0 = time.perf_counter()
        sim = simulate(spec, n=n, record=False)
        rates.append(sim.events / (time.perf_counter() - t0))
        events = sim.events
    return {"inferences": n, "events": events, "events_per_s": statistics.median(rates)}


def timing_share_of_epoch(repeats: int) -> dict:
    """Seconds of the timing simulation a run does once (coupling arrays and
    ``Hardware.figures``) against one epoch of training the default experiment (its second
    epoch: the first compiles). Also for the same machine pipelined (4 in flight), whose figures
    simulate streams."""
    import relaxsim
    from relaxsim.engine import make_engines
    from relaxsim.hardware import build_hardware
    from relaxsim.tasks import load_task
    from relaxsim.training import train

    cfg = relaxsim.load_config(overrides={"training.epochs": 2})
    data = load_task(cfg)
    net = relaxsim.build(cfg, data.info)
    out = {}
    for label, overrides in (("sequential", {}), ("pipelined", {
            "hardware.pipelining": "pipelined", "hardware.in_flight": 4})):
        hw = build_hardware(cfg.replace(overrides).hardware)
        samples = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            hw.coupling(net.schedule, net.alpha, cfg.network.activation, net.dtype)
            hw.figures(net.schedule, net.banks, net.hidden)
            samples.append(time.perf_counter() - t0)
        out[f"timing_{label}_s"] = statistics.median(samples)
    hw = build_hardware(cfg.hardware)
    net_hw = net.on(hw.coupling(net.schedule, net.alpha, cfg.network.activation, net.dtype))
    engines = make_engines(net, net_hw, hw, cfg.training.seed)
    trained = train(cfg, net, data, quiet=True, engines=(engines[0], engines[0]))
    out["epoch_s"] = trained.metrics[-1]["seconds"]
    for label in ("sequential", "pipelined"):
        out[f"share_{label}"] = out[f"timing_{label}_s"] / out["epoch_s"]
    return out


def main(quick: bool = False, json_path: str | None = None) -> int:
    repeats = 3 if quick else 9
    rows = []
    print(f"forward+backward, batch {BATCH}, L_T {STEPS}, L_W {BANKS}, float64, "
          f"{os.cpu_count()} cores, median of {repeats}")
    print(f"{'N':>5} {'numba ms':>10} {'physics ms':>11} {'numpy ms':>10} {'numpy/numba':>12} "
          f"{'physics/ideal':>14}")
    for N in SIZES:
        p = problem(N)
        inner = max(1, int(2e8 / (BATCH * STEPS * N * N * 6)))
        t = time_side_by_side({"numba": (numba_step, p), "physics": (numba_step, with_physics(p)),
                               "numpy": (numpy_step, p)}, repeats, inner)
        ratio, cost = t["numpy"] / t["numba"], t["physics"] / t["numba"]
        rows.append({"N": N, "batch": BATCH, "steps": STEPS, "banks": BANKS,
                     "numba_s": t["numba"], "physics_s": t["physics"], "numpy_s": t["numpy"],
                     "numpy_over_numba": ratio, "physics_over_ideal": cost})
        print(f"{N:>5} {t['numba'] * 1e3:>10.3f} {t['physics'] * 1e3:>11.3f} "
              f"{t['numpy'] * 1e3:>10.3f} {ratio:>12.2f} {cost:>14.2f}")
    n = 2_000 if quick else 20_000
    ev = timing_events_per_second(n, repeats=1 if quick else 3)
    print(f"\ntiming model (SimPy): {ev['events']:,} events of {n:,} pipelined inferences: "
          f"{ev['events_per_s']:,.0f} events/s ({ev['events_per_s'] / EVENTS_TARGET:.2f} x the "
          f"target of {EVENTS_TARGET:,})")
    share = timing_share_of_epoch(repeats=3 if quick else 7)
    print(f"timing simulation of a run (coupling + figures): "
          f"{share['timing_sequential_s'] * 1e3:.2f} ms sequential, "
          f"{share['timing_pipelined_s'] * 1e3:.2f} ms pipelined (4 in flight); "
          f"one training epoch of the default experiment {share['epoch_s']:.2f} s: "
          f"{100 * share['share_sequential']:.2f} % and {100 * share['share_pipelined']:.2f} %")
    if json_path:
        write_json(json_path, {"benchmark": "kernels_vs_numpy_twin", "cores": os.cpu_count(),
                               "machine": platform.machine(), "python": sys.version.split()[0],
                               "repeats": repeats, "rows": rows,
                               "timing": {**ev, "events_target": EVENTS_TARGET, **share}})
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json")
    args = parser.parse_args()
    sys.exit(main(args.quick, args.json))
