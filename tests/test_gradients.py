"""Analytical gradients against central finite differences (float64)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from relaxsim.activations import ACTIVATIONS
from relaxsim.kernels import passes as kernels
from relaxsim.kernels import reference
from relaxsim.validation.gradients import FD_TOL, finite_differences, relative_error
from relaxsim.validation.kernels import device_params, random_problem
from tests.conftest import make_batch, make_net


def assert_gradients_match(grads, fd):
    for key in fd:
        err = relative_error(grads[key], fd[key])
        assert err < FD_TOL, f"{key}: relative error {err:.2e}"


def explicit_schedule(banks, steps):
    """A schedule that is neither cyclic nor blocked: blocked runs in reverse bank order."""
    return [banks - 1 - t * banks // steps for t in range(steps)]


SIZES = [(L, T) for L in (1, 2, 3) for T in (1, 4, 7) if L <= T]
GRID = list(itertools.product(["cyclic", "blocked", "explicit"], ["tanh", "sigmoid", "relu"],
                              ["every_step", "first_step", "sequence"], [0.0, 0.3], SIZES))


@pytest.mark.parametrize("schedule,activation,injection,alpha,sizes", GRID)
def test_network_gradient_matches_finite_differences(schedule, activation, injection, alpha,
                                                     sizes):
    banks, steps = sizes
    if schedule == "explicit":
        schedule = explicit_schedule(banks, steps)
    net = make_net(banks=banks, steps=steps, schedule=schedule, activation=activation,
                   injection=injection, alpha=alpha)
    # relu has a kink at 0: draw until no pre-activation lies within 1e-3 of it, so that the
    # central difference never straddles it.
    for seed in range(20):
        rng = np.random.default_rng(seed)
        params = net.init_params(rng)
        for key in ("b", "b_out"):
            params[key] = rng.standard_normal(params[key].shape) * 0.3
        x, y = make_batch(net, 5, rng)
        _, tape = net._forward(params, x)
        if activation != "relu" or _min_abs_preactivation(net, params, x) > 1e-3:
            break
    loss, grads = net.loss_and_grad(params, x, y)
    fd = finite_differences(lambda p: net.loss_and_grad(p, x, y)[0], params)
    assert_gradients_match(grads, fd)


def _min_abs_preactivation(net, params, x):
    from relaxsim.kernels import reference

    X, slot = net.input_slots(x)
    cp = net.coupling
    _, _, U = reference.forward(params, X, slot, net.schedule, net.prev, cp.a, cp.c, cp.eps,
                                cp.code)
    return float(np.min(np.abs(U)))


@pytest.mark.parametrize("slots", ["static", "first", "sequence"])
@pytest.mark.parametrize("per_sample", [True, False])
@pytest.mark.parametrize("mixing", ["leak", "full"])
@pytest.mark.parametrize("act", ACTIVATIONS.names())
def test_kernel_gradient_with_physics_matches_finite_differences(slots, per_sample, act, mixing):
    """Every effect at once: carry-over a_t, drive c_t, switch leak eps_t and transmission tr_t
    (per step or per sample), element noise, detector noise and device transfer parameters."""
    code = ACTIVATIONS.get(act).code
    for seed in range(50):  # relu: no pre-activation within 1e-3 of a kink (0 and s / g)
        rng = np.random.default_rng(seed)
        p = random_problem(rng, slots=slots, per_sample=per_sample, mixing=mixing)
        ap = device_params(act, rng)
        kw = dict(tr=p["tr"], det=p["det"], act_params=ap, mix=p["mix"])
        args = (p["X"], p["slot"], p["sched"], p["prev"], p["a"], p["c"], p["eps"], code,
                p["noise"])
        U = reference.forward(p["params"], *args, **kw)[2]
        if act != "relu" or min(np.abs(U).min(), np.abs(U - ap[1] / ap[0]).min()) > 1e-3:
            break

    def loss_of(params):
        return kernels.loss(kernels.forward(params, *args, **kw)[0], p["y"])[0]

    Z, tape = kernels.forward(p["params"], *args, **kw)
    grads = kernels.backward(p["params"], tape, kernels.loss(Z, p["y"])[1])
    assert_gradients_match(grads, finite_differences(loss_of, p["params"]))


def test_a_wrong_gradient_is_caught():
    """The check has teeth: a gradient off by 1e-4 in one entry fails it."""
    net = make_net()
    rng = np.random.default_rng(0)
    params = net.init_params(rng)
    x, y = make_batch(net, 5, rng)
    _, grads = net.loss_and_grad(params, x, y)
    fd = finite_differences(lambda p: net.loss_and_grad(p, x, y)[0], params)
    grads["W"][1, 2, 3] += 1e-4 * np.abs(grads["W"]).max() * 100
    with pytest.raises(AssertionError, match="W: relative error"):
        assert_gradients_match(grads, fd)
