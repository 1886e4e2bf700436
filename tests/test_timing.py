"""The SimPy timing model against hand-worked answers, and ``relaxsim timing``.

Hand-worked traces use times in whole seconds (the model has no unit): every sum is then exact, so
events that coincide on paper coincide in the simulation, and their order is SimPy's event order.
"""

from __future__ import annotations

import csv
import io
import json
import math
import random
from pathlib import Path

import numpy as np
import pytest

import relaxsim
from relaxsim.activations import ACTIVATIONS
from relaxsim.cli.app import main
from relaxsim.devices import format_quantity, load_device
from relaxsim.hardware import Coupling, build_hardware
from relaxsim.schedules import resolve
from relaxsim.timing import STREAM_MAX, TimingSpec, closed_form_step, simulate, trace_csv
from relaxsim.training.evaluate import evaluate_run

CLOSED_FORM_RTOL = 1e-12  # sums of a few float64 times: a few ulp
THROUGHPUT_RTOL = 1e-9    # steady-state figures from differences of event times
PS = 1e-12
IDEAL = {f"hardware.{kind}": {"preset": "ideal"} for kind in ("switch", "weights", "active")}


def spec(**kw) -> TimingSpec:
    base = dict(schedule=(0, 1, 0), banks=2, t_mm=10.0, t_switch=4.0, t_state=3.0,
                t_program=50.0, t_readout=2.0, clock=None)
    return TimingSpec(**{**base, **kw})


def hardware(**overrides):
    return build_hardware(relaxsim.load_config(overrides=overrides).hardware)


# -- one inference alone: the closed form ------------------------------------------------------

PARAMETER_SETS = [  # T_MM, T_switch, T_state, T_program, T_readout (ps)
    (10.0, 4.0, 3.0, 50.0, 2.0),        # switch slower than the element
    (10.0, 3.0, 55.26, 2180.0, 10.0),   # element slower than the switch
    (7.3, 11.0035, 11.0035, 1e6, 0.0),  # both alike
    (0.5, 800.0, 0.0, 0.25, 3.3),       # a slow switch (MEMS-like), an instant element
    (25.0, 0.0, 0.0, 0.0, 0.0),         # every device instant
]


@pytest.mark.parametrize("t_mm,t_sw,t_st,t_prog,t_ro", PARAMETER_SETS)
@pytest.mark.parametrize("arch,banks,schedule", [
    ("relaxnet", 2, (0, 1, 0, 1, 0)),      # cyclic: every step changes bank
    ("relaxnet", 3, (0, 1, 2, 0, 1, 2)),
    ("reprogram", 1, (0, 1, 2, 3, 4)),     # the weights of another bank at every step
    ("unrolled", 4, (0, 1, 2, 3)),
])
def test_step_latency_matches_the_closed_form(t_mm, t_sw, t_st, t_prog, t_ro, arch, banks,
                                              schedule):
    s = spec(schedule=schedule, banks=banks, t_mm=t_mm * PS, t_switch=t_sw * PS,
             t_state=t_st * PS, t_program=t_prog * PS, t_readout=t_ro * PS, architecture=arch)
    inf = simulate(s).inferences[0]
    step = {"relaxnet": t_mm + max(t_sw, t_st), "reprogram": t_mm + max(t_prog, t_st),
            "unrolled": t_mm + t_st}[arch] * PS
    assert closed_form_step(s) == pytest.approx(step, rel=CLOSED_FORM_RTOL)
    per_step = np.diff(inf.arrive)
    np.testing.assert_allclose(per_step, step, rtol=CLOSED_FORM_RTOL)
    T = len(schedule)
    latency = (T * t_mm + (T - 1) * (step / PS - t_mm) + t_st + t_ro) * PS
    assert inf.latency == pytest.approx(latency, rel=CLOSED_FORM_RTOL)


@pytest.mark.parametrize("switch", ["eo_mzi", "si_mzi_carrier", "soa_gate", "mems"])
@pytest.mark.parametrize("active", ["electronic_tanh", "soa", "saturable_absorber"])
def test_preset_machines_match_the_closed_form(switch, active):
    hw = hardware(**{"hardware.switch.preset": switch, "hardware.active.preset": active})
    for arch, banks in (("relaxnet", 2), ("reprogram", 1), ("unrolled", 4)):
        s = hw.timing_spec((0, 1, 0, 1), banks, arch, pipelining="sequential")
        arrive = simulate(s).inferences[0].arrive
        np.testing.assert_allclose(np.diff(arrive), closed_form_step(s), rtol=CLOSED_FORM_RTOL)


def test_no_bank_change_no_switching():
    """Blocked schedule: the switch moves once; steps on the same bank wait for the element."""
    inf = simulate(spec(schedule=(0, 0, 1, 1), t_switch=40.0)).inferences[0]
    assert np.diff(inf.arrive).tolist() == [13.0, 50.0, 13.0]
    assert [math.isnan(c) for c in inf.command] == [True, True, False, True]


# -- exact traces ---------------------------------------------------------------------------
# Each row as (time, actor, TraceEvent.describe()): the words follow from the row's fields.

