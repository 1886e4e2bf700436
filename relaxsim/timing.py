"""Timing co-simulation in SimPy: switches, banks, active elements and readout as processes.

One inference walks the schedule: at each step the signal propagates through its bank (``T_MM``,
the bank held as a resource), then the switch of its path reconfigures if the next step uses another
bank while the active element settles (``T_state``), and the next step begins: as soon as both have
settled (``clock = "auto"``) or at the next clock tick. A clock shorter than the settling leaves the
switch partly on the old bank and the element partly in its old state: the *gap* between the switch
command and the signal's arrival, and the element's *dwell*, come out of the simulated event times
and give the kernels their per-step coupling (every bank's share from the switch's state at the
signal's gap, ``rho = carry_over(dwell)``).

Several inferences may be in flight (``pipelining = "pipelined"``): in ReLaX-Net (and the
reprogrammed bank) each holds one of the ``in_flight`` element sets (its state) and the switch in
front of it for its whole walk; the unrolled DNN has an element layer per step, and an inference
holds layer ``t`` from the moment its signal enters bank ``t``, so up to ``L_T`` inferences are in
flight, one per layer. A bank serves one inference at a time, so contention and stalls come out of
the simulation. Throughput and utilisation are measured over whole periods of the periodic steady
state of a stream, before the stream drains.

One rule frees an element, for every architecture and clock: an inference gives an element up once
its state has been read (by the next step's bank, or by the readout) *and* the element has settled
from the inference's last step on it. An inference is in the system from its admission until it
has freed its last element (:attr:`Inference.freed`; its *residence*); with that, Little's law
``L = lambda W`` holds over the steady state for every architecture and clock
(:meth:`Simulation.littles_law`).

A fixed clock may tick before the devices have settled. A switch commanded again before it has
settled turns for the new command at once (the new command takes over: the switch never queues
old commands), so a step's switch starts turning when the step is commanded, before its signal
arrives; its leak counts from then, as from the old bank (the first-order reading). An inference
keeps its active element until the element has settled from its every step, even when the
readout came at a tick before that.

Architectures compared: ``relaxnet`` (L_W banks, switched), ``reprogram`` (one bank reprogrammed
before every step, ``T_program`` instead of the switch: the programmer takes the bank and keeps it
until the step's signal has passed; an inference that finds it holding its step's weights, or the
first inference at step 0, needs no programming) and ``unrolled`` (L_T physical banks and L_T
element layers, a DNN, nothing to switch or program).

``Simulation.events`` counts the SimPy events processed (timeouts, requests, process steps).
With ``record=True`` the processes also write ``Simulation.trace``, one :class:`TraceEvent` per
event in the order SimPy processed them (:func:`trace_csv`, :func:`busy_intervals`); recording is
off by default, and then costs one test of a flag per event.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import simpy

from relaxsim.errors import ConfigError, RelaxsimError

ARCHITECTURES = ("relaxnet", "reprogram", "unrolled")
# The model's modes; the config offers the same (relaxsim.config.PIPELINING, checked equal by the
# tests): the timing model imports nothing that could reach the kernels.
PIPELINING = ("sequential", "pipelined")
TICK_SLACK = 1e-9  # relative: a time within this share of a period of a tick is on the tick


@dataclass(frozen=True)
class TimingSpec:
    """Every time the model needs, in seconds, and the schedule it runs."""

    schedule: tuple[int, ...]       # bank of each step
    banks: int
    t_mm: float                     # propagation through a bank
    t_switch: float                 # switch settling after a command
    t_state: float                  # active element settling
    t_program: float                # programming one bank (reprogram architecture, training)
    t_readout: float                # readout after the last step
    clock: float | None             # None: auto
    pipelining: str = "sequential"
    in_flight: int = 1              # inferences in flight when pipelined
    architecture: str = "relaxnet"

    def __post_init__(self):
        def bad(name, requirement, got):
            raise ConfigError(f"TimingSpec.{name}", requirement, repr(got))
        for name in ("t_mm", "t_switch", "t_state", "t_program", "t_readout"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0 <= value < math.inf):
                bad(name, "must be a finite time >= 0 in seconds", value)
        if self.clock is not None and not (isinstance(self.clock, (int, float))
                                           and 0 < self.clock < math.inf):
            bad("clock", "must be a finite period > 0 in seconds, or None (auto)", self.clock)
        if self.pipelining not in PIPELINING:
            bad("pipelining", f"must be one of {', '.join(PIPELINING)}", self.pipelining)
        if self.architecture not in ARCHITECTURES:
            bad("architecture", f"must be one of {', '.join(ARCHITECTURES)}", self.architecture)
        if self.in_flight < 1:
            bad("in_flight", "must be >= 1", self.in_flight)
        if self.banks < 1 or not self.schedule:
            bad("banks" if self.banks < 1 else "schedule", "must be >= 1 bank and step",
                self.banks if self.banks < 1 else self.schedule)
        if self.architecture == "relaxnet" and not all(0 <= k < self.banks
                                                       for k in self.schedule):
            bad("schedule", f"must use banks 0..{self.banks - 1}", self.schedule)

    @property
    def steps(self) -> int:
        return len(self.schedule)


@dataclass
class Inference:
    """Event times of one inference (seconds)."""

    index: int
    slot: int = -1
    admitted: float = 0.0
    arrive: list[float] = field(default_factory=list)   # signal enters the bank of step t
    leave: list[float] = field(default_factory=list)    # signal leaves it
    command: list[float] = field(default_factory=list)  # switch turns for step t from (nan: none)
    read: float = 0.0                                   # readout samples the final state
    done: float = 0.0                                   # the readout has ended
    freed: float = 0.0                                  # its last element given up

    @property
    def residence(self) -> float:
        """Time in the system: admission until the last element it held is free."""
        return self.freed - self.admitted

    @property
    def latency(self) -> float:
        return self.done - self.admitted


# What each actor records, by the kind of actor (its name without the number): ``action`` takes
# these values only, and the English text of :meth:`TraceEvent.describe` follows from the fields.
_DESCRIPTIONS = {
    ("source", "admit"): "admit {inference} to element {slot}",
    ("bank", "in"): "step {step} of {inference} in",
    ("bank", "out"): "step {step} of {inference} out",
    ("switch", "command"): "to bank {bank} for {inference}",
    ("switch", "taken_over"): "taken over on the way to bank {bank}",
    ("switch", "settled"): "settled on bank {bank}",
    ("element", "settled"): "settled after step {step} of {inference}",
    ("programmer", "programmed"): "bank {bank} holds step {step} weights",
    ("readout", "read"): "{inference} read",
}
ACTIONS = {kind: tuple(a for k, a in _DESCRIPTIONS if k == kind)
           for kind in dict.fromkeys(k for k, _ in _DESCRIPTIONS)}
# the actors of the timeline, in the order of its rows
TIMELINE_KINDS = ("bank", "programmer", "switch", "element", "readout")


def actor_kind(actor: str) -> str:
    """The kind of an actor: its name without the trailing number (``bank1`` -> ``bank``)."""
    return actor.rstrip("0123456789")


class TraceEvent(NamedTuple):
    """One event of the timing model (a row of :attr:`Simulation.trace`); ``-1`` where a field
    does not apply.

    ``actor`` is ``source``, ``bank<k>``, ``switch<s>``, ``element<s>``, ``programmer`` or
    ``readout``; ``action`` one of :data:`ACTIONS` of its kind:

    - ``source`` ``admit``: inference ``inference`` takes active element ``slot``;
    - ``bank<k>`` ``in`` / ``out``: the signal of step ``step`` of ``inference`` enters / leaves
      bank ``bank`` (``= k``; ``out`` is ``T_MM`` after ``in``);
    - ``switch<s>`` ``command``: the switch starts turning to ``bank`` for ``step``;
      ``settled``: ``T_switch`` after the command it has; ``taken_over``: a new command came
      before it had settled (the turn to ``bank`` ends unfinished);
    - ``element<s>`` ``settled``: ``T_state`` after the signal of ``step`` left its bank;
    - ``programmer`` ``programmed``: ``T_program`` after it began, ``bank`` holds the weights of
      ``step`` (``inference`` is -1: a programming serves every inference at that step);
    - ``readout`` ``read``: ``T_readout`` after the readout began sampling ``inference``.

    ``slot`` is the element set (and switch) the inference holds, ``s`` of ``element<s>``; in
    the unrolled DNN ``element<t>`` is the element layer of step ``t`` and ``slot`` the place
    in flight.
    """

    time_s: float
    actor: str
    action: str
    inference: int
    step: int
    bank: int
    slot: int

    def describe(self) -> str:
        """The event in words: ``step 1 of 0 in``, ``to bank 1 for 0``, ``0 read``."""
        return _DESCRIPTIONS[actor_kind(self.actor), self.action].format(**self._asdict())


TRACE_COLUMNS = TraceEvent._fields


def trace_csv(trace: list[TraceEvent]) -> str:
    """The rows of a trace as CSV: the header :data:`TRACE_COLUMNS`
    (``time_s,actor,action,inference,step,bank,slot``), a line per row; times as
    ``repr(float)``, which reads back to the same float (the last bit kept)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(TRACE_COLUMNS)
    writer.writerows((repr(float(row.time_s)), row.actor, row.action, row.inference, row.step,
                      row.bank, row.slot) for row in trace)
    return buf.getvalue()


