"""Device records, the preset library and ``relaxsim devices``.

Every test that can runs over every preset of the library (parametrized over its files), as
aihwkit does; the bad inputs check the exact one-line message.
"""

from __future__ import annotations

import dataclasses
import math
import pickle
import subprocess
import sys
import tomllib

import numpy as np
import pytest

from relaxsim.activations import ACTIVATIONS
from relaxsim.cli.app import main
from relaxsim.devices import (
    KINDS,
    RECORDS,
    ActiveElement,
    Switch,
    WeightElement,
    add_preset_dir,
    library,
    load_device,
    load_preset,
    preset_dirs,
    presets,
)
from relaxsim.devices.fields import UNIT_SUFFIXES
from relaxsim.errors import ConfigError, RelaxsimError, UnknownNameError
from relaxsim.kernels.rng import normal

LIBRARY = sorted((p.parent.name, p.stem) for p in library.LIBRARY_DIR.glob("*/*.toml"))
SWITCHES = [name for kind, name in LIBRARY if kind == "switch"]
ACTIVES = [name for kind, name in LIBRARY if kind == "active"]
WEIGHTS = [name for kind, name in LIBRARY if kind == "weight"]
REQUIRED = {"switch": {"ideal", "eo_mzi", "si_mzi_carrier", "soa_gate", "mems"},
            "active": {"ideal", "electronic_tanh", "soa", "saturable_absorber", "eo_modulator"},
            "weight": {"ideal", "thermo_optic", "pcm", "rram", "mtj", "lcos_slm"}}


@pytest.fixture(autouse=True)
def library_only(monkeypatch):
    """No user preset directories, whatever the environment or earlier tests added."""
    monkeypatch.delenv(library.ENV_VAR, raising=False)
    monkeypatch.setattr(library, "_added_dirs", [])


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


FAST_SWITCH = 'kind = "switch"\ndescription = "mine"\nrise_time = "1 ps"\n'


# -- the library -------------------------------------------------------------------------------


def test_library_has_the_required_presets():
    for kind, names in REQUIRED.items():
        assert names <= set(presets(kind).names()), kind


@pytest.mark.parametrize("kind, name", LIBRARY)
def test_every_preset_loads_validates_and_cites_every_number(kind, name):
    record = load_preset(kind, name)
    assert isinstance(record, RECORDS[kind])
    assert record.name == name and record.description
    assert set(record.sources) == set(record.keys())  # every field set and cited in the file
    assert all(text.strip() for text in record.sources.values())
    data = tomllib.loads((library.LIBRARY_DIR / kind / f"{name}.toml").read_text("utf-8"))
    assert set(data) == {"kind", "description", "sources", *record.keys()}
    # the record is valid data: rebuilding it re-validates and gives the same record
    assert dataclasses.replace(record) == record
    assert load_device(kind, {"preset": name}, f"hardware.{kind}") == record
    assert pickle.loads(pickle.dumps(record)) == record
    assert hash(record) == hash(dataclasses.replace(record))


@pytest.mark.parametrize("kind", KINDS)
def test_ideal_presets_are_the_record_defaults(kind):
    ideal, default = load_preset(kind, "ideal"), RECORDS[kind]()
    assert ideal.values() == default.values()
    assert load_device(kind, {}).values() == default.values()


@pytest.mark.parametrize("kind", KINDS)
def test_field_names_carry_their_unit(kind):
    for key, spec in RECORDS[kind].specs().items():
        suffix = spec.name[len(key):]
        assert UNIT_SUFFIXES.get(suffix, "ratio" if spec.metadata["dimension"] else None) == \
            spec.metadata["dimension"], spec.name
        assert spec.metadata["doc"], spec.name


def test_records_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        load_preset("switch", "eo_mzi").rise_time_s = 0.0


