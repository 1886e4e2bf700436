"""Timing co-simulation in SimPy: switches, banks, active elements and readout as processes.

One inference walks the schedule: at each step the signal propagates through its bank (``T_MM``,
the bank held as a resource), then the switch of its path reconfigures if the next step uses another
bank while the active element settles (``T_state``), and the next step begins: as soon as both have
settled (``clock = "auto"``) or at the next clock tick. A clock shorter than the settling leaves the
switch partly on the old bank and the element partly in its old state: the *gap* between the switch
command and the signal's arrival, and the element's *dwell*, come out of the simulated event times
and give the kernels their per-step coupling (``eps = leak(gap)``, ``rho = carry_over(dwell)``).

Several inferences may be in flight (``pipelining = "pipelined"``): each holds an active element
(its state) and the switch in front of it; a bank serves one inference at a time, so contention and
stalls come out of the simulation. Throughput is measured on the periodic steady state of a stream.

Architectures compared: ``relaxnet`` (L_W banks, switched), ``reprogram`` (one bank reprogrammed
before every step, ``T_program`` instead of the switch) and ``unrolled`` (L_T physical banks, a DNN,
nothing to switch or program).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import simpy

ARCHITECTURES = ("relaxnet", "reprogram", "unrolled")
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
    command: list[float] = field(default_factory=list)  # switch commanded for step t (nan: none)
    read: float = 0.0                                   # readout samples the final state
    done: float = 0.0

    @property
    def latency(self) -> float:
        return self.done - self.admitted


@dataclass
class Simulation:
    """What one run of the model produced."""

    spec: TimingSpec
    inferences: list[Inference]
    trace: list[tuple[float, str, str]]
    busy: dict[str, float]           # busy time of each resource
    events: int
    end: float

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

    def throughput(self) -> float:
        """Inferences per second in the periodic steady state of the stream."""
        done = np.array([inf.done for inf in self.inferences])
        if len(done) == 1:
            return 1.0 / self.inferences[0].latency
        intervals = np.diff(done)
        period = steady_period(intervals)
        return period / float(np.sum(intervals[-period:]))

    def utilisation(self) -> dict[str, float]:
        return {name: busy / self.end for name, busy in self.busy.items()}


def steady_period(intervals: np.ndarray, rtol: float = 1e-9) -> int:
    """Smallest p such that the last intervals repeat with period p (1 if none is found)."""
    n = len(intervals)
    for p in range(1, n // 3 + 1):
        tail = intervals[-3 * p:]
        if np.allclose(tail[:p], tail[p:2 * p], rtol=rtol, atol=0) and np.allclose(
                tail[p:2 * p], tail[2 * p:], rtol=rtol, atol=0):
            return p
    return 1


class Model:
    """The SimPy model of one machine running ``spec``."""

    def __init__(self, spec: TimingSpec, record: bool = True):
        self.spec = spec
        self.env = simpy.Environment()
        n_banks = spec.steps if spec.architecture == "unrolled" else spec.banks
        self.banks = [simpy.Resource(self.env, capacity=1) for _ in range(n_banks)]
        slots = spec.in_flight if spec.pipelining == "pipelined" else 1
        self.active = simpy.Store(self.env, capacity=slots)
        self.active.items.extend(range(slots))
        self.switches = [simpy.Resource(self.env, capacity=1) for _ in range(slots)]
        self.readout_port = simpy.Resource(self.env, capacity=1)
        self.record = record
        self.trace: list[tuple[float, str, str]] = []
        self.busy: dict[str, float] = {f"bank{k}": 0.0 for k in range(n_banks)}
        self.busy.update({f"switch{s}": 0.0 for s in range(slots)})
        self.busy.update({"readout": 0.0})
        self.events = 0

    def log(self, actor: str, action: str) -> None:
        self.events += 1
        if self.record:
            self.trace.append((self.env.now, actor, action))

    # -- the actors --------------------------------------------------------------------------

    def source(self, n: int, out: list[Inference]):
        """Admit ``n`` inferences, each as soon as an active element is free."""
        for i in range(n):
            slot = yield self.active.get()
            inf = Inference(index=i, slot=slot, admitted=self.env.now)
            out.append(inf)
            self.log("source", f"admit {i} to element {slot}")
            self.env.process(self.inference(inf))

    def inference(self, inf: Inference):
        spec = self.spec
        for t in range(spec.steps):
            bank = {"unrolled": t, "reprogram": 0}.get(spec.architecture, spec.schedule[t])
            if t > 0:
                yield from self.between_steps(inf, t, bank)
            else:
                inf.command.append(np.nan)
            yield from self.bank(inf, t, bank)
        yield from self.last_settle(inf)
        yield from self.readout(inf)
        inf.done = self.env.now
        yield self.active.put(inf.slot)

    def between_steps(self, inf: Inference, t: int, bank: int):
        """Switch and active element settle in parallel; the next step starts when both have
        (auto clock), or at the next clock tick."""
        spec = self.spec
        prev_bank = spec.schedule[t - 1]
        changes = spec.architecture == "relaxnet" and bank != prev_bank
        settling = [self.env.process(self.active_element(inf, t - 1))]
        if changes:
            inf.command.append(self.env.now)
            settling.append(self.env.process(self.switch(inf, t, bank)))
        else:
            inf.command.append(np.nan)
        if spec.architecture == "reprogram":
            settling.append(self.env.process(self.programmer(inf, t)))
        if spec.clock is None:
            yield self.env.all_of(settling)
        else:
            yield from self.next_tick(inf.arrive[t - 1])

    def last_settle(self, inf: Inference):
        """After the last step the element settles (or the clock ticks) before the readout."""
        if self.spec.clock is None:
            yield self.env.process(self.active_element(inf, self.spec.steps))
        else:
            yield from self.next_tick(inf.arrive[-1])

    def switch(self, inf: Inference, t: int, bank: int):
        with self.switches[inf.slot].request() as req:
            yield req
            self.log(f"switch{inf.slot}", f"to bank {bank} for {inf.index}")
            start = self.env.now
            yield self.env.timeout(self.spec.t_switch)
            self.busy[f"switch{inf.slot}"] += self.env.now - start
            self.log(f"switch{inf.slot}", f"settled on bank {bank}")

    def active_element(self, inf: Inference, t: int):
        yield self.env.timeout(self.spec.t_state)
        self.log(f"element{inf.slot}", f"settled after step {t} of {inf.index}")

    def programmer(self, inf: Inference, t: int):
        yield self.env.timeout(self.spec.t_program)
        self.log("programmer", f"bank 0 holds step {t} weights")

    def bank(self, inf: Inference, t: int, bank: int):
        with self.banks[bank].request() as req:
            yield req
            if t > 0 and self.spec.clock is not None:
                yield from self.next_tick(inf.arrive[t - 1])
            inf.arrive.append(self.env.now)
            self.log(f"bank{bank}", f"step {t} of {inf.index} in")
            yield self.env.timeout(self.spec.t_mm)
            inf.leave.append(self.env.now)
            self.busy[f"bank{bank}"] += self.spec.t_mm
            self.log(f"bank{bank}", f"step {t} of {inf.index} out")

    def next_tick(self, last: float):
        """Wait for the first clock tick (``last + k * clock``, k >= 1) not before now: a step that
        stalled on a busy bank waits for the next tick."""
        period = self.spec.clock
        k = max(1, math.ceil((self.env.now - last) / period - TICK_SLACK))
        tick = last + k * period
        if tick > self.env.now:
            yield self.env.timeout(tick - self.env.now)

    def readout(self, inf: Inference):
        with self.readout_port.request() as req:
            yield req
            inf.read = self.env.now
            yield self.env.timeout(self.spec.t_readout)
            self.busy["readout"] += self.spec.t_readout
            self.log("readout", f"{inf.index} read")

    def run(self, n: int) -> Simulation:
        inferences: list[Inference] = []
        self.env.process(self.source(n, inferences))
        self.env.run()
        return Simulation(self.spec, inferences, self.trace, self.busy, self.events, self.env.now)


def simulate(spec: TimingSpec, n: int | None = None, record: bool = True) -> Simulation:
    """Run ``n`` inferences (default: one when sequential, a stream long enough to reach the
    periodic steady state when pipelined)."""
    if n is None:
        n = 1 if spec.pipelining == "sequential" else max(12, 4 * spec.in_flight * spec.banks)
    return Model(spec, record=record).run(n)


def closed_form_step(spec: TimingSpec) -> float:
    """Per-step latency of one inference alone, auto clock: ``T_MM + max(T_switch, T_state)`` for
    ReLaX-Net (when every step changes bank), ``T_MM + max(T_program, T_state)`` reprogrammed,
    ``T_MM + T_state`` unrolled."""
    other = {"relaxnet": spec.t_switch, "reprogram": spec.t_program, "unrolled": 0.0}
    return spec.t_mm + max(other[spec.architecture], spec.t_state)
