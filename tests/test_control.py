"""The control sequence of the timing model (``relaxsim timing --schedule``): the commands of the
CSV and JSON files are the trace's events to the float, and the VCD waveform, read back by a
small parser below, has every edge of every signal at the trace's times rounded to the
femtosecond."""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import replace
from fractions import Fraction

import pytest

import relaxsim
from relaxsim.control import (
    COMMAND_COLUMNS,
    Command,
    commands,
    schedule_csv,
    schedule_format,
    schedule_json,
    schedule_text,
    schedule_vcd,
    ticks,
)
from relaxsim.errors import RelaxsimError
from relaxsim.hardware import build_hardware
from relaxsim.schedules import resolve
from relaxsim.timing import TimingSpec, simulate

PS = 1e-12


def machine(schedule: str, banks: int, steps: int, **kw) -> TimingSpec:
    """A machine in picoseconds: T_MM 10, switch 11.0035, element 55.26, programming 2180,
    readout 10 (times that are not whole femtoseconds, so that the rounding shows)."""
    times = dict(t_mm=10 * PS, t_switch=11.0035 * PS, t_state=55.26 * PS, t_program=2180 * PS,
                 t_readout=10 * PS, clock=None)
    sched = tuple(int(k) for k in resolve(schedule, banks, steps))
    return TimingSpec(schedule=sched, banks=banks, **{**times, **kw})


SLOW_SWITCH = dict(t_switch=41.0035 * PS)  # slower than a 15 ps clock: commands are taken over
MACHINES = {
    "sequential": (machine("cyclic", 2, 4), 2),
    "sequential-blocked": (machine("blocked", 3, 6), 2),
    "sequential-clock-taken-over": (machine("cyclic", 2, 4, clock=15 * PS, **SLOW_SWITCH), 3),
    "pipelined": (machine("cyclic", 3, 6, pipelining="pipelined", in_flight=3), 7),
    "pipelined-clock-taken-over": (machine("cyclic", 2, 4, clock=15 * PS, pipelining="pipelined",
                                           in_flight=4, **SLOW_SWITCH), 9),
    "reprogram-pipelined": (replace(machine("cyclic", 3, 3, architecture="reprogram",
                                            pipelining="pipelined", in_flight=2), banks=1), 4),
    "reprogram-clock": (replace(machine("cyclic", 3, 3, architecture="reprogram",
                                        clock=25 * PS), banks=1), 2),
    "unrolled-pipelined": (machine("cyclic", 2, 4, architecture="unrolled",
                                   pipelining="pipelined", in_flight=2), 5),
}


@pytest.fixture(scope="module", params=list(MACHINES))
def sim(request):
    spec, n = MACHINES[request.param]
    return simulate(spec, n=n, record=True)


# -- what the commands must be, read from the trace here ------------------------------------

def expected_commands(sim) -> list[tuple]:
    """``(kind, target, time_s, end_s, inference, step, bank, slot, taken_over)`` of every
    switch command, programming and readout, read from the trace rows."""
    out = []
    rows = sim.trace
    for i, row in enumerate(rows):
        if row.actor.startswith("switch") and row.action == "command":
            end = next(r for r in rows[i + 1:] if r.actor == row.actor)
            assert end.action in ("settled", "taken_over")
            assert (end.inference, end.step, end.bank) == (row.inference, row.step, row.bank)
            out.append(("switch", row.actor, row.time_s, end.time_s, row.inference, row.step,
                        row.bank, row.slot, int(end.action == "taken_over")))
        elif row.action == "programmed":
            # the start is T_program before the end, to the last bit of the subtraction
            out.append(("program", row.actor, None, row.time_s, -1, row.step, row.bank, -1, -1))
        elif row.action == "read":
            read = next(inf.read for inf in sim.inferences if inf.index == row.inference)
            out.append(("readout", row.actor, read, row.time_s, row.inference, -1, -1, row.slot,
                        -1))
    return out


