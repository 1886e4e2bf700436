"""Programming time: a write settles to half a level of the element's precision, banks are
programmed in parallel, one after another or row by row; the timing model and the training's
hardware clock use it."""

from __future__ import annotations

import math

import numpy as np
import pytest

import relaxsim
from relaxsim.devices import WeightElement


@pytest.mark.parametrize("bits", [1, 5, 8])
def test_a_write_settles_to_half_a_level(bits):
    w = WeightElement(w_max=1.0, bits=bits, program_time_s=2e-6)
    tau = 2e-6 / math.log(9)
    assert w.write_settle_time_s(1e-3) == pytest.approx(tau * math.log(2 * (2 ** bits - 1)),
                                                        rel=1e-15)
    # the settled write: the remaining share of a first-order step is half a level
    remaining = math.exp(-w.write_settle_time_s(1e-3) / tau)
    assert remaining == pytest.approx(0.5 / (2 ** bits - 1), rel=1e-12)


def test_an_analog_write_settles_to_the_tolerance():
    w = WeightElement(program_time_s=1e-6)
    assert w.write_settle_time_s(1e-3) == pytest.approx(1e-6 / math.log(9) * math.log(1e3))
    mesh = WeightElement(w_max=1.0, model="mesh", phase_bits=8, program_time_s=1e-6)
    assert mesh.write_settle_time_s(1e-3) == pytest.approx(1e-6 / math.log(9) * math.log(510))


def machine(mode, row_time="0 s", **extra):
    cfg = relaxsim.load_config(overrides={
        "hardware.program_banks": mode, "network.hidden": 16, "network.banks": 3,
        "hardware.weights": {"preset": "thermo_optic", "row_time": row_time}, **extra})
    return relaxsim.assemble(cfg)


def test_parallel_serial_and_row_serial():
    settle = 2.18e-6 / math.log(9) * math.log(2 * 255)  # thermo_optic: 8 bits, 2.18 us
    par, ser = machine("parallel").hardware, machine("serial").hardware
    rows, rows_timed = machine("row_serial").hardware, machine("row_serial", "50 ns").hardware
    assert par.program_time_s(3) == pytest.approx(settle, rel=1e-12)
    assert ser.program_time_s(3) == pytest.approx(3 * settle, rel=1e-12)
    assert rows.program_time_s(3) == pytest.approx(3 * 16 * settle, rel=1e-12)
    assert rows_timed.program_time_s(3) == pytest.approx(3 * 16 * 50e-9, rel=1e-12)
    bank = machine("serial", **{"hardware.input_layer": "bank"}).hardware
    assert bank.program_time_s(3) == pytest.approx(4 * settle, rel=1e-12)  # and the input bank


def test_the_reprogrammed_bank_and_training_use_the_settled_time():
    m = machine("row_serial", "50 ns")
    t_bank = 16 * 50e-9
    assert m.timing.stream("reprogram").spec.t_program == pytest.approx(t_bank, rel=1e-12)
    from relaxsim.training.engine import engines_for

    engine = engines_for(m, seed=0)[0]
    params = m.network_on_hardware.init_params(0)
    x, y = np.random.default_rng(0).normal(size=(4, 64)), np.array([0, 1, 2, 3])
    engine.loss_and_grad(params, x, y)
    assert engine.programming_s == pytest.approx(3 * t_bank, rel=1e-12)  # 3 banks, serially
