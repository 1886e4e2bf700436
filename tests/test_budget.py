"""The optical power budget: closed forms, 'auto' noise from the received power, bad input."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import relaxsim
from relaxsim.devices import budget as B
from relaxsim.errors import ConfigError


def test_shot_noise_snr_is_the_closed_form():
    """sqrt(P R / (2 q B)) within 1e-9, and detector_snr with shot noise alone equals it."""
    P, R, bw = 1e-4, 0.9, 25e9
    expected = math.sqrt(P * R / (2 * 1.602176634e-19 * bw))
    assert B.shot_limited_snr(P, R, bw) == pytest.approx(expected, rel=1e-9)
    assert B.detector_snr(P, R, bw) == pytest.approx(expected, rel=1e-9)


def test_detector_snr_adds_the_noise_powers():
    P, R, bw, i_n, rin = 2e-4, 1.0, 30e9, 1e-11, -150.0
    current = R * P
    var = 2 * B.Q * current * bw + i_n ** 2 * bw + 10 ** (rin / 10) * current ** 2 * bw
    assert B.detector_snr(P, R, bw, i_n, rin) == pytest.approx(current / math.sqrt(var),
                                                              rel=1e-12)
    # shot noise equals thermal noise where 2 q R P = i_n^2
    p_eq = B.shot_equals_thermal_w(R, i_n)
    assert 2 * B.Q * R * p_eq == pytest.approx(i_n ** 2, rel=1e-12)
    assert B.received_power(1e-3, 10.0) == pytest.approx(1e-4, rel=1e-12)
    assert B.ase_snr(1e-4, 0.0, bw) == math.inf
    # Agrawal 7.1.4: SNR_in = P / (2 h nu B), SNR_out = SNR_in / F_n
    assert B.ase_snr(1e-4, 6.0, bw) == pytest.approx(
        1e-4 / (2 * 10 ** 0.6 * B.H * B.C_LIGHT / 1550e-9 * bw), rel=1e-12)


def _machine(**overrides):
    return relaxsim.assemble(relaxsim.load_config(overrides=overrides))


def test_default_budget_worked_by_hand():
    """1 mW, losses 3 dB coupling + 3 dB mesh + 2 x 0.5 dB switch = 7 dB; the electronic tanh's
    8 ps response: B = 1 / (4 x 8 ps) = 31.25 GHz; R = 1 A/W, 10 pA/sqrt(Hz), RIN -150 dB/Hz."""
    hw = _machine().hardware
    b = hw.budget
    assert b.loss_db == pytest.approx(7.0, rel=1e-12)
    received = 1e-3 * 10 ** -0.7
    assert b.received_w == pytest.approx(received, rel=1e-12)
    assert b.bandwidth_hz == pytest.approx(31.25e9, rel=1e-12)
    snr = B.detector_snr(received, 1.0, 31.25e9, 1e-11, -150.0)
    assert b.snr == pytest.approx(snr, rel=1e-12)
    assert hw.element_sigma == pytest.approx(1 / snr, rel=1e-12)
    assert hw.detector_sigma == pytest.approx(1 / snr, rel=1e-12)


def test_auto_noise_follows_the_laser_power_and_explicit_noise_does_not():
    sigmas = [_machine(**{"hardware.laser_power": f"{p} mW"}).hardware.element_sigma
              for p in (0.01, 0.1, 1, 10)]
    assert all(a > b for a, b in zip(sigmas, sigmas[1:]))  # more light, less noise
    fixed = _machine(**{"hardware.laser_power": "0.01 mW", "hardware.active.noise": 0.02})
    assert fixed.hardware.element_sigma == 0.02
    assert fixed.hardware.detector_sigma == sigmas[0]  # still auto
    # an explicit value in the device table is kept whatever the power
    assert _machine(**{"hardware.active": "ideal"}).hardware.element_sigma == 0.0


def test_soa_noise_is_ase_and_the_electrical_machine_has_no_budget():
    hw = _machine(**{"hardware.active": "soa"}).hardware
    b = hw.budget
    assert b.ase_snr == pytest.approx(B.ase_snr(b.received_w, 6.0, b.bandwidth_hz), rel=1e-12)
    assert hw.element_sigma == pytest.approx(1 / math.sqrt(b.ase_snr), rel=1e-12)
    assert hw.detector_sigma == pytest.approx(1 / b.snr, rel=1e-12)
    electrical = _machine(**{"hardware.weights": "pcm"}).hardware
    assert electrical.signal == "electrical" and electrical.budget is None
    assert electrical.element_sigma == 0.0


def test_the_budget_is_in_timing_json_and_printed(tmp_path, capsys):
    from relaxsim.cli import main

    out = tmp_path / "t.json"
    assert main(["timing", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "budget" in printed and "SNR 79.1" in printed and "received 199.5 uW" in printed
    data = json.loads(out.read_text())["coupling"]
    assert data["received_power_w"] == pytest.approx(1e-3 * 10 ** -0.7, rel=1e-12)
    assert np.array(data["mix"]).shape == (4, 2)
    assert data["snr"] == pytest.approx(79.07, rel=1e-3)


@pytest.mark.parametrize("key, value, message", [
    ("hardware.laser_power", "-1 mW", "must be a power > 0 such as '1 mW'"),
    ("hardware.laser_power", "0 W", "must be a power > 0 such as '1 mW'"),
    ("hardware.coupling_loss", "-3 dB", "must be a loss >= 0 dB such as '3 dB'"),
    ("hardware.input_bits", 0, "must be a whole number of bits from 1 to 32, or 'inf'"),
    ("hardware.readout_bits", 2.5, "must be a whole number of bits from 1 to 32, or 'inf'"),
    ("hardware.readout_bits", 1024, "must be a whole number of bits from 1 to 32, or 'inf'"),
    ("hardware.coupling_loss", "4000 dB", "leaves no light at the detector"),
    ("hardware.active.responsivity", 0, "must be > 0"),
])
def test_bad_budget_settings_are_one_line(key, value, message):
    with pytest.raises(ConfigError) as info:
        relaxsim.assemble(relaxsim.load_config(overrides={key: value})).hardware.budget
    text = str(info.value)
    assert text.startswith(f"{key}: {message}") and "\n" not in text


def test_cli_refuses_a_negative_laser_power_with_exit_2(tmp_path, capsys):
    from relaxsim.cli import main

    out = tmp_path / "run"
    status = main(["run", "--out", str(out), "--set", "hardware.laser_power=-1 mW"])
    err = capsys.readouterr().err
    assert status == 2 and "Traceback" not in err
    assert "hardware.laser_power: must be a power > 0" in err
    assert not out.exists()  # nothing written


def test_converters_are_calibrated_on_the_training_split():
    """The full scales: the largest |W_in x| and |h_T| over the first training samples with the
    current weights, no noise; bits from the config; a whole run trains with them."""
    from relaxsim.data.tasks import load_task
    from relaxsim.training.engine import CALIBRATION_ROWS, engines_for

    cfg = relaxsim.load_config(overrides={"hardware.input_bits": 4, "hardware.readout_bits": 5,
                                          "network.hidden": 16})
    data = load_task(cfg)
    machine = relaxsim.assemble(cfg, data.info)
    engine = engines_for(machine, 0)[0]
    params = machine.network.init_params(0)
    engine.calibrate(params, data)
    n = min(CALIBRATION_ROWS, len(data.labels("train")))
    x = data.batch("train", np.arange(n), np.float64)
    drive = np.abs(x @ params["W_in"].T).max()
    assert engine.converters[:2] == (pytest.approx(drive, rel=1e-12), 4.0)
    net = machine.network_on_hardware
    _, tape = net._forward(params, x)
    assert engine.converters[2:] == (pytest.approx(np.abs(tape.HR).max(), rel=1e-12), 5.0)
    ideal = engines_for(relaxsim.assemble(cfg.replace({"hardware.mode": "ideal"}), data.info),
                        0)[0]
    ideal.calibrate(params, data)  # the ideal machine has no converters: nothing to do
    assert not hasattr(ideal, "converters")


def test_fewer_bits_change_what_the_network_computes():
    from relaxsim.data.tasks import load_task
    from relaxsim.training.engine import engines_for

    cfg = relaxsim.load_config(overrides={"network.hidden": 16})
    data = load_task(cfg)
    x = data.batch("train", np.arange(64), np.float64)
    out = {}
    for bits in ("inf", 2):
        c = cfg.replace({"hardware.input_bits": bits, "hardware.readout_bits": bits,
                         "hardware.active": "ideal", "hardware.weights": "ideal",
                         "hardware.switch": "ideal"})
        machine = relaxsim.assemble(c, data.info)
        engine = engines_for(machine, 0)[0]
        params = machine.network.init_params(0)
        engine.calibrate(params, data)
        engine.begin_evaluation(params)
        out[bits] = engine.logits(params, x)
    assert not np.allclose(out["inf"], out[2])
    np.testing.assert_allclose(out["inf"], relaxsim.assemble(cfg.replace({
        "hardware.mode": "ideal"}), data.info).network.forward(params, x), rtol=1e-12,
        atol=1e-12)


def test_a_starved_detector_is_warned_with_the_power_it_needs():
    hw = _machine(**{"hardware.laser_power": "1 uW"}).hardware
    (line,) = hw.noise_warnings()
    assert line.startswith("hardware.laser_power = 1 uW leaves the detector an SNR of 0.113")
    need = float(line.rsplit(">= ", 1)[1].split()[0])  # in uW
    enough = _machine(**{"hardware.laser_power": f"{need * 1.001} uW"}).hardware
    assert max(enough.element_sigma, enough.detector_sigma) <= 0.1
    assert _machine().hardware.noise_warnings() == []


def test_auto_fields_say_auto_is_allowed_and_inf_clip_is_the_default():
    with pytest.raises(ConfigError) as info:
        relaxsim.load_config(overrides={"hardware.active.noise": "auto2"})
    assert str(info.value).startswith('hardware.active.noise: must be a plain number such as')
    assert ', or "auto" (got "auto2")' in str(info.value)
    assert relaxsim.load_config(overrides={"training.clip_norm": float("inf")}).training \
        .clip_norm == "inf"
