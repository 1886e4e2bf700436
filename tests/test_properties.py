"""Property tests (Hypothesis): config round trips, the kernels against their numpy twins, and the
invariants of the SimPy timing model, over generated inputs.

The examples are drawn deterministically (the ``relaxsim`` profile of ``tests/conftest.py``:
``derandomize=True``, no deadline), so a failure here fails on every run, the same way.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
import tomli_w
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from relaxsim.activations import ACTIVATIONS
from relaxsim.config import SCHEMA, load_config, validate
from relaxsim.devices import presets
from relaxsim.hardware import build_hardware
from relaxsim.schedules import resolve
from relaxsim.timing import TimingSpec, busy_intervals, simulate
from relaxsim.validation.kernels import device_params, max_rel, random_problem, run_both

# Kernels and twins do the same float64 arithmetic in a different order; as tests/test_kernels.py.
TWIN_TOL = 1e-12
# Event times are sums of a few float64 times: overlaps and bounds are checked to this share of
# the run's length (a few ulp; whole-number times, drawn half of the time, are exact).
TIME_RTOL = 1e-12

# Examples per test: the whole file runs in about 10 s on one core (a config example, which
# reads preset files, takes about 30 ms; a kernel or timing example a few ms).
CONFIG_EXAMPLES = 100
KERNEL_EXAMPLES = 200
TIMING_EXAMPLES = 200
SETTINGS = dict(suppress_health_check=[HealthCheck.too_slow])


# -- configs: load, save, load ---------------------------------------------------------------

PRESET_NAMES = {kind: presets(kind).names() for kind in ("switch", "weight", "active")}
UNIT_FACTORS = {"fs": 1e-15, "ps": 1e-12, "ns": 1e-9, "us": 1e-6}

finite = dict(allow_nan=False, allow_infinity=False)


def quantity(lo_s: float, hi_s: float):
    """A time in ``[lo_s, hi_s]`` seconds: a plain number of seconds or ``"<x> <unit>"``."""
    def as_text(draw_pair):
        value, unit = draw_pair
        return f"{value / UNIT_FACTORS[unit]!r} {unit}"
    seconds = st.floats(lo_s, hi_s, **finite)
    return st.one_of(seconds, st.tuples(seconds, st.sampled_from(list(UNIT_FACTORS)))
                     .map(as_text))


@st.composite
def schedules(draw, banks: int, steps: int):
    kind = draw(st.sampled_from(["cyclic", "blocked", "explicit"]))
    if kind != "explicit":
        return kind
    order = draw(st.permutations(range(banks)))  # every bank once, then any bank
    rest = draw(st.lists(st.integers(0, banks - 1), min_size=steps - banks,
                         max_size=steps - banks))
    return list(order) + rest


@st.composite
def device_tables(draw, kind: str):
    preset = draw(st.sampled_from(PRESET_NAMES[kind]))
    table = {"preset": preset}
    if kind == "switch" and draw(st.booleans()):  # a field overridden beside the preset
        table["rise_time"] = draw(quantity(0.0, 1e-9))
    if kind == "active" and draw(st.booleans()):
        table["response_time"] = draw(quantity(0.0, 1e-9))
    if kind == "weight" and draw(st.booleans()):
        table["program_time"] = draw(quantity(0.0, 1e-3))
    return draw(st.sampled_from([table, preset])) if len(table) == 1 else table


text_values = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)


@st.composite
def config_data(draw) -> dict:
    """A valid config as a user would write it: any subset of the sections and keys."""
    task_name = draw(st.sampled_from(["digits", "svhn", "shakespeare"]))
    steps = draw(st.integers(1, 12))
    banks = draw(st.integers(1, steps))
    network = {
        "hidden": draw(st.integers(1, 512)), "banks": banks, "steps": steps,
        "schedule": draw(schedules(banks, steps)),
        "alpha": draw(st.floats(0.0, 1.0, exclude_max=True, **finite)),
        "activation": draw(st.sampled_from(ACTIVATIONS.names())),
        "input_injection": ("sequence" if task_name == "shakespeare"
                            else draw(st.sampled_from(["every_step", "first_step"]))),
        "dtype": draw(st.sampled_from(["float64", "float32"])),
    }
    val = draw(st.floats(0.01, 0.49, **finite))
    color = draw(st.sampled_from(["rgb", "gray"]))
    downsample = draw(st.sampled_from([1, 2, 4]))
    n_raw = 1024 // downsample ** 2 * (3 if color == "rgb" else 1)
    task = {
        "name": task_name, "path": draw(text_values),
        "val_fraction": val, "test_fraction": draw(st.floats(0.01, 0.99 - val, **finite)),
        "split_seed": draw(st.integers(0, 2**63 - 1)), "color": color, "downsample": downsample,
        "projection": draw(st.sampled_from(["none", "random", "pca"])),
        "projected_inputs": draw(st.integers(1, n_raw)),
        "train_set": draw(st.sampled_from(["train", "train+extra"])),
        "text_fraction": draw(st.floats(1e-6, 1.0, **finite)),
    }
    training = {
        "epochs": draw(st.integers(1, 1000)), "batch_size": draw(st.integers(1, 4096)),
        "lr": draw(st.floats(1e-9, 10.0, **finite)),
        "optimizer": draw(st.sampled_from(["adam", "sgd"])),
        "momentum": draw(st.floats(0.0, 1.0, exclude_max=True, **finite)),
        "seed": draw(st.integers(0, 2**63 - 1)),
    }
    hardware = {
        "mode": draw(st.sampled_from(["ideal", "hardware_aware", "deploy"])),
        # longer than any propagation time and any preset's jitter (mems: 10 ns)
        "clock": draw(st.one_of(st.just("auto"), quantity(1e-6, 1e-3))),
        "propagation_time": draw(quantity(1e-13, 1e-9)),
        "settle_tolerance": draw(st.floats(1e-9, 0.5, **finite)),
        "drift_time": draw(quantity(0.0, 1e7)),
        "update_every": draw(st.integers(1, 100)),
        "readout_time": draw(quantity(0.0, 1e-9)),
        "pipelining": draw(st.sampled_from(["sequential", "pipelined"])),
        "in_flight": draw(st.integers(1, 16)),
        "program_banks": draw(st.sampled_from(["parallel", "serial"])),
        "switch": draw(device_tables("switch")),
        "weights": draw(device_tables("weight")),
        "active": draw(device_tables("active")),
    }
    sections = {"network": network, "training": training, "task": task, "hardware": hardware}
    data = {}
    for name, values in sections.items():  # any subset of sections and keys; the rest default
        keep = draw(st.lists(st.sampled_from(list(values)), unique=True))
        if name == "task" and values["name"] == "shakespeare":
            keep = list(dict.fromkeys(keep + ["name"]))
        if name == "network":  # the sizes and the schedule only together
            keep = [k for k in keep if k not in ("banks", "steps", "schedule")]
            if draw(st.booleans()):
                keep += ["banks", "steps", "schedule"]
        if name == "task":  # the fractions only together (their sum must stay < 1)
            keep = [k for k in keep if k not in ("val_fraction", "test_fraction")]
            if draw(st.booleans()):
                keep += ["val_fraction", "test_fraction"]
            if "projection" in keep or "projected_inputs" in keep:
                keep += [k for k in ("color", "downsample", "projection", "projected_inputs")
                         if k not in keep]
        if keep:
            data[name] = {k: values[k] for k in keep}
    return data


@settings(max_examples=CONFIG_EXAMPLES, **SETTINGS)
@given(data=config_data())
def test_config_load_save_load_round_trips(data):
    assert set(data) <= set(SCHEMA)
    with tempfile.TemporaryDirectory() as tmp:
        first = Path(tmp) / "first.toml"
        first.write_text(tomli_w.dumps(data), encoding="utf-8")
        cfg = load_config(first)
        second = Path(tmp) / "second.toml"
        second.write_text(cfg.to_toml(), encoding="utf-8")
        again = load_config(second)
    assert again == cfg
    assert again.to_dict() == cfg.to_dict()
    assert again.to_toml() == cfg.to_toml()  # a fixed point: saving again gives the same bytes
    assert validate(cfg.to_dict()) == cfg
    for section, values in data.items():  # what the user wrote is what the config holds
        for key, value in values.items():
            if SCHEMA[section][key].kind == "device":
                value = {"preset": value} if isinstance(value, str) else value
            if isinstance(value, float) or SCHEMA[section][key].kind == "float":
                assert cfg[section][key] == float(value) and isinstance(cfg[section][key],
                                                                        float)
            else:
                assert cfg[section][key] == value, f"{section}.{key}"


# -- kernels against their numpy twins --------------------------------------------------------

@st.composite
def kernel_problems(draw):
    """Shapes, schedule, input layout, coupling, physics and transfer function of one call."""
    steps = draw(st.integers(1, 8))
    banks = draw(st.integers(1, min(steps, 4)))
    schedule = draw(schedules(banks, steps))
    sched = resolve(schedule, banks, steps).tolist()
    shape = dict(B=draw(st.integers(1, 12)), N=draw(st.integers(1, 9)),
                 D=draw(st.integers(1, 6)), C=draw(st.integers(2, 5)))
    slots = draw(st.sampled_from(["static", "first", "sequence"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    p = random_problem(rng, L=banks, schedule=sched, slots=slots, noise=True, **shape)
    for name in ("a", "c", "eps", "tr"):  # each per step or per sample, independently
        if draw(st.booleans()):
            p[name] = np.ascontiguousarray(p[name][:, :1])
        if name == "eps" and draw(st.booleans()):
            p[name] = np.zeros_like(p[name])  # no leak: the single-product path
    p["noise"] = p["noise"] if draw(st.booleans()) else None
    p["det"] = p["det"] if draw(st.booleans()) else None
    act = draw(st.sampled_from(ACTIVATIONS.names()))
    params = device_params(act, rng) if draw(st.booleans()) else None
    return p, act, params


@settings(max_examples=KERNEL_EXAMPLES, **SETTINGS)
@given(problem=kernel_problems())
def test_kernels_match_numpy_twins(problem):
    p, act, act_params = problem
    (Z, tape, loss, grads), (Zr, H, loss_r, grads_r) = run_both(
        p, ACTIVATIONS.get(act).code, act_params=act_params)
    assert Z.dtype == np.float64 and Z.shape == Zr.shape
    assert max_rel(Z, Zr) < TWIN_TOL
    assert max_rel(tape.H, H) < TWIN_TOL
    # the loss is log(sum exp z) - z_y: near 0 its error is that of the logits, not of itself
    assert abs(loss - loss_r) <= TWIN_TOL * max(abs(loss_r), np.max(np.abs(Zr)))
    assert set(grads) == set(grads_r)
    for key in grads_r:
        assert grads[key].shape == grads_r[key].shape, key
        assert max_rel(grads[key], grads_r[key]) < TWIN_TOL, key


# -- the timing model ---------------------------------------------------------------------------

@st.composite
def timing_specs(draw):
    """A TimingSpec from hand-drawn device times (whole numbers, or any in picoseconds) or from
    a machine of library presets, with a random schedule, architecture and pipelining."""
    steps = draw(st.integers(1, 6))
    banks = draw(st.integers(1, min(steps, 4)))
    schedule = tuple(resolve(draw(schedules(banks, steps)), banks, steps).tolist())
    arch = draw(st.sampled_from(["relaxnet", "reprogram", "unrolled"]))
    pipelining = draw(st.sampled_from(["sequential", "pipelined"]))
    in_flight = draw(st.integers(1, 4))
    if draw(st.integers(0, 3)) == 0:  # a machine of presets
        overrides = {f"hardware.{key}.preset": draw(st.sampled_from(PRESET_NAMES[kind]))
                     for key, kind in (("switch", "switch"), ("weights", "weight"),
                                       ("active", "active"))}
        overrides["hardware.in_flight"] = in_flight
        hw = build_hardware(load_config(overrides=overrides).hardware)
        return hw.timing_spec(schedule, banks, arch, pipelining=pipelining)
    if draw(st.booleans()):
        time = st.integers(0, 60).map(float)
        scale = 1.0
    else:
        time = st.floats(0.0, 200.0, **finite)
        scale = 1e-12
    t = {name: draw(time) * scale for name in ("t_mm", "t_switch", "t_state", "t_program",
                                                "t_readout")}
    clock = None
    if draw(st.booleans()):  # a fixed clock, longer than T_MM as the config requires
        clock = t["t_mm"] + draw(st.integers(1, 60)) * scale
    return TimingSpec(schedule=schedule, banks=banks, clock=clock, pipelining=pipelining,
                      in_flight=in_flight, architecture=arch, **t)


def changes(spec: TimingSpec) -> list[bool]:
    """Whether the switch must move before each step (steps 1 ..)."""
    s = spec.schedule
    return [spec.architecture == "relaxnet" and s[t] != s[t - 1] for t in range(1, spec.steps)]


def latency_bound(spec: TimingSpec) -> float:
    """A lower bound on any inference's latency, whatever else is in flight: the propagations,
    and between steps and before the readout the settling (auto clock: the element, and the
    switch where the bank changes) or a clock period; programming, shared in a pipeline, is left
    out."""
    if spec.clock is None:
        between = sum(max(spec.t_state, spec.t_switch) if change else spec.t_state
                      for change in changes(spec))
        return spec.steps * spec.t_mm + between + spec.t_state + spec.t_readout
    return max(spec.steps * spec.clock, spec.steps * spec.t_mm) + spec.t_readout


def alone(spec: TimingSpec) -> float:
    """The latency of an inference alone on the machine (auto clock), exact: as
    :func:`latency_bound`, the reprogrammed bank programmed before every step whose weights (its
    bank in the schedule) differ from the step before's."""
    if spec.architecture != "reprogram":
        return latency_bound(spec)
    sched = spec.schedule
    between = sum(max(spec.t_state, spec.t_program) if a != b else spec.t_state
                  for a, b in zip(sched, sched[1:]))
    return spec.steps * spec.t_mm + between + spec.t_state + spec.t_readout


