"""The structured event trace of the timing model: its rows, their CSV, the busy intervals of the
timeline read from them, and the timeline drawn without a temporary file.

``_old_busy_intervals`` below is the timeline's former reading of a trace of English text with
regular expressions, kept here only to show that the intervals read from the rows are the same.
"""

from __future__ import annotations

import ast
import csv
import io
import json
import re
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import relaxsim
from relaxsim.errors import RelaxsimError
from relaxsim.hardware import build_hardware
from relaxsim.report import figures
from relaxsim.report.document import run_report
from relaxsim.schedules import resolve
from relaxsim.timing import (
    ACTIONS,
    TRACE_COLUMNS,
    TimingSpec,
    TraceEvent,
    actor_kind,
    busy_intervals,
    closed_form_step,
    simulate,
    trace_csv,
)

CLOSED_FORM_RTOL = 1e-12  # sums of a few float64 times: a few ulp (as tests/test_timing.py)
PS = 1e-12


def spec(**kw) -> TimingSpec:
    base = dict(schedule=(0, 1, 0), banks=2, t_mm=10.0, t_switch=4.0, t_state=3.0,
                t_program=50.0, t_readout=2.0, clock=None)
    return TimingSpec(**{**base, **kw})


def machine(schedule: str, banks: int, steps: int, **kw) -> TimingSpec:
    """A machine in picoseconds: T_MM 10, switch 11.0035, element 55.26, programming 2180,
    readout 10 (times that are not whole, so that rounding would show)."""
    times = dict(t_mm=10 * PS, t_switch=11.0035 * PS, t_state=55.26 * PS, t_program=2180 * PS,
                 t_readout=10 * PS, clock=None)
    sched = tuple(int(k) for k in resolve(schedule, banks, steps))
    return TimingSpec(schedule=sched, banks=banks, **{**times, **kw})


# sequential and pipelined, auto and fixed clock, cyclic and blocked schedules; the three
# architectures; a switch slower than the clock (taken over); a clock shorter than T_state
CONFIGS = {
    "cyclic-auto-sequential": (machine("cyclic", 2, 4), 1),
    "cyclic-auto-sequential-stream": (machine("cyclic", 2, 4), 3),
    "blocked-auto-sequential": (machine("blocked", 3, 6), 2),
    "cyclic-clock-sequential": (machine("cyclic", 2, 4, clock=30 * PS), 3),
    "blocked-clock-sequential": (machine("blocked", 2, 5, clock=70 * PS), 2),
    "cyclic-auto-pipelined": (machine("cyclic", 3, 6, pipelining="pipelined", in_flight=3), 7),
    "blocked-auto-pipelined": (machine("blocked", 2, 4, pipelining="pipelined", in_flight=2), 5),
    "cyclic-clock-pipelined": (machine("cyclic", 2, 4, clock=15 * PS, pipelining="pipelined",
                                       in_flight=4), 9),
    "blocked-clock-pipelined": (machine("blocked", 3, 6, clock=40 * PS, pipelining="pipelined",
                                        in_flight=3), 7),
    # the reprogrammed bank: one physical bank holding, step by step, the weights of the
    # schedule's banks 0, 1, 2 (rewritten whenever they change)
    "reprogram-pipelined": (replace(machine("cyclic", 3, 3, architecture="reprogram",
                                            pipelining="pipelined", in_flight=2), banks=1), 4),
    "reprogram-clock": (replace(machine("cyclic", 3, 3, architecture="reprogram",
                                        clock=25 * PS), banks=1), 2),
    "unrolled-pipelined": (machine("cyclic", 2, 4, architecture="unrolled",
                                   pipelining="pipelined", in_flight=2), 5),
    "taken-over": (spec(clock=15.0, t_switch=22.0), 2),
    "taken-over-pipelined": (spec(schedule=(0, 1, 0, 1), clock=11.0, t_switch=30.0,
                                  pipelining="pipelined", in_flight=2), 4),
}


@pytest.fixture(scope="module", params=list(CONFIGS))
def recorded(request):
    s, n = CONFIGS[request.param]
    return simulate(s, n=n, record=True)


# -- the rows --------------------------------------------------------------------------------

