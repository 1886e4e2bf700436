"""The control sequence of a simulated machine, for a lab sequencer: the commands read from the
event trace of the timing model (:attr:`relaxsim.timing.Simulation.trace`), as CSV, JSON or a VCD
waveform.

A *command* is one of

- ``switch``: switch ``s`` starts turning to ``bank`` for ``step`` of ``inference`` at
  ``time_s``; ``end_s`` is when it settled, or when a new command took it over before it had
  (``taken_over``: a fixed clock faster than the switch);
- ``program``: the programmer writes the weights of ``step`` into ``bank`` from ``time_s`` to
  ``end_s`` (the trace records the end; the start is ``end_s - T_program``, taken as the time of
  the trace's event it falls on to rounding: :func:`program_start`);
- ``readout``: the readout samples ``inference`` from ``time_s`` to ``end_s``.

Times are the model's, in seconds, to the last bit of the float (the readout's start is the
inference's :attr:`~relaxsim.timing.Inference.read`). The commands are in the order of their
start times (the order the model processed them where two start together).

The VCD file has a signal per switch (its target bank as an integer, ``x`` until its first
command, changing at each command), per bank (1 while a signal passes), per active element (1
while it settles), the programmer (1 while it writes) and the readout (1 while it samples); its
timescale is :data:`VCD_TIMESCALE` and every time is rounded to the nearest femtosecond (half to
even, from the float's exact value: :func:`ticks`). A signal is 1 over the union of its busy
intervals, each rounded to ``[ticks(start), ticks(end))``; one shorter than half a femtosecond
vanishes.
"""

from __future__ import annotations

import bisect
import csv
import io
import json
import math
from fractions import Fraction
from typing import NamedTuple

from relaxsim.errors import RelaxsimError
from relaxsim.io import suffix_format, write_text
from relaxsim.timing import Simulation, actor_kind, require_trace

SCHEDULE_FORMATS = ("csv", "json", "vcd")
COMMAND_KINDS = ("switch", "program", "readout")
VCD_TIMESCALE = "1 fs"
TICKS_PER_SECOND = 10 ** 15  # the VCD's time unit: one femtosecond


class Command(NamedTuple):
    """One command of the control sequence; ``-1`` where a field does not apply (a programming
    serves every inference, a readout has no step or bank; ``taken_over`` is 0 or 1 for a
    switch)."""

    time_s: float
    end_s: float
    kind: str          # one of COMMAND_KINDS
    target: str        # the actor commanded: switch<s>, programmer, readout
    inference: int
    step: int
    bank: int
    slot: int
    taken_over: int

    def as_dict(self) -> dict:
        """The command for JSON: the fields that apply (``taken_over`` a bool, switches only)."""
        out: dict = {"time_s": self.time_s, "end_s": self.end_s, "kind": self.kind,
                     "target": self.target}
        for name in ("inference", "step", "bank", "slot"):
            value = getattr(self, name)
            if value != -1:
                out[name] = value
        if self.kind == "switch":
            out["taken_over"] = bool(self.taken_over)
        return out


COMMAND_COLUMNS = Command._fields


def schedule_format(path) -> str:
    """The format of ``--schedule path`` from its suffix, one of :data:`SCHEDULE_FORMATS`."""
    try:
        return suffix_format(path, SCHEDULE_FORMATS)
    except RelaxsimError as exc:
        raise RelaxsimError(f"--schedule {exc}") from None


def program_start(sim: Simulation, end: float, times: list[float] | None = None) -> float:
    """The start of the programming that ended at ``end``: ``end - T_program``, or the time of
    the trace's event within two ulp of it (a programming starts when the bank is taken, at an
    event of the model: the subtraction may miss that time by the last bit). ``times``: the
    trace's times, sorted (made when not given)."""
    if times is None:
        times = sorted(row.time_s for row in sim.trace)
    begin = end - sim.spec.t_program
    slack = 2 * math.ulp(end)
    near = times[bisect.bisect_left(times, begin - slack):
                 bisect.bisect_right(times, begin + slack)]
    return min(near, key=lambda t: abs(t - begin)) if near else begin