# -- switch ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SWITCHES)
def test_switch_leak_follows_the_closed_form(name):
    """First order: ``r = exp(-gap / tau)``, ``tau = rise / ln 9``; an MZI driven by a
    first-order phase: ``r = cos^2(pi/2 (1 - exp(-gap / tau)))`` with ``tau`` from its own 10-90 %
    rise; the previous port's power ``e + (1 - 2e) r``."""
    sw = load_preset("switch", name)
    floor = 0.0 if sw.extinction_ratio_db == math.inf else 10 ** (-sw.extinction_ratio_db / 10)
    gaps = np.array([0.0, 1e-15, 1e-12, 1e-10, 1e-9, 1e-6, 1e-3, 1.0, math.inf])
    if sw.response == "mzi":
        tau = sw.rise_time_s / (
            -math.log(1 - 2 / math.pi * math.asin(math.sqrt(0.9)))
            + math.log(1 - 2 / math.pi * math.asin(math.sqrt(0.1))))
        r = np.sin(math.pi / 2 * np.exp(-gaps / tau)) ** 2  # = cos^2(pi/2 (1 - exp(-gap/tau)))
    else:
        tau = sw.rise_time_s / math.log(9)
        r = np.exp(-gaps / tau) if tau > 0 else np.zeros(gaps.shape)
    assert sw.tau_s == pytest.approx(tau, rel=1e-14)
    np.testing.assert_allclose(sw.remainder(gaps), r, rtol=1e-13, atol=1e-300)
    np.testing.assert_allclose(sw.leak(gaps), floor + (1 - 2 * floor) * r, rtol=1e-13, atol=0)
    assert sw.leak(math.inf) == floor
    assert sw.leak(-1e-12) == pytest.approx(1.0 - floor, rel=1e-15)  # before the command
    assert isinstance(sw.leak(0.0), float)
    if tau > 0:  # the 10-90 % rise of the new port's power is the preset's rise time
        t10, t90 = sw.time_to_remainder(0.9), sw.time_to_remainder(0.1)
        assert t90 - t10 == pytest.approx(sw.rise_time_s, rel=1e-12)
        assert sw.remainder(t90) == pytest.approx(0.1, rel=1e-12)
    assert sw.transmission() == pytest.approx(10 ** (-sw.insertion_loss_db / 20), rel=1e-15)
    if tau > 0:
        settle = sw.settle_time_s(1e-3)
        if sw.response == "first_order":
            assert settle == pytest.approx(tau * math.log(1e3), rel=1e-15)
        assert sw.remainder(settle) == pytest.approx(1e-3, rel=1e-12)
        assert sw.leak(settle) - floor == pytest.approx(1e-3 * (1 - 2 * floor), rel=1e-12)


def test_switch_rise_time_is_10_to_90_percent():
    sw = Switch(rise_time_s="200 ps")
    t10, t90 = sw.settle_time_s(0.9), sw.settle_time_s(0.1)  # leak 0.9 -> 0.1: 10 % -> 90 %
    assert t90 - t10 == pytest.approx(200e-12, rel=1e-12)


def test_switch_extinction_floor_and_zero_rise_time():
    sw = Switch(rise_time_s=0, extinction_ratio_db="20 dB")
    np.testing.assert_array_equal(sw.leak([0.0, 1e-15, 1.0, math.inf]), [0.01] * 4)
    assert sw.leak(-1e-15) == 0.99  # before the command: the old port still on, 1 - e_ER
    ideal = Switch()
    np.testing.assert_array_equal(ideal.leak([0.0, 1e-12, math.inf]), [0.0, 0.0, 0.0])
    assert ideal.transmission() == 1.0 and ideal.settle_time_s(1e-6) == 0.0
    assert Switch(insertion_loss_db=3).transmission() == pytest.approx(0.7079457843841379)
    assert Switch(insertion_loss_db=20).transmission() == pytest.approx(0.1)
    with pytest.raises(ValueError, match=r"tol must be in \(0, 1\) \(got 0\)"):
        ideal.settle_time_s(0)


# -- active element ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ACTIVES)
def test_active_element_physics(name):
    el = load_preset("active", name)
    dwell = np.array([0.0, 1e-12, 1e-10, 1e-9])
    if el.response_time_s > 0:
        expected = np.exp(-dwell / el.response_time_s)
    else:
        expected = np.zeros_like(dwell)
    np.testing.assert_allclose(el.carry_over(dwell), expected, rtol=1e-15)
    code, p0, p1, p2 = el.transfer_params("relu")
    if el.transfer == "network":
        assert (code, p0, p1, p2) == (ACTIVATIONS.get("relu").code, *ACTIVATIONS.get("relu").ideal)
        return
    assert code == ACTIVATIONS.get(el.transfer).code
    assert (p0, p1) == (el.gain, el.saturation)
    assert p2 == (el.bias_rad if el.transfer == "sin2" else el.absorption)