SEQUENTIAL_TRACE = [  # 2 banks, 3 steps: T_MM 10, T_switch 4, T_state 3, readout 2
    (0, "source", "admit 0 to element 0"),
    (0, "bank0", "step 0 of 0 in"),
    (10, "bank0", "step 0 of 0 out"),
    (10, "switch0", "to bank 1 for 0"),
    (13, "element0", "settled after step 0 of 0"),
    (14, "switch0", "settled on bank 1"),           # max(T_switch, T_state) = 4 after leaving
    (14, "bank1", "step 1 of 0 in"),
    (24, "bank1", "step 1 of 0 out"),
    (24, "switch0", "to bank 0 for 0"),
    (27, "element0", "settled after step 1 of 0"),
    (28, "switch0", "settled on bank 0"),
    (28, "bank0", "step 2 of 0 in"),
    (38, "bank0", "step 2 of 0 out"),
    (41, "element0", "settled after step 2 of 0"),  # the readout waits for the element
    (43, "readout", "0 read"),
]

CLOCKED_TRACE = [  # the same machine, a slower switch (8) and a fixed clock of 15
    (0, "source", "admit 0 to element 0"),
    (0, "bank0", "step 0 of 0 in"),
    (10, "bank0", "step 0 of 0 out"),
    (10, "switch0", "to bank 1 for 0"),
    (13, "element0", "settled after step 0 of 0"),
    (15, "bank1", "step 1 of 0 in"),                # the tick: the switch is 3 short
    (18, "switch0", "settled on bank 1"),
    (25, "bank1", "step 1 of 0 out"),
    (25, "switch0", "to bank 0 for 0"),
    (28, "element0", "settled after step 1 of 0"),
    (30, "bank0", "step 2 of 0 in"),
    (33, "switch0", "settled on bank 0"),
    (40, "bank0", "step 2 of 0 out"),
    (43, "element0", "settled after step 2 of 0"),  # not waited for, but the element is held
    (47, "readout", "0 read"),                      # tick at 45, readout 2
]

TAKEN_OVER_TRACE = [  # a switch slower than the clock (22 > 15 - 10): a new command takes over
    (0, "source", "admit 0 to element 0"),
    (0, "bank0", "step 0 of 0 in"),
    (10, "bank0", "step 0 of 0 out"),
    (10, "switch0", "to bank 1 for 0"),
    (13, "element0", "settled after step 0 of 0"),
    (15, "bank1", "step 1 of 0 in"),                # the tick: the switch is 17 short
    (25, "bank1", "step 1 of 0 out"),
    (25, "switch0", "taken over on the way to bank 1"),
    (25, "switch0", "to bank 0 for 0"),             # at once, not after the turn before: gap 5
    (28, "element0", "settled after step 1 of 0"),
    (30, "bank0", "step 2 of 0 in"),
    (40, "bank0", "step 2 of 0 out"),
    (43, "element0", "settled after step 2 of 0"),
    (47, "switch0", "settled on bank 0"),
    (47, "readout", "0 read"),                      # tick at 45, readout 2
]

PIPELINED_TRACE = [  # 2 in flight, schedule (0, 1): the second waits for bank 0
    (0, "source", "admit 0 to element 0"),
    (0, "source", "admit 1 to element 1"),
    (0, "bank0", "step 0 of 0 in"),
    (10, "bank0", "step 0 of 0 out"),
    (10, "switch0", "to bank 1 for 0"),
    (10, "bank0", "step 0 of 1 in"),
    (13, "element0", "settled after step 0 of 0"),
    (14, "switch0", "settled on bank 1"),
    (14, "bank1", "step 1 of 0 in"),
    (20, "bank0", "step 0 of 1 out"),
    (20, "switch1", "to bank 1 for 1"),
    (23, "element1", "settled after step 0 of 1"),
    (24, "bank1", "step 1 of 0 out"),
    (24, "switch1", "settled on bank 1"),
    (24, "bank1", "step 1 of 1 in"),
    (27, "element0", "settled after step 1 of 0"),
    (29, "readout", "0 read"),
    (34, "bank1", "step 1 of 1 out"),
    (37, "element1", "settled after step 1 of 1"),
    (39, "readout", "1 read"),
]

REPROGRAM_TRACE = [  # one bank reprogrammed (T_program 50), 2 in flight share each programming
    (0, "source", "admit 0 to element 0"),
    (0, "source", "admit 1 to element 1"),
    (0, "bank0", "step 0 of 0 in"),
    (10, "bank0", "step 0 of 0 out"),
    (10, "bank0", "step 0 of 1 in"),                # before the programmer: it asked first
    (13, "element0", "settled after step 0 of 0"),
    (20, "bank0", "step 0 of 1 out"),
    (23, "element1", "settled after step 0 of 1"),
    (70, "programmer", "bank 0 holds step 1 weights"),
    (70, "bank0", "step 1 of 0 in"),
    (80, "bank0", "step 1 of 0 out"),
    (80, "bank0", "step 1 of 1 in"),                # holds step 1 already: no programming
    (83, "element0", "settled after step 1 of 0"),
    (90, "bank0", "step 1 of 1 out"),
    (93, "element1", "settled after step 1 of 1"),
    (140, "programmer", "bank 0 holds step 2 weights"),
    (140, "bank0", "step 2 of 0 in"),
    (150, "bank0", "step 2 of 0 out"),
    (150, "bank0", "step 2 of 1 in"),
    (153, "element0", "settled after step 2 of 0"),
    (155, "readout", "0 read"),
    (160, "bank0", "step 2 of 1 out"),
    (163, "element1", "settled after step 2 of 1"),
    (165, "readout", "1 read"),
]