def check_commands(sim, got: list[Command]) -> None:
    want = expected_commands(sim)
    assert len(got) == len(want)
    starts = {row.time_s for row in sim.trace}
    key = [(c.kind, c.target, c.time_s if c.kind != "program" else None, c.end_s, c.inference,
            c.step, c.bank, c.slot, c.taken_over) for c in got]
    assert sorted(key, key=repr) == sorted(want, key=repr)  # to the float
    for c in got:
        if c.kind == "program":
            assert abs(c.time_s - (c.end_s - sim.spec.t_program)) <= 2 * abs(
                c.end_s - c.end_s * (1 - 2 ** -52))
            assert c.time_s in starts or c.time_s == c.end_s - sim.spec.t_program
    times = [c.time_s for c in got]
    assert times == sorted(times)  # in the order they start


def test_commands_are_the_trace_events(sim):
    got = commands(sim)
    check_commands(sim, got)
    kinds = {c.kind for c in got}
    assert "readout" in kinds
    assert ("program" in kinds) == (sim.spec.architecture == "reprogram")
    assert ("switch" in kinds) == (sim.spec.architecture == "relaxnet")


def test_csv_reads_back_to_the_commands(sim):
    rows = list(csv.DictReader(io.StringIO(schedule_csv(sim))))
    assert list(rows[0]) == list(COMMAND_COLUMNS)
    back = [Command(float(r["time_s"]), float(r["end_s"]), r["kind"], r["target"],
                    *(int(r[k]) for k in ("inference", "step", "bank", "slot", "taken_over")))
            for r in rows]
    assert back == commands(sim)
    check_commands(sim, back)


def test_json_reads_back_to_the_commands(sim):
    data = json.loads(schedule_json(sim))
    assert data["time_unit"] == "s"
    spec = sim.spec
    assert data["machine"]["schedule"] == list(spec.schedule)
    assert data["machine"]["t_mm_s"] == spec.t_mm and data["machine"]["clock_s"] == spec.clock
    assert data["machine"]["architecture"] == spec.architecture
    back = [Command(c["time_s"], c["end_s"], c["kind"], c["target"], c.get("inference", -1),
                    c.get("step", -1), c.get("bank", -1), c.get("slot", -1),
                    int(c["taken_over"]) if "taken_over" in c else -1)
            for c in data["commands"]]
    assert back == commands(sim)
    check_commands(sim, back)


def test_a_fixed_clock_faster_than_the_switch_takes_commands_over():
    spec, n = MACHINES["sequential-clock-taken-over"]
    sim = simulate(spec, n=n, record=True)
    switched = [c for c in commands(sim) if c.kind == "switch"]
    assert any(c.taken_over for c in switched) and not all(c.taken_over for c in switched)
    for c in switched:  # a taken-over turn ends at the next command, before it settled
        if c.taken_over:
            assert c.end_s - c.time_s < spec.t_switch
            assert any(d.time_s == c.end_s for d in switched)
        else:
            assert c.end_s == c.time_s + spec.t_switch


# -- the waveform ---------------------------------------------------------------------------

VAR = re.compile(r"\$var\s+(\w+)\s+(\d+)\s+(\S+)\s+(\S+)(?:\s+\[[^\]]*\])?\s+\$end")


def parse_vcd(text: str):
    """``(timescale, {name: (type, size)}, {name: [(tick, value), ...]})`` of a VCD text: every
    value change in file order (the ``$dumpvars`` block at its timestamp); a value is an int, or
    a string of ``x``/``z`` bits."""
    timescale = re.search(r"\$timescale\s+(.*?)\s*\$end", text, re.S)[1]
    header, _, body = text.partition("$enddefinitions")
    ids, names = {}, {}
    for kind, size, ident, name in VAR.findall(header):
        ids[ident] = name
        names[name] = (kind, int(size))
    changes = {name: [] for name in names}
    now = None
    tokens = body.split()
    i = 1  # past "$end" of $enddefinitions
    while i < len(tokens):
        tok = tokens[i]
        if tok.startswith("#"):
            now = int(tok[1:])
        elif tok in ("$dumpvars", "$end", "$dumpall", "$dumpon", "$dumpoff"):
            pass
        elif tok[0] in "bB":
            bits, ident = tok[1:], tokens[i + 1]
            i += 1
            changes[ids[ident]].append((now, int(bits, 2) if set(bits) <= {"0", "1"} else bits))
        elif tok[0] in "01xXzZ":
            value = tok[0]
            changes[ids[tok[1:]]].append((now, int(value) if value in "01" else value.lower()))
        else:
            raise AssertionError(f"unexpected VCD token {tok!r}")
        i += 1
    return timescale, names, changes