def test_carry_over_and_settling():
    el = ActiveElement(response_time_s="100 ps")
    assert el.carry_over(100e-12) == pytest.approx(math.exp(-1), rel=1e-15)
    assert el.settle_time_s(math.exp(-2)) == pytest.approx(200e-12, rel=1e-15)
    assert ActiveElement().carry_over(0.0) == 0.0


def test_transfer_params_uses_the_network_activation_for_network():
    el = ActiveElement(transfer="network")
    relu = ACTIVATIONS.get("relu")
    assert el.transfer_params("relu") == (relu.code, *relu.ideal)  # unsaturated, not clipped at 1
    with pytest.raises(UnknownNameError, match="network.activation: unknown activation 'nosuch'"):
        el.transfer_params("nosuch")


@pytest.mark.parametrize("field,value", [("gain", 2.0), ("saturation", 3.0), ("absorption", 0.25),
                                         ("bias_rad", 0.5)])
def test_device_parameters_are_refused_with_the_network_activation(field, value):
    key = field.removesuffix("_rad")
    with pytest.raises(ConfigError, match=rf'active.{key}: must be .* with transfer = "network"'):
        ActiveElement(transfer="network", **{field: value})


# -- weight element ----------------------------------------------------------------------------


def untouched(rng):
    return rng.bit_generator.state


@pytest.mark.parametrize("name", WEIGHTS)
def test_program_over_every_weight_preset(name):
    wt = load_preset("weight", name)
    w = np.random.default_rng(1).standard_normal((16, 16)) * 2
    w_prog, mask = wt.program(w, np.random.default_rng(7))
    again, _ = wt.program(w, np.random.default_rng(7))
    np.testing.assert_array_equal(w_prog, again)  # same seed, same weights
    np.testing.assert_array_equal(mask, np.abs(w) <= wt.w_max)
    assert w_prog.shape == w.shape and w_prog.dtype == w.dtype
    if wt.program_noise == 0:
        assert np.all(np.abs(w_prog) <= wt.w_max)
    assert wt.read_sigma() == pytest.approx(
        wt.read_noise * (wt.w_max if wt.read_noise else 0) * math.sqrt(wt.devices_per_weight))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_ideal_weight_programs_bit_for_bit_without_random_numbers(dtype):
    wt = load_preset("weight", "ideal")
    big, tiny = np.finfo(dtype).max, np.finfo(dtype).smallest_subnormal
    w = np.array([[-0.0, 0.0, tiny, -3.7], [big, -big, np.pi, np.inf]], dtype=dtype)
    rng = np.random.default_rng(3)
    before = untouched(rng)
    w_prog, mask = wt.program(w, rng)
    assert w_prog.tobytes() == w.tobytes()
    assert mask.all() and untouched(rng) == before
    assert wt.drift_factor(1e6, w.shape, rng).tolist() == np.ones(w.shape).tolist()
    assert untouched(rng) == before and wt.read_sigma() == 0.0


@pytest.mark.parametrize("sign", ["bipolar", "differential"])
def test_analog_noiseless_weights_in_range_are_unchanged(sign):
    wt = WeightElement(w_max=2.0, sign=sign)
    w = np.linspace(-2, 2, 101)
    w_prog, mask = wt.program(w)  # no generator needed without noise
    assert w_prog.tobytes() == w.tobytes() and mask.all()


def test_bipolar_quantisation_grid_clipping_and_mask():
    wt = WeightElement(w_max=1.0, bits=2)  # 4 levels over [-1, 1]: -1, -1/3, 1/3, 1
    w = np.array([-5.0, -1.0, -0.6, -0.5, 0.1, 0.3, 0.9, 1.0, 1.2])
    w_prog, mask = wt.program(w)
    np.testing.assert_allclose(w_prog, [-1, -1, -1 / 3, -1 / 3, 1 / 3, 1 / 3, 1, 1, 1],
                               rtol=0, atol=1e-15)
    np.testing.assert_array_equal(mask, [False, True, True, True, True, True, True, True, False])