def test_rows_have_the_fields_and_their_types(recorded):
    assert TraceEvent._fields == TRACE_COLUMNS == (
        "time_s", "actor", "action", "inference", "step", "bank", "slot")
    spec_, n = recorded.spec, len(recorded.inferences)
    slot_of = {inf.index: inf.slot for inf in recorded.inferences}
    assert recorded.trace and all(type(row) is TraceEvent for row in recorded.trace)
    for row in recorded.trace:
        assert type(row.time_s) is float
        assert type(row.actor) is str and type(row.action) is str
        assert all(type(v) is int for v in (row.inference, row.step, row.bank, row.slot))
        kind = actor_kind(row.actor)
        assert row.action in ACTIONS[kind], row
        if kind == "programmer":  # serves the bank, not one inference
            assert (row.actor, row.inference, row.bank, row.slot) == ("programmer", -1, 0, -1)
            assert 0 <= row.step < spec_.steps
            continue
        assert 0 <= row.inference < n and row.slot == slot_of[row.inference], row
        if kind in ("source", "readout"):
            assert (row.step, row.bank) == (-1, -1) and row.actor == kind, row
        elif kind == "element":
            element = row.step if spec_.architecture == "unrolled" else row.slot
            assert row.actor == f"element{element}" and row.bank == -1, row
            assert 0 <= row.step < spec_.steps
        else:  # a bank, a switch: the bank of the step
            assert 0 <= row.step < spec_.steps
            bank = {"unrolled": row.step, "reprogram": 0}.get(spec_.architecture,
                                                              spec_.schedule[row.step])
            assert row.bank == bank, row
            assert row.actor == (f"bank{bank}" if kind == "bank" else f"switch{row.slot}"), row
    times = [row.time_s for row in recorded.trace]
    assert times == sorted(times) and times[-1] == recorded.end


def test_every_inference_passes_its_L_T_banks_in_order(recorded):
    spec_ = recorded.spec
    for inf in recorded.inferences:
        for action, times in (("in", inf.arrive), ("out", inf.leave)):
            rows = [row for row in recorded.trace if actor_kind(row.actor) == "bank"
                    and row.action == action and row.inference == inf.index]
            assert len(rows) == spec_.steps
            assert [row.step for row in rows] == list(range(spec_.steps))
            assert [row.time_s for row in rows] == times
        (admit,) = [row for row in recorded.trace
                    if row.action == "admit" and row.inference == inf.index]
        assert admit.time_s == inf.admitted and admit.slot == inf.slot
        (read,) = [row for row in recorded.trace
                   if row.action == "read" and row.inference == inf.index]
        assert read.time_s == inf.done
        commands = [row for row in recorded.trace
                    if row.action == "command" and row.inference == inf.index]
        assert [row.time_s for row in commands] == [c for c in inf.command if not np.isnan(c)]


def test_every_action_of_the_vocabulary_is_recorded_somewhere():
    seen = set()
    for s, n in CONFIGS.values():
        seen |= {(actor_kind(row.actor), row.action) for row in simulate(s, n=n,
                                                                          record=True).trace}
    assert seen == {(kind, action) for kind, actions in ACTIONS.items() for action in actions}


@pytest.mark.parametrize("t_mm,t_sw,t_st,t_ro", [
    (10.0, 4.0, 3.0, 2.0),          # switch slower than the element
    (10.0, 3.0, 55.26, 10.0),       # element slower than the switch
    (0.5, 800.0, 0.0, 3.3),         # a slow switch, an instant element
])
def test_one_inference_alone_matches_the_closed_form(t_mm, t_sw, t_st, t_ro):
    """Cyclic ReLaX-Net, auto clock: step t enters its bank at ``t * step``
    (``step = T_MM + max(T_switch, T_state)``), leaves it ``T_MM`` later, when the switch is
    commanded (settled ``T_switch`` after) and the element starts settling (``T_state``); the
    readout ends at the latency ``T step - max(T_switch, T_state) + T_state + T_readout``."""
    s = spec(schedule=(0, 1, 0, 1, 0), t_mm=t_mm * PS, t_switch=t_sw * PS, t_state=t_st * PS,
             t_readout=t_ro * PS)
    step = closed_form_step(s)
    sim = simulate(s, record=True)
    T = s.steps
    expected = {("bank", "in"): [t * step for t in range(T)],
                ("bank", "out"): [t * step + s.t_mm for t in range(T)],
                ("switch", "command"): [t * step + s.t_mm for t in range(T - 1)],
                ("switch", "settled"): [t * step + s.t_mm + s.t_switch for t in range(T - 1)],
                ("element", "settled"): [t * step + s.t_mm + s.t_state for t in range(T)],
                ("readout", "read"): [T * step - (step - s.t_mm) + s.t_state + s.t_readout]}
    for (kind, action), times in expected.items():
        got = [row.time_s for row in sim.trace
               if actor_kind(row.actor) == kind and row.action == action]
        np.testing.assert_allclose(got, times, rtol=CLOSED_FORM_RTOL, err_msg=f"{kind} {action}")
    assert [row.bank for row in sim.trace if row.action == "command"] == [1, 0, 1, 0]


