"""The active element's carry-over: relaxing for a dwell towards ``alpha h_t + f(u_t)`` gives
``h_{t+1} = a_t h_t + c_t f(u_t)`` with ``a_t = rho + (1 - rho) alpha`` and ``c_t = 1 - rho``,
never a growing state (``a_t <= 1``) nor a negative drive (``c_t >= 0``), whatever the element,
clock and leak."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import relaxsim
from relaxsim.devices.library import presets
from relaxsim.errors import ConfigError
from relaxsim.validation.gradients import FD_TOL, finite_differences, relative_error
from tests.conftest import make_batch

ACTIVE = presets("active").names()
SWITCHES = presets("switch").names()
CLOCKS = ["auto", "11 ps", "15 ps", "20 ps", "40 ps", "100 ps", "1 ns", "20 ns", "2 us"]
ALPHAS = [0.0, 0.5, 0.9, 0.999]


def coupling_of(overrides):
    try:
        cfg = relaxsim.load_config(overrides=overrides)
    except ConfigError:
        return None  # e.g. a switch whose jitter is not shorter than the clock
    return relaxsim.assemble(cfg).coupling


@pytest.mark.parametrize("active, switch", list(itertools.product(ACTIVE, SWITCHES)))
def test_a_never_exceeds_one_and_c_is_never_negative(active, switch):
    checked = 0
    for clock, alpha in itertools.product(CLOCKS, ALPHAS):
        cp = coupling_of({"hardware.active.preset": active, "hardware.switch.preset": switch,
                          "hardware.clock": clock, "network.alpha": alpha})
        if cp is None:
            continue
        rho = 1.0 - cp.c
        assert np.all(cp.a <= 1.0) and np.all(cp.c >= 0.0) and np.all(cp.c <= 1.0)
        np.testing.assert_allclose(cp.a, rho + (1.0 - rho) * alpha, rtol=1e-12, atol=1e-15)  # rho = 1 - c
        checked += 1
    assert checked >= len(ALPHAS) * 3  # the clocks longer than the switch jitter


def test_the_soa_on_a_fast_clock_with_a_strong_leak_keeps_its_state_bounded():
    # the case that gave a_t = 1.80 when the carry-over was added to the leak
    cp = coupling_of({"network.alpha": 0.9, "hardware.active.preset": "soa",
                      "hardware.clock": "20 ps"})
    rho = 1.0 - cp.c
    assert rho.max() > 0.5  # the clock leaves the element far from settled
    np.testing.assert_allclose(cp.a, rho + 0.9 * (1.0 - rho), rtol=1e-12)
    assert cp.a.max() < 1.0


def test_no_carry_over_leaves_the_ideal_coupling():
    cp = coupling_of({"network.alpha": 0.3, "hardware.active.preset": "ideal"})
    np.testing.assert_array_equal(cp.c, 1.0)
    np.testing.assert_array_equal(cp.a, 0.3)


@pytest.mark.parametrize("alpha", [0.5, 0.9])
def test_gradients_on_a_fast_clock_with_a_leak_match_finite_differences(alpha):
    cfg = relaxsim.load_config(overrides={
        "network.hidden": 5, "network.banks": 2, "network.steps": 5, "network.alpha": alpha,
        "hardware.active.preset": "soa", "hardware.clock": "20 ps", "network.dtype": "float64"})
    from relaxsim.data.tasks import TaskInfo

    machine = relaxsim.assemble(cfg, TaskInfo(n_inputs=3, n_classes=3))
    net = machine.network_on_hardware
    assert (1.0 - net.coupling.c).max() > 0.1 and net.coupling.a.max() > alpha
    rng = np.random.default_rng(1)
    params = net.init_params(rng)
    for key in ("b", "b_out"):
        params[key] = rng.standard_normal(params[key].shape) * 0.3
    x, y = make_batch(net, 4, rng)
    _, grads = net.loss_and_grad(params, x, y)
    fd = finite_differences(lambda p: net.loss_and_grad(p, x, y)[0], params)
    for key in fd:
        assert relative_error(grads[key], fd[key]) < FD_TOL, key
