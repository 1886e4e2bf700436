"""Energy and architecture accounting: a tiny machine worked by hand, the pipelines against their
bottlenecks and Little's law, the input layer as hardware, training as a hardware process, and
bad input.

Every expected number below is written out by hand from docs/energy.md's formulas (independent
arithmetic: none of relaxsim's functions computes an expected value)."""

from __future__ import annotations

import json
import math

import pytest

import relaxsim
from relaxsim.cli.app import main
from relaxsim.data.tasks import TaskInfo
from relaxsim.timing import TimingSpec, simulate

PS = 1e-12
TOL = 0.001  # hardware.settle_tolerance

# The tiny machine: N = 4, L_W = 2, L_T = 4 (cyclic 0, 1, 0, 1), D = 3 inputs, C = 2 classes.
TINY = {
    "network.hidden": 4, "network.banks": 2, "network.steps": 4, "network.schedule": "cyclic",
    "hardware.propagation_time": "10 ps", "hardware.readout_time": "10 ps",
    "hardware.settle_tolerance": TOL, "hardware.laser_power": "1 mW",
    "hardware.utilisation": 0.5, "hardware.update_every": 3,
    "training.batch_size": 8,
    "hardware.switch": {"preset": "ideal", "rise_time": "3 ps", "energy_per_switch": "1 pJ",
                        "holding_power": "2 mW"},
    "hardware.weights": {"preset": "ideal", "static_power": "1 mW", "write_energy": "10 pJ",
                         "program_time": "1 us"},
    "hardware.active": {"preset": "ideal", "response_time": "1 ps", "noise": 0.0,
                        "detector_noise": 0.0, "energy_per_activation": "0.5 pJ",
                        "static_power": "3 mW", "detector_power": "4 mW", "detection": "oeo"},
    "hardware.io": {"preset": "ideal", "laser_efficiency": 0.25, "modulator_energy": "100 fJ",
                    "dac_fom": "1 fJ", "dac_bits": 6, "adc_fom": "2 fJ", "adc_bits": 8,
                    "adc_rate": "10 GHz"},
    "hardware.digital": {"preset": "ideal", "mac_rate": 1e12, "energy_per_mac": "10 pJ"},
}


def tiny(**overrides):
    cfg = relaxsim.load_config(overrides={**TINY, **overrides})
    return relaxsim.assemble(cfg, TaskInfo(n_inputs=3, n_classes=2))


# Settling times by hand: a first-order switch of 3 ps rise (tau = 3 ps / ln 9) and an element of
# tau_a = 1 ps, each to 0.001.
T_SW = 3 * PS / math.log(9) * math.log(1 / TOL)
T_ST = 1 * PS * math.log(1 / TOL)
T_MM = T_RO = 10 * PS
# a bank's programming: the 1 us write (10-90 %) of an analog element settled to the tolerance
T_PROG = 1e-6 / math.log(9) * math.log(1 / TOL)
LATENCY = 4 * T_MM + 3 * max(T_SW, T_ST) + T_ST + T_RO  # ReLaX-Net, auto clock, alone
STATIC = {"weights": 2 * 16 * 1e-3,           # 32 heaters of 1 mW
          "switch": 1 * 4 * 2 * 2e-3,         # 1 set x 4 channels x (router + mirror) x 2 mW
          "active": 4 * 3e-3,                 # 4 elements x 3 mW
          "detector": (4 + 4) * 4e-3,         # 4 O-E-O detectors + 4 at the readout x 4 mW
          "laser": (4 + 4) * 1e-3 / 0.25}     # 4 modulators' and 4 elements' channels, 25 %


def close(a, b, rel=1e-12):
    return a == pytest.approx(b, rel=rel, abs=0.0)