@pytest.mark.parametrize("kw,n,expected", [
    ({}, None, SEQUENTIAL_TRACE),
    ({"clock": 15.0, "t_switch": 8.0}, None, CLOCKED_TRACE),
    ({"clock": 15.0, "t_switch": 22.0}, None, TAKEN_OVER_TRACE),
    ({"schedule": (0, 1), "pipelining": "pipelined", "in_flight": 2}, 2, PIPELINED_TRACE),
    ({"schedule": (0, 1, 2), "banks": 1, "architecture": "reprogram",
      "pipelining": "pipelined", "in_flight": 2}, 2, REPROGRAM_TRACE),
], ids=["sequential", "clocked", "taken_over", "pipelined", "reprogram"])
def test_exact_trace(kw, n, expected):
    sim = simulate(spec(**kw), n=n, record=True)
    assert [(row.time_s, row.actor, row.describe()) for row in sim.trace] == [
        (float(t), actor, action) for t, actor, action in expected]
    # recording the trace does not change the simulation: the same SimPy events are processed
    plain = simulate(spec(**kw), n=n)
    assert plain.trace == [] and plain.events == sim.events > len(expected)


def test_gaps_and_dwells_of_the_hand_worked_cases():
    seq = simulate(spec())
    assert seq.gaps().tolist() == [math.inf, 4.0, 4.0]
    assert seq.dwells().tolist() == [4.0, 4.0, 3.0]
    clocked = simulate(spec(clock=15.0, t_switch=8.0))
    assert clocked.gaps().tolist() == [math.inf, 5.0, 5.0]   # clock - T_MM
    assert clocked.dwells().tolist() == [5.0, 5.0, 5.0]
    taken_over = simulate(spec(clock=15.0, t_switch=22.0))
    assert taken_over.inferences[0].command[1:] == [10.0, 25.0]  # when the switch turned
    assert taken_over.gaps().tolist() == [math.inf, 5.0, 5.0]
    assert taken_over.busy["switch0"] == 15.0 + 22.0  # the first turn, cut short; the second
    assert seq.busy == {"bank0": 20.0, "bank1": 10.0, "switch0": 8.0, "readout": 2.0}
    assert seq.utilisation() == {"bank0": 20 / 43, "bank1": 10 / 43, "switch0": 8 / 43,
                                 "readout": 2 / 43}


def test_utilisation_counts_the_busy_time_inside_the_window():
    """A short stream: one step of 6, readout 10, 3 in flight. The window runs from the first
    completion (16) to the second (26); bank 0 serves inference 2 over 12..18 and inference 3
    over 18..24, so it is busy 8 of the 10 (credited whole when an interval ended, it once read
    24 - 12 = 12 of the 10)."""
    sim = simulate(spec(schedule=(0,), banks=1, t_mm=6.0, t_readout=10.0, t_state=0.0,
                        pipelining="pipelined", in_flight=3), n=4)
    assert [t for t, _ in sim.completions] == [16.0, 26.0, 36.0, 46.0]
    assert sim.steady_window() == (0, 1) and not sim.periodic
    util = sim.utilisation()
    assert util["bank0"] == pytest.approx(0.8, rel=CLOSED_FORM_RTOL)
    assert util["readout"] == pytest.approx(1.0, rel=CLOSED_FORM_RTOL)


def test_busy_intervals_of_the_timeline():
    rows = simulate(spec(), record=True).busy_intervals()
    assert list(rows) == ["bank0", "bank1", "switch0", "element0", "readout"]
    assert rows["bank0"] == [(0.0, 10.0, 0, "0:0"), (28.0, 38.0, 0, "0:2")]
    assert rows["switch0"] == [(10.0, 14.0, 0, "0>b1"), (24.0, 28.0, 0, "0>b0")]
    assert [iv[:2] for iv in rows["element0"]] == [(10.0, 13.0), (24.0, 27.0), (38.0, 41.0)]
    assert rows["readout"] == [(41.0, 43.0, 0, "0")]


# -- pipelined streams: Little's law and the bottleneck ------------------------------------------

def steady_state(sim):
    """Time-average number in flight, mean latency and throughput over the steady window,
    computed from the event times of the inferences."""
    a, b = sim.steady_window()
    t0, t1 = sim.completions[a][0], sim.completions[b][0]
    in_flight = sum(max(0.0, min(inf.freed, t1) - max(inf.admitted, t0))
                    for inf in sim.inferences) / (t1 - t0)
    ended = [inf for inf in sim.inferences if t0 < inf.done <= t1]
    assert len(ended) == b - a
    residence = sum(inf.freed - inf.admitted for inf in ended) / len(ended)
    return in_flight, residence, len(ended) / (t1 - t0)