def assert_disjoint(intervals, tol, what):
    """No two intervals ``(start, end, ...)`` overlap by more than ``tol`` (touching is fine)."""
    for i, (s0, e0, *rest0) in enumerate(intervals):
        for s1, e1, *rest1 in intervals[i + 1:]:
            assert min(e0, e1) - max(s0, s1) <= tol, \
                f"{what}: {(s0, e0, *rest0)} overlaps {(s1, e1, *rest1)}"


@settings(max_examples=TIMING_EXAMPLES, **SETTINGS)
@given(spec=timing_specs(), n=st.integers(1, 8))
# busy time credited whole when an interval ended: bank 0 busy 12 in a window of 10
@example(spec=TimingSpec(schedule=(0,), banks=1, t_mm=6.0, t_switch=0.0, t_state=0.0,
                         t_program=0.0, t_readout=10.0, clock=None, pipelining="pipelined",
                         in_flight=3), n=4)
# an interval under way counted up to a window's end one way, when it ended another: -3e-16
@example(spec=TimingSpec(schedule=(0, 0), banks=1, t_mm=1e-11, t_switch=0.0, t_state=0.0,
                         t_program=0.0, t_readout=1e-11, clock=None, pipelining="pipelined",
                         in_flight=2, architecture="unrolled"), n=2)