def test_tiny_machine_by_hand():
    fig = tiny().figures
    acc = fig["architectures"]["relaxnet"]
    assert close(fig["latency_s"], LATENCY) and close(fig["period_s"], LATENCY)
    assert acc["devices"] == {"weight_elements": 32, "heaters": 32, "switches": 8,
                              "active_elements": 4, "detectors": 8, "dac_channels": 4,
                              "adc_channels": 4, "modulators": 4, "laser_channels": 8}
    for kind, watts in STATIC.items():
        assert close(acc["static_power_w"][kind], watts), kind
    total_static = 0.032 + 0.016 + 0.012 + 0.032 + 0.032
    assert close(acc["static_power_total_w"], total_static)
    share = LATENCY / 0.5  # the static power's share of one inference at 50 % utilisation
    expect = {
        "weights": 0.032 * share,
        "programming": 0.0,
        # 0->1, 1->0, 0->1, 1->0 (back to the first bank) = 4 changes x 2 sides x 4 channels
        "switch": 4 * 2 * 4 * 1e-12 + 0.016 * share,
        "active": 4 * 4 * 0.5e-12 + 0.012 * share,       # L_T N activations + bias
        "detector": 0.032 * share,
        "laser": 0.032 * share,
        "modulator": 1 * 4 * 100e-15,                    # the drive, converted once, held
        "dac": 4 * 1e-15 * 2 ** 6,                       # FoM 2^bits at dac_bits = 6
        "adc": 4 * 2e-15 * 2 ** 8,                       # N samples at the readout
        "digital": (2 * 4 + 4 * 3) * 10e-12,             # readout C N + input layer N D MACs
    }
    for kind, joules in expect.items():
        assert close(acc["energy_breakdown_j"][kind], joules), kind
    total = sum(expect.values())
    assert close(acc["energy_per_inference_j"], total)
    assert close(fig["energy_per_inference_j"], total)
    macs = 4 * 16 + 4 * 3 + 2 * 4  # L_T N^2 + N D + C N = 84
    assert acc["macs_per_inference"] == macs
    assert close(acc["j_per_mac"], total / macs)
    assert close(acc["tops_per_w"], 2 * macs / total / 1e12)


def test_tiny_machine_other_architectures_by_hand():
    accs = tiny().figures["architectures"]
    rnn, rep, dnn = accs["rnn"], accs["reprogram"], accs["unrolled"]
    # RNN: one bank, no switch; the element still settles between steps
    rnn_latency = 4 * T_MM + 3 * T_ST + T_ST + T_RO
    assert close(rnn["period_s"], rnn_latency)
    assert rnn["devices"]["weight_elements"] == 16 and rnn["devices"]["switches"] == 0
    assert close(rnn["energy_breakdown_j"]["switch"], 0.0)
    # reprogrammed bank, a stream: 0->1, 1->0, 0->1 in the walk and 1->0 before the next: 4
    # writes of 16 devices at 10 pJ per inference
    assert rep["writes_per_inference"] == 4
    assert close(rep["energy_breakdown_j"]["programming"], 4 * 16 * 10e-12)
    # each of the 4 writes holds up its step (T_state < 1 us); the last step settles, then the
    # readout
    rep_period = 4 * T_PROG + 4 * T_MM + T_ST + T_RO
    assert close(rep["period_s"], rep_period)
    # unrolled DNN: 4 banks, 4 element layers; the input injected at each layer anew
    d = dnn["devices"]
    assert (d["weight_elements"], d["active_elements"], d["detectors"], d["dac_channels"],
            d["modulators"], d["laser_channels"]) == (64, 16, 16 + 4, 16, 16, 16 + 16)
    assert close(dnn["energy_breakdown_j"]["dac"], 4 * 4 * 64e-15)
    assert close(dnn["energy_breakdown_j"]["modulator"], 4 * 4 * 100e-15)
    dnn_static = 64e-3 + 16 * 3e-3 + 20 * 4e-3 + 32 * 1e-3 / 0.25
    assert close(dnn["static_power_total_w"], dnn_static)
    assert close(dnn["period_s"], 4 * (T_MM + T_ST) + T_RO)  # one at a time (sequential)


def test_tiny_machine_training_by_hand():
    machine = tiny()
    cost = machine.training_cost(samples=100, batches=13, writes=5)
    params = 2 * (16 + 4) + 4 * 3 + 2 * 4 + 2  # banks, input layer, readout
    backward = 3 * 4 * 16 + 4 * 3 + 2 * 2 * 4  # per sample: 3 L_T N^2 + N D + 2 C N
    macs = 100 * backward + 13 * 5 * params
    assert cost["digital_macs"] == macs
    assert close(cost["time_s"]["forward"], 100 * LATENCY)
    assert close(cost["time_s"]["readout"], 100 * 3 * 4 / (4 * 10e9))  # (L_T - 1) N states
    assert close(cost["time_s"]["digital"], macs / 1e12)
    assert close(cost["time_s"]["programming"], 5 * T_PROG)
    full = (4 * 2 * 4 * 1e-12 + 8e-12 + 0.4e-12 + 0.256e-12 + 2.048e-12 + 200e-12
            + 0.124 * LATENCY)  # an inference at full utilisation
    assert close(cost["energy_j"]["forward"], 100 * full)
    assert close(cost["energy_j"]["readout"], 100 * 3 * 4 * 2e-15 * 256)
    assert close(cost["energy_j"]["digital"], macs * 10e-12)
    assert close(cost["energy_j"]["programming"], 5 * 32 * 10e-12)
    after = 100 * 3 * 4 / (4 * 10e9) + macs / 1e12 + 5 * T_PROG
    assert close(cost["energy_j"]["static"], 0.124 * after)
    per_sample = machine.training_per_sample()
    assert close(per_sample["programming_events"], 1 / (8 * 3))