def commands(sim: Simulation) -> list[Command]:
    """Every switch command, programming and readout of ``sim``'s trace, by start time."""
    require_trace(sim)
    spec = sim.spec
    reads = {inf.index: inf.read for inf in sim.inferences}
    times = sorted(row.time_s for row in sim.trace)
    found: list[tuple[float, int, Command]] = []
    open_switch: dict[str, tuple[int, object]] = {}
    for order, row in enumerate(sim.trace):
        kind = actor_kind(row.actor)
        if kind == "switch":
            if row.action == "command":
                open_switch[row.actor] = (order, row)
            else:  # settled or taken_over: the end of the switch's latest command
                start_order, start = open_switch.pop(row.actor)
                if (start.inference, start.step) != (row.inference, row.step):
                    raise RelaxsimError(f"{row.actor}: {row.action} at {row.time_s!r} s ends no "
                                        "command of its inference and step")
                found.append((start.time_s, start_order, Command(
                    start.time_s, row.time_s, "switch", row.actor, start.inference, start.step,
                    start.bank, start.slot, int(row.action == "taken_over"))))
        elif kind == "programmer" and row.action == "programmed":
            begin = program_start(sim, row.time_s, times)
            found.append((begin, order, Command(begin, row.time_s, "program", row.actor, -1,
                                                row.step, row.bank, -1, -1)))
        elif kind == "readout" and row.action == "read":
            begin = reads.get(row.inference, row.time_s - spec.t_readout)
            found.append((begin, order, Command(begin, row.time_s, "readout", row.actor,
                                                row.inference, -1, -1, row.slot, -1)))
    for actor, (_, start) in open_switch.items():  # a run cut short: a turn without its end
        raise RelaxsimError(f"{actor}: the command at {start.time_s!r} s has no end in the trace")
    found.sort(key=lambda item: (item[0], item[1]))
    return [command for _, _, command in found]


def machine(sim: Simulation) -> dict:
    """The machine the commands are for: its architecture, schedule and times in seconds."""
    spec = sim.spec
    return {"architecture": spec.architecture, "banks": spec.banks, "steps": spec.steps,
            "schedule": list(spec.schedule), "pipelining": spec.pipelining,
            "in_flight": spec.in_flight, "clock_s": spec.clock, "t_mm_s": spec.t_mm,
            "t_switch_s": spec.t_switch, "t_state_s": spec.t_state,
            "t_program_s": spec.t_program, "t_readout_s": spec.t_readout,
            "inferences": len(sim.inferences), "switches": len(_slots(sim, "switch")),
            "elements": len(_slots(sim, "element"))}


def schedule_csv(sim: Simulation) -> str:
    """The commands as CSV: the header :data:`COMMAND_COLUMNS`, a line per command; times as
    ``repr(float)`` (they read back to the same float)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COMMAND_COLUMNS)
    writer.writerows((repr(float(c.time_s)), repr(float(c.end_s)), *c[2:])
                     for c in commands(sim))
    return buf.getvalue()


def schedule_json(sim: Simulation) -> str:
    """The commands as JSON: ``{"time_unit": "s", "machine": ..., "commands": [...]}``."""
    return json.dumps({"time_unit": "s", "machine": machine(sim),
                       "commands": [c.as_dict() for c in commands(sim)]}, indent=2) + "\n"


# -- the waveform ----------------------------------------------------------------------------

def ticks(time_s: float) -> int:
    """``time_s`` in femtoseconds, the nearest whole one to the float's exact value (half to
    even)."""
    return round(Fraction(time_s) * TICKS_PER_SECOND)


def _slots(sim: Simulation, kind: str) -> list[str]:
    """The machine's actors of ``kind`` (``bank``, ``switch``, ``element``), by number."""
    spec = sim.spec
    unrolled = spec.architecture == "unrolled"
    slots = ((spec.steps if unrolled else spec.in_flight)
             if spec.pipelining == "pipelined" else 1)
    count = {"bank": spec.steps if unrolled else spec.banks,
             "switch": slots if spec.architecture == "relaxnet" else 0,
             "element": spec.steps if unrolled else slots}[kind]
    seen = {row.actor for row in sim.trace if actor_kind(row.actor) == kind}
    names = {f"{kind}{k}" for k in range(count)} | seen
    return sorted(names, key=lambda name: int(name[len(kind):] or 0))


def busy(sim: Simulation) -> dict[str, list[tuple[float, float]]]:
    """Per bank, element, programmer and readout, its busy intervals ``(start_s, end_s)`` in the
    order the trace ends them: a bank from ``in`` to ``out``, an element from the signal leaving
    the step's bank to ``settled``, the programmer from :func:`program_start` to ``programmed``, the
    readout from its sampling's start to ``read``."""
    require_trace(sim)
    spec = sim.spec
    by_index = {inf.index: inf for inf in sim.inferences}
    times = sorted(row.time_s for row in sim.trace)
    out: dict[str, list[tuple[float, float]]] = {}
    open_bank: dict[str, float] = {}
    for row in sim.trace:
        kind = actor_kind(row.actor)
        if kind == "bank":
            if row.action == "in":
                open_bank[row.actor] = row.time_s
            elif row.action == "out" and row.actor in open_bank:
                out.setdefault(row.actor, []).append((open_bank.pop(row.actor), row.time_s))
        elif kind == "element" and row.action == "settled":
            inf = by_index.get(row.inference)
            start = (inf.leave[row.step] if inf is not None and row.step < len(inf.leave)
                     else row.time_s - spec.t_state)
            out.setdefault(row.actor, []).append((start, row.time_s))
        elif kind == "programmer" and row.action == "programmed":
            out.setdefault(row.actor, []).append(
                (program_start(sim, row.time_s, times), row.time_s))
        elif kind == "readout" and row.action == "read":
            inf = by_index.get(row.inference)
            start = inf.read if inf is not None else row.time_s - spec.t_readout
            out.setdefault(row.actor, []).append((start, row.time_s))
    return out