def test_differential_quantisation_grid():
    wt = WeightElement(w_max=1.0, bits=2, sign="differential")  # each device 0, 1/3, 2/3, 1
    w = np.array([-2.0, -0.9, -0.5, -0.1, 0.0, 0.2, 0.6, 1.0])
    w_prog, mask = wt.program(w)
    np.testing.assert_allclose(w_prog, [-1, -1, -2 / 3, 0, 0, 1 / 3, 2 / 3, 1], rtol=0, atol=1e-15)
    np.testing.assert_array_equal(mask, [False] + [True] * 7)
    binary = WeightElement(w_max=0.25, bits=1, sign="differential")  # an MTJ pair: ternary
    assert set(binary.program(np.linspace(-1, 1, 41))[0]) == {-0.25, 0.0, 0.25}


@pytest.mark.parametrize("sign", ["bipolar", "differential"])
def test_float32_weights_are_written_in_float32_on_the_same_grid(sign):
    """float32 weights are clipped and quantised in float32 arithmetic: the float64 result to a
    float32 ulp or two, the same mask, and only float32 work arrays."""
    wt = WeightElement(w_max=0.7, bits=5, sign=sign)
    w = np.random.default_rng(4).uniform(-1.0, 1.0, 20_001).astype(np.float32)
    p32, m32 = wt.program(w)
    p64, m64 = wt.program(w.astype(np.float64))
    assert p32.dtype == np.float32
    np.testing.assert_allclose(p32, p64, rtol=0, atol=2 * np.spacing(np.float32(0.7)))
    np.testing.assert_array_equal(m32, m64)
    assert len(np.unique(p32)) == (63 if sign == "differential" else 32)


@pytest.mark.parametrize("sign, factor", [("bipolar", 1.0), ("differential", math.sqrt(2))])
def test_programming_noise_statistics(sign, factor):
    wt = WeightElement(w_max=2.0, program_noise=0.05, sign=sign)
    w = np.full(200_000, 0.3)
    w_prog, _ = wt.program(w, np.random.default_rng(0))
    err = w_prog - w
    # 200k draws: the standard error of the std is 0.16 %, of the mean 0.22 % of sigma
    assert err.std() == pytest.approx(0.05 * 2.0 * factor, rel=0.01)
    assert abs(err.mean()) < 0.01 * 0.1 * factor
    with pytest.raises(ValueError, match="a numpy Generator is needed"):
        wt.program(w)


@pytest.mark.parametrize("sign", ["bipolar", "differential"])
def test_program_and_read_draws_both_noises_as_one(sign):
    """Writing and reading at once: the clipped, quantised weights plus one normal whose
    variance is the sum of the programming and the read noise's, drawn as ``rng.normal`` draws
    it; with no noise at all the generator is not touched."""
    wt = WeightElement(w_max=0.5, bits=4, program_noise=0.03, read_noise=0.04, sign=sign)
    w = np.random.default_rng(1).uniform(-0.7, 0.7, (3, 50))
    quiet = dataclasses.replace(wt, program_noise=0.0, read_noise=0.0)
    w_q, in_range = quiet.program(w)
    got, got_range = wt.program_and_read(w, np.random.default_rng(2))
    sigma = math.hypot(wt.program_sigma(), wt.read_sigma())
    assert sigma == pytest.approx(0.05 * 0.5 * (math.sqrt(2) if sign == "differential" else 1))
    expect = w_q + normal(np.random.default_rng(2), w.shape, sigma, w.dtype)
    assert got.tobytes() == expect.tobytes()
    np.testing.assert_array_equal(got_range, in_range)
    err = wt.program_and_read(np.full(200_000, 0.25), np.random.default_rng(3))[0] - 0.25
    assert err.std() == pytest.approx(sigma, rel=0.01)
    rng = np.random.default_rng(4)
    state = rng.bit_generator.state
    assert quiet.program_and_read(w, rng)[0].tobytes() == w_q.tobytes()
    assert rng.bit_generator.state == state
    with pytest.raises(ValueError, match="program_and_read: a numpy Generator is needed"):
        wt.program_and_read(w)