def require_trace(sim: "Simulation") -> None:
    """Refuse a simulation run without ``record``: it has no trace to read."""
    if not sim.trace:
        raise RelaxsimError("the simulation has no trace: run it with record=True "
                            "(relaxsim.timing.simulate, Hardware.simulate)")


def busy_intervals(sim: "Simulation") -> dict[str, list[tuple[float, float, int, str]]]:
    """Per actor (banks, programmer, switches, elements, readout, in that order, then by
    number), the intervals ``(start_s, end_s, inference, label)`` in which it was busy, read from
    the rows of ``sim.trace`` in their order.

    A bank is busy from a step's ``in`` to its ``out`` (label ``inference:step``); a switch from
    its ``command`` to the next row of that switch, ``settled`` or ``taken_over``
    (``inference>b<bank>``); an active element for ``T_state`` before ``settled``
    (``inference:step``); the readout for ``T_readout`` before ``read`` (``inference``); the
    programmer for ``T_program`` before ``programmed`` (``s<step>``, inference -1).
    """
    require_trace(sim)
    spec = sim.spec
    rows: dict[str, list] = {}
    open_bank: dict[str, TraceEvent] = {}
    open_switch: dict[str, TraceEvent] = {}
    for row in sim.trace:
        time, actor, action, i = row.time_s, row.actor, row.action, row.inference
        kind = actor_kind(actor)
        if kind == "bank":
            if action == "in":
                open_bank[actor] = row
            elif action == "out" and actor in open_bank:
                start = open_bank.pop(actor)
                rows.setdefault(actor, []).append(
                    (start.time_s, time, start.inference, f"{start.inference}:{start.step}"))
        elif kind == "switch":
            if action == "command":
                open_switch[actor] = row
            elif actor in open_switch:
                start = open_switch.pop(actor)
                rows.setdefault(actor, []).append(
                    (start.time_s, time, start.inference, f"{start.inference}>b{start.bank}"))
        elif kind == "element" and action == "settled":
            rows.setdefault(actor, []).append((time - spec.t_state, time, i, f"{i}:{row.step}"))
        elif kind == "readout" and action == "read":
            rows.setdefault(actor, []).append((time - spec.t_readout, time, i, str(i)))
        elif kind == "programmer" and action == "programmed":
            rows.setdefault(actor, []).append((time - spec.t_program, time, -1, f"s{row.step}"))

    def order(name: str):
        kind = actor_kind(name)
        digits = name[len(kind):]
        return TIMELINE_KINDS.index(kind), int(digits) if digits else 0
    return {name: rows[name] for name in sorted(rows, key=order)}


