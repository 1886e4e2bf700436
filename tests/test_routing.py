"""Switch routing: every bank's share of a step, in closed form; measured step responses."""

from __future__ import annotations

import math

import numpy as np
import pytest

import relaxsim
from relaxsim.devices import Switch, routing
from relaxsim.errors import ConfigError

E25 = 10 ** (-2.5)  # 25 dB


@pytest.mark.parametrize("banks", [2, 3, 4, 8])
def test_star_with_a_combiner_leaks_the_closed_form_ratio(banks):
    """Settled lossless star switch, combiner: m_other / m_selected = sqrt(e / (1 - (L - 1) e))
    for fields in phase, e / (1 - (L - 1) e) for powers (two banks: sqrt(e / (1 - e)) and
    e / (1 - e)); an electrical switch leaks its amplitude floor a, its on path whole."""
    on = 1 - (banks - 1) * E25
    for signal, ratio in (("coherent", math.sqrt(E25 / on)), ("incoherent", E25 / on),
                          ("electrical", math.sqrt(E25))):
        m = routing.mixing(banks, 1, 1, 0.0, topology="star", mux="combiner", signal=signal,
                           power_floor=E25, amplitude_floor=math.sqrt(E25))
        others = np.delete(m, 1)
        np.testing.assert_allclose(others / m[1], ratio, rtol=1e-12)
        if signal != "electrical":  # the star conserves power
            P = routing.port_powers(banks, 1, 0, 0.3, "star", E25)
            assert P.sum() == pytest.approx(1.0, rel=1e-14)
    # the leak a coherent machine sees is 18 times the power fraction at 25 dB
    assert math.sqrt(E25 / (1 - E25)) / (E25 / (1 - E25)) == pytest.approx(17.7, rel=1e-2)


def test_tree_of_four_banks_worked_by_hand():
    """L_W = 4, two levels of 1 x 2 stages; bank 2 = bits (1, 0) selected, settled. Bank j's power
    is the product of (1 - e) where its bit equals the selected one's and e where not: bank 0
    (0, 0): e (1 - e); bank 1 (0, 1): e^2; bank 2: (1 - e)^2; bank 3 (1, 1): (1 - e) e."""
    e = 0.01
    P = routing.port_powers(4, 2, 2, 0.0, "tree", e)
    np.testing.assert_allclose(P, [e * (1 - e), e * e, (1 - e) ** 2, (1 - e) * e], rtol=1e-15)
    # switching 2 -> 1 (both bits change) with half the transition to go: each level splits
    # e + (1 - 2e) / 2 = 1/2 between its ports
    P = routing.port_powers(4, 1, 2, 0.5, "tree", e)
    np.testing.assert_allclose(P, [0.25] * 4, rtol=1e-15)
    # 3 -> 1: the low bit stays 1 (ports: 1 - e, e), the high bit moves from 1 to 0 with r = 0.2:
    # new (0) e + (1 - 2e) 0.8, old (1) e + (1 - 2e) 0.2
    new, old = e + (1 - 2 * e) * 0.8, e + (1 - 2 * e) * 0.2
    P = routing.port_powers(4, 1, 3, 0.2, "tree", e)
    np.testing.assert_allclose(P, [new * e, new * (1 - e), old * e, old * (1 - e)], rtol=1e-15)
    # the mixing through a mirrored tree: powers squared (incoherent), P (coherent in phase)
    m = routing.mixing(4, 2, 2, 0.0, topology="tree", mux="switch", signal="incoherent",
                       power_floor=e, amplitude_floor=0.1)
    np.testing.assert_allclose(m, routing.port_powers(4, 2, 2, 0.0, "tree", e) ** 2, rtol=1e-15)


def test_star_transition_and_electrical_amplitudes():
    e, r = 0.01, 0.3
    P = routing.port_powers(3, 0, 2, r, "star", e)  # lossless: on = 1 - 2e
    np.testing.assert_allclose(P, [e + (1 - 3 * e) * (1 - r), e, e + (1 - 3 * e) * r])
    a = 0.1  # an electrical switch: the amplitude floor, r applied to the amplitude, on = 1
    m = routing.mixing(3, 0, 2, r, topology="star", mux="combiner", signal="electrical",
                       power_floor=a * a, amplitude_floor=a)
    np.testing.assert_allclose(m, [a + (1 - a) * (1 - r), a, a + (1 - a) * r])