def test_drift_power_law_and_exponential():
    pcm = WeightElement(w_max=1.0, drift="power_law", drift_nu=0.05, drift_t0_s="20 s")
    assert pcm.drift_factor(0.0, (2, 3)).tolist() == [[1.0] * 3] * 2  # no drift before t0
    assert np.all(pcm.drift_factor(20.0, (4,)) == 1.0)
    np.testing.assert_allclose(pcm.drift_factor(200.0, (4,)), 10 ** -0.05, rtol=1e-15)
    spread = dataclasses.replace(pcm, drift_nu_std=0.01)
    rng = np.random.default_rng(5)
    nu = 0.05 + normal(np.random.default_rng(5), (3, 3), 0.01)
    np.testing.assert_allclose(spread.drift_factor(200.0, (3, 3), rng), 10.0 ** -nu, rtol=1e-14)
    expo = WeightElement(drift="exponential", drift_tau_s="1 h")
    np.testing.assert_allclose(expo.drift_factor(1800.0, (2,)), math.exp(-0.5), rtol=1e-15)
    assert WeightElement().drift_factor(1e9, (2,)).tolist() == [1.0, 1.0]
    with pytest.raises(ValueError, match="elapsed_s must be >= 0"):
        pcm.drift_factor(-1.0, (2,))
    with pytest.raises(ValueError, match="a numpy Generator is needed"):
        spread.drift_factor(100.0, (2,))


def test_pcm_preset_drift_is_aihwkit_like():
    pcm = load_preset("weight", "pcm")
    # the exponents follow from the conductance (aihwkit's statistics), t0 = 20 s
    assert (pcm.drift, pcm.statistics, pcm.drift_t0_s) == ("power_law", "pcm", 20.0)


def test_read_sigma():
    assert WeightElement(w_max=2.0, read_noise=0.01).read_sigma() == pytest.approx(0.02)
    assert WeightElement(w_max=2.0, read_noise=0.01, sign="differential").read_sigma() == \
        pytest.approx(0.02 * math.sqrt(2))


# -- bad input: one line naming the field ------------------------------------------------------


def make(cls, **kw):
    return lambda: cls(**kw)


def device(kind, table, field="hardware.device"):
    return lambda: load_device(kind, table, field)