# Hand-worked steady states (times in ps). The bottleneck's service rate bounds the throughput;
# with enough inferences in flight the bottleneck is never idle and the bound is reached.
PIPELINE_CASES = [
    # one bank (an RNN), L_T = 4, 6 in flight: the bank serves 4 T_MM per inference
    (dict(schedule=(0, 0, 0, 0), banks=1, in_flight=6), 1 / (4 * 10.0), {"bank0": 1.0}),
    # schedule (0, 1, 0): bank 0 serves two steps per inference
    (dict(schedule=(0, 1, 0), in_flight=4), 1 / (2 * 10.0), {"bank0": 1.0, "bank1": 0.5}),
    # a slow readout (100) is the bottleneck of a cyclic ReLaX-Net
    (dict(schedule=(0, 1, 0, 1), t_readout=100.0, in_flight=8), 1 / 100.0, {"readout": 1.0}),
    # one in flight: one inference at a time, 1 / latency (3 T_MM + 2 x 4 + 3 + 2 = 43)
    (dict(in_flight=1), 1 / 43.0, {"bank0": 20 / 43}),
    # unrolled: a layer per step, held from its bank's entry until read and settled (13 =
    # T_MM + T_state); the last one until the readout has read it (13 + 2): one inference every
    # 15 (in_flight plays no part: the layers are the places in flight)
    (dict(schedule=(0, 1, 2), banks=3, architecture="unrolled", in_flight=2), 1 / 15.0,
     {"bank0": 10 / 15, "bank2": 10 / 15, "readout": 2 / 15}),
    # one bank reprogrammed (50) per step (the weights of banks 0, 1, 2 in turn), 4 in flight:
    # every programming serves the 4 inferences at the same step, so 3 programmings and 12
    # propagations per 4 inferences
    (dict(schedule=(0, 1, 2), banks=1, architecture="reprogram", in_flight=4),
     4 / (3 * 50.0 + 12 * 10.0), {"bank0": 120 / 270, "programmer": 150 / 270}),
]


@pytest.mark.parametrize("kw,throughput,utilisation", PIPELINE_CASES)
def test_pipelined_throughput_littles_law_and_bottleneck(kw, throughput, utilisation):
    sim = simulate(spec(pipelining="pipelined", **kw), record=False)
    assert sim.periodic
    assert sim.throughput() == pytest.approx(throughput, rel=THROUGHPUT_RTOL)
    in_flight, residence, rate = steady_state(sim)
    assert rate == pytest.approx(throughput, rel=THROUGHPUT_RTOL)
    assert in_flight == pytest.approx(rate * residence, rel=1e-9)  # Little's law
    assert sim.littles_law() == pytest.approx((in_flight, rate, residence), rel=1e-9)
    if kw.get("architecture") != "unrolled":  # the element sets are the bottleneck's
        assert in_flight == pytest.approx(kw["in_flight"], rel=THROUGHPUT_RTOL)  # never idle
    util = sim.utilisation()
    for name, share in utilisation.items():
        assert util[name] == pytest.approx(share, rel=THROUGHPUT_RTOL), name
    assert all(0 <= u <= 1 + THROUGHPUT_RTOL for u in util.values())


def test_stream_drain_does_not_count_as_steady_state():
    """After the last admission the pipeline empties and completions come faster; they must not
    set the throughput (it once read 1/T_MM here instead of 1/(2 T_MM))."""
    for n in (20, 40, None):
        sim = simulate(spec(schedule=(0, 1, 0), pipelining="pipelined", in_flight=4), n=n)
        assert sim.periodic
        assert sim.throughput() == pytest.approx(1 / 20.0, rel=THROUGHPUT_RTOL)
    short = simulate(spec(schedule=(0, 1, 0), pipelining="pipelined", in_flight=4), n=8)
    assert not short.periodic  # too short to tell: averaged over its second half


def test_pipelined_stream_reaches_a_steady_state_for_the_presets():
    for switch in ("eo_mzi", "mems"):
        hw = hardware(**{"hardware.switch.preset": switch, "hardware.pipelining": "pipelined",
                         "hardware.in_flight": 3})
        for arch, banks in (("relaxnet", 2), ("reprogram", 1), ("unrolled", 4)):
            sim = hw.simulate((0, 1, 0, 1), banks, arch)
            assert sim.periodic and len(sim.inferences) <= STREAM_MAX
            in_flight, latency, rate = steady_state(sim)
            assert in_flight == pytest.approx(rate * latency, rel=THROUGHPUT_RTOL)


def test_reprogrammed_bank_is_never_used_with_the_wrong_weights():
    """Random streams: every step finds the single bank holding its weights (those of its bank
    in the schedule), and nothing enters the bank while it is being programmed."""
    rng = random.Random(7)
    for _ in range(40):
        schedule = tuple(rng.randint(0, 2) for _ in range(rng.randint(1, 5)))
        s = spec(schedule=schedule, banks=1, architecture="reprogram",
                 t_program=float(rng.choice([0, 5, 50])), t_state=float(rng.choice([0, 3, 30])),
                 pipelining=rng.choice(["sequential", "pipelined"]), in_flight=rng.randint(1, 4),
                 clock=rng.choice([None, 12.0, 25.0]))
        loaded, programming_until = schedule[0], -1.0
        for row in simulate(s, n=rng.randint(1, 12), record=True).trace:
            if row.actor == "programmer":
                assert row.action == "programmed" and row.bank == 0
                assert schedule[row.step] != loaded  # only weights it did not hold
                loaded = schedule[row.step]
                programming_until = row.time_s
            elif row.actor == "bank0" and row.action == "in":
                assert schedule[row.step] == loaded, (s, row)
                assert row.time_s >= programming_until