@dataclass
class Simulation:
    """What one run of the model produced; ``trace`` is empty unless it ran with ``record``."""

    spec: TimingSpec
    inferences: list[Inference]
    trace: list[TraceEvent]
    busy: dict[str, float]           # busy time of each resource
    events: int
    end: float
    # (time, busy time of each resource up to that time) at each inference's end, in the order
    # they ended; an interval under way counts up to the time, so a window gets only its own share
    completions: list[tuple[float, dict[str, float]]] = field(default_factory=list)
    # programming events of the reprogrammed bank so far, at each inference's end
    programs: list[int] = field(default_factory=list)

    def writes_per_inference(self) -> float:
        """Programming events of the reprogrammed bank per inference: over the steady-state
        window of a stream, else over the whole run (0 for the other architectures)."""
        if not self.programs:
            return 0.0
        window = self.steady_window()
        if window is None:
            return self.programs[-1] / len(self.programs)
        a, b = window
        return (self.programs[b] - self.programs[a]) / (b - a) if b > a else 0.0

    def gaps(self) -> np.ndarray:
        """Per step of the first inference: time from the switch command to the signal's arrival
        (``inf`` where the bank does not change: nothing to settle)."""
        inf = self.inferences[0]
        return np.array([np.inf if np.isnan(c) else a - c
                         for a, c in zip(inf.arrive, inf.command)])

    def dwells(self) -> np.ndarray:
        """Per step of the first inference: time the active element had to settle after the
        signal left the bank of step t, until its state was read (by the next step, or by the
        readout after the last)."""
        inf = self.inferences[0]
        reads = inf.arrive[1:] + [inf.read]
        return np.array([r - left for r, left in zip(reads, inf.leave)])

    def latency(self) -> float:
        return self.inferences[0].latency

    def busy_intervals(self) -> dict[str, list[tuple[float, float, int, str]]]:
        """The busy intervals of every actor, from the trace (:func:`busy_intervals`)."""
        return busy_intervals(self)

    def steady_window(self) -> tuple[int, int] | None:
        """Indices ``(a, b)`` into :attr:`completions` spanning one period of the periodic steady
        state of a stream (``None`` for a single inference; the second half of the stream when
        it never became periodic, see :attr:`periodic`).

        Only completions up to the last admission count: after it no inference replaces the
        ones that end, the pipeline drains and the intervals between completions shrink.
        """
        return self._window()[:2] if len(self.completions) > 1 else None

    @property
    def periodic(self) -> bool:
        """Whether the stream reached a periodic steady state (a single inference: trivially)."""
        return len(self.completions) < 2 or self._window()[2]

    def _window(self) -> tuple[int, int, bool]:
        last_admitted = max(inf.admitted for inf in self.inferences)
        times = [t for t, _ in self.completions]
        m = int(np.searchsorted(times, last_admitted, side="right"))
        period = steady_period(np.diff(times[:m])) if m > 3 else None
        if period is None:
            m = max(m, 2)
            a = (m - 1) // 2
            while a > 0 and times[a] == times[m - 1]:  # simultaneous completions: a longer span
                a -= 1
            return a, m - 1, False
        return m - 1 - period, m - 1, True

    def period(self) -> float:
        """Seconds per inference in the periodic steady state of the stream: ``1 / throughput``
        (a single inference: its latency)."""
        throughput = self.throughput()
        return 1.0 / throughput if throughput > 0 else math.inf

    def steady_latency(self) -> float:
        """Mean latency of the inferences that ended in the steady-state window of a stream
        (a single inference: its latency)."""
        window = self.steady_window()
        if window is None:
            return self.latency()
        t0, t1 = self.completions[window[0]][0], self.completions[window[1]][0]
        ended = [inf.latency for inf in self.inferences if t0 < inf.done <= t1]
        return sum(ended) / len(ended) if ended else self.latency()

    def throughput(self) -> float:
        """Inferences per second in the periodic steady state of the stream."""
        window = self.steady_window()
        if window is None:
            latency = self.inferences[0].latency
            return 1.0 / latency if latency > 0 else math.inf  # T_MM = 0 and instant devices
        a, b = window
        span = self.completions[b][0] - self.completions[a][0]
        return (b - a) / span if span > 0 else math.inf

    def utilisation(self) -> dict[str, float]:
        """Share of the time each resource is busy: over the steady-state window of a stream,
        else over the whole run."""
        window = self.steady_window()
        if window is None or self.completions[window[0]][0] == self.completions[window[1]][0]:
            return {name: busy / self.end if self.end > 0 else 0.0
                    for name, busy in self.busy.items()}
        (t0, busy0), (t1, busy1) = self.completions[window[0]], self.completions[window[1]]
        return {name: (busy1[name] - busy0[name]) / (t1 - t0) for name in self.busy}

    def residence(self) -> float:
        """Mean residence (admission to the last element freed, :attr:`Inference.residence`)
        of the inferences that ended in the steady-state window (a single inference: its
        own)."""
        window = self.steady_window()
        if window is None:
            return self.inferences[0].residence
        t0, t1 = self.completions[window[0]][0], self.completions[window[1]][0]
        ended = [inf.residence for inf in self.inferences if t0 < inf.done <= t1]
        return sum(ended) / len(ended) if ended else self.inferences[0].residence

    def in_system(self) -> float:
        """Time-average number of inferences in the system (admitted, an element not yet
        freed) over the steady-state window: ``integral N(t) dt / span`` (a single inference:
        1)."""
        window = self.steady_window()
        if window is None:
            return 1.0
        t0, t1 = self.completions[window[0]][0], self.completions[window[1]][0]
        if t1 <= t0:
            return float(len(self.inferences))
        held = sum(max(0.0, min(inf.freed, t1) - max(inf.admitted, t0))
                   for inf in self.inferences)
        return held / (t1 - t0)

    def littles_law(self) -> tuple[float, float, float]:
        """``(L, lambda, W)`` over the steady-state window: the mean number in the system
        (:meth:`in_system`), the throughput and the mean residence (:meth:`residence`); in a
        periodic steady state ``L = lambda W`` (to rounding)."""
        return self.in_system(), self.throughput(), self.residence()


