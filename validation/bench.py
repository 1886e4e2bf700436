"""Benchmark: forward + backward of the numba kernels against their numpy twins, side by side.

Run as ``relaxsim bench`` or ``python -m relaxsim.validation.bench``. Three variants are timed in
alternation within one run (the machines are shared and noisy): the numba kernels on the ideal
machine, the numba kernels with every physical effect on (per-sample switch leak into the previous
bank, carry-over, transmission, element and detector noise, a saturating transfer function), and
the numpy twin on the ideal machine. Reported: medians, numpy / numba (above 1: the kernels are
faster) and physics / ideal (the cost of the effects).
"""

from __future__ import annotations

import argparse
import json
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


def time_side_by_side(cases: dict, repeats: int, inner: int) -> dict[str, float]:
    """Median seconds per call of each ``name: (function, argument)``, timed in alternation."""
    for fn, arg in cases.values():  # warm up: JIT compilation and caches
        fn(arg)
    samples = {name: [] for name in cases}
    for _ in range(repeats):
        for name, (fn, arg) in cases.items():
            t0 = time.perf_counter()
            for _ in range(inner):
                fn(arg)
            samples[name].append((time.perf_counter() - t0) / inner)
    return {name: statistics.median(s) for name, s in samples.items()}


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
    if json_path:
        write_json(json_path, {"benchmark": "kernels_vs_numpy_twin", "cores": os.cpu_count(),
                               "machine": platform.machine(), "python": sys.version.split()[0],
                               "repeats": repeats, "rows": rows})
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json")
    args = parser.parse_args()
    sys.exit(main(args.quick, args.json))