def test_timing_invariants(spec, n):
    sim = simulate(spec, n=n, record=True)
    tol = TIME_RTOL * max(sim.end, 1e-300)
    assert len(sim.inferences) == n
    times = [row.time_s for row in sim.trace]
    assert all(b >= a for a, b in zip(times, times[1:])), "events out of time order"
    assert times[-1] == sim.end
    rows = busy_intervals(sim)
    # a bank, a switch, the readout, the programmer: one sample at a time
    for name, intervals in rows.items():
        if not name.startswith("element"):
            assert_disjoint(intervals, tol, name)
    if spec.architecture == "reprogram":  # nothing passes the bank while it is programmed
        assert_disjoint(rows.get("bank0", []) + rows.get("programmer", []), tol, "bank0")
    # an active element (and the switch in front of it) holds one inference at a time
    by_slot: dict[int, list] = {}
    for inf in sim.inferences:
        by_slot.setdefault(inf.slot, []).append((inf.admitted, inf.done, inf.index))
    places = spec.steps if spec.architecture == "unrolled" else spec.in_flight
    assert len(by_slot) <= (places if spec.pipelining == "pipelined" else 1)
    for slot, held in by_slot.items():
        assert_disjoint(held, tol, f"element {slot}")
    bound = latency_bound(spec)
    for inf in sim.inferences:
        assert len(inf.arrive) == len(inf.leave) == len(inf.command) == spec.steps
        assert inf.admitted <= inf.arrive[0]
        for t in range(spec.steps):
            assert inf.leave[t] == pytest.approx(inf.arrive[t] + spec.t_mm, rel=TIME_RTOL,
                                                 abs=tol)
            if t:
                assert inf.arrive[t] >= inf.leave[t - 1] - tol
        assert inf.done >= inf.read + spec.t_readout - tol
        assert inf.latency >= bound - tol, (inf.index, inf.latency, bound)
    # busy time counts inside the window it is measured over: never more than the window
    assert all(0.0 <= u <= 1.0 + 1e-9 for u in sim.utilisation().values())
    first = sim.inferences[0]
    if spec.clock is None and (spec.pipelining == "sequential" or spec.in_flight == 1 or n == 1):
        assert first.latency == pytest.approx(alone(spec), rel=TIME_RTOL, abs=tol)
    if spec.pipelining == "pipelined":  # a periodic stream, even with a switch slower than the
        # clock: a new command takes the switch over, so no backlog of commands builds up
        stream = simulate(spec, record=False)
        assert stream.periodic
        assert all(0.0 <= u <= 1.0 + 1e-9 for u in stream.utilisation().values())