def test_input_layer_in_a_bank():
    acc = tiny(**{"hardware.input_layer": "bank"}).figures["architectures"]["relaxnet"]
    d = acc["devices"]
    # the input bank: N x D = 12 weights; the raw input (D = 3 values) through DACs and modulators
    assert (d["weight_elements"], d["dac_channels"], d["modulators"], d["laser_channels"]) == (
        32 + 12, 3, 3, 3 + 4)
    e = acc["energy_breakdown_j"]
    assert close(e["digital"], 2 * 4 * 10e-12)  # the readout layer only
    assert close(e["dac"], 3 * 64e-15) and close(e["modulator"], 3 * 100e-15)
    assert close(acc["static_power_w"]["weights"], 44e-3)


def test_electrical_machine_has_no_optics():
    acc = tiny(**{"hardware.signal": "electrical"}).figures["architectures"]["relaxnet"]
    d = acc["devices"]
    assert (d["detectors"], d["modulators"], d["laser_channels"], d["dac_channels"]) == (0, 0, 0, 4)
    assert acc["static_power_w"]["laser"] == 0 and acc["energy_breakdown_j"]["modulator"] == 0


def test_tree_switch_toggles_every_stage_of_a_changing_level():
    # L_W = 4, tree of 2 levels (3 stages a side, mirrored: 6 devices a channel); cyclic
    # 0, 1, 2, 3 and back to 0: bit 0 changes 4 times (1 stage), bit 1 twice (2 stages)
    acc = tiny(**{"network.banks": 4, "hardware.switch_topology": "tree"}).figures[
        "architectures"]["relaxnet"]
    assert acc["devices"]["switches"] == 4 * 6
    toggles = (4 * 1 + 2 * 2) * 2
    assert close(acc["energy_breakdown_j"]["switch"] - acc["static_power_w"]["switch"]
                 * acc["period_s"] / 0.5, 4 * toggles * 1e-12, rel=1e-9)


# -- pipelines: throughput against the bottleneck, Little's law ----------------------------------

def spec(**kw) -> TimingSpec:
    base = dict(schedule=(0, 1, 0, 1), banks=2, t_mm=10.0, t_switch=3.0, t_state=4.0,
                t_program=50.0, t_readout=5.0, clock=None, pipelining="pipelined", in_flight=2)
    return TimingSpec(**{**base, **kw})


@pytest.mark.parametrize("kw, throughput", [
    # unrolled, auto clock: a layer is held T_MM + T_state, the last one also through the
    # readout: 1 / (10 + 4 + 5)
    (dict(architecture="unrolled", schedule=(0, 1, 2, 3), banks=4), 1 / 19.0),
    # unrolled, a clock of 20 > T_MM + T_state, no readout time: one inference per tick
    (dict(architecture="unrolled", schedule=(0, 1, 2, 3), banks=4, clock=20.0, t_readout=0.0),
     1 / 20.0),
    # ReLaX-Net, 2 sets, clock 20: each set holds an inference 4 x 20 + 5; the banks are free
    # in time (the second inference runs T_MM behind the first): 2 / 85
    (dict(clock=20.0), 2 / 85.0),
    # ReLaX-Net, 2 sets, auto: a set holds an inference 4 x 10 + 3 x 4 + 4 + 5 = 61
    (dict(), 2 / 61.0),
])
def test_pipelined_throughput_is_the_bottlenecks_rate(kw, throughput):
    sim = simulate(spec(**kw))
    assert sim.periodic
    assert sim.throughput() == pytest.approx(throughput, rel=1e-9)
    L, lam, W = sim.littles_law()
    assert L == pytest.approx(lam * W, rel=1e-9)