def steady_period(intervals: np.ndarray, rtol: float = 1e-9) -> int | None:
    """Smallest p such that the intervals repeat with period p over the last half of them, and
    over at least three periods (``None`` if there is no such p)."""
    intervals = np.asarray(intervals, dtype=np.float64)
    n = len(intervals)
    atol = rtol * float(np.mean(np.abs(intervals))) if n else 0.0  # simultaneous completions
    for p in range(1, n // 3 + 1):
        tail = intervals[-max(3 * p, n // 2):]
        if np.allclose(tail[p:], tail[:-p], rtol=rtol, atol=atol):
            return p
    return None


class Environment(simpy.Environment):
    """A SimPy environment that counts the events it processes (for the benchmark)."""

    def __init__(self):
        super().__init__()
        self.processed = 0

    def step(self) -> None:
        self.processed += 1
        super().step()


class Model:
    """The SimPy model of one machine running ``spec``: the source, every inference, switch,
    active element, programmer, bank and readout are processes named after the actor; banks,
    switches and the readout port are resources one inference at a time may hold."""

    def __init__(self, spec: TimingSpec, record: bool = False):
        self.spec = spec
        self.env = Environment()
        self.unrolled = unrolled = spec.architecture == "unrolled"
        n_banks = spec.steps if unrolled else spec.banks
        self.banks = [simpy.Resource(self.env, capacity=1) for _ in range(n_banks)]
        # places in flight: the element sets of ReLaX-Net, one per element layer unrolled
        pipelined = spec.pipelining == "pipelined"
        self.slots = slots = (spec.steps if unrolled else spec.in_flight) if pipelined else 1
        self.active = simpy.Store(self.env, capacity=slots)
        self.active.items.extend(range(slots))
        # the elements: a set per slot, or (unrolled) a layer per step, each held by one
        # inference at a time (the unrolled layers as resources: the sets go with the slot)
        n_elements = spec.steps if unrolled else slots
        self.layers = ([simpy.Resource(self.env, capacity=1) for _ in range(n_elements)]
                       if unrolled else [])
        self.switches = ([] if unrolled else
                         [simpy.Resource(self.env, capacity=1) for _ in range(slots)])
        self.readout_port = simpy.Resource(self.env, capacity=1)
        self.record = record
        self.trace: list[TraceEvent] = []
        self.bank_names = [f"bank{k}" for k in range(n_banks)]
        self.switch_names = [f"switch{s}" for s in range(len(self.switches))]
        self.element_names = [f"element{s}" for s in range(n_elements)]
        self.busy: dict[str, float] = {name: 0.0 for name in self.bank_names}
        if arch_switches(spec.architecture):
            self.busy.update({name: 0.0 for name in self.switch_names})
        self.busy.update({"readout": 0.0})
        if spec.architecture == "reprogram":
            self.busy["programmer"] = 0.0
        arch = spec.architecture
        # the physical bank of each step, and whether the switch must move before it
        self.step_bank = [{"unrolled": t, "reprogram": 0}.get(arch, spec.schedule[t])
                          for t in range(spec.steps)]
        self.changes = [t > 0 and arch == "relaxnet" and spec.schedule[t] != spec.schedule[t - 1]
                        for t in range(spec.steps)]
        # reprogram: the weights (the ReLaX-Net bank of the schedule) the single bank holds; it is
        # rewritten only when a step needs other weights (a blocked schedule keeps them)
        self.loaded = spec.schedule[0]
        self.busy_since: dict[str, float] = {}  # resources busy now, since when
        # per element, its latest settling: the element is free once that has ended
        self.settling: list[simpy.Process | None] = [None] * n_elements
        self.turning: list[simpy.Process | None] = [None] * slots  # per switch, its latest turn
        self.held_layer: dict[tuple[int, int], object] = {}  # unrolled: (inference, t) -> request
        self.completions: list[tuple[float, dict[str, float]]] = []
        self.programs = 0  # programming events so far
        self.programs_at: list[int] = []  # ... at each completion

    def occupy(self, name: str) -> None:
        """The resource ``name`` is busy from now."""
        self.busy_since[name] = self.env.now

    def vacate(self, name: str) -> None:
        """The resource ``name`` is free from now. Its busy time counts as ``now - since``, as
        :meth:`busy_until_now` counts it, so it never decreases between two readings."""
        self.busy[name] += self.env.now - self.busy_since.pop(name)

    def busy_until_now(self) -> dict[str, float]:
        """Busy time of each resource up to now, an interval under way up to now."""
        now, busy = self.env.now, dict(self.busy)
        for name, since in self.busy_since.items():
            busy[name] += now - since
        return busy

    def note(self, actor: str, action: str, inference: int = -1, step: int = -1,
             bank: int = -1, slot: int = -1) -> None:
        """One trace row at the time now (:class:`TraceEvent`); called only when recording."""
        self.trace.append(TraceEvent(float(self.env.now), actor, action, inference, step, bank,
                                     slot))

    # -- the actors --------------------------------------------------------------------------

    def source(self, n: int, out: list[Inference], until_steady: bool = False):
        """Admit ``n`` inferences, each as soon as an active element is free; with
        ``until_steady``, stop early once the completions so far show a periodic steady state
        (checked at admissions growing by half each time)."""
        # sequentially the stream is periodic from its second inference: a shorter first check
        check = 8 if self.spec.pipelining == "sequential" else max(16, 4 * self.slots)
        for i in range(n):
            slot = yield self.active.get()
            if until_steady and i >= check:
                check = i + i // 2
                times = [t for t, _ in self.completions]
                m = int(np.searchsorted(times, out[-1].admitted, side="right"))
                if m > 3 and steady_period(np.diff(times[:m])) is not None:
                    return
            inf = Inference(index=i, slot=slot, admitted=self.env.now)
            out.append(inf)
            if self.record:
                self.note("source", "admit", i, slot=slot)
            self.env.process(self.inference(inf))

    def inference(self, inf: Inference):
        spec = self.spec
        for t in range(spec.steps):
            held = None  # reprogram: the bank, taken and programmed while the element settled
            if t > 0:
                held = yield from self.between_steps(inf, t, self.step_bank[t])
            else:
                inf.command.append(math.nan)
            yield from self.bank(inf, t, self.step_bank[t], held)
        yield from self.last_settle(inf)
        yield from self.readout(inf)
        inf.done = self.env.now
        self.completions.append((inf.done, self.busy_until_now()))
        self.programs_at.append(self.programs)
        # read by the readout: free once settled (a fixed clock may have read it before)
        yield from self.free_element(inf, spec.steps - 1)
        inf.freed = self.env.now
        self.active.put(inf.slot)  # never waits: there are as many places as slots

    def element(self, inf: Inference, t: int) -> int:
        """The element holding ``inf``'s state after step ``t``: its set, or layer ``t``."""
        return t if self.unrolled else inf.slot

    def free_element(self, inf: Inference, t: int):
        """``inf``'s state after step ``t`` has been read: its element is free once it has
        settled (the one rule of every architecture and clock)."""
        settling = self.settling[self.element(inf, t)]
        if settling is not None and settling.is_alive:
            yield settling
        if self.unrolled:
            self.layers[t].release(self.held_layer.pop((inf.index, t)))

    def free_layer(self, inf: Inference, t: int):
        """Unrolled: layer ``t`` of ``inf``, read now by the next step, is freed once settled."""
        yield from self.free_element(inf, t)

    def between_steps(self, inf: Inference, t: int, bank: int):
        """Switch and active element settle in parallel; the next step starts when both have
        (auto clock), or at the next clock tick. Reprogrammed architecture: the programmer takes
        the bank and writes the step's weights meanwhile; no clock tick hurries it, and it hands
        the bank, still held, to the step (returned)."""
        spec = self.spec
        reprogram = spec.architecture == "reprogram"
        auto = spec.clock is None
        tick = None
        if not auto and not reprogram:  # the tick is scheduled before the settling starts
            tick = self.next_tick(inf.arrive[t - 1])
        settling = [self.settle(inf, t - 1)]
        inf.command.append(math.nan)  # the switch's turn sets it, when it starts
        if self.changes[t]:
            turning = self.turning[inf.slot]
            if turning is not None and turning.is_alive:  # still settling: the command takes over
                turning.interrupt()
            turning = self.turning[inf.slot] = self.env.process(self.switch(inf, t, bank))
            settling.append(turning)
        held = None
        if reprogram:
            held = self.banks[0].request()
            settling.append(self.env.process(self.programmer(t, held)))
        if auto:
            yield self.env.all_of(settling)
        else:
            if reprogram:
                yield settling[-1]
                tick = self.next_tick(inf.arrive[t - 1])
            if tick is not None:
                yield tick
        return held

    def last_settle(self, inf: Inference):
        """After the last step the element settles (or the clock ticks) before the readout."""
        if self.spec.clock is None:
            yield self.settle(inf, self.spec.steps - 1)
        else:  # the readout at the tick; the element goes on settling (and stays held)
            tick = self.next_tick(inf.arrive[-1])
            self.settle(inf, self.spec.steps - 1)
            if tick is not None:
                yield tick

    def settle(self, inf: Inference, t: int) -> simpy.Process:
        """Start the element of ``inf`` settling after step ``t``; it is free again once its
        latest settling (which, all lasting ``T_state``, ends last) has ended."""
        e = self.element(inf, t)
        self.settling[e] = self.env.process(self.active_element(inf, t))
        return self.settling[e]

    def active_element(self, inf: Inference, t: int):
        """The element of ``inf`` settles for ``T_state`` after the signal left step ``t``."""
        yield self.env.timeout(self.spec.t_state)
        if self.record:
            self.note(self.element_names[self.element(inf, t)], "settled", inf.index, t,
                      slot=inf.slot)

    def switch(self, inf: Inference, t: int, bank: int):
        """The switch in front of ``inf``'s element turns to ``bank`` for step ``t`` and settles,
        unless a new command (a fixed clock faster than the switch) takes over before: it is
        interrupted then, and gives the switch up to the new command at once."""
        name = self.switch_names[inf.slot]
        with self.switches[inf.slot].request() as req:
            yield req  # free: the turn before has settled or has just been taken over
            inf.command[t] = self.env.now
            if self.record:
                self.note(name, "command", inf.index, t, bank, inf.slot)
            self.occupy(name)
            try:
                yield self.env.timeout(self.spec.t_switch)
            except simpy.Interrupt:
                self.vacate(name)
                if self.record:
                    self.note(name, "taken_over", inf.index, t, bank, inf.slot)
            else:
                self.vacate(name)
                if self.record:
                    self.note(name, "settled", inf.index, t, bank, inf.slot)

    def programmer(self, t: int, req):
        """Take the single bank (another inference may be using it) and program it for step
        ``t`` when it holds other weights; the bank stays held for the step: nobody may use or
        reprogram it in between."""
        yield req
        if self.loaded != self.spec.schedule[t]:
            self.occupy("programmer")
            yield self.env.timeout(self.spec.t_program)
            self.programmed(t)

    def programmed(self, t: int) -> None:
        self.loaded = self.spec.schedule[t]
        self.programs += 1
        self.vacate("programmer")
        if self.record:
            self.note("programmer", "programmed", step=t, bank=0)

    def bank(self, inf: Inference, t: int, bank: int, held=None):
        resource, name = self.banks[bank], self.bank_names[bank]
        if self.unrolled:  # the layer the bank feeds must be free before the signal enters
            layer = self.layers[t].request()
            yield layer
            self.held_layer[inf.index, t] = layer
        req = held
        if req is None:
            req = resource.request()
            yield req
            if self.spec.architecture == "reprogram" and self.loaded != self.spec.schedule[t]:
                # the first step of a later inference: the bank holds the last step's weights
                self.occupy("programmer")
                yield self.env.timeout(self.spec.t_program)
                self.programmed(t)
        if t > 0 and self.spec.clock is not None:
            tick = self.next_tick(inf.arrive[t - 1])
            if tick is not None:
                yield tick
        inf.arrive.append(self.env.now)
        if self.unrolled and t > 0:  # the state of layer t - 1 is read now
            self.env.process(self.free_layer(inf, t - 1))
        if self.record:
            self.note(name, "in", inf.index, t, bank, inf.slot)
        self.occupy(name)
        yield self.env.timeout(self.spec.t_mm)
        inf.leave.append(self.env.now)
        self.vacate(name)
        if self.record:
            self.note(name, "out", inf.index, t, bank, inf.slot)
        resource.release(req)

    def next_tick(self, last: float) -> simpy.Timeout | None:
        """The wait for the first clock tick (``last + k * clock``, k >= 1) not before now (``None``
        when that is now): a step that stalled on a busy bank waits for the next tick."""
        period = self.spec.clock
        k = max(1, math.ceil((self.env.now - last) / period - TICK_SLACK))
        tick = last + k * period
        return self.env.timeout(tick - self.env.now) if tick > self.env.now else None

    def readout(self, inf: Inference):
        with self.readout_port.request() as req:
            yield req
            inf.read = self.env.now
            self.occupy("readout")
            yield self.env.timeout(self.spec.t_readout)
            self.vacate("readout")
            if self.record:
                self.note("readout", "read", inf.index, slot=inf.slot)

    def run(self, n: int, until_steady: bool = False) -> Simulation:
        inferences: list[Inference] = []
        self.env.process(self.source(n, inferences, until_steady))
        self.env.run()
        return Simulation(self.spec, inferences, self.trace, self.busy, self.env.processed,
                          self.env.now, self.completions, self.programs_at)


def arch_switches(architecture: str) -> bool:
    """Whether ``architecture`` has switches between banks (ReLaX-Net only)."""
    return architecture == "relaxnet"


STREAM_MAX = 1024  # inferences: the longest stream simulate() runs to reach a steady state


def simulate(spec: TimingSpec, n: int | None = None, record: bool = False,
             stream: bool | None = None) -> Simulation:
    """Run ``n`` inferences, or a stream that stops once it has reached its periodic steady
    state (at most ``STREAM_MAX``). Default: one inference when sequential, a stream when
    pipelined; ``stream=True`` runs a stream in either mode.

    The first inference of a stream is the inference alone (nothing runs before it), so its
    latency and its coupling are those of one inference; the stream's steady state gives the
    period, hence throughput and utilisation. Sequentially, the next inference is admitted once
    the active element is free: with a fixed clock that may be after the readout (the element
    still settles), so the period can be longer than the latency. ``record``: keep the event
    trace (:attr:`Simulation.trace`); the events and times are the same either way."""
    if n is not None:
        return Model(spec, record=record).run(n)
    if stream is None:
        stream = spec.pipelining == "pipelined"
    if not stream:
        return Model(spec, record=record).run(1)
    return Model(spec, record=record).run(STREAM_MAX, until_steady=True)


def closed_form_step(spec: TimingSpec) -> float:
    """Per-step latency of one inference alone, auto clock: ``T_MM + max(T_switch, T_state)`` for
    ReLaX-Net (when every step changes bank), ``T_MM + max(T_program, T_state)`` reprogrammed
    (when every step needs other weights: the bank is rewritten only then), ``T_MM + T_state``
    unrolled."""
    other = {"relaxnet": spec.t_switch, "reprogram": spec.t_program, "unrolled": 0.0}
    return spec.t_mm + max(other[spec.architecture], spec.t_state)