def test_sequential_stream_reprograms_the_first_step_for_the_next_inference():
    """The bank holds the last step's weights: the next inference's first step rewrites it
    when they differ, and does not when they are the same."""
    s = spec(schedule=(0, 1, 2), banks=1, architecture="reprogram")
    sim = simulate(s, n=6)
    one = simulate(s).latency()
    assert sim.throughput() == pytest.approx(1 / (one + 50.0), rel=THROUGHPUT_RTOL)
    same = spec(schedule=(0, 1, 0), banks=1, architecture="reprogram")
    assert simulate(same, n=6).throughput() == pytest.approx(1 / simulate(same).latency(),
                                                             rel=THROUGHPUT_RTOL)


# -- the clock and the coupling --------------------------------------------------------------

@pytest.mark.parametrize("clock_ps", [12, 15, 30, 100])
def test_fixed_clock_sets_gaps_and_dwells_to_clock_minus_propagation(clock_ps):
    hw = hardware(**{"hardware.clock": f"{clock_ps} ps", "hardware.switch.rise_time": "20 ps",
                     "hardware.switch.jitter": "0 s"})
    schedule = np.array([0, 1, 1, 0, 1])
    sim = hw.simulate(schedule, 2, pipelining="sequential")
    window = (clock_ps - 10) * PS
    gaps = sim.gaps()
    assert np.isinf(gaps[[0, 2]]).all()
    np.testing.assert_allclose(gaps[[1, 3, 4]], window, rtol=CLOSED_FORM_RTOL)
    np.testing.assert_allclose(sim.dwells(), window, rtol=CLOSED_FORM_RTOL)
    cp = hw.coupling(schedule, 0.0, "tanh", sim=sim)
    leak = hw.switch.leak(gaps[1])
    # the router's previous port of a 1 x 2 star: the switch's own leak, to rounding
    np.testing.assert_allclose(cp.eps[[1, 3, 4]], hw.switch.leak(gaps[[1, 3, 4]]), rtol=1e-15)
    assert cp.eps[0] == cp.eps[2] == 0.0
    settle = hw.switch.settle_time_s(hw.settle_tolerance)
    if window < settle:  # a clock shorter than the settling leaves the old bank partly in
        assert leak > hw.settle_tolerance
    np.testing.assert_array_equal(cp.a, hw.active.carry_over(sim.dwells()))


def test_auto_clock_waits_until_the_switch_has_settled():
    hw = hardware(**{"hardware.switch.rise_time": "20 ps"})
    cp = hw.coupling(np.array([0, 1, 0, 1]), 0.0, "tanh")
    floor = hw.switch.leak_floor
    assert cp.eps[0] == 0.0
    assert np.all(cp.eps[1:] <= floor + (1 - floor) * hw.settle_tolerance * (1 + 1e-9))


@pytest.mark.parametrize("schedule,banks,steps", [
    ("cyclic", 2, 4), ("blocked", 3, 6), ([0, 0, 1, 0], 2, 4), ("cyclic", 1, 5),
    ("cyclic", 5, 5)])
@pytest.mark.parametrize("alpha,activation", [(0.0, "tanh"), (0.3, "relu"), (0.5, "sigmoid")])
def test_ideal_devices_with_auto_clock_give_the_ideal_coupling(schedule, banks, steps, alpha,
                                                               activation):
    hw = hardware(**IDEAL)
    sched = resolve(schedule, banks, steps)
    cp = hw.coupling(sched, alpha, activation)
    ideal = Coupling.ideal(steps, alpha, ACTIVATIONS.get(activation))
    for key in ("a", "c", "eps", "tr"):
        np.testing.assert_array_equal(getattr(cp, key), getattr(ideal, key), err_msg=key)
    assert (cp.code, cp.act_params) == (ideal.code, ideal.act_params)


# -- jitter ----------------------------------------------------------------------------------