def edges(changes: list[tuple[int, object]]) -> list[tuple[int, object]]:
    """The changes that change the value: the last of each tick, where it differs from before."""
    last: dict[int, object] = {}
    for tick, value in changes:
        last[tick] = value
    out: list[tuple[int, object]] = []
    for tick in sorted(last):
        if not out or out[-1][1] != last[tick]:
            out.append((tick, last[tick]))
    return out


def fs(time_s: float) -> int:
    """Seconds to the nearest femtosecond, from the float's exact value (half to even)."""
    return round(Fraction(time_s) / Fraction(1, 10 ** 15))


def level_edges(intervals) -> list[tuple[int, int]]:
    """The edges of a 1/0 signal that is 1 at tick t when some rounded interval has
    ``start <= t < end``: its level evaluated at every rounded endpoint."""
    rounded = [(fs(a), fs(b)) for a, b in intervals]
    out = [(0, 0)]
    for t in sorted({x for pair in rounded for x in pair}):
        level = int(any(a <= t < b for a, b in rounded))
        if level != out[-1][1]:
            out.append((t, level))
    if len(out) > 1 and out[1][0] == 0:
        out = out[1:]
    return out


def expected_waveform(sim) -> dict[str, list[tuple[int, object]]]:
    """Per signal, its edges read from the trace: switches to each command's bank, banks busy
    from ``in`` to ``out``, elements from their step's ``leave`` to ``settled``, the programmer
    ``T_program`` before ``programmed``, the readout from ``read`` to its ``read`` row."""
    spec = sim.spec
    infs = {inf.index: inf for inf in sim.inferences}
    intervals: dict[str, list[tuple[float, float]]] = {}
    switches: dict[str, list[tuple[int, object]]] = {}
    opened: dict[str, float] = {}
    for row in sim.trace:
        if row.actor.startswith("switch") and row.action == "command":
            switches.setdefault(row.actor, [(0, "x")]).append((fs(row.time_s), row.bank))
        elif row.actor.startswith("bank"):
            if row.action == "in":
                opened[row.actor] = row.time_s
            else:
                intervals.setdefault(row.actor, []).append((opened.pop(row.actor), row.time_s))
        elif row.actor.startswith("element"):
            start = infs[row.inference].leave[row.step]
            assert start == pytest.approx(row.time_s - spec.t_state, rel=1e-12)
            intervals.setdefault(row.actor, []).append((start, row.time_s))
        elif row.action == "programmed":
            intervals.setdefault(row.actor, []).append((row.time_s - spec.t_program,
                                                        row.time_s))
        elif row.action == "read":
            intervals.setdefault(row.actor, []).append((infs[row.inference].read, row.time_s))
    out = {name: edges(changes) for name, changes in switches.items()}
    out.update({name: level_edges(spans) for name, spans in intervals.items()})
    return out


def test_vcd_has_every_edge_at_the_trace_times(sim):
    timescale, names, changes = parse_vcd(schedule_vcd(sim))
    assert timescale == "1 fs"
    spec = sim.spec
    unrolled = spec.architecture == "unrolled"
    slots = ((spec.steps if unrolled else spec.in_flight)
             if spec.pipelining == "pipelined" else 1)
    want_names = {f"bank{k}" for k in range(spec.steps if unrolled else spec.banks)}
    want_names |= {f"element{s}" for s in range(spec.steps if unrolled else slots)}
    want_names |= {"readout"}
    if spec.architecture == "relaxnet":
        want_names |= {f"switch{s}" for s in range(slots)}
    if spec.architecture == "reprogram":
        want_names |= {"programmer"}
    assert set(names) == want_names
    for name, (kind, size) in names.items():
        if name.startswith("switch"):
            assert kind == "integer" and 2 ** size >= spec.banks
        else:
            assert (kind, size) == ("wire", 1)
    expected = expected_waveform(sim)
    for name in names:
        got = edges(changes[name])
        if name.startswith("switch"):
            assert got == expected.get(name, [(0, "x")]), name
        else:
            assert got == expected.get(name, [(0, 0)]), name
            assert got[0][0] == 0  # a level from the start