def level_changes(intervals) -> list[tuple[int, int]]:
    """``(tick, level)`` at each edge of a 1/0 signal that is 1 over the union of
    ``intervals``, each rounded to ``[ticks(start), ticks(end))`` (empty ones dropped)."""
    spans = sorted((a, b) for a, b in ((ticks(s), ticks(e)) for s, e in intervals) if b > a)
    merged: list[list[int]] = []
    for a, b in spans:
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    return [edge for a, b in merged for edge in ((a, 1), (b, 0))]


def switch_changes(sim: Simulation) -> dict[str, list[tuple[int, int]]]:
    """Per switch, ``(tick, bank)`` at each command that changes its target (the last command
    of a femtosecond counts)."""
    out: dict[str, list[tuple[int, int]]] = {}
    for row in sim.trace:
        if actor_kind(row.actor) == "switch" and row.action == "command":
            changes = out.setdefault(row.actor, [])
            tick = ticks(row.time_s)
            if changes and changes[-1][0] == tick:
                changes.pop()
            if not changes or changes[-1][1] != row.bank:
                changes.append((tick, row.bank))
    return out


def schedule_vcd(sim: Simulation) -> str:
    """The machine's signals as a VCD waveform (timescale :data:`VCD_TIMESCALE`, the module
    docstring says what each signal is)."""
    try:
        from vcd import VCDWriter
    except ImportError:
        raise RelaxsimError("--schedule: a .vcd file needs pyvcd (pip install 'pyvcd>=0.4')"
                            ) from None
    require_trace(sim)
    intervals = busy(sim)
    switches = switch_changes(sim)
    levels = [*_slots(sim, "bank"), *(["programmer"] if sim.spec.architecture == "reprogram"
                                      or "programmer" in intervals else []),
              *_slots(sim, "element"), "readout"]
    widest = max([sim.spec.banks - 1, *(b for ch in switches.values() for _, b in ch), 1])
    buf = io.StringIO()
    with VCDWriter(buf, timescale=VCD_TIMESCALE, date="", version="relaxsim",
                   comment="control schedule of the timing model; times rounded to the nearest "
                           "fs") as writer:
        changes: list[tuple[int, int, object, int]] = []  # (tick, order, variable, value)
        for name in _slots(sim, "switch"):
            var = writer.register_var("relaxsim", name, "integer", size=widest.bit_length(),
                                      init="x")
            changes += [(t, len(changes), var, bank) for t, bank in switches.get(name, [])]
        for name in levels:
            var = writer.register_var("relaxsim", name, "wire", size=1, init=0)
            changes += [(t, len(changes), var, v)
                        for t, v in level_changes(intervals.get(name, []))]
        changes.sort(key=lambda change: change[:2])
        for tick, _, var, value in changes:
            writer.change(var, tick, value)
        end = ticks(sim.end)
        if end > (changes[-1][0] if changes else 0):
            writer.flush(end)  # the waveform runs to the end of the simulation
    return buf.getvalue()


WRITERS = {"csv": schedule_csv, "json": schedule_json, "vcd": schedule_vcd}


def schedule_text(sim: Simulation, path) -> str:
    """The control sequence of ``sim`` in the format of ``path``'s suffix."""
    return WRITERS[schedule_format(path)](sim)


def write_schedule(path, sim: Simulation) -> None:
    """Write the control sequence of ``sim`` to ``path`` (its format from the suffix),
    atomically."""
    write_text(path, schedule_text(sim, path))


__all__ = ["COMMAND_COLUMNS", "COMMAND_KINDS", "Command", "SCHEDULE_FORMATS", "TICKS_PER_SECOND",
           "VCD_TIMESCALE", "busy", "commands", "level_changes", "machine", "schedule_csv",
           "schedule_format", "schedule_json", "schedule_text", "schedule_vcd", "switch_changes",
           "ticks", "write_schedule"]