def test_jittered_mix_shape_and_mean():
    """Each switching command late or early by N(0, sigma): the transition's remainder is
    r(gap - sigma z) per sample; with a perfect first-order switch and a mirrored collecting
    switch (coherent: m = P), the previous bank's share is r and the new bank's 1 - r; its mean
    is exp(-g / tau + sigma^2 / (2 tau^2)) (a log-normal mean; the gap is 10 sigma, so a negative
    gap never happens)."""
    hw = hardware(**{**IDEAL, "hardware.switch": {"preset": "ideal", "rise_time": "20 ps",
                                                  "jitter": "2 ps"},
                     "hardware.clock": "30 ps", "hardware.jitter_draws": "sample"})
    schedule = np.array([0, 1, 0, 0, 1])
    prev = np.array([0, 0, 1, 0, 0])
    cp = hw.coupling(schedule, 0.0, "tanh")
    B = 100_000
    mix = hw.jittered_mix(cp, B, np.random.default_rng(5))
    assert mix.shape == (5, B, 2)
    np.testing.assert_array_equal(mix[0], np.tile([1.0, 0.0], (B, 1)))  # no bank change
    np.testing.assert_array_equal(mix[3], np.tile([1.0, 0.0], (B, 1)))
    z = np.random.default_rng(5).standard_normal((5, B))
    switching = [1, 2, 4]
    gap, sigma, tau = 20 * PS, 2 * PS, hw.switch.tau_s
    np.testing.assert_allclose(cp.gaps[switching], gap, rtol=CLOSED_FORM_RTOL)
    r = hw.switch.remainder(cp.gaps[switching, None] - sigma * z[switching])
    old = mix[switching, :, prev[switching]]
    new = mix[switching, :, schedule[switching]]
    np.testing.assert_array_equal(old, r)
    np.testing.assert_array_equal(new, 1.0 - r)
    expected = math.exp(-gap / tau + sigma ** 2 / (2 * tau ** 2))
    # standard error of the mean: sqrt(exp(sigma^2/tau^2) - 1) / sqrt(B), about 7e-4 relative
    np.testing.assert_allclose(old.mean(axis=1), expected, rtol=5e-3)
    np.testing.assert_allclose(np.median(old, axis=1), cp.eps[switching], rtol=2e-2)


def test_jitter_drawn_per_batch_is_one_draw_per_step():
    """jitter_draws = "batch" (the default): one draw per step, the same numbers a per-sample
    draw of width 1 gives; the mixing then is per step, shape (T, L_W)."""
    cfg = {**IDEAL, "hardware.switch": {"preset": "ideal", "rise_time": "20 ps", "jitter": "2 ps"},
           "hardware.clock": "30 ps"}
    per_batch = hardware(**cfg)
    assert per_batch.jitter_draws == "batch"
    cp = per_batch.coupling(np.array([0, 1, 0, 0, 1]), 0.0, "tanh")
    mix = per_batch.jittered_mix(cp, 64, np.random.default_rng(5))
    z = np.random.default_rng(5).standard_normal((5, 1))[:, 0]
    assert mix.shape == (5, 2)
    np.testing.assert_array_equal(mix[[0, 3]], [[1.0, 0.0], [1.0, 0.0]])
    np.testing.assert_array_equal(mix[[1, 2, 4], [0, 1, 0]], per_batch.switch.remainder(
        cp.gaps[[1, 2, 4]] - 2 * PS * z[[1, 2, 4]]))


def test_no_jitter_no_per_sample_mix():
    rng = np.random.default_rng(0)
    hw = hardware(**{"hardware.switch.jitter": "0 s", "hardware.clock": "30 ps"})
    cp = hw.coupling(np.array([0, 1, 0, 1]), 0.0, "tanh")
    state = rng.bit_generator.state
    assert hw.jittered_mix(cp, 8, rng) is None
    assert rng.bit_generator.state == state  # no random numbers drawn
    jittery = hardware(**{"hardware.switch.jitter": "1 ps", "hardware.clock": "30 ps"})
    rnn = jittery.coupling(np.zeros(4, dtype=int), 0.0, "tanh")  # one bank: never switches
    assert jittery.jittered_mix(rnn, 8, rng) is None


# -- accuracy against the clock --------------------------------------------------------------

@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("timing") / "ideal"
    cfg = relaxsim.load_config(overrides={**IDEAL, "network.hidden": 32, "training.epochs": 10,
                                          "hardware.mode": "ideal"})
    relaxsim.run(cfg, out=out)
    return out


@pytest.mark.filterwarnings("ignore::relaxsim.errors.HardwareWarning")  # unsettled on purpose
def test_accuracy_falls_as_the_clock_shrinks_below_the_switch_settling(trained_run):
    """A 60 ps switch settles (to 0.1 %) in 189 ps; T_MM is 10 ps. Clocks from above the
    settling down to 11 ps leave ever more of the previous bank in each step (eps from 6e-7 at
    400 ps to 0.006, 0.16, 0.48, 0.83 and 0.96 at 11 ps)."""
    slow = {"hardware.switch": {"preset": "ideal", "rise_time": "60 ps"},
            "hardware.propagation_time": "10 ps", "hardware.mode": "deploy"}
    hw = hardware(**slow)
    assert hw.switch.settle_time_s(hw.settle_tolerance) == pytest.approx(188.6e-12, rel=1e-3)
    clocks = ["400 ps", "150 ps", "60 ps", "30 ps", "15 ps", "11 ps"]
    accs = [evaluate_run(trained_run, {**slow, "hardware.clock": clock},
                         repeats=1)["accuracy_mean"] for clock in clocks]
    ideal = evaluate_run(trained_run, {**slow, "hardware.clock": "auto"},
                         repeats=1)["accuracy_ideal"]
    assert accs[0] == pytest.approx(ideal, abs=0.005)  # settled: the ideal network's accuracy
    assert all(b <= a for a, b in zip(accs, accs[1:])), accs
    assert accs[-1] <= accs[0] - 0.05, accs


