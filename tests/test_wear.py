"""Wear: writes counted per device only where its level changes, worn-out devices stuck at their
last level or at a random one, the counters kept across a checkpoint, and reported in
result.json."""

from __future__ import annotations

import numpy as np
import pytest

import relaxsim
from relaxsim.errors import ConfigError
from relaxsim.hardware import build_hardware


def photonic(**fields):
    table = {"preset": "pcm_photonic", "program_noise": 0.0, "read_noise": 0.0, **fields}
    cfg = relaxsim.load_config(overrides={"hardware.weights": table})
    return build_hardware(cfg.hardware, 1)


STEP = 2.0 / 31  # a device of a pair: 2^5 levels over [0, w_max = 2]


def test_a_device_is_written_only_when_its_level_changes():
    hw = photonic()
    wear = hw.wear((1, 2, 2))
    rng = np.random.default_rng(0)
    W = np.array([[[0.5, -0.5], [0.0, 1.0]]])
    hw.program(W, rng, wear)
    # the first event writes every device (nothing was programmed): both of each pair
    np.testing.assert_array_equal(wear.writes, np.ones((2, 1, 2, 2)))
    hw.program(W, rng, wear)  # the same levels: nothing written
    np.testing.assert_array_equal(wear.writes, np.ones((2, 1, 2, 2)))
    W2 = W + np.array([[[0.2 * STEP, 3 * STEP], [0.0, -2.0]]])  # same level / up 3 / sign flips
    prog = hw.program(W2, rng, wear)
    # d+: 0.5 stays on its level, -0.5 -> -0.31 keeps it at 0, 0 stays, 1 -> -1 falls to 0
    np.testing.assert_array_equal(wear.writes[0, 0], [[1, 1], [1, 2]])
    # d-: 0 stays, 0.5 -> 0.31, 0 stays, 0 -> 1
    np.testing.assert_array_equal(wear.writes[1, 0], [[1, 2], [1, 2]])
    # the weights as the devices hold them: quantised to the devices' levels
    np.testing.assert_allclose(prog.W[0], np.round(W2[0] / STEP) * STEP, atol=1e-12)


@pytest.mark.parametrize("failure", ["last", "random"])
def test_a_worn_out_device_sticks(failure):
    hw = photonic(endurance_writes=2, failure=failure)
    wear = hw.wear((1, 1, 4))
    rng = np.random.default_rng(0)
    targets = [np.full((1, 1, 4), v) for v in (0.5, 1.0, 1.5, 0.25)]
    progs = [hw.program(W, rng, wear) for W in targets]
    # d+ is written at each event: its third write fails, so it sticks
    assert wear.stuck[0].all() and not wear.stuck[1].any()
    assert wear.writes[0].max() == 3
    after = progs[2].W
    if failure == "last":
        np.testing.assert_allclose(after, np.round(1.0 / STEP) * STEP)  # the second level
        np.testing.assert_array_equal(progs[3].W, after)  # and there it stays
    else:  # at random levels of the device's grid, drawn when it failed
        levels = after[0, 0] / STEP
        np.testing.assert_allclose(levels, np.round(levels), atol=1e-9)
        np.testing.assert_array_equal(progs[3].W, after)
    assert np.all(progs[3].mask == 0)  # no gradient through a stuck weight


def test_an_unlimited_endurance_counts_nothing():
    cfg = relaxsim.load_config()
    assert build_hardware(cfg.hardware).wear((2, 4, 4)) is None


def test_wear_in_result_json_and_a_checkpoint():
    cfg = relaxsim.load_config(overrides={
        "hardware.weights": {"preset": "pcm_photonic", "endurance_writes": 2},
        "network.hidden": 16, "training.epochs": 2})
    res = relaxsim.run(cfg)
    wear = res["hardware"]["wear"]
    # 5 bits: most Adam steps stay within a level, but some devices pass 2 writes
    assert wear["tracked"] and wear["writes_per_device_max"] == 3  # 2 + the failed one
    assert 0 < wear["worn_out_share"] <= 1
    assert wear["write_energy_j"] == pytest.approx(wear["device_writes"] * 0.96e-12)
    assert res["hardware"]["training"]["energy_j"]["programming"] == pytest.approx(
        wear["write_energy_j"])


def test_the_counters_survive_a_checkpoint():
    from relaxsim.training.engine import engines_for

    cfg = relaxsim.load_config(overrides={
        "hardware.weights": {"preset": "pcm_photonic", "endurance_writes": 3},
        "network.hidden": 8, "hardware.update_every": 1})
    machine = relaxsim.assemble(cfg)
    params = machine.network_on_hardware.init_params(0)
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(6, 64)), rng.integers(0, 10, 6)
    first = engines_for(machine, seed=0)[0]
    for _ in range(2):
        first.loss_and_grad(params, x, y)
        params = {k: v + 0.05 for k, v in params.items()}
    arrays, scalars = first.state()
    again = engines_for(machine, seed=0)[0]
    again.restore(arrays, scalars)
    for _ in range(3):  # the devices wear out on the way: both engines alike
        params = {k: v + 0.05 for k, v in params.items()}
        a, ga = first.loss_and_grad(params, x, y)
        b, gb = again.loss_and_grad(params, x, y)
        assert a == b
        np.testing.assert_array_equal(ga["W"], gb["W"])
    assert first.wear.stuck.any()
    np.testing.assert_array_equal(first.wear.writes, again.wear.writes)


@pytest.mark.parametrize("fields, message", [
    ({"endurance_writes": 0}, "hardware.weights.endurance_writes: must be > 0 (got 0)"),
    ({"failure": "zero"}, 'hardware.weights.failure: must be one of last, random (got "zero")'),
])
def test_bad_wear_input(fields, message):
    with pytest.raises(ConfigError) as err:
        relaxsim.load_config(overrides={"hardware.weights": {"preset": "pcm_photonic",
                                                             **fields}})
    assert str(err.value) == message
