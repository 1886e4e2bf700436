"""The statistical PCM model (aihwkit's PCMLikeNoiseModel): its published formulas at given
conductances, the statistics of many devices, drift, the global drift compensation, and bad
input."""

from __future__ import annotations

import math

import numpy as np
import pytest

import relaxsim
from relaxsim.devices import WeightElement, load_preset, pcm
from relaxsim.errors import ConfigError
from relaxsim.hardware import build_hardware

# Published numbers, written out from the papers' fits (Nandakumar et al. 2019; Joshi et al.
# 2020) as aihwkit states them: programming polynomial in uS at G_max = 25 uS.
C0, C1, C2 = 0.26348, 1.9650, -1.1731


@pytest.mark.parametrize("g", [0.01, 0.1, 0.33, 0.5, 1.0])
def test_published_formulas_at_given_conductances(g):
    assert pcm.programming_sigma(g) == pytest.approx((C0 + C1 * g + C2 * g * g) / 25.0, rel=1e-15)
    mu = min(max(-0.0155 * math.log(g) + 0.0244, 0.049), 0.1)
    sd = min(max(-0.0125 * math.log(g) - 0.0059, 0.008), 0.045)
    assert pcm.drift_mean(g) == pytest.approx(mu, rel=1e-15)
    assert pcm.drift_std(g) == pytest.approx(sd, rel=1e-15)
    q_s = min(0.0088 / max(g ** 0.65, 1e-3), 0.2)
    t = 3600.0 + 20.0
    expect = q_s * math.sqrt(math.log((t + 250e-9) / (2 * 250e-9)))
    assert pcm.read_sigma(g, 3600.0, 20.0) == pytest.approx(expect, rel=1e-14)


def test_the_numbers_quoted_for_the_preset():
    assert pcm.programming_sigma(1.0) == pytest.approx(0.042216, rel=1e-4)  # 4.2 % of G_max
    assert pcm.drift_mean(1.0) == 0.049 and pcm.drift_mean(1e-3) == 0.1  # clipped both ends
    assert pcm.drift_std(1.0) == 0.008 and pcm.drift_std(1e-3) == 0.045


def test_many_devices_have_the_papers_spread():
    rng = np.random.default_rng(0)
    g = np.full(200_000, 0.5)
    prog = pcm.program(g, rng.standard_normal(g.shape))
    assert np.std(prog) == pytest.approx(pcm.programming_sigma(0.5), rel=0.01)
    nu = pcm.drift_exponents(g, rng.standard_normal(g.shape))
    assert np.mean(nu) == pytest.approx(pcm.drift_mean(0.5), rel=0.01)
    # drift over an hour: the median device keeps (3620 / 20)^-nu of its conductance
    read = pcm.read(np.full(g.shape, 0.5), np.full(g.shape, 0.06), 3600.0, 20.0,
                    rng.standard_normal(g.shape))
    assert np.median(read) == pytest.approx(0.5 * (3620 / 20) ** -0.06, rel=0.005)
    assert np.std(read / (0.5 * (3620 / 20) ** -0.06)) == pytest.approx(
        pcm.read_sigma(0.5, 3600.0, 20.0), rel=0.02)


def pcm_hardware(**fields):
    cfg = relaxsim.load_config(overrides={"hardware.weights": {"preset": "pcm", **fields}})
    return build_hardware(cfg.hardware, 2)


def test_programmed_pairs_and_their_weights():
    hw = pcm_hardware()
    W = np.random.default_rng(1).normal(scale=0.8, size=(2, 16, 16))
    prog = hw.program(W, np.random.default_rng(2))
    assert prog.devices.shape == (2, 2, 16, 16) and np.all(prog.devices >= 0)
    np.testing.assert_array_equal(prog.W, 2.0 * (prog.devices[0] - prog.devices[1]))
    err = prog.W - np.clip(W, -2, 2)
    assert 0.01 < np.std(err) < 0.2  # a few % of w_max, conductance-dependent
    np.testing.assert_array_equal(prog.mask, (np.abs(W) <= 2.0).astype(W.dtype))


def test_global_drift_compensation_restores_the_reference_readout():
    W = np.random.default_rng(1).normal(scale=0.8, size=(2, 16, 16))
    ones = np.ones(16)
    for comp in ("none", "global"):
        hw = pcm_hardware(drift_compensation=comp)
        prog = hw.program(W, np.random.default_rng(2))
        read, factor = hw.read(prog, 86400.0, np.random.default_rng(3))  # a day later
        ref = np.abs(prog.W @ ones).sum(axis=-1)
        now = np.abs(read @ ones).sum(axis=-1)
        if comp == "global":
            np.testing.assert_allclose(now, ref, rtol=1e-12)
            np.testing.assert_allclose(factor, prog.mask, rtol=1e-12)
        else:  # drifted down by a few %; the gradient scaled by each bank's mean drift
            assert np.all(now < 0.95 * ref)
            np.testing.assert_allclose(factor, prog.mask * (now / ref)[:, None, None],
                                       rtol=1e-12)