# -- relaxsim timing -------------------------------------------------------------------------

def test_timing_command_prints_the_figures(capsys):
    assert main(["timing"]) == 0
    out = capsys.readouterr().out
    machine = relaxsim.assemble(relaxsim.load_config())
    fig = machine.hardware.figures(resolve("cyclic", 2, 4), 2, 64, shape=machine.shape)
    assert out.startswith("ReLaX-Net timing: N = 64, L_W = 2, L_T = 4 (cyclic), auto clock, "
                          "sequential\n")
    rows = {name: next(line for line in out.splitlines() if line.startswith(f"  {name}  "))
            for name in ("ReLaX-Net", "reprogrammed bank", "unrolled DNN")}
    assert format_quantity(fig["latency_s"], "time") in rows["ReLaX-Net"]
    rep = fig["compare"]["reprogram"]
    assert format_quantity(rep["latency_s"], "time") in rows["reprogrammed bank"]
    assert format_quantity(rep["throughput_per_s"], "frequency").replace("Hz", "/s") in \
        rows["reprogrammed bank"]
    assert format_quantity(fig["energy_per_inference_j"], "energy") in out
    for name in fig["utilisation"]:
        assert f"\n  {name} " in out
    for kind in ("switch", "active", "weights"):
        assert format_quantity(fig["energy_breakdown_j"][kind], "energy") in out


def test_timing_trace_csv_plot_and_json(tmp_path, capsys):
    trace, plot, js = tmp_path / "trace.csv", tmp_path / "timeline.png", tmp_path / "f.json"
    assert main(["timing", "--set", "hardware.pipelining=pipelined", "--set",
                 "hardware.in_flight=3", "--trace", str(trace), "--plot", str(plot),
                 "--json", str(js)]) == 0
    assert "latency under load" in capsys.readouterr().out
    hw = build_hardware(relaxsim.load_config(overrides={
        "hardware.pipelining": "pipelined", "hardware.in_flight": 3}).hardware)
    expected = hw.simulate(resolve("cyclic", 2, 4), 2, n=7, record=True).trace
    rows = list(csv.reader(io.StringIO(trace.read_text())))
    assert rows[0] == ["time_s", "actor", "action", "inference", "step", "bank", "slot"]
    assert [(float(t), actor, action, *map(int, ints)) for t, actor, action, *ints
            in rows[1:]] == expected
    assert trace.read_text() == trace_csv(expected)
    admits = [row.inference for row in expected if row.action == "admit"]
    assert admits == list(range(7))  # a short stream: 2 x 3 + 1 inferences
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    figures = json.loads(js.read_text())
    # every element always busy in the steady state: Little's law gives the latency under load
    assert figures["latency_under_load_s"] == pytest.approx(3 / figures["throughput_per_s"],
                                                            rel=THROUGHPUT_RTOL)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.json", "timeline.png", "trace.csv"]


def test_timing_plot_of_one_inference_as_svg(tmp_path, capsys):
    plot = tmp_path / "t.svg"
    assert main(["timing", "--set", "hardware.clock=30 ps", "--plot", str(plot),
                 "--inferences", "2"]) == 0
    assert b"<svg" in plot.read_bytes()[:400]
    out = capsys.readouterr().out
    assert "clock 30 ps" in out
    hw = hardware(**{"hardware.clock": "30 ps"})
    eps = hw.switch.leak(20 * PS)
    # 20 ps leaves the switch short of its 0.1 % settling but within the 10 % warning threshold
    assert f"switch leak eps up to {eps:.3g}" in out
    assert "(the clock leaves 20 ps to settle, less than the" in out and "too short" not in out
    short = main(["timing", "--set", "hardware.clock=12 ps"])
    assert short == 0 and "to settle: too short, see the warning)" in capsys.readouterr().out


def write_preset(path: Path, kind: str, text: str) -> str:
    path.write_text(f'kind = "{kind}"\n{text}\n')
    return str(path)


BAD_TIMING = [
    ("hardware.clock=0", "hardware.clock: must be a finite time > 0 or 'auto' (got 0)"),
    ("hardware.clock=-5 ps", "hardware.clock: must be a finite time > 0 or 'auto' "
                             "(got '-5 ps')"),
    ("hardware.pipelining=pipelind", "hardware.pipelining: must be one of sequential, pipelined "
                                     "(got 'pipelind'); did you mean 'pipelined'?"),
    ("hardware.in_flight=0", "hardware.in_flight: must be >= 1 (got 0)"),
    ("hardware.switch.jitter=50 ps", "hardware.switch.jitter: must be smaller than "
                                     "hardware.clock (got 5e-11 s >= 30 ps)"),
    ("hardware.weights.program_time=-1 us",
     "hardware.weights.program_time: must be >= 0 s (got -1 us)"),
    ("hardware.active.response_time=nan",
     'hardware.active.response_time: must be a time such as "200 ps" (got nan)'),
    ("hardware.switch.preset={neg}", "preset file '{neg}': rise_time: must be >= 0 s "
                                     "(got -5 ps)"),
    ("hardware.switch.preset={nan}", "preset file '{nan}': rise_time: must be a time such as "
                                     '"200 ps" (got nan)'),
    ("hardware.active.preset={slow}", "preset file '{slow}': response_time: must be a time "
                                      'such as "200 ps" (got "nan ns")'),
]