def test_describe_gives_the_event_in_words():
    row = TraceEvent(0.0, "source", "admit", 3, -1, -1, 1)
    assert row.describe() == "admit 3 to element 1"
    assert TraceEvent(1e-11, "bank1", "in", 0, 2, 1, 0).describe() == "step 2 of 0 in"
    assert TraceEvent(1e-11, "switch0", "command", 4, 1, 1, 0).describe() == "to bank 1 for 4"
    assert (TraceEvent(2e-11, "programmer", "programmed", -1, 2, 0, -1).describe()
            == "bank 0 holds step 2 weights")
    assert TraceEvent(5.0, "readout", "read", 7, -1, -1, 0).describe() == "7 read"


def test_recording_is_off_by_default_and_changes_nothing():
    s, n = CONFIGS["cyclic-clock-pipelined"]
    plain, recorded = simulate(s, n=n), simulate(s, n=n, record=True)
    assert plain.trace == [] and recorded.trace
    assert plain.events == recorded.events and plain.end == recorded.end
    assert plain.busy == recorded.busy and plain.completions == recorded.completions
    assert [vars(i) for i in plain.inferences] == [vars(i) for i in recorded.inferences]
    hw = build_hardware(relaxsim.load_config().hardware)
    assert hw.simulate((0, 1, 0, 1), 2).trace == []
    with pytest.raises(RelaxsimError, match="no trace: run it with record=True"):
        plain.busy_intervals()


# -- the CSV ---------------------------------------------------------------------------------

def test_csv_header_and_round_trip(recorded):
    text = trace_csv(recorded.trace)
    lines = text.splitlines()
    assert lines[0] == "time_s,actor,action,inference,step,bank,slot"
    assert len(lines) == len(recorded.trace) + 1 and text.endswith("\n")
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert list(rows[0]) == list(TRACE_COLUMNS)
    assert [row["time_s"] for row in rows] == [repr(r.time_s) for r in recorded.trace]
    back = [TraceEvent(float(row["time_s"]), row["actor"], row["action"],
                       *(int(row[k]) for k in ("inference", "step", "bank", "slot")))
            for row in rows]
    assert back == recorded.trace  # times to the last bit


def test_timing_command_writes_the_rows(tmp_path, capsys):
    from relaxsim.cli.app import main

    path = tmp_path / "trace.csv"
    assert main(["timing", "--set", "hardware.clock=30 ps", "--inferences", "2",
                 "--trace", str(path)]) == 0
    capsys.readouterr()
    hw = build_hardware(relaxsim.load_config(overrides={"hardware.clock": "30 ps"}).hardware)
    sim = hw.simulate(resolve("cyclic", 2, 4), 2, n=2, record=True)
    assert path.read_text() == trace_csv(sim.trace)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["trace.csv"]


# -- the busy intervals ----------------------------------------------------------------------

_PATTERNS = {
    "bank_in": re.compile(r"step (\d+) of (\d+) in"),
    "bank_out": re.compile(r"step (\d+) of (\d+) out"),
    "switch_to": re.compile(r"to bank (\d+) for (\d+)"),
    "element": re.compile(r"settled after step (\d+) of (\d+)"),
    "readout": re.compile(r"(\d+) read"),
    "programmer": re.compile(r"bank 0 holds step (\d+) weights"),
}


def _old_busy_intervals(spec_, trace) -> dict[str, list[tuple[float, float, int, str]]]:
    """The former reading of a text trace ``[(time, actor, words)]`` into busy intervals."""
    rows: dict[str, list] = {}
    open_bank: dict[str, tuple[float, int, int]] = {}
    open_switch: dict[str, tuple[float, int, int]] = {}
    for time, actor, action in trace:
        if actor.startswith("bank"):
            if m := _PATTERNS["bank_in"].fullmatch(action):
                open_bank[actor] = (time, int(m[1]), int(m[2]))
            elif _PATTERNS["bank_out"].fullmatch(action) and actor in open_bank:
                start, t, i = open_bank.pop(actor)
                rows.setdefault(actor, []).append((start, time, i, f"{i}:{t}"))
        elif actor.startswith("switch"):
            if m := _PATTERNS["switch_to"].fullmatch(action):
                open_switch[actor] = (time, int(m[1]), int(m[2]))
            elif actor in open_switch:
                start, bank, i = open_switch.pop(actor)
                rows.setdefault(actor, []).append((start, time, i, f"{i}>b{bank}"))
        elif actor.startswith("element"):
            if m := _PATTERNS["element"].fullmatch(action):
                rows.setdefault(actor, []).append(
                    (time - spec_.t_state, time, int(m[2]), f"{m[2]}:{m[1]}"))
        elif actor == "readout":
            if m := _PATTERNS["readout"].fullmatch(action):
                rows.setdefault(actor, []).append(
                    (time - spec_.t_readout, time, int(m[1]), m[1]))
        elif actor == "programmer":
            if m := _PATTERNS["programmer"].fullmatch(action):
                rows.setdefault(actor, []).append(
                    (time - spec_.t_program, time, -1, f"s{m[1]}"))

    def order(name: str):
        kinds = ("bank", "programmer", "switch", "element", "readout")
        kind = next(k for k in kinds if name.startswith(k))
        digits = name[len(kind):]
        return kinds.index(kind), int(digits) if digits else 0
    return {name: rows[name] for name in sorted(rows, key=order)}