@pytest.mark.parametrize("arch", ["relaxnet", "reprogram", "unrolled"])
@pytest.mark.parametrize("clock", [None, 13.0, 17.0, 31.0])
@pytest.mark.parametrize("pipelining", ["sequential", "pipelined"])
def test_littles_law_holds_for_every_architecture_and_clock(arch, clock, pipelining):
    """An element a fixed clock reads before it has settled stays held until it has: counted in
    the residence, so L = lambda W holds (it did not when residence ended at the readout)."""
    kw = dict(architecture=arch, clock=clock, pipelining=pipelining, in_flight=3,
              t_state=25.0)  # slower than any of the clocks: elements held past the readout
    if arch == "reprogram":
        kw.update(banks=1, t_program=7.0)
    if arch == "unrolled":
        kw.update(schedule=(0, 1, 2, 3), banks=4)
    sim = simulate(spec(**kw), stream=True)
    assert sim.periodic
    L, lam, W = sim.littles_law()
    assert L == pytest.approx(lam * W, rel=1e-9)
    assert all(inf.freed >= inf.done for inf in sim.inferences)
    if clock is not None and clock - 10.0 + 5.0 < 25.0:  # the clock, and the readout after
        # it, came before the last state had settled: held past the readout
        assert any(inf.freed > inf.done for inf in sim.inferences)


def test_reprogrammed_blocked_schedule_programs_only_when_the_bank_changes():
    # blocked (0, 0, 1, 1): one rewrite in the walk (step 2) and one before the next inference
    sim = simulate(spec(architecture="reprogram", banks=1, schedule=(0, 0, 1, 1),
                        pipelining="sequential"), stream=True)
    assert sim.writes_per_inference() == 2
    # closed form, sequential, auto clock: 4 T_MM + 3 settle windows, the one before step 2
    # waits T_program; the first step of the next inference waits T_program too
    period = 4 * 10 + 2 * 4 + max(50, 4) + 4 + 5 + 50
    assert sim.period() == pytest.approx(period, rel=1e-12)


# -- shown where a designer looks, and bad input ---------------------------------------------------