def element_spans(sim) -> dict[str, list[tuple[float, float, int]]]:
    """Per active element, per inference: from its admission to the end of the element's last
    settling (which, with a fixed clock, may come after the readout); unrolled, per layer ``t``:
    from the signal's entry into bank ``t`` until the state is read (the next step's entry, or
    the readout) and the layer has settled."""
    spans: dict[tuple[str, int], list[float]] = {}
    for inf in sim.inferences:
        if sim.spec.architecture == "unrolled":
            reads = inf.arrive[1:] + [inf.read]
            for t, (start, read) in enumerate(zip(inf.arrive, reads)):
                spans[(f"element{t}", inf.index)] = [start, read]
        else:
            spans[(f"element{inf.slot}", inf.index)] = [inf.admitted, inf.done]
    for name, intervals in busy_intervals(sim).items():
        for start, end, index, _ in intervals:
            if name.startswith("element"):
                span = spans[(name, index)]
                span[1] = max(span[1], end)
    out: dict[str, list] = {}
    for (name, index), (start, end) in spans.items():
        out.setdefault(name, []).append((start, end, index))
    return out


@settings(max_examples=TIMING_EXAMPLES, **SETTINGS)
@given(spec=timing_specs(), n=st.integers(1, 8))
@example(spec=TimingSpec(schedule=(0, 0), banks=1, t_mm=0.0, t_switch=0.0, t_state=3.0,
                         t_program=0.0, t_readout=0.0, clock=1.0), n=2)
