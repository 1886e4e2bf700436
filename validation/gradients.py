"""Study: analytic gradients (hand-derived BPTT in the numba kernels) against central finite
differences, float64, on small networks over schedules, activations, input injections, leak and
one machine with real switch and element coupling.

Run as ``python -m relaxsim.validation.gradients [--quick] [--out DIR]``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from relaxsim.activations import ACTIVATIONS
from relaxsim.model import Network
from relaxsim.schedules import resolve

from .common import Check
from .common import main as _main

NAME = "gradients"
TITLE = "Gradients against finite differences"
# Fourth-order central differences with step 1e-4: truncation ~ h^4 ~ 1e-16, rounding
# ~ 1e-16 / h ~ 1e-12 per entry; 1e-6 relative is the bound of tests/test_gradients.py.
# Fourth-order central differences with step 1e-4: truncation error ~ h^4 |f^(5)| ~ 1e-16 and
# rounding error ~ 1e-16 |L| / h ~ 1e-12 per entry, so even the small gradients that reach W_in
# through seven sigmoid steps (norm ~ 1e-5) are resolved to better than 1e-6 relative.
FD_STEP = 1e-4
FD_TOL = 1e-6

# (schedule, activation, injection, alpha, banks, steps, coupled)
CONFIGS = [
    ("cyclic", "tanh", "every_step", 0.0, 2, 4, False),
    ("blocked", "sigmoid", "first_step", 0.3, 2, 4, False),
    ("cyclic", "tanh", "sequence", 0.3, 3, 7, False),
    ("cyclic", "tanh", "every_step", 0.0, 1, 4, False),
    ("cyclic", "sigmoid", "every_step", 0.0, 4, 4, False),
    ("cyclic", "tanh", "every_step", 0.0, 2, 4, True),
]
QUICK = 3


def make_net(schedule, activation, injection, alpha, banks, steps, coupled) -> Network:
    net = Network(hidden=4, banks=banks, steps=steps, schedule=resolve(schedule, banks, steps),
                  activation=ACTIVATIONS.get(activation), input_injection=injection, alpha=alpha,
                  n_inputs=3, n_classes=3, dtype=np.dtype("float64"))
    if coupled:  # the default photonic machine on a 30 ps clock: switch leak and carry-over
        import relaxsim
        from relaxsim.data.tasks import TaskInfo

        cfg = relaxsim.load_config(overrides={
            "hardware.clock": "30 ps", "network.hidden": 4, "network.banks": banks,
            "network.steps": steps, "network.schedule": schedule, "network.alpha": alpha,
            "network.activation": activation})
        net = net.on(relaxsim.assemble(cfg, TaskInfo(n_inputs=3, n_classes=3)).coupling)
    return net


def finite_differences(loss_of, params) -> dict:
    """Fourth-order central differences of ``loss_of(params)`` for every parameter entry
    (``params`` is perturbed in place and restored)."""
    fd = {}
    for key, value in params.items():
        out = np.zeros_like(value)
        flat, grad = value.reshape(-1), out.reshape(-1)
        for i in range(flat.size):
            orig = flat[i]
            vals = []
            for k in (2, 1, -1, -2):
                flat[i] = orig + k * FD_STEP
                vals.append(loss_of(params))
            flat[i] = orig
            grad[i] = (8 * (vals[1] - vals[2]) - (vals[0] - vals[3])) / (12 * FD_STEP)
        fd[key] = out
    return fd


def relative_error(g, fd) -> float:
    return float(np.linalg.norm(g - fd) / max(np.linalg.norm(fd), np.linalg.norm(g), 1e-12))


def check(quick: bool, out: Path) -> Check:
    rows, worst = [], 0.0
    for conf in CONFIGS[:QUICK] if quick else CONFIGS:
        net = make_net(*conf)
        rng = np.random.default_rng(0)
        params = net.init_params(rng)
        for key in ("b", "b_out"):
            params[key] = rng.standard_normal(params[key].shape) * 0.3
        if net.input_injection == "sequence":
            x = rng.standard_normal((5, net.steps, net.n_inputs))
        else:
            x = rng.standard_normal((5, net.n_inputs))
        y = rng.integers(0, net.n_classes, 5)
        _, grads = net.loss_and_grad(params, x, y)
        fd = finite_differences(lambda p: net.loss_and_grad(p, x, y)[0], params)
        err = max(relative_error(grads[k], fd[k]) for k in fd)
        worst = max(worst, err)
        schedule, act, inj, alpha, banks, steps, coupled = conf
        rows.append([schedule, act, inj, alpha, banks, steps,
                     "30 ps clock, default devices" if coupled else "ideal", f"{err:.2e}"])
    return Check(
        NAME, TITLE, worst < FD_TOL,
        method=("N = 4, 3 inputs, 3 classes, batch 5; every parameter entry perturbed by "
                f"+-{FD_STEP:g}, +-{2 * FD_STEP:g} (fourth-order central difference); error = "
                "||g - fd|| / max(||g||, ||fd||), worst over the arrays W_in, W, b, W_out, b_out"),
        tolerance=f"relative error < {FD_TOL:g} (truncation ~1e-16, rounding ~1e-12 per entry)",
        summary=f"worst relative error {worst:.2e} over {len(rows)} configurations",
        head=["schedule", "activation", "injection", "alpha", "L_W", "L_T", "machine",
              "max relative error"], rows=rows)


if __name__ == "__main__":
    sys.exit(_main(sys.modules[__name__]))