def test_timing_prints_and_writes_the_architecture_table(tmp_path, capsys):
    out = tmp_path / "t.json"
    assert main(["timing", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    for line in ("architectures on equal terms", "RNN (one bank)", "TOPS/W", "laser channels",
                 "training on the machine, per training sample"):
        assert line in text
    data = json.loads(out.read_text())
    acc = data["architectures"]
    assert set(acc) == {"relaxnet", "rnn", "reprogram", "unrolled"}
    assert data["energy_per_inference_j"] == acc["relaxnet"]["energy_per_inference_j"]
    assert set(data["energy_breakdown_j"]) >= {"switch", "active", "weights"}  # names kept
    assert data["training_per_sample"]["energy_total_j"] > 0


@pytest.mark.parametrize("key, value, message", [
    ("hardware.io.laser_efficiency", -0.1,
     "hardware.io.laser_efficiency: must be in (0, 1] (got -0.1)"),
    ("hardware.io.laser_efficiency", 1.5,
     "hardware.io.laser_efficiency: must be in (0, 1] (got 1.5)"),
    ("hardware.input_layer", "optical",
     "hardware.input_layer: must be one of digital, bank (got 'optical')"),
    ("hardware.digital.mac_rate", 0, "hardware.digital.mac_rate: must be > 0 (got 0)"),
    ("hardware.utilisation", 0.0, "hardware.utilisation: must be in (0, 1] (got 0.0)"),
])
def test_bad_input_is_one_line_naming_the_field(key, value, message, capsys):
    assert main(["timing", "--set", f"{key}={json.dumps(value)}"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.strip().splitlines() == [f"relaxsim: error: {message}"]


# -- the input layer in a weight bank: programming, noise, the gradient ---------------------------

def input_engine(layer: str, **weights):
    import numpy as np

    from relaxsim.training.engine import engines_for

    table = {"preset": "ideal", **weights}
    machine = tiny(**{"hardware.input_layer": layer, "hardware.weights": table,
                      "hardware.update_every": 1})
    engine = engines_for(machine, seed=0)[0]
    net = machine.network_on_hardware
    params = net.init_params(0)
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(5, 3)), np.array([0, 1, 1, 0, 1])
    return engine, params, x, y


def test_an_ideal_input_bank_is_the_digital_input_layer_bit_for_bit():
    import numpy as np

    a = input_engine("digital")
    b = input_engine("bank")
    loss_a, grads_a = a[0].loss_and_grad(*a[1:])
    loss_b, grads_b = b[0].loss_and_grad(*b[1:])
    assert loss_a == loss_b
    for key in grads_a:
        np.testing.assert_array_equal(grads_a[key], grads_b[key])


def test_the_input_bank_is_programmed_noisily_and_clips_the_gradient(monkeypatch):
    import numpy as np

    from relaxsim.model import Network

    seen = []
    original = Network.loss_and_grad

    def spy(self, used, *args, **kw):
        seen.append(used["W_in"].copy())
        return original(self, used, *args, **kw)

    monkeypatch.setattr(Network, "loss_and_grad", spy)
    weights = {"w_max": 0.4, "program_noise": 0.01}
    engine, params, x, y = input_engine("bank", **weights)
    _, grads = engine.loss_and_grad(params, x, y)
    W_in = params["W_in"]
    clipped = np.abs(W_in) > 0.4
    assert clipped.any() and (~clipped).any()
    assert np.all(grads["W_in"][clipped] == 0)  # stopped where the target was out of range
    error = seen[-1][~clipped] - W_in[~clipped]
    assert 0 < np.std(error) < 0.05  # programming noise ~ 0.01 x 0.4, around the target
    # the digital input layer on the same noisy banks: W_in untouched
    engine, params, x, y = input_engine("digital", **weights)
    engine.loss_and_grad(params, x, y)
    np.testing.assert_array_equal(seen[-1], params["W_in"])


def test_the_input_bank_survives_a_checkpoint():
    import numpy as np

    from relaxsim.training.engine import engines_for

    machine = tiny(**{"hardware.input_layer": "bank", "hardware.update_every": 4,
                      "hardware.weights": {"preset": "ideal", "w_max": 2.0,
                                           "program_noise": 0.01, "read_noise": 0.01}})
    params = machine.network_on_hardware.init_params(0)
    x, y = np.random.default_rng(1).normal(size=(5, 3)), np.array([0, 1, 1, 0, 1])
    first = engines_for(machine, seed=0)[0]
    first.loss_and_grad(params, x, y)
    arrays, scalars = first.state()
    assert "programmed_in/W" in arrays
    again = engines_for(machine, seed=0)[0]
    again.restore(arrays, scalars)
    assert first.loss_and_grad(params, x, y)[0] == again.loss_and_grad(params, x, y)[0]


def test_serial_programming_counts_the_input_bank():
    hw = tiny(**{"hardware.input_layer": "bank", "hardware.program_banks": "serial"}).hardware
    assert close(hw.program_time_s(2), 3 * T_PROG)


# -- stored results of earlier versions: their figures worked out again, not their training ------

def test_a_stored_point_of_an_earlier_version_gets_this_versions_figures(tmp_path):
    import warnings

    from relaxsim.scans.spec import load_spec
    from relaxsim.scans.store import ScanWarning, Store

    # an ideal-mode point: its results are this version's (a hardware one runs again)
    spec = load_spec({"base": {"network": {"hidden": 8}, "training": {"epochs": 1},
                               "hardware": {"mode": "ideal"}}, "seeds": [0]})
    (point,) = spec.expand()
    fresh = relaxsim.run(point.config)
    old = json.loads(json.dumps(fresh))  # as 0.3.0 wrote it: no accounting, another energy
    old["relaxsim_version"] = "0.3.0"
    for key in ("architectures", "training", "static_power_w", "devices", "tops_per_w"):
        del old["hardware"][key]
    old["hardware"]["energy_per_inference_j"] = 1.0
    store = Store(tmp_path / "store")
    store.attach(spec, [point])
    record = {"id": point.id, "status": "done", "fields": point.fields, "labels": point.labels,
              "result": old}
    store.path(point.id).write_text(json.dumps(record))
    with warnings.catch_warnings():
        warnings.simplefilter("error", ScanWarning)
        state = store.status([point])
    ((_, loaded),) = state["done"]  # not run again
    hw = loaded["result"]["hardware"]
    assert hw["figures_version"] == relaxsim.__version__
    assert loaded["result"]["test_accuracy"] == fresh["test_accuracy"]
    for key in ("energy_per_inference_j", "architectures", "training", "tops_per_w"):
        assert json.dumps(hw[key], sort_keys=True) == json.dumps(fresh["hardware"][key],
                                                                  sort_keys=True), key
    assert json.loads(store.path(point.id).read_text()) == record  # the file is not rewritten