def test_active_element_holds_one_sample_at_a_time(spec, n):
    """The example: a clock (1) shorter than T_state (3) once freed the element at the readout
    (2) while it still settled from the inference's steps (until 4); the next one shared it."""
    sim = simulate(spec, n=n, record=True)
    tol = TIME_RTOL * max(sim.end, 1e-300)
    for name, spans in element_spans(sim).items():
        assert_disjoint(spans, tol, name)


@settings(max_examples=TIMING_EXAMPLES, **SETTINGS)
@given(spec=timing_specs(), n=st.integers(1, 8))
@example(spec=TimingSpec(schedule=(0, 1, 0), banks=2, t_mm=0.0, t_switch=3.0, t_state=0.0,
                         t_program=0.0, t_readout=1.0, clock=1.0, pipelining="pipelined",
                         in_flight=1), n=2)
def test_switch_turns_before_the_signal_arrives(spec, n):
    """The switch starts turning for a step before the step's signal enters its bank, and the
    inference's command time is when it did (gaps, hence the leak eps, say what happened).

    The example: a clock (1) shorter than T_MM + T_switch (3) once queued the commands on the
    switch, which turned for a step after its signal had passed while the command kept the time
    of the request; in a stream the backlog grew without bound (switch utilisation 1.5)."""
    sim = simulate(spec, n=n, record=True)
    tol = TIME_RTOL * max(sim.end, 1e-300)
    turns: dict[int, list[float]] = {}
    for name, intervals in busy_intervals(sim).items():
        if name.startswith("switch"):
            for start, _, index, _ in intervals:
                turns.setdefault(index, []).append(start)
    for inf in sim.inferences:
        steps = [t for t, change in enumerate(changes(spec), start=1) if change]
        assert len(turns.get(inf.index, [])) == len(steps)
        for t, start in zip(steps, turns.get(inf.index, [])):
            assert start == pytest.approx(inf.command[t], rel=TIME_RTOL, abs=tol)
            assert inf.command[t] == inf.leave[t - 1]  # commanded as the signal left: at once
            assert start <= inf.arrive[t] + tol, (inf.index, t, start, inf.arrive[t])
    if spec.pipelining == "pipelined":
        stream = simulate(spec, record=False)
        assert all(0.0 <= u <= 1.0 + 1e-9 for u in stream.utilisation().values())