def test_the_exponents_are_the_same_from_the_key():
    hw = pcm_hardware()
    W = np.random.default_rng(1).normal(size=(2, 8, 8))
    prog = hw.program(W, np.random.default_rng(2))
    a = hw.read(prog, 1000.0, np.random.default_rng(5))[0]
    prog.nu_draws = None  # drawn again from its key: the same exponents
    b = hw.read(prog, 1000.0, np.random.default_rng(5))[0]
    np.testing.assert_array_equal(a, b)


def test_training_and_evaluating_on_pcm_statistics(tmp_path):
    cfg = relaxsim.load_config(overrides={"hardware.weights.preset": "pcm",
                                          "hardware.drift_time": "1 h", "network.hidden": 16,
                                          "training.epochs": 2})
    res = relaxsim.run(cfg)
    assert 0.5 < res["test_accuracy"] <= 1.0


@pytest.mark.parametrize("fields, message", [
    ({"sign": "bipolar"}, 'hardware.weights.sign: must be "differential" with statistics = '
                          '"pcm" (a weight is a pair of conductances) (got "bipolar")'),
    ({"program_noise": 0.04}, 'hardware.weights.program_noise: must be 0 with statistics = '
                              '"pcm" (it follows from the conductance: docs/hardware.md) '
                              "(got 0.04)"),
    ({"drift": "exponential"}, 'hardware.weights.drift: must be "power_law" with statistics = '
                               '"pcm" (the exponents follow from the conductance) '
                               '(got "exponential")'),
    ({"statistics": "aihwkit"}, "hardware.weights.statistics: must be one of uniform, pcm "
                                '(got "aihwkit")'),
])
def test_bad_pcm_input(fields, message):
    with pytest.raises(ConfigError) as err:
        relaxsim.load_config(overrides={"hardware.weights": {"preset": "pcm", **fields}})
    assert str(err.value) == message


def test_drift_compensation_needs_drift():
    with pytest.raises(ConfigError, match="drift_compensation: must be \"none\" without drift"):
        WeightElement(w_max=1.0, drift_compensation="global")
    assert load_preset("weight", "pcm").drift_compensation == "global"


def test_compiled_passes_against_their_numpy_twins():
    rng = np.random.default_rng(3)
    g = np.abs(rng.normal(0.4, 0.3, (2, 3, 7, 7)))
    g[0, 0, 0, :3] = 0.0  # devices at zero conductance
    z = rng.standard_normal(g.shape)
    np.testing.assert_allclose(pcm.program_compiled(g, z), pcm.program(g, z), rtol=1e-13,
                               atol=1e-15)
    nu = pcm.drift_exponents(g, rng.standard_normal(g.shape))
    for t_inf in (0.0, 1.0, 3600.0, 1e7):
        np.testing.assert_allclose(pcm.read_compiled(g, nu, t_inf, 20.0, z),
                                   pcm.read(g, nu, t_inf, 20.0, z), rtol=1e-12, atol=1e-15)
    with pytest.raises(ValueError, match="drift exponents are needed"):
        pcm.read_compiled(g, None, 1.0, 20.0, z)


def test_the_compiled_wear_write_against_its_numpy_twin():
    from relaxsim.kernels.programming import wear_write

    rng = np.random.default_rng(4)
    n, endurance = 500, 3
    level, value = np.full(n, np.nan), np.zeros(n)
    writes, stuck = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.bool_)
    t_level, t_value, t_writes, t_stuck = level.copy(), value.copy(), writes.copy(), stuck.copy()
    for _ in range(8):
        targets = rng.integers(0, 3, n).astype(float)
        programmed = targets + 0.01 * rng.standard_normal(n)
        failed = np.empty(n, dtype=np.bool_)
        count = wear_write(targets, programmed, level, value, writes, stuck, endurance, failed)
        # the twin
        written = (targets != t_level) & ~t_stuck
        t_writes += written
        t_failed = written & (t_writes > endurance)
        t_stuck |= t_failed
        ok = written & ~t_failed
        t_value[ok], t_level[ok] = programmed[ok], targets[ok]
        assert count == t_failed.sum()
        np.testing.assert_array_equal(failed, t_failed)
        for a, b in ((level, t_level), (value, t_value), (writes, t_writes), (stuck, t_stuck)):
            np.testing.assert_array_equal(a, b)
    assert stuck.any() and not stuck.all()