@pytest.fixture
def bad_presets(tmp_path):
    return {"neg": write_preset(tmp_path / "neg.toml", "switch", 'rise_time = "-5 ps"'),
            "nan": write_preset(tmp_path / "nan.toml", "switch", "rise_time = nan"),
            "slow": write_preset(tmp_path / "slow.toml", "active", 'response_time = "nan ns"')}


@pytest.mark.parametrize("command", ["timing", "run"])
@pytest.mark.parametrize("setting,message", BAD_TIMING)
def test_bad_timing_input_exits_2_with_one_line(command, setting, message, bad_presets,
                                                tmp_path, capsys):
    setting, message = setting.format(**bad_presets), message.format(**bad_presets)
    extra = (["--trace", str(tmp_path / "t.csv"), "--plot", str(tmp_path / "t.png")]
             if command == "timing" else ["--quiet", "--out", str(tmp_path / "out")])
    status = main([command, *extra, "--set", "hardware.clock=30 ps", "--set", setting])
    captured = capsys.readouterr()
    assert status == 2 and captured.out == ""
    assert captured.err.strip() == f"relaxsim: error: {message}"
    assert len(captured.err.strip().splitlines()) == 1
    assert not any(p.suffix in (".csv", ".png") or p.name == "out" for p in tmp_path.iterdir())


def test_user_preset_without_timing_fields_is_an_ideal_device(tmp_path, capsys):
    """Fields left out of a preset keep the record's default (ideal: instant)."""
    path = write_preset(tmp_path / "bare.toml", "switch", 'description = "no timing given"')
    assert load_device("switch", {"preset": path}).rise_time_s == 0.0
    assert main(["timing", "--set", f"hardware.switch.preset={path}"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[1].split() == ["switch", "bare", "settles", "in", "0", "s", "(to",
                                           "0.1", "%", "of", "the", "old", "path)"]


@pytest.mark.parametrize("argv,message", [
    (["--inferences", "0"], "--inferences: must be >= 1 (got 0)"),
    (["--plot", "{tmp}/t.jpgx"], "--plot '{tmp}/t.jpgx': unknown image format .jpgx; use .png, "
                                 ".svg, .pdf"),
    (["--trace", "{tmp}/nodir/t.csv"], "--trace '{tmp}/nodir/t.csv': directory "
                                       "'{tmp}/nodir' does not exist"),
    (["--trace", "{tmp}"], "--trace '{tmp}': is a directory; give a file name"),
])
def test_bad_timing_options(argv, message, tmp_path, capsys):
    argv = [a.format(tmp=tmp_path) for a in argv]
    assert main(["timing", *argv]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "relaxsim: error: " + message.format(tmp=tmp_path)
    assert list(tmp_path.iterdir()) == []



@pytest.mark.parametrize("kw,message", [
    ({"clock": 0.0}, "TimingSpec.clock: must be a finite period > 0 in seconds, or None (auto) "
                     "(got 0.0)"),
    ({"t_mm": math.nan}, "TimingSpec.t_mm: must be a finite time >= 0 in seconds (got nan)"),
    ({"t_switch": -1.0}, "TimingSpec.t_switch: must be a finite time >= 0 in seconds (got -1.0)"),
    ({"pipelining": "burst"}, "TimingSpec.pipelining: must be one of sequential, pipelined "
                              "(got 'burst')"),
    ({"in_flight": 0}, "TimingSpec.in_flight: must be >= 1 (got 0)"),
    ({"schedule": (0, 2)}, "TimingSpec.schedule: must use banks 0..1 (got (0, 2))"),
])
def test_timing_spec_refuses_what_the_model_cannot_run(kw, message):
    with pytest.raises(relaxsim.ConfigError) as err:
        spec(**kw)
    assert str(err.value) == message


@pytest.mark.parametrize("schedule, programs", [
    ([0, 0, 1, 1], 1), ([0, 1, 0, 1], 3), ([0, 1, 1, 0], 2), ([1, 1, 1, 1], 0)])
def test_reprogrammed_bank_programs_only_when_the_weights_change(schedule, programs):
    """One inference alone, auto clock: a step whose weights the bank already holds waits only
    for the element (T_MM + T_state); one that needs other weights for the programming too
    (T_MM + max(T_program, T_state)); then the last settling and the readout."""
    cfg = relaxsim.load_config()
    hw = build_hardware(cfg.hardware, 2)
    sim = hw.simulate(schedule, 2, "reprogram", pipelining="sequential", n=1, record=True)
    T_mm, T_p, T_r = hw.propagation_time_s, hw.bank_program_time_s, hw.readout_time_s
    T_st = hw.active.settle_time_s(hw.settle_tolerance)
    waits = [max(T_p, T_st) if a != b else T_st for a, b in zip(schedule, schedule[1:])]
    closed = len(schedule) * T_mm + sum(waits) + T_st + T_r
    assert sim.latency() == pytest.approx(closed, rel=CLOSED_FORM_RTOL)
    written = [e for e in sim.trace if e.action == "programmed"]
    assert len(written) == programs