def test_random_leak_phase_is_fixed_per_path_from_the_seed():
    phases = routing.path_phases(4, "random", 3)
    np.testing.assert_array_equal(phases, routing.path_phases(4, "random", 3))
    assert not np.array_equal(phases, routing.path_phases(4, "random", 4))
    assert routing.path_phases(4, "in_phase", 3) is None
    m = routing.mixing(4, 1, 1, 0.0, topology="star", mux="combiner", signal="coherent",
                       power_floor=E25, amplitude_floor=math.sqrt(E25), phases=phases)
    expected = np.sqrt(E25) * np.cos(phases - phases[1])
    expected[1] = math.sqrt(1 - 3 * E25)
    np.testing.assert_allclose(m, expected, rtol=1e-14)


def test_path_loss_grows_with_the_stages():
    assert routing.stages(1, "tree") == 0 and routing.stages(5, "tree") == 3
    assert routing.stages(5, "star") == 1
    assert routing.path_loss_db(4, "tree", "switch", 0.5) == pytest.approx(2.0)
    assert routing.path_loss_db(4, "star", "combiner", 0.5) == pytest.approx(
        0.5 + 10 * math.log10(4))
    assert routing.transmission(4, "tree", "switch", "coherent", 0.5) == pytest.approx(
        10 ** (-2.0 / 20))
    assert routing.transmission(4, "tree", "switch", "incoherent", 0.5) == pytest.approx(
        10 ** (-2.0 / 10))
    assert routing.transmission(1, "star", "combiner", "coherent", 3.0) == 1.0  # no switch


def test_default_machine_mixes_every_bank_and_reports_it():
    machine = relaxsim.assemble(relaxsim.load_config())
    cp = machine.coupling
    assert cp.mix.shape == (4, 2)
    summary = cp.summary()
    assert np.array(summary["mix"]).shape == (4, 2)
    floor = machine.hardware.switch.leak_floor
    # coherent, star, mirrored switch: the previous bank's share is its port power
    steady = cp.mix[0]  # step 0 does not switch
    assert steady[0] == pytest.approx(1 - floor) and steady[1] == pytest.approx(floor)


def test_all_ideal_machine_equals_the_ideal_network():
    cfg = relaxsim.load_config(overrides={
        "hardware.switch": "ideal", "hardware.weights": "ideal", "hardware.active": "ideal",
        "network.banks": 3, "network.steps": 5, "network.hidden": 8,
        "hardware.switch_topology": "tree", "hardware.mux": "combiner"})
    machine = relaxsim.assemble(cfg)
    net, hw_net = machine.network, machine.network_on_hardware
    params = net.init_params(0)
    x = np.random.default_rng(1).standard_normal((7, net.n_inputs))
    # a combiner of 3 costs 10 log10 3 dB: the ideal network with the same transmission
    ideal = net.on(machine.coupling.__class__(**{**machine.coupling.__dict__, "mix": None}))
    np.testing.assert_allclose(hw_net.forward(params, x), ideal.forward(params, x), rtol=1e-12,
                               atol=1e-12)
    np.testing.assert_array_equal(machine.coupling.mix, np.eye(3)[net.schedule])
    star = relaxsim.assemble(cfg.replace({"hardware.mux": "switch"}))
    np.testing.assert_allclose(star.network_on_hardware.forward(params, x),
                               net.forward(params, x), rtol=1e-12, atol=1e-12)