BAD = [
    ("negative time", make(Switch, rise_time_s=-1e-9),
     "switch.rise_time: must be >= 0 s (got -1 ns)"),
    ("negative time string", make(Switch, jitter_s="-5 ps"),
     "switch.jitter: must be >= 0 s (got -5 ps)"),
    ("NaN time", make(Switch, rise_time_s=math.nan),
     'switch.rise_time: must be a time such as "200 ps" (got nan)'),
    ("infinite time", make(Switch, rise_time_s="inf"),
     "switch.rise_time: must be finite (got inf s)"),
    ("ER < 0", make(Switch, extinction_ratio_db=-3),
     "switch.extinction_ratio: must be > 0 dB (got -3 dB)"),
    ("ER = 0", make(Switch, extinction_ratio_db="0 dB"),
     "switch.extinction_ratio: must be > 0 dB (got 0 dB)"),
    ("negative loss", make(Switch, insertion_loss_db=-1),
     "switch.insertion_loss: must be >= 0 dB (got -1 dB)"),
    ("wrong unit", make(Switch, energy_per_switch_j="5 ps"),
     'switch.energy_per_switch: must be an energy such as "5 pJ" (got "5 ps")'),
    ("bool", make(Switch, rise_time_s=True),
     'switch.rise_time: must be a time such as "200 ps" (got true)'),
    ("bits < 1", make(WeightElement, w_max=1, bits=0), "weight.bits: must be >= 1 (got 0)"),
    ("fractional bits", make(WeightElement, w_max=1, bits=4.5),
     "weight.bits: must be a whole number or inf (got 4.5)"),
    ("w_max <= 0", make(WeightElement, w_max=0), "weight.w_max: must be > 0 (got 0)"),
    ("unbounded but quantised", make(WeightElement, bits=8),
     "weight.w_max: must be finite unless bits = inf, program_noise = read_noise = 0, "
     'statistics = "uniform" and model = "crossbar" (got inf)'),
    ("sign", make(WeightElement, sign="unipolar"),
     'weight.sign: must be one of bipolar, differential (got "unipolar"); did you mean '
     "'bipolar'?"),
    ("drift", make(WeightElement, drift="powerlaw"),
     'weight.drift: must be one of none, power_law, exponential (got "powerlaw"); did you mean '
     "'power_law'?"),
    ("t0 = 0", make(WeightElement, drift_t0_s=0), "weight.drift_t0: must be > 0 s (got 0 s)"),
    ("endurance", make(WeightElement, endurance_writes=-1),
     "weight.endurance_writes: must be > 0 (got -1)"),
    ("absorption 1", make(ActiveElement, absorption=1.0),
     "active.absorption: must be in [0, 1) (got 1)"),
    ("gain 0", make(ActiveElement, gain=0), "active.gain: must be > 0 (got 0)"),
    ("noise", make(ActiveElement, noise=-0.1), "active.noise: must be >= 0 (got -0.1)"),
    ("bias inf", make(ActiveElement, bias_rad="inf rad"),
     "active.bias: must be finite (got inf rad)"),
    ("transfer", make(ActiveElement, transfer="tanhh"),
     f'active.transfer: must be "network" or one of {", ".join(ACTIVATIONS.names())} '
     "(got \"tanhh\"); did you mean 'tanh'?"),
    ("name", make(Switch, name=3), "switch.name: must be a string (got 3)"),
    ("source key", make(Switch, sources={"rise_tme": "x"}),
     "switch.sources.rise_tme: unknown key; did you mean 'rise_time'?"),
    ("override ER", device("switch", {"preset": "eo_mzi", "extinction_ratio": "-3 dB"},
                           "hardware.switch"),
     "hardware.switch.extinction_ratio: must be > 0 dB (got -3 dB)"),
    ("override unit", device("switch", {"preset": "eo_mzi", "rise_time": "5 pJ"},
                             "hardware.switch"),
     'hardware.switch.rise_time: must be a time such as "200 ps" (got "5 pJ")'),
    ("override NaN", device("weight", {"preset": "pcm", "program_time": math.nan},
                            "hardware.weights"),
     'hardware.weights.program_time: must be a time such as "200 ps" (got nan)'),
    ("override bits", device("weight", {"preset": "rram", "bits": 0}, "hardware.weights"),
     "hardware.weights.bits: must be >= 1 (got 0)"),
    ("unknown key", device("switch", {"preset": "eo_mzi", "rise_tme": "1 ps"},
                           "hardware.switch"),
     "hardware.switch.rise_tme: unknown key; did you mean 'rise_time'?"),
    ("suffixed key", device("switch", {"rise_time_s": 1e-12}, "hardware.switch"),
     "hardware.switch.rise_time_s: unknown key; did you mean 'rise_time'?"),
    ("unknown preset", device("switch", {"preset": "nosuch"}, "hardware.switch"),
     "hardware.switch.preset: unknown switch preset 'nosuch'; known: eo_mzi, ideal, mems, "
     "si_mzi_carrier, soa_gate"),
    ("close preset", device("weight", {"preset": "thermooptic"}, "hardware.weights"),
     "hardware.weights.preset: unknown weight preset 'thermooptic'; known: ideal, lcos_slm, mtj, "
     "pcm, pcm_photonic, rram, thermo_optic; did you mean 'thermo_optic'?"),
    ("preset type", device("active", {"preset": 3}, "hardware.active"),
     "hardware.active.preset: must be a preset name or a TOML file (got 3)"),
    ("not a table", device("active", "soa", "hardware.active"),
     'hardware.active: must be a table of keys (got "soa")'),
]


