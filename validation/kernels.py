"""Study: the numba kernels (forward, loss, backward) against their numpy twins in
``relaxsim.kernels.reference``, float64, over every activation, the three input layouts, per-sample and
per-step coupling, element noise and device transfer parameters.

Run as ``python -m relaxsim.validation.kernels [--quick] [--out DIR]``.
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import numpy as np

from relaxsim.activations import ACTIVATIONS
from relaxsim.kernels import passes as kernels
from relaxsim.kernels import reference

from .common import Check
from .common import main as _main

NAME = "kernels"
TITLE = "Kernels against their numpy twins"
# Kernels and twins do the same float64 arithmetic in another order (BLAS blocking, fused loops):
# a few ulps times the depth; 1e-12 is the bound of tests/test_kernels.py.
TWIN_TOL = 1e-12


def random_problem(rng, B=6, N=5, D=4, C=3, L=3, T=7, slots="static", per_sample=True,
                   noise=True, schedule=None, mixing="leak"):
    """Parameters, inputs and non-trivial coupling arrays for one kernel call.

    ``mixing``: ``"leak"``, the two-bank leak ``eps`` into the previous bank; ``"full"``, a
    mixing matrix ``mix`` with a share of every bank at every step (per sample: the shares of
    two banks differ between samples on the steps that change bank, as timing jitter moves
    them; a step with every share common, one with a single bank alone)."""
    sched = np.array(schedule if schedule is not None else [t % L for t in range(T)])
    T = len(sched)
    prev = np.r_[sched[0], sched[:-1]]
    params = {"W_in": rng.standard_normal((N, D)) / 2, "W": rng.standard_normal((L, N, N)) / 2,
              "b": rng.standard_normal((L, N)) / 2, "W_out": rng.standard_normal((C, N)),
              "b_out": rng.standard_normal(C)}
    if slots == "static":
        X, slot = rng.standard_normal((1, B, D)), np.zeros(T, dtype=np.int64)
    elif slots == "first":
        X, slot = rng.standard_normal((1, B, D)), np.r_[0, -np.ones(T - 1, dtype=np.int64)]
    else:
        X, slot = rng.standard_normal((T, B, D)), np.arange(T)
    cols = B if per_sample else 1
    a = rng.uniform(0, 0.6, (T, cols))
    c = rng.uniform(0.5, 1.5, (T, cols))
    eps = rng.uniform(0, 0.4, (T, cols))
    eps[0] = 0.0
    tr = rng.uniform(0.5, 1.0, (T, cols))
    physics = {"noise": rng.standard_normal((T, B, N)) * 0.1,
               "det": rng.standard_normal((B, N)) * 0.1} if noise else {"noise": None, "det": None}
    y = rng.integers(0, C, B)
    mix = None
    if mixing == "full":
        mix = rng.uniform(-0.2, 0.3, (T, L))
        mix[np.arange(T), sched] = rng.uniform(0.7, 1.0, T)
        if T > 2:
            mix[2] = 0.0
            mix[2, sched[2]] = 1.0  # a step on its bank alone
        if per_sample:
            mix = np.repeat(mix[:, None, :], B, axis=1)
            for t in range(1, T):
                if sched[t] != prev[t]:
                    mix[t, :, sched[t]] = rng.uniform(0.5, 1.0, B)
                    mix[t, :, prev[t]] = rng.uniform(0.0, 0.5, B)
    return dict(params=params, X=X, slot=slot, sched=sched, prev=prev, a=a, c=c, eps=eps,
                tr=tr, y=y, mix=mix, **physics)


def device_params(act, rng):
    """Non-ideal transfer parameters (gain, saturation, p) for the activation ``act``."""
    g, s = rng.uniform(0.6, 1.4), rng.uniform(0.8, 2.0)
    return (g, s, {"saturable_absorber": rng.uniform(0.2, 0.8),
                   "sin2": rng.uniform(0.3, 1.2)}.get(act, 0.0))


def max_rel(a, b) -> float:
    """Largest absolute difference relative to the largest magnitude of the reference ``b``."""
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def run_both(p, act: int, dtype=np.float64, act_params=None):
    """Forward, loss and backward of problem ``p`` by the kernels and by their numpy twins:
    ``(Z, tape, loss, grads), (Z, H, loss, grads)``."""
    kw = dict(tr=p["tr"], det=p["det"], act_params=act_params, mix=p.get("mix"))
    args = (p["X"], p["slot"], p["sched"], p["prev"], p["a"], p["c"], p["eps"], act, p["noise"])
    Z, tape = kernels.forward(p["params"], *args, dtype=dtype, **kw)
    loss, gZ = kernels.loss(Z, p["y"])
    grads = kernels.backward(p["params"], tape, gZ)
    Zr, H, U = reference.forward(p["params"], *args, **kw)
    loss_r, gZ_r = reference.loss(Zr, p["y"])
    grads_r = reference.backward(p["params"], *args[:-1], H, U, gZ_r, **kw)
    return (Z, tape, loss, grads), (Zr, H, loss_r, grads_r)


def compare(p, act: str, act_params) -> dict[str, float]:
    (Z, tape, loss, grads), (Zr, H, loss_r, grads_r) = run_both(
        p, ACTIVATIONS.get(act).code, act_params=act_params)
    return {"logits": max_rel(Z, Zr), "states": max_rel(tape.H, H),
            "loss": abs(loss - loss_r) / abs(loss_r),
            "gradients": max(max_rel(grads[k], grads_r[k]) for k in grads_r)}


def check(quick: bool, out: Path) -> Check:
    slots = ["static", "first", "sequence"]
    cases = list(itertools.product(ACTIVATIONS.names(), slots, [True, False], [True, False],
                                   ["ideal", "device"], ["leak", "full"]))
    if quick:
        cases = [c for c in cases if c[2] and c[3]]
    rng = np.random.default_rng(7)
    rows, worst = [], 0.0
    for act, slot, per_sample, noise, kind, mixing in cases:
        p = random_problem(rng, slots=slot, per_sample=per_sample, noise=noise, mixing=mixing)
        errs = compare(p, act, device_params(act, rng) if kind == "device" else None)
        worst = max(worst, *errs.values())
        rows.append([act, slot, "per sample" if per_sample else "per step",
                     "every bank" if mixing == "full" else "previous bank",
                     "yes" if noise else "no", kind, *(f"{errs[k]:.1e}" for k in errs)])
    return Check(
        NAME, TITLE, worst < TWIN_TOL,
        method=("batch 6, N = 5, 4 inputs, 3 classes, L_W = 3, L_T = 7 (cyclic), random "
                "coupling a_t, c_t, transmission and the banks' mixing (a leak into the previous bank, or a share "
                "of every bank, per step or per sample); max |kernel - twin| / max |twin| "
                "of logits, hidden states, gradients; relative difference of the loss"),
        tolerance=f"< {TWIN_TOL:g} (same float64 arithmetic in another order)",
        summary=f"worst relative difference {worst:.1e} over {len(rows)} cases",
        head=["activation", "inputs", "coupling", "mixing", "noise", "transfer", "logits", "states",
              "loss", "gradients"], rows=rows)


if __name__ == "__main__":
    sys.exit(_main(sys.modules[__name__]))