def test_vcd_switch_changes_at_a_taken_over_command():
    spec, n = MACHINES["pipelined-clock-taken-over"]
    sim = simulate(spec, n=n, record=True)
    _, _, changes = parse_vcd(schedule_vcd(sim))
    taken = [c for c in commands(sim) if c.kind == "switch" and c.taken_over]
    assert taken
    for c in taken:  # the switch is on the new target from the command that took over
        after = [v for t, v in edges(changes[c.target]) if t == ticks(c.end_s)]
        nxt = next(d for d in commands(sim) if d.target == c.target and d.time_s == c.end_s)
        if nxt.bank != c.bank:
            assert after == [nxt.bank]


def test_vcd_ends_at_the_end_of_the_simulation(sim):
    text = schedule_vcd(sim)
    last = max(int(t) for t in re.findall(r"^#(\d+)$", text, re.M))
    assert last == ticks(sim.end)


def test_ticks_round_to_the_nearest_femtosecond():
    assert ticks(0.0) == 0 and ticks(1e-11) == 10_000 and ticks(5.526e-11) == 55_260
    assert ticks(1.1003499999e-11) == 11_003 and ticks(1.10035000001e-11) == 11_004
    assert ticks(2e-6) == 2_000_000_000


# -- the command line -------------------------------------------------------------------------

def _main(argv):
    from relaxsim.cli.app import main

    return main(argv)


@pytest.mark.parametrize("suffix", ["csv", "json", "vcd"])
def test_timing_command_writes_the_schedule(tmp_path, capsys, suffix):
    path = tmp_path / f"schedule.{suffix}"
    assert _main(["timing", "--set", "hardware.clock=30 ps", "--inferences", "2",
                  "--schedule", str(path)]) == 0
    capsys.readouterr()
    hw = build_hardware(relaxsim.load_config(overrides={"hardware.clock": "30 ps"}).hardware)
    sim = hw.simulate(resolve("cyclic", 2, 4), 2, n=2, record=True)
    assert path.read_text() == schedule_text(sim, path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def test_timing_command_schedule_of_a_pipelined_stream(tmp_path, capsys):
    path = tmp_path / "schedule.json"
    overrides = {"hardware.pipelining": "pipelined", "hardware.in_flight": "2"}
    argv = ["timing", "--schedule", str(path)]
    for key, value in overrides.items():
        argv += ["--set", f"{key}={value}"]
    assert _main(argv) == 0
    capsys.readouterr()
    data = json.loads(path.read_text())
    assert data["machine"]["inferences"] == 5  # 2 x in_flight + 1, as --trace
    assert data["machine"]["pipelining"] == "pipelined"
    assert {c["slot"] for c in data["commands"] if c["kind"] == "switch"} == {0, 1}


@pytest.mark.parametrize("name, shown", [("schedule.txt", ".txt"), ("schedule", "(no suffix)")])
def test_an_unknown_suffix_is_one_line(tmp_path, capsys, name, shown):
    path = tmp_path / name
    assert _main(["timing", "--schedule", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [f"relaxsim: error: --schedule {str(path)!r}: unknown format "
                                f"{shown}; use .csv, .json, .vcd"]
    assert list(tmp_path.iterdir()) == []


def test_the_same_file_as_another_output_is_refused(tmp_path, capsys):
    path = tmp_path / "out.csv"
    assert _main(["timing", "--trace", str(path), "--schedule", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [f"relaxsim: error: --schedule {str(path)!r}: the same file as "
                                "--trace; give each output its own file"]
    assert list(tmp_path.iterdir()) == []


def test_a_missing_directory_is_refused(tmp_path, capsys):
    path = tmp_path / "nowhere" / "s.vcd"
    assert _main(["timing", "--schedule", str(path)]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "--schedule" in err and "does not exist" in err


def test_schedule_format_and_an_untraced_simulation():
    assert [schedule_format(f"a.{s}") for s in ("csv", "JSON", "vcd")] == ["csv", "json", "vcd"]
    with pytest.raises(RelaxsimError, match="--schedule 'a.png': unknown format .png"):
        schedule_format("a.png")
    with pytest.raises(RelaxsimError, match="record=True"):
        commands(simulate(machine("cyclic", 2, 4), n=1))