def _csv(tmp_path, text, name="step.csv"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_measured_step_response_is_stretched_to_the_rise_time(tmp_path):
    t = np.linspace(0, 10, 401)
    s = 1 - np.exp(-t)  # a first-order response, tabulated
    path = _csv(tmp_path, "time_s,response\n" + "".join(f"{a},{b}\n" for a, b in zip(t, s)))
    sw = Switch(rise_time_s=4e-12, response="measured", response_file=path,
                extinction_ratio_db=30)
    first = Switch(rise_time_s=4e-12, extinction_ratio_db=30)
    gaps = np.array([0.0, 1e-12, 3e-12, 6e-12])
    np.testing.assert_allclose(sw.remainder(gaps), first.remainder(gaps), atol=2e-4)
    assert sw.remainder(-1e-12) == 1.0 and sw.remainder(math.inf) == 0.0
    assert sw.time_to_remainder(0.1) - sw.time_to_remainder(0.9) == pytest.approx(4e-12,
                                                                                 rel=1e-3)


@pytest.mark.parametrize("text, message", [
    ("0,0\n1,0.5\n2,0.4\n3,1\n", "must be a monotone rising step response"),
    ("0,0\n1,0.5\n1,0.7\n3,1\n", "must have strictly increasing times"),
    ("\x00\x01 not a csv at all", "must be a CSV file of at least 3 rows"),
    ("0,0\n1,1\n", "must be a CSV file of at least 3 rows"),
])
def test_a_bad_step_response_file_is_one_line_naming_the_field(tmp_path, text, message):
    path = _csv(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        relaxsim.load_config(overrides={"hardware.switch.response": "measured",
                                        "hardware.switch.response_file": path})
        relaxsim.assemble(relaxsim.load_config(overrides={
            "hardware.switch.response": "measured", "hardware.switch.response_file": path})
        ).hardware
    text = str(info.value)
    assert text.startswith("hardware.switch.response_file: " + message), text
    assert "\n" not in text


def test_a_missing_response_file_and_a_stray_one_are_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"^switch.response_file: must name a CSV file"):
        Switch(response="measured")
    with pytest.raises(ConfigError, match=r"cannot read the step-response file"):
        Switch(response="measured", response_file=str(tmp_path / "none.csv"))
    with pytest.raises(ConfigError, match=r'must be "" unless response = "measured"'):
        Switch(response_file="x.csv")


@pytest.mark.parametrize("key, value, message", [
    ("hardware.switch_topology", "ring", "must be one of"),
    ("hardware.mux", "splitter", "must be one of"),
    ("hardware.signal", "quantum", "must be one of"),
    ("hardware.leak_phase", "random_walk", "must be one of"),
    ("hardware.switch.response", "second_order", "must be one of"),
])
def test_bad_routing_settings_are_refused(key, value, message):
    with pytest.raises(ConfigError) as info:
        cfg = relaxsim.load_config(overrides={key: value})
        relaxsim.assemble(cfg).hardware
    assert str(info.value).startswith(f"{key}: {message}")


def test_cli_refuses_a_bad_topology_with_exit_2(tmp_path, capsys):
    from relaxsim.cli import main

    status = main(["timing", "--set", "hardware.switch_topology=ring"])
    err = capsys.readouterr().err
    assert status == 2 and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("relaxsim: error: hardware.switch_topology")


@pytest.mark.parametrize("topology", ["star", "tree"])
@pytest.mark.parametrize("signal", ["coherent", "incoherent", "electrical"])
@pytest.mark.parametrize("mux", ["switch", "combiner"])
def test_mixing_of_all_steps_at_once_is_the_step_by_step_mixing(topology, signal, mux):
    rng = np.random.default_rng(0)
    banks, T = 5, 9
    k = rng.integers(0, banks, T)
    p = np.r_[k[0], k[:-1]]
    phases = routing.path_phases(banks, "random", 1)
    kw = dict(topology=topology, mux=mux, signal=signal, power_floor=0.02,
              amplitude_floor=0.15, phases=phases if signal == "coherent" else None)
    for r in (rng.uniform(0, 1, T), rng.uniform(0, 1, (T, 4))):
        got = routing.mixing_steps(banks, k, p, r, **kw)
        want = np.stack([routing.mixing(banks, k[t], p[t], r[t], **kw) for t in range(T)])
        np.testing.assert_allclose(got, want, rtol=1e-15, atol=0)


def test_a_preset_file_reads_its_step_response_relative_to_itself(tmp_path, monkeypatch):
    d = tmp_path / "lab"
    d.mkdir()
    (d / "step.csv").write_text("t,s\n0,0\n1,0.5\n2,0.9\n3,1\n")
    (d / "my_switch.toml").write_text('kind = "switch"\nrise_time = "2 ps"\n'
                                      'response = "measured"\nresponse_file = "step.csv"\n')
    monkeypatch.chdir(tmp_path)  # elsewhere than the preset file
    cfg = relaxsim.load_config(overrides={"hardware.switch.preset": str(d / "my_switch.toml")})
    sw = relaxsim.assemble(cfg).hardware.switch
    assert sw.response == "measured" and sw.response_file == str(d / "step.csv")
    assert 0 < sw.remainder(1e-12) < 1


def test_a_floor_brighter_than_the_selected_port_is_refused():
    """A lossless star over L_W banks needs e < 1 / L_W; a tree's stage e < 1/2."""
    with pytest.raises(ConfigError) as info:
        relaxsim.assemble(relaxsim.load_config(overrides={
            "network.banks": 4, "network.steps": 8,
            "hardware.switch.extinction_ratio": "5 dB"})).coupling
    assert str(info.value) == (
        "hardware.switch.extinction_ratio: must be > 6.02 dB for a star switch over 4 banks "
        "(its off ports' floor would leave the selected bank no brighter than the others) "
        "(got 5 dB)")
    tree = relaxsim.load_config(overrides={"network.banks": 4, "network.steps": 8,
                                           "hardware.switch_topology": "tree",
                                           "hardware.switch.extinction_ratio": "5 dB"})
    assert np.all(np.isfinite(relaxsim.assemble(tree).coupling.mix))


def test_the_settling_warning_reads_the_mixing_the_network_sees():
    """A coherent combiner leaks sqrt(P) of each path: the warning measures the share of the
    step's mixing that is not the selected bank's, where the power fraction would miss it."""
    from relaxsim.hardware import leak_share

    machine = relaxsim.assemble(relaxsim.load_config(overrides={
        "hardware.mux": "combiner", "hardware.clock": "14 ps"}))
    cp = machine.coupling
    line = machine.hardware.settling_warnings(cp)[0]  # the switch's (then the element's)
    t = int(line.split("(step ")[1].split(",")[0])
    share = leak_share(cp.mix[t], machine.schedule[t])
    m = np.abs(cp.mix[t])
    assert share == pytest.approx((m.sum() - m[machine.schedule[t]]) / m.sum(), rel=1e-12)
    assert share == max(leak_share(row, k) for row, k in zip(cp.mix, machine.schedule))
    assert f"leaking {100 * share:.3g} %" in line and "into other banks" in line
    w = float(line.split("+ ")[-1].split(" ps")[0]) * 1e-12  # the window it asks for
    r = np.zeros(4)
    r[t] = machine.hardware.switch.remainder(w)
    assert leak_share(cp.router.mix(r)[t], machine.schedule[t]) == pytest.approx(0.1, rel=1e-2)
    floor = relaxsim.assemble(relaxsim.load_config(overrides={
        "network.banks": 4, "network.steps": 8, "hardware.mux": "combiner",
        "hardware.switch.extinction_ratio": "15 dB"}))
    (line,) = floor.hardware.settling_warnings(floor.coupling)
    assert "no clock helps: its extinction floor alone leaks" in line


def test_settings_without_effect_are_cautioned():
    electrical = relaxsim.assemble(relaxsim.load_config(overrides={"hardware.weights": "pcm"}))
    assert any("is 0 on an electrical machine" in c for c in electrical.cautions())
    incoherent = relaxsim.assemble(relaxsim.load_config(overrides={
        "hardware.signal": "incoherent", "hardware.leak_phase": "random"}))
    assert any("leak_phase = 'random' has no effect" in c for c in incoherent.cautions())
    assert relaxsim.assemble(relaxsim.load_config()).cautions() == []


def test_the_leak_reported_is_the_routers_previous_port():
    """``switch_leak`` of a switching step: the power a lossless star over four banks still
    sends to the previous bank, ``e + (1 - L_W e) r`` (not the 1 x 2 stage's ``e + (1 - 2e) r``)."""
    machine = relaxsim.assemble(relaxsim.load_config(overrides={
        "network.banks": 4, "network.steps": 8, "hardware.clock": "12 ps"}))
    cp, sw = machine.coupling, machine.hardware.switch
    e, r = sw.leak_floor, sw.remainder(cp.gaps[1])
    assert cp.eps[1] == pytest.approx(e + (1 - 4 * e) * r, rel=1e-14)
    assert cp.eps[0] == 0.0