def test_busy_intervals_are_those_the_text_trace_gave(recorded):
    text = [(row.time_s, row.actor, row.describe()) for row in recorded.trace]
    old = _old_busy_intervals(recorded.spec, text)
    new = recorded.busy_intervals()
    assert list(new) == list(old)  # the same rows, in the same order
    assert new == old              # the same intervals, labels and inferences, bit for bit
    assert busy_intervals(recorded) == new
    assert sum(map(len, new.values())) > 0


def test_busy_intervals_of_a_machine_built_from_presets():
    for overrides in ({}, {"hardware.clock": "30 ps"},
                      {"hardware.pipelining": "pipelined", "hardware.in_flight": 3},
                      {"hardware.switch.preset": "mems", "hardware.switch.jitter": "0 s",
                       "hardware.clock": "12 ps", "network.schedule": "blocked"}):
        cfg = relaxsim.load_config(overrides=overrides)
        hw = build_hardware(cfg.hardware)
        sched = resolve(cfg.network.schedule, cfg.network.banks, cfg.network.steps)
        for arch in ("relaxnet", "reprogram", "unrolled"):
            sim = hw.simulate(sched, cfg.network.banks, arch, n=5, record=True)
            text = [(row.time_s, row.actor, row.describe()) for row in sim.trace]
            assert sim.busy_intervals() == _old_busy_intervals(sim.spec, text), (overrides, arch)


# -- the timeline: drawn in memory -----------------------------------------------------------

def _no_temporary_files(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a temporary file was asked for")
    for name in ("mkstemp", "mkdtemp", "NamedTemporaryFile", "TemporaryFile",
                 "SpooledTemporaryFile", "TemporaryDirectory", "mktemp"):
        monkeypatch.setattr(tempfile, name, refuse)


def test_timeline_figure_is_drawn_without_a_temporary_file(monkeypatch, tmp_path):
    s, n = CONFIGS["cyclic-clock-pipelined"]
    sim = simulate(s, n=n, record=True)
    monkeypatch.chdir(tmp_path)
    _no_temporary_files(monkeypatch)
    png = figures.timeline(sim, "title")
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 1000
    fig = figures.timeline_figure(sim, "title")
    bars = [p for p in fig.axes[0].patches if p.get_gid() == "busy"]
    assert len(bars) == sum(map(len, sim.busy_intervals().values()))
    assert list(tmp_path.iterdir()) == []


def test_run_report_timeline_without_a_temporary_file(monkeypatch, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "result.json").write_text(json.dumps({"config": relaxsim.load_config().to_dict()}))
    _no_temporary_files(monkeypatch)
    doc = run_report(run)
    (timeline,) = [f for f in doc.figures() if f.name == "timeline"]
    assert timeline.png[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in run.iterdir()) == ["result.json"]


@pytest.mark.parametrize("suffix,magic", [(".png", b"\x89PNG"), (".svg", b"<?xml"),
                                          (".pdf", b"%PDF")])
def test_plot_timeline_writes_only_its_file(tmp_path, suffix, magic):
    s, n = CONFIGS["blocked-auto-pipelined"]
    sim = simulate(s, n=n, record=True)
    path = tmp_path / f"timeline{suffix}"
    figures.plot_timeline(sim, path, "title")
    assert path.read_bytes()[:len(magic)] == magic
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_plot_timeline_refuses_before_touching_the_disk(tmp_path):
    with pytest.raises(RelaxsimError, match="no trace: run it with record=True"):
        figures.plot_timeline(simulate(spec()), tmp_path / "t.png")
    with pytest.raises(RelaxsimError, match=r"unknown image format \.jpg; use \.png, \.svg, "
                                            r"\.pdf"):
        figures.plot_timeline(simulate(spec(), record=True), tmp_path / "t.jpg")
    assert list(tmp_path.iterdir()) == []


def test_figures_module_does_not_import_the_command_line():
    source = Path(figures.__file__).read_text()
    imported = [node.module if isinstance(node, ast.ImportFrom) else alias.name
                for node in ast.walk(ast.parse(source))
                if isinstance(node, (ast.Import, ast.ImportFrom))
                for alias in node.names]
    assert not [m for m in imported if m and m.startswith("relaxsim.cli")], imported
    assert "re" not in imported and "tempfile" not in imported