@pytest.mark.parametrize("build, message", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input_is_one_line_naming_the_field(build, message):
    with pytest.raises(RelaxsimError) as info:
        build()
    assert str(info.value) == message
    assert "\n" not in str(info.value)
    if isinstance(info.value, ConfigError):
        assert message.startswith(info.value.field + ":")


# -- loading: overrides, paths, user directories -----------------------------------------------


def test_overrides_apply_over_the_preset_and_are_cited():
    sw = load_device("switch", {"preset": "eo_mzi", "rise_time": "10 ps", "jitter": 1e-12},
                     "hardware.switch")
    base = load_preset("switch", "eo_mzi")
    assert (sw.rise_time_s, sw.jitter_s, sw.name) == (10e-12, 1e-12, "eo_mzi")
    assert sw.insertion_loss_db == base.insertion_loss_db
    assert sw.sources["rise_time"] == "set in hardware.switch"
    assert sw.sources["insertion_loss"] == base.sources["insertion_loss"]


def test_preset_may_be_a_toml_path(tmp_path):
    path = write(tmp_path / "fast.toml", FAST_SWITCH)
    sw = load_device("switch", {"preset": str(path), "extinction_ratio": "30 dB"})
    assert (sw.name, sw.rise_time_s, sw.extinction_ratio_db) == ("fast", 1e-12, 30.0)
    assert sw.insertion_loss_db == 0.0  # a key a user file leaves out keeps the ideal default


USER_FILE_ERRORS = [
    ('kind = "switch"\nrise_tme = "1 ps"\n', "rise_tme: unknown key; did you mean 'rise_time'?"),
    ('kind = "switch"\nrise_time = "5 pJ"\n',
     'rise_time: must be a time such as "200 ps" (got "5 pJ")'),
    ('kind = "switch"\nextinction_ratio = "-3 dB"\n',
     "extinction_ratio: must be > 0 dB (got -3 dB)"),
    ('kind = "weight"\nbits = 8\n', 'kind: must be "switch" (got "weight")'),
    ('rise_time = "1 ps"\n', 'kind: must be "switch" (got nothing)'),
    ('kind = "switch"\n[sources]\nrise_time = 3\n', "sources.rise_time: must be a string (got 3)"),
    ('kind = "switch"\nrise_time = \n', "invalid TOML (Invalid value (at line 2, column 13))"),
]


@pytest.mark.parametrize("text, message", USER_FILE_ERRORS)
def test_user_preset_file_errors_name_the_file_and_the_field(tmp_path, text, message):
    path = write(tmp_path / "mine.toml", text)
    with pytest.raises(RelaxsimError) as info:
        load_device("switch", {"preset": str(path)}, "hardware.switch")
    assert str(info.value) == f"preset file {str(path)!r}: {message}"


def test_missing_preset_file(tmp_path):
    path = tmp_path / "gone.toml"
    with pytest.raises(RelaxsimError, match="^preset file '.*gone.toml': not found$"):
        load_device("switch", {"preset": str(path)})


def test_user_directories_override_and_extend_the_library(tmp_path, monkeypatch):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    write(a / "switch" / "eo_mzi.toml", FAST_SWITCH)  # overrides the library's eo_mzi
    write(a / "top.toml", 'kind = "weight"\nw_max = 1.0\nbits = 4\n')  # kind from the file
    write(b / "switch" / "eo_mzi.toml", FAST_SWITCH.replace("1 ps", "2 ps"))
    write(b / "switch" / "extra.toml", FAST_SWITCH.replace("1 ps", "3 ps"))
    write(c / "switch" / "extra.toml", FAST_SWITCH.replace("1 ps", "4 ps"))
    assert load_preset("switch", "eo_mzi").rise_time_s == 3.5e-12
    monkeypatch.setenv(library.ENV_VAR, f"{b}:{c}")
    assert load_preset("switch", "eo_mzi").rise_time_s == 2e-12
    assert load_preset("switch", "extra").rise_time_s == 3e-12  # first directory wins
    add_preset_dir(a)
    assert preset_dirs() == [a.resolve(), b.resolve(), c.resolve()]
    assert load_preset("switch", "eo_mzi").rise_time_s == 1e-12
    assert load_preset("weight", "top").bits == 4
    assert load_preset("switch", "extra", dirs=[c]).rise_time_s == 4e-12  # explicit dirs first
    assert presets("switch").get("eo_mzi").origin == str(a.resolve())
    assert presets("switch").get("mems").origin == "library"


def test_user_directory_errors(tmp_path, monkeypatch):
    with pytest.raises(RelaxsimError, match=r"^preset directory '.*nowhere': not a directory$"):
        add_preset_dir(tmp_path / "nowhere")
    monkeypatch.setenv(library.ENV_VAR, str(tmp_path / "nowhere"))
    with pytest.raises(RelaxsimError, match=r"^RELAXSIM_DEVICES '.*nowhere': not a directory$"):
        presets("switch")
    monkeypatch.delenv(library.ENV_VAR)
    d = tmp_path / "d"
    write(d / "switch" / "x.toml", FAST_SWITCH)
    write(d / "x.toml", FAST_SWITCH)
    with pytest.raises(RelaxsimError, match="switch preset 'x' is defined twice in"):
        presets("switch", dirs=[d])
    e = tmp_path / "e"
    write(e / "switches" / "y.toml", FAST_SWITCH)
    with pytest.raises(RelaxsimError, match="y.toml': put it in a folder switch/, active/, "
                                            "weight/, io/, digital/ or at the top level"):
        presets("switch", dirs=[e])


# -- relaxsim devices --------------------------------------------------------------------------


def invoke(argv, capsys):
    capsys.readouterr()
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def test_devices_lists_the_library(capsys):
    status, out, err = invoke(["devices"], capsys)
    assert status == 0 and err == ""
    for kind, name in LIBRARY:
        assert f"  {name} " in out
    assert "3.5 ps" in out and "25 dB" in out  # key figures of eo_mzi


@pytest.mark.parametrize("kind, name", LIBRARY)
def test_devices_shows_every_parameter_and_source(kind, name, capsys):
    status, out, err = invoke(["devices", f"{kind}/{name}"], capsys)
    assert status == 0 and err == ""
    record = load_preset(kind, name)
    assert out.startswith(f"{kind}/{name}: {record.description}\n")
    for key in record.keys():
        line = next(line for line in out.splitlines() if line.split()[:1] == [key])
        assert record.display(key) in line and record.sources[key] in line


@pytest.mark.parametrize("argv, message", [
    (["devices", "nosuch"], "relaxsim: error: unknown device preset 'nosuch'; known: "
                            + ", ".join(sorted({n for _, n in LIBRARY}))),
    (["devices", "ideal"], "relaxsim: error: device preset 'ideal' is ambiguous; use "
                           "switch/ideal or active/ideal or weight/ideal or io/ideal or "
                           "digital/ideal"),
    (["devices", "switch/pcm"], "relaxsim: error: unknown switch preset 'pcm'; known: eo_mzi, "
                                "ideal, mems, si_mzi_carrier, soa_gate"),
    (["devices", "swich/eo_mzi"], "relaxsim: error: unknown device kind 'swich'; known: switch, "
                                  "active, weight, io, digital; did you mean 'switch'?"),
])
def test_devices_unknown_name_exits_2_on_one_line(argv, message, capsys):
    status, out, err = invoke(argv, capsys)
    assert (status, out, err) == (2, "", message + "\n")


def test_devices_with_a_user_directory(tmp_path, capsys):
    d = tmp_path / "lab"
    write(d / "switch" / "ours.toml", FAST_SWITCH)
    status, out, _ = invoke(["devices", "--devices", d], capsys)
    assert status == 0 and "ours" in out and f"mine [{d.resolve()}]" in out
    status, out, _ = invoke(["devices", "ours", "--devices", d], capsys)
    assert status == 0 and out.startswith("switch/ours: mine\n")
    status, _, err = invoke(["devices", "--devices", tmp_path / "none"], capsys)
    assert status == 2 and err.startswith("relaxsim: error: preset directory ")


def test_devices_nosuch_as_a_process_has_no_traceback():
    proc = subprocess.run([sys.executable, "-m", "relaxsim", "devices", "nosuch"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("relaxsim: error: unknown device preset 'nosuch'; known: ")
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1
