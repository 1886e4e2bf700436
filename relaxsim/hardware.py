"""The machine a network runs on: devices, the step timing, and what they do to the physics.

:class:`Hardware` is built once from the ``hardware`` section of a config. It turns the devices
into what the kernels take (the per-step coupling arrays ``a, c, tr`` and mixing ``mix``, the transfer function
and its parameters, noise draws) and what training does on the slow time scale (programming the
banks into the weight elements, drift, the straight-through gradient).

Step timing, closed form (one sample in flight, DESIGN.md section 3): a step is the propagation
through a bank ``T_MM`` followed by a window ``w`` in which the switch reconfigures and the active
element settles. With ``clock = "auto"`` the window lasts until both have settled to
``settle_tolerance``; with a fixed clock period ``T_clk`` it is ``T_clk - T_MM``. Then

- on a step that changes bank, the share ``r`` of the switch's transition still to go when the
  signal passes (``exp(-w / tau_s)`` for a first-order response, ``cos^2(pi/2 (1 -
  exp(-w / tau_s)))`` for an MZI's, :meth:`Switch.remainder`), and from it and the switch
  topology and signal domain every bank's share of the step, the mixing vector ``m[t, j]``
  (:mod:`relaxsim.devices.routing`); the power still routed to the previous bank's port is
  ``eps = e_ER + (1 - 2 e_ER) r``;
- active-element carry-over ``rho = exp(-w / tau_a)``: the element relaxes for the dwell ``w`` from
  its old state ``h_t`` towards its target ``alpha h_t + f(u_t)``, so
  ``h_{t+1} = rho h_t + (1 - rho) (alpha h_t + f(u_t))``: ``a_t = rho + (1 - rho) alpha`` and
  ``c_t = 1 - rho`` (``a_t <= 1``, ``c_t >= 0`` for every ``rho, alpha`` in ``[0, 1]``; with
  ``rho = 0`` the ideal ``a_t = alpha``, ``c_t = 1``);
- transmission of the switch path on every pass, both sides (``10^(-IL/20)`` as an amplitude,
  ``10^(-IL/10)`` as a power for an incoherent machine).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from relaxsim.activations import Activation
from relaxsim.energy import Shape
from relaxsim.kernels.programming import training_pass, training_pass_par
from relaxsim.kernels.rng import add_normal, draw_key, normal, threads_pay
from relaxsim.timing import Simulation, TimingSpec, simulate

# A switch leak or an element carry-over above this share on some step is reported as a warning
# (``Hardware.settling_warnings``): the network then runs on a machine far from the one it was
# designed as, and the accuracy says more about the clock than about the architecture.
SETTLE_WARNING = 0.1
# The architectures :meth:`Hardware.figures` compares, by the names its figures use.
ARCH_NAMES = {"relaxnet": "ReLaX-Net", "rnn": "RNN (one bank)", "reprogram": "reprogrammed bank",
              "unrolled": "unrolled DNN"}


@dataclass(frozen=True)
class Coupling:
    """Everything the kernels need to know of the machine, per step."""

    a: np.ndarray      # (T,) weight of the old state h_t: rho + (1 - rho) alpha
    c: np.ndarray      # (T,) drive of the transfer function: 1 - rho
    eps: np.ndarray    # (T,) power still routed to the previous bank on a switching step
    tr: np.ndarray     # (T,) transmission of the switch path
    code: int          # transfer function kernel code
    act_params: tuple[float, float, float]
    gaps: np.ndarray | None = None  # (T,) switch command -> signal, s (inf: no switching)
    mix: np.ndarray | None = None   # (T, L_W) share of every bank in each step (None: ideal)
    router: "Router | None" = None  # turns transition remainders into mixing vectors

    @cached_property
    def switching(self) -> np.ndarray:
        """``(T,)`` True on the steps that switch bank (finite gap; none without gaps)."""
        return np.isfinite(self.gaps64)

    @cached_property
    def gaps64(self) -> np.ndarray:
        """The gaps as a contiguous float64 array (inf on the steps that do not switch)."""
        return np.ascontiguousarray(
            np.full(len(self.a), np.inf) if self.gaps is None else self.gaps, dtype=np.float64)

    @cached_property
    def switches(self) -> bool:
        """Whether any step switches bank."""
        return bool(self.switching.any())

    def summary(self) -> dict:
        """The per-step coupling as plain lists, for ``result.json`` and ``timing --json``:
        ``switching`` (whether step t changes bank), ``switch_leak`` (``eps_t``, the power
        fraction still routed to the previous bank's port on a switching step), ``mix`` (the
        share ``m[t, j]`` of every bank j in step t, :mod:`relaxsim.devices.routing`),
        ``carry_over`` (``1 - c_t``, the share
        of its old state the active element keeps), ``a`` and ``c`` as the kernels use them, and
        ``transmission`` of the switch path."""
        out = {
            "switching": [bool(x) for x in self.switching],
            "switch_leak": [float(x) for x in self.eps],
            "carry_over": [float(1.0 - x) for x in self.c],
            "a": [float(x) for x in self.a],
            "c": [float(x) for x in self.c],
            "transmission": [float(x) for x in self.tr],
        }
        if self.mix is not None:
            out["mix"] = [[float(x) for x in row] for row in self.mix]
        return out

    @classmethod
    def ideal(cls, steps: int, alpha: float, activation: Activation, dtype=np.float64):
        return cls(a=np.full(steps, alpha, dtype=dtype), c=np.ones(steps, dtype=dtype),
                   eps=np.zeros(steps, dtype=dtype), tr=np.ones(steps, dtype=dtype),
                   code=activation.code, act_params=tuple(activation.ideal))


def leak_share(row: np.ndarray, k: int) -> float:
    """Share of a step's mixing vector ``row`` that is not its selected bank ``k``'s:
    ``sum_{j != k} |m_j| / sum_j |m_j|``."""
    a = np.abs(np.asarray(row, dtype=np.float64))
    total = float(a.sum())
    return 0.0 if total == 0 else float((total - a[k]) / total)


@dataclass(frozen=True, eq=False)
class Router:
    """The switches of one machine on one schedule: each step's mixing vector over the banks
    from the share ``r`` of its switching transition still to go
    (:func:`relaxsim.devices.routing.mixing`)."""

    banks: int
    schedule: tuple
    prev: tuple
    topology: str
    mux: str
    signal: str
    power_floor: float
    amplitude_floor: float
    phases: np.ndarray | None = None

    def mix(self, r: np.ndarray) -> np.ndarray:
        """Mixing vectors for remainders ``r`` ``(T,)`` -> ``(T, L_W)``, or ``(T, W)`` ->
        ``(T, W, L_W)`` (one per sample or per draw)."""
        r = np.asarray(r, dtype=np.float64)
        r2 = np.ascontiguousarray(r.reshape(len(self.schedule), -1))
        out = self.mix_into(r2, np.empty(r2.shape + (self.banks,)))
        return out.reshape(r.shape + (self.banks,))

    def previous_port(self, r: np.ndarray) -> np.ndarray:
        """``(T,)`` share of the routing side's power still sent to the previous step's bank on
        each switching step (0 on the others; :func:`relaxsim.devices.routing.port_powers`),
        for remainders ``r`` ``(T,)``."""
        from relaxsim.devices.routing import port_powers_steps

        electrical = self.signal == "electrical"
        P = port_powers_steps(self.banks, self._k, self._p, r, self.topology,
                              self.amplitude_floor if electrical else self.power_floor,
                              electrical)
        T = len(self.schedule)
        return np.where(self._k != self._p, P[np.arange(T), self._p], 0.0)

    def mix_into(self, r: np.ndarray, out: np.ndarray) -> np.ndarray:
        """:meth:`mix` of contiguous float64 remainders ``r`` ``(T, W)`` into ``out``
        ``(T, W, L_W)`` (a training batch's work array): one compiled call."""
        from relaxsim.kernels.programming import mixing

        args = self._args
        mixing(args[0], args[1], r, *args[2:], out)
        return out

    @cached_property
    def _args(self) -> tuple:
        from relaxsim.devices.routing import mixing_args

        return mixing_args(self.banks, self._k, self._p, topology=self.topology, mux=self.mux,
                           signal=self.signal, power_floor=self.power_floor,
                           amplitude_floor=self.amplitude_floor, phases=self.phases)

    @cached_property
    def _k(self) -> np.ndarray:
        return np.array(self.schedule, dtype=np.int64)

    @cached_property
    def _p(self) -> np.ndarray:
        return np.array(self.prev, dtype=np.int64)


@dataclass
class Programmed:
    """Bank weights as the weight elements hold them after one programming event.

    Each weight's drift exponent is fixed at programming by ``nu_key`` and drawn from it only
    when drift is first applied (:meth:`Hardware.drift_factor`): training that reprograms
    before the drift's onset never draws them."""

    W: np.ndarray        # programmed weights (clipped, quantised, with programming noise)
    mask: np.ndarray     # 1 where the target was inside the element's range (gradient passes)
    nu_key: int | None = None  # key of the per-weight drift exponents (None: no spread)
    nu_draws: np.ndarray | None = None  # the exponents, once drawn
    # statistics = "pcm": the devices' conductances (2,) + W.shape, relative to G_max
    devices: np.ndarray | None = None
    # model = "mesh": the target's SVD and the singular values the spectral bound clipped
    # (:meth:`Hardware.pass_gradient` stops the gradient along them)
    clip: tuple | None = None


class Wear:
    """The write history of every device of one bank array (the banks, or the input bank): the
    level each was last programmed to, its programmed value, its writes, and whether it is worn
    out (:attr:`WeightElement.tracks_wear`).

    A programming event writes a device only when its level changes; the others keep the value
    they were programmed to, programming error and all. A device written more than
    ``endurance_writes`` times is worn out: that write fails and the device sticks, at its last
    value (``failure = "last"``) or at a level drawn at random when it fails (``"random"``),
    whatever it is asked for afterwards. The gradient stops at a weight one of whose devices is
    stuck."""

    def __init__(self, weights, shape: tuple):
        self.weights = weights
        d = weights.devices_per_weight
        self.level = np.full((d,) + tuple(shape), np.nan)
        self.value = np.zeros((d,) + tuple(shape))
        self.writes = np.zeros((d,) + tuple(shape), dtype=np.int64)
        self.stuck = np.zeros((d,) + tuple(shape), dtype=np.bool_)

    def write(self, W: np.ndarray, rng: np.random.Generator):
        """Program the weights ``W``: ``(values, mask)``, the devices' values after the event
        and the weights' straight-through mask (in range, no device stuck)."""
        from relaxsim.kernels.programming import wear_write

        wts = self.weights
        targets, in_range = wts.device_targets(W)
        programmed = wts.device_program(targets, rng)
        failed = np.empty(self.stuck.shape, dtype=np.bool_)
        endurance = int(min(wts.endurance_writes, np.iinfo(np.int64).max))
        n = wear_write(targets.reshape(-1), programmed.reshape(-1), self.level.reshape(-1),
                       self.value.reshape(-1), self.writes.reshape(-1), self.stuck.reshape(-1),
                       endurance, failed.reshape(-1))
        if n and wts.failure == "random":
            self.value[failed] = wts.device_random_levels(n, rng)
        mask = in_range & ~self.stuck.any(axis=0)
        return self.value.copy(), mask

    def state(self, prefix: str) -> dict[str, np.ndarray]:
        return {f"{prefix}/level": self.level, f"{prefix}/value": self.value,
                f"{prefix}/writes": self.writes, f"{prefix}/stuck": self.stuck}

    def restore(self, arrays: dict[str, np.ndarray], prefix: str) -> None:
        self.level = np.array(arrays[f"{prefix}/level"], dtype=np.float64)
        self.value = np.array(arrays[f"{prefix}/value"], dtype=np.float64)
        self.writes = np.array(arrays[f"{prefix}/writes"], dtype=np.int64)
        self.stuck = np.array(arrays[f"{prefix}/stuck"], dtype=np.bool_)


def wear_summary(wears: list, write_energy_j: float, events: int, devices: int) -> dict:
    """The writes of a run: per device (max, mean), the share worn out and the write energy,
    over every bank array whose writes were counted (:class:`Wear`); without counting (an
    unlimited endurance), every device is taken as written at each of the ``events``
    programming events (``devices`` of them)."""
    counted = [w for w in wears if w is not None]
    if not counted:
        return {"tracked": False, "writes_per_device_max": events,
                "writes_per_device_mean": float(events), "worn_out_share": 0.0,
                "device_writes": events * devices,
                "write_energy_j": events * devices * write_energy_j}
    writes = np.concatenate([w.writes.ravel() for w in counted])
    stuck = np.concatenate([w.stuck.ravel() for w in counted])
    total = int(writes.sum())
    return {"tracked": True, "writes_per_device_max": int(writes.max()),
            "writes_per_device_mean": float(writes.mean()),
            "worn_out_share": float(stuck.mean()), "device_writes": total,
            "write_energy_j": total * write_energy_j}


@dataclass(frozen=True)
class Hardware:
    """Devices and timing of one machine, and what they do to the network."""

    switch: object
    weights: object
    active: object
    clock_s: float | None        # None: auto
    propagation_time_s: float
    settle_tolerance: float
    drift_time_s: float
    update_every: int
    mode: str

    readout_time_s: float = 0.0
    pipelining: str = "sequential"
    in_flight: int = 1
    program_banks: str = "parallel"
    jitter_draws: str = "batch"
    signal: str = "coherent"
    leak_phase: str = "in_phase"
    switch_topology: str = "star"
    mux: str = "switch"
    laser_power_w: float = 1e-3
    coupling_loss_db: float = 0.0
    input_bits: float = float("inf")
    readout_bits: float = float("inf")
    banks: int = 1  # L_W: the switches' stages on the path, for the power budget
    io: object = None           # the machine's edge (laser, modulators, converters): Interface
    digital: object = None      # the digital processor: Processor
    input_layer: str = "digital"
    utilisation: float = 1.0
    rows: int = 1  # N: the rows of a bank (row_serial programming)

    def __post_init__(self):
        from relaxsim.devices.records import Interface, Processor

        if self.io is None:  # the ideal edge and processor: free
            object.__setattr__(self, "io", Interface(name="ideal"))
        if self.digital is None:
            object.__setattr__(self, "digital", Processor(name="ideal"))

    def timing_spec(self, schedule, banks: int, architecture: str = "relaxnet",
                    pipelining: str | None = None) -> TimingSpec:
        """What the timing model needs of this machine to run ``schedule``."""
        tol = self.settle_tolerance
        return TimingSpec(
            schedule=tuple(int(k) for k in schedule), banks=banks,
            t_mm=self.propagation_time_s, t_switch=self.switch.settle_time_s(tol),
            t_state=self.active.settle_time_s(tol), t_program=self.bank_program_time_s,
            t_readout=self.readout_time_s, clock=self.clock_s,
            pipelining=pipelining or self.pipelining, in_flight=self.in_flight,
            architecture=architecture)

    def simulate(self, schedule, banks: int, architecture: str = "relaxnet",
                 pipelining: str | None = None, n: int | None = None,
                 record: bool = False, stream: bool | None = None) -> Simulation:
        """Run the timing model (SimPy) of this machine (see :func:`relaxsim.timing.simulate`)."""
        return simulate(self.timing_spec(schedule, banks, architecture, pipelining), n=n,
                        record=record, stream=stream)

    def router(self, schedule, banks: int, seed: int = 0) -> Router:
        """The switches of this machine on ``schedule`` over ``banks`` banks (path phases, when
        random, drawn once from ``seed``)."""
        from relaxsim.devices.routing import path_phases
        from relaxsim.schedules import previous_banks

        schedule = np.asarray(schedule, dtype=np.int64)
        self.check_extinction(int(banks))
        return Router(banks=int(banks), schedule=tuple(int(k) for k in schedule),
                      prev=tuple(int(k) for k in previous_banks(schedule)),
                      topology=self.switch_topology, mux=self.mux, signal=self.signal,
                      power_floor=self.switch.leak_floor,
                      amplitude_floor=self.switch.amplitude_floor,
                      phases=path_phases(int(banks), self.leak_phase, seed))

    def check_extinction(self, banks: int) -> None:
        """Refuse a switch whose extinction floor leaves the selected bank no brighter than an
        off one: a lossless star needs ``e < 1 / L_W`` (ER > 10 log10 L_W dB), a tree's 1 x 2
        stage ``e < 1/2`` (ER > 3.01 dB); an electrical switch ``a < 1``."""
        from relaxsim.errors import ConfigError

        if banks <= 1 or self.signal == "electrical":
            return
        e = self.switch.leak_floor
        limit = 1.0 / banks if self.switch_topology == "star" else 0.5
        if e >= limit:
            need = 10.0 * math.log10(1.0 / limit)
            raise ConfigError(
                "hardware.switch.extinction_ratio",
                f"must be > {need:.3g} dB for a {self.switch_topology} switch over "
                f"{banks} banks (its off ports' floor would leave the selected bank no "
                "brighter than the others)", f"{self.switch.extinction_ratio_db:g} dB")

    def transmission(self, banks: int) -> float:
        """Transmission of the switching path (both sides), in the signal domain's unit
        (:func:`relaxsim.devices.routing.transmission`)."""
        from relaxsim.devices.routing import transmission

        return transmission(banks, self.switch_topology, self.mux, self.signal,
                            self.switch.insertion_loss_db)

    def coupling(self, schedule: np.ndarray, alpha: float, network_activation: str,
                 dtype=np.float64, sim: Simulation | None = None, banks: int | None = None,
                 seed: int = 0) -> Coupling:
        """Per-step coupling arrays of this machine for ``schedule``, from the simulated event
        times of one inference: every bank's share of each step (the mixing vectors) from the
        switch's state when the signal passes, the element's carry-over from its dwell
        (``sim``: a simulation of the machine whose first inference ran alone,
        :meth:`MachineTiming.alone`; ``banks``: ``L_W``, by default one more than the largest
        bank in the schedule; ``seed``: the path phases' when random)."""
        T = len(schedule)
        banks = int(np.max(schedule)) + 1 if banks is None else int(banks)
        sim = sim or MachineTiming(self, schedule, banks).alone()
        if sim.spec.schedule != tuple(int(k) for k in schedule):
            raise ValueError("coupling: sim is a simulation of another schedule")
        gaps, dwells = sim.gaps(), sim.dwells()
        router = self.router(schedule, banks, seed)
        remainders = self.switch.remainder(gaps)
        mix = router.mix(remainders)
        eps = router.previous_port(remainders)
        rho = self.active.carry_over(dwells)
        code, g, s, p = self.active.transfer_params(network_activation)
        # relaxing towards alpha h_t + f(u_t) for the dwell: h_{t+1} = a_t h_t + c_t f(u_t)
        return Coupling(a=(rho + (1.0 - rho) * alpha).astype(dtype), c=(1.0 - rho).astype(dtype),
                        eps=eps.astype(dtype),
                        tr=np.full(T, self.transmission(banks), dtype=dtype), code=code,
                        act_params=(float(g), float(s), float(p)), gaps=gaps, mix=mix,
                        router=router)

    @cached_property
    def budget(self):
        """The optical power budget at full scale (:mod:`relaxsim.devices.budget`): received
        power, SNR, and the noise of every ``auto`` noise field; ``None`` for an electrical
        machine (no optical path)."""
        from relaxsim.devices import budget as B
        from relaxsim.devices.routing import path_loss_db

        if self.signal == "electrical":
            return None
        act = self.active
        losses = {"coupling": self.coupling_loss_db,
                  "weights": self.weights.insertion_loss_db,
                  "switches": path_loss_db(self.banks, self.switch_topology, self.mux,
                                           self.switch.insertion_loss_db)}
        loss = float(sum(losses.values()))
        received = B.received_power(self.laser_power_w, loss)
        if not received * act.responsivity > 0:
            from relaxsim.errors import ConfigError

            raise ConfigError("hardware.coupling_loss", "leaves no light at the detector: "
                              f"{loss:g} dB from laser to detector in all",
                              f"{self.coupling_loss_db:g} dB")
        if act.bandwidth_hz > 0:
            bw = act.bandwidth_hz
        elif act.response_time_s > 0:
            bw = 1.0 / (4.0 * act.response_time_s)  # noise bandwidth of a first-order response
        else:
            bw = 1.0 / (2.0 * (self.clock_s or self.propagation_time_s))
        snr = B.detector_snr(received, act.responsivity, bw, act.thermal_noise, act.rin_db)
        ase = B.ase_snr(received, act.noise_figure_db, bw)
        detector_sigma = 0.0 if math.isinf(snr) else 1.0 / snr
        if act.detection == "oeo":
            element_sigma = detector_sigma
        else:
            element_sigma = 0.0 if math.isinf(ase) else 1.0 / math.sqrt(ase)
        return B.Budget(
            laser_w=self.laser_power_w, loss_db=loss, losses_db=losses, received_w=received,
            responsivity=act.responsivity, bandwidth_hz=bw, snr=snr,
            shot_snr=B.shot_limited_snr(received, act.responsivity, bw), ase_snr=ase,
            element_sigma=element_sigma, detector_sigma=detector_sigma,
            shot_equals_thermal_w=B.shot_equals_thermal_w(act.responsivity, act.thermal_noise))

    def quantisation_noise(self, bits: float) -> float:
        """rms noise of a converter of ``bits`` relative to its full scale: a uniform error over
        a step ``2 / (2^bits - 1)`` of full scale has rms ``step / sqrt(12)`` (0 without one)."""
        if math.isinf(bits):
            return 0.0
        return 2.0 / ((2.0 ** bits - 1.0) * math.sqrt(12.0))

    @cached_property
    def element_sigma(self) -> float:
        """rms element noise per step: the active element's ``noise``, or from the budget when
        it is ``auto`` (0 for an electrical machine)."""
        if not self.active.is_auto("noise"):
            return float(self.active.noise)
        return 0.0 if self.budget is None else self.budget.element_sigma

    @cached_property
    def detector_sigma(self) -> float:
        """rms detector noise at the readout: ``detector_noise``, or from the budget."""
        if not self.active.is_auto("detector_noise"):
            return float(self.active.detector_noise)
        return 0.0 if self.budget is None else self.budget.detector_sigma

    def cautions(self, coupling: Coupling, settling: bool = True) -> list[str]:
        """Every warning this machine deserves, one line each: settings that have no effect,
        then (with ``settling``) :meth:`settling_warnings`."""
        from relaxsim.config import default_dict

        out = []
        if self.signal == "electrical" and (self.active.is_auto("noise")
                                            or self.active.is_auto("detector_noise")):
            out.append(f"hardware.active.noise = 'auto' is 0 on an electrical machine (signal "
                       f"{self.signal}: no optical power budget); set the active element's "
                       "noise and detector_noise")
        if self.leak_phase == "random" and self.signal != "coherent":
            out.append(f"hardware.leak_phase = 'random' has no effect with hardware.signal = "
                       f"'{self.signal}' (only fields have a phase)")
        default_in_flight = default_dict()["hardware"]["in_flight"]
        if self.pipelining == "sequential" and self.in_flight != default_in_flight:
            out.append(f"hardware.in_flight = {self.in_flight} has no effect with "
                       "hardware.pipelining = 'sequential' (one inference in flight); set "
                       "hardware.pipelining = 'pipelined' to keep several in flight")
        return out + self.noise_warnings() + (self.settling_warnings(coupling) if settling
                                              else [])

    def noise_warnings(self) -> list[str]:
        """A line when the power budget leaves the network noise above :data:`SETTLE_WARNING`
        of full scale (an ``auto`` noise field), with the laser power that brings it down to
        that share (found by bisection on the monotone budget; none when RIN or the amplifier
        alone already exceeds it)."""
        from dataclasses import replace

        from relaxsim.devices import format_quantity

        auto = self.active.is_auto("noise") or self.active.is_auto("detector_noise")
        if self.budget is None or not auto:
            return []
        sigma = max(self.element_sigma if self.active.is_auto("noise") else 0.0,
                    self.detector_sigma if self.active.is_auto("detector_noise") else 0.0)
        x = SETTLE_WARNING
        if sigma <= x:
            return []

        def noise_at(power):
            b = replace(self, laser_power_w=power).budget
            return max(b.element_sigma, b.detector_sigma)

        lo, hi = self.laser_power_w, self.laser_power_w
        while noise_at(hi) > x and hi < 1e3:
            hi *= 10.0
        if noise_at(hi) > x:
            need = ("no laser power up to 1 kW per channel brings it down (RIN, the "
                    "amplifier's noise or the losses)")
        else:
            for _ in range(60):
                mid = math.sqrt(lo * hi)
                lo, hi = (mid, hi) if noise_at(mid) > x else (lo, mid)
            need = f"it needs hardware.laser_power >= {format_quantity(hi, 'power')}"
        return [f"hardware.laser_power = {format_quantity(self.laser_power_w, 'power')} leaves "
                f"the detector an SNR of {self.budget.snr:.3g}: noise {100 * sigma:.3g} % of "
                f"full scale (above {100 * x:.3g} %); " + need]

    @staticmethod
    def _worst_leak(coupling: Coupling) -> tuple[float, int]:
        """The largest share of a step's mixing that is not its selected bank's
        (:func:`leak_share`), and its step; ``(0, 0)`` without a router."""
        if coupling.router is None or coupling.mix is None:
            return 0.0, 0
        shares = [leak_share(row, k) for row, k in zip(coupling.mix, coupling.router.schedule)]
        t = int(np.argmax(shares))
        return float(shares[t]), t

    def settling_warnings(self, coupling: Coupling) -> list[str]:
        """One line per device that the step timing leaves unsettled by more than
        :data:`SETTLE_WARNING`: the switch (its leak ``eps`` on a switching step) and the active
        element (its carry-over ``1 - c``), each with the clock it needs.

        A fixed clock ``T_clk`` leaves each device ``w = T_clk - T_MM`` after the signal left the
        bank (one inference, no stall). The switch's leak is the share of a step's mixing that is
        not its selected bank's, ``sum_{j != k} |m_j| / sum_j |m_j|`` (:func:`leak_share`), at the
        worst step; it falls to the threshold ``x`` after the window found by bisection on the
        transition's remainder (never, when the settled floor alone leaks more than ``x``); the
        element's ``exp(-w / tau_a)`` at ``w = tau_a ln(1 / x)``."""
        from relaxsim.devices import format_quantity

        def time(x):
            return format_quantity(x, "time")

        def pct(x):
            return f"{100 * x:.3g} %"

        x, t_mm = SETTLE_WARNING, self.propagation_time_s
        where = (f"hardware.clock = {time(self.clock_s)}" if self.clock_s is not None else
                 f"hardware.settle_tolerance = {self.settle_tolerance:g}")
        out = []
        leak, t = self._worst_leak(coupling)
        if leak > x:
            router, sw = coupling.router, self.switch
            k = router.schedule[t]
            settled = leak_share(router.mix(np.zeros(len(router.schedule)))[t], k)
            if settled >= x:
                need = (f"no clock helps: its extinction floor alone leaks {pct(settled)} "
                        "(raise hardware.switch.extinction_ratio)")
            else:
                def leak_after(w):
                    r = np.zeros(len(router.schedule))
                    r[t] = sw.remainder(w)
                    return leak_share(router.mix(r)[t], k)

                lo, hi = 0.0, max(sw.settle_time_s(1e-15), 1e-18)
                for _ in range(100):
                    mid = 0.5 * (lo + hi)
                    lo, hi = (mid, hi) if leak_after(mid) > x else (lo, mid)
                w = hi
                need = (f"it needs hardware.clock >= {time(t_mm + w)} "
                        f"(T_MM {time(t_mm)} + {time(w)} to leak {pct(x)})")
            out.append(f"{where} leaves switch {self.switch.name} leaking {pct(leak)} of the "
                       f"signal into other banks (step {t}, above {pct(x)}); " + need)
        rho = float(np.max(1.0 - coupling.c, initial=0.0))
        if rho > x:
            w = self.active.response_time_s * np.log(1.0 / x)
            out.append(f"{where} leaves active element {self.active.name} carrying over "
                       f"{pct(rho)} of its old state per step (above {pct(x)}); it needs "
                       f"hardware.clock >= {time(t_mm + w)} (T_MM {time(t_mm)} + {time(w)} to "
                       f"settle to {pct(x)})")
        return out

    def jittered_mix(self, coupling: Coupling, batch: int, rng: np.random.Generator):
        """Mixing vectors with each switching command late or early by a draw of the switch's
        timing jitter (``None`` when the switch has none).

        ``jitter_draws = "sample"``: per sample, ``(T, B, L_W)``: each inference its own draw;
        the kernels then need a product per bank whose share differs between samples on every
        switching step. ``"batch"``: one draw per step for the whole batch, ``(T, L_W)``: every
        sample's mixing has the same distribution as per sample, so accuracies and gradients
        are unbiased (only their variance across batches grows), and the kernels run each step
        on one mixed bank, as for the read noise (one draw per forward pass)."""
        if self.switch.jitter_s == 0 or not coupling.switches or coupling.router is None:
            return None
        width = batch if self.jitter_draws == "sample" else 1
        r = self.switch.jittered_remainder(
            coupling.gaps, rng.standard_normal((len(coupling.gaps), width)))
        mix = coupling.router.mix(r)
        return mix if self.jitter_draws == "sample" else mix[:, 0]

    @property
    def input_bank(self) -> bool:
        """Whether the input layer ``W_in`` is held in a weight bank of its own."""
        return self.input_layer == "bank"

    @property
    def bank_program_time_s(self) -> float:
        """Time to program one bank: its elements settled to half a level
        (:meth:`WeightElement.write_settle_time_s`) all at once, or (``program_banks =
        "row_serial"``) row after row, each row ``row_time`` (the settled write when 0)."""
        settle = self.weights.write_settle_time_s(self.settle_tolerance)
        if self.program_banks == "row_serial":
            return self.rows * (self.weights.row_time_s or settle)
        return settle

    def program_time_s(self, banks: int) -> float:
        """Hardware time of one programming event (all banks, and the input bank when
        ``input_layer = "bank"``): one bank's time when they are programmed in parallel, their
        sum when serially (``serial``, ``row_serial``)."""
        per_bank = self.bank_program_time_s
        return per_bank * (banks + self.input_bank if self.program_banks != "parallel" else 1)

    def figures(self, schedule, banks: int, hidden: int,
                timing: "MachineTiming | None" = None, shape: "Shape | None" = None) -> dict:
        """Latency (alone, and under load when pipelined), period, throughput, utilisation,
        devices, static power and energy per inference of this machine running ``schedule``
        (:func:`relaxsim.energy.account`), and the same for the RNN (one bank), a single
        reprogrammed bank and an unrolled DNN (``architectures``; ``compare`` holds the
        latter two's times, as before).

        One period per architecture, from the simulated stream's steady state: throughput is
        ``1 / period_s``, the static energy is paid over ``period_s / hardware.utilisation``,
        and utilisation is measured over whole periods. Latency is the first inference's (it
        runs alone). The simulations are ``timing``'s (:class:`MachineTiming`; a new one when
        not given); ``shape``: the network's (:class:`relaxsim.energy.Shape`; without it, no
        input or readout layer is counted)."""
        timing = timing or MachineTiming(self, schedule, banks)
        if timing.hw != self or timing.schedule != tuple(int(k) for k in schedule) \
                or timing.banks != banks:
            raise ValueError("figures: timing is a MachineTiming of another machine, schedule or "
                             "bank count")
        from relaxsim.energy import ARCHITECTURES, account

        shape = shape or Shape(hidden=hidden, inputs=0, classes=0, schedule=tuple(schedule),
                               banks=banks)
        stream, one = timing.stream(), timing.alone()
        period = stream.period()
        accounts, compare = {}, {}
        for arch in ARCHITECTURES:
            # the stream: a reprogrammed bank must rewrite step 0 before each later inference
            arch_stream, alone = timing.stream(arch), timing.alone(arch)
            accounts[arch] = account(self, shape, arch, latency_s=alone.latency(),
                                     period_s=arch_stream.period(),
                                     writes_per_inference=arch_stream.writes_per_inference())
            accounts[arch]["residence_s"] = arch_stream.residence()
            accounts[arch]["in_system"] = arch_stream.in_system()
            if arch in ("reprogram", "unrolled"):
                compare[arch] = {"latency_s": alone.latency(), "period_s": arch_stream.period(),
                                 "throughput_per_s": arch_stream.throughput()}
        own = accounts["relaxnet"]
        return {
            "latency_s": one.latency(),
            "period_s": period,
            "throughput_per_s": stream.throughput(),
            # pipelined: what one inference takes among the others in flight
            "latency_under_load_s": (stream.steady_latency() if self.pipelining == "pipelined"
                                     else None),
            "residence_s": stream.residence(),
            "in_system": stream.in_system(),
            "energy_per_inference_j": own["energy_per_inference_j"],
            "energy_breakdown_j": own["energy_breakdown_j"],
            "static_power_w": own["static_power_w"],
            "static_power_total_w": own["static_power_total_w"],
            "devices": own["devices"],
            "macs_per_inference": own["macs_per_inference"],
            "j_per_mac": own["j_per_mac"],
            "tops_per_w": own["tops_per_w"],
            "stated_utilisation": own["utilisation"],
            "utilisation": stream.utilisation(),
            "compare": compare,
            "architectures": accounts,
        }

    # -- slow time scale: the weight elements ----------------------------------------------

    @property
    def plain_writes(self) -> bool:
        """Whether a write is the compiled clip, quantise and add-noise of every weight alone
        (:class:`TrainingDraws`): not for conductance statistics, drift compensation or wear."""
        w = self.weights
        return (w.statistics == "uniform" and w.model == "crossbar"
                and w.drift_compensation == "none" and not w.tracks_wear)

    def wear(self, shape: tuple) -> Wear | None:
        """A fresh write history for bank weights of ``shape`` (``None`` when writes are not
        counted: an unlimited endurance)."""
        return Wear(self.weights, shape) if self.weights.tracks_wear else None

    def program(self, W: np.ndarray, rng: np.random.Generator,
                wear: Wear | None = None) -> Programmed:
        """Write the bank weights ``W`` into the weight elements (fixing each element's drift
        exponent, which stays with it until the next write: see :class:`Programmed`); with
        ``wear``, only the devices whose level changes are written, worn-out ones stick
        (:class:`Wear`)."""
        wts = self.weights
        if wts.model == "mesh":
            return self._program_mesh(W, rng)
        if wear is not None or wts.statistics == "pcm":
            if wear is not None:
                values, mask = wear.write(W, rng)
            else:
                targets, mask = wts.device_targets(W)
                values = wts.device_program(targets, rng)
            W_prog = np.asarray(wts.device_weights(values)).astype(W.dtype)
            pcm = wts.statistics == "pcm"
            return Programmed(W=W_prog, mask=mask.astype(W.dtype),
                              nu_key=int(draw_key(rng)) if pcm else wts.drift_key(rng),
                              devices=values if pcm else None)
        W_prog, mask = wts.program(W, rng)
        return Programmed(W=W_prog, mask=mask.astype(W.dtype), nu_key=wts.drift_key(rng))

    def _program_mesh(self, W: np.ndarray, rng: np.random.Generator) -> Programmed:
        """Program ``W`` into meshes (:func:`relaxsim.kernels.mesh.program_banks`): each bank
        ``U S V^T``, the two unitaries decomposed into MZI phases, the phases quantised, noisy and
        thermally coupled, the couplers imbalanced, the MZIs lossy, and the realised matrix's
        in-phase part read back. A bank that is not square (the input bank, ``N x D``) is a
        square mesh of ``max(N, D)`` modes with its unused ports dark. One key from ``rng``."""
        from relaxsim.kernels.mesh import program_banks

        wts = self.weights
        square = W if W.ndim == 3 and W.shape[1] == W.shape[2] else None
        if square is None:  # pad: the unused ports of a larger square mesh
            n = max(W.shape[-2:])
            square = np.zeros((1, n, n), dtype=W.dtype)
            square[0, :W.shape[0], :W.shape[1]] = W
        write = program_banks(square, wts.w_max, wts.phase_bits, wts.phase_noise_rad,
                              wts.crosstalk, wts.splitter_imbalance, wts.mzi_loss_db,
                              key=draw_key(rng))
        realised = write.weights
        if realised.shape != W.shape:
            realised = realised[0, :W.shape[0], :W.shape[1]]
        clip = (write.U, write.Vt, write.clipped, W.shape) if write.clipped.any() else None
        return Programmed(W=np.ascontiguousarray(realised, dtype=W.dtype),
                          mask=np.ones(W.shape, dtype=W.dtype), clip=clip)

    def pass_gradient(self, programmed: Programmed | None, grad: np.ndarray) -> np.ndarray:
        """The gradient reaching the target weights of a mesh: straight through the
        realisation, with the part along each clipped singular direction removed
        (``g - sum_i (u_i^T g v_i) u_i v_i^T`` over the singular values the spectral bound
        clipped: changing them changes nothing). ``grad`` as it is for anything else."""
        if programmed is None or programmed.clip is None:
            return grad
        U, Vt, clipped, shape = programmed.clip
        g = np.zeros(U.shape, dtype=grad.dtype) if grad.shape != U.shape else grad.copy()
        if grad.shape != U.shape:
            g[0, :shape[0], :shape[1]] = grad
        for l, i in zip(*np.nonzero(clipped)):
            u, v = U[l, :, i], Vt[l, i, :]
            g[l] -= (u @ g[l] @ v) * np.outer(u, v)
        return g if grad.shape == U.shape else g[0, :shape[0], :shape[1]].copy()

    def program_and_read(self, W: np.ndarray, rng: np.random.Generator, out=None,
                         wear: Wear | None = None):
        """Write ``W`` and read it at once (no drift yet), as :meth:`read` returns it: the bank
        weights a forward pass sees and the factor ``dW_hw/dW``. One normal of the summed
        variance stands for the programming and the read noise (the distribution of
        :meth:`program` then :meth:`read` at time 0; ``update_every = 1`` trains this way).
        ``out``: two arrays of ``W``'s shape and dtype to fill and return instead of new ones.
        Without :attr:`plain_writes`: :meth:`program`, then :meth:`read` at time 0."""
        if not self.plain_writes:
            return self.read(self.program(W, rng, wear), 0.0, rng)
        if out is None:
            out = np.empty_like(W), np.empty_like(W)
        return self.weights.program_and_read(W, rng, *out)

    def drift_factor(self, programmed: Programmed, elapsed_s: float) -> np.ndarray:
        """Factor by which the programmed weights have drifted after ``elapsed_s``."""
        if programmed.nu_draws is None and programmed.nu_key is not None:
            programmed.nu_draws = self.weights.drift_exponents(programmed.W.shape,
                                                               key=programmed.nu_key)
        return self.weights.drift_factor(elapsed_s, programmed.W.shape, nu=programmed.nu_draws)

    def read(self, programmed: Programmed, elapsed_s: float, rng: np.random.Generator):
        """Bank weights as one forward pass reads them, and the factor ``dW_hw/dW``.

        The gradient passes straight through quantisation and noise, is scaled by the drift and
        stops where the target was clipped.
        """
        wts = self.weights
        if wts.statistics == "pcm":
            if programmed.nu_draws is None and elapsed_s > 0:  # at 0: no drift, none drawn
                programmed.nu_draws = wts.pcm_exponents(programmed.devices, programmed.nu_key)
            W = wts.pcm_read(programmed.devices, programmed.nu_draws, elapsed_s, rng)
            return self._compensated(programmed, W, programmed.mask)
        if wts.drift_is_identity(elapsed_s):  # no drift yet: a factor of 1 exactly
            W, factor = programmed.W, programmed.mask
        else:
            drift = self.drift_factor(programmed, elapsed_s)
            W, factor = drift * programmed.W, drift * programmed.mask
        sigma = wts.read_sigma()
        if sigma > 0:  # drawn in the weights' dtype (relaxsim.kernels.rng)
            W = add_normal(rng, W, sigma)
        if wts.drift_compensation == "global":
            return self._compensated(programmed, W, programmed.mask)
        return W.astype(programmed.W.dtype, copy=False), factor

    def _compensated(self, programmed: Programmed, W: np.ndarray, mask: np.ndarray):
        """``W`` as read, with the global drift compensation when asked for, and the factor
        ``dW_hw/dW``: straight through where in range, times each bank's mean drift after the
        compensation.

        ``drift_compensation = "global"`` (aihwkit's ``GlobalDriftCompensation``): per bank, a
        reference input of ones read now and just after programming,
        ``alpha = ||W_prog 1||_1 / ||W 1||_1``, and the weights read are scaled by ``alpha``.
        The bank's mean drift is ``||W 1||_1 / ||W_prog 1||_1`` after the scaling (1 with the
        compensation)."""
        dtype = programmed.W.dtype
        W = np.asarray(W, dtype=np.float64)

        def readout(M):  # ||M 1||_1 of each bank, broadcastable against M
            return np.abs(np.asarray(M, dtype=np.float64).sum(axis=-1)).sum(
                axis=-1, keepdims=True)[..., None]

        tiny = np.finfo(np.float64).tiny
        ref, now = readout(programmed.W), readout(W)
        if self.weights.drift_compensation == "global":
            W = W * (ref / np.maximum(now, tiny))
            now = ref
        factor = mask * (now / np.maximum(ref, tiny))
        return W.astype(dtype, copy=False), factor.astype(dtype, copy=False)

    def training_draws(self, coupling: Coupling, batch: int, hidden: int, w_shape: tuple,
                       out=None) -> "TrainingDraws":
        """Everything a training batch of this shape draws (``update_every = 1``), prepared once
        (see :class:`TrainingDraws`)."""
        return TrainingDraws(self, coupling, batch, hidden, tuple(w_shape), out)

    # -- fast time scale: noise draws ------------------------------------------------------

    def draw_noise(self, rng: np.random.Generator, steps: int, batch: int, hidden: int,
                   dtype=np.float64, out=None):
        """Element noise ``(T, B, N)`` and detector noise ``(B, N)`` for one forward pass
        (``None`` where the device is noiseless: no random numbers are consumed). ``out``: a
        function ``(name, shape, dtype) -> array`` giving the arrays to fill (work buffers)."""
        element = detector = None
        dtype = np.dtype(dtype)
        if self.element_sigma > 0:  # drawn in the network's dtype (relaxsim.kernels.rng)
            shape = (steps, batch, hidden)
            element = normal(rng, shape, self.element_sigma, dtype,
                             None if out is None else out("element_noise", shape, dtype))
        if self.detector_sigma > 0:
            shape = (batch, hidden)
            detector = normal(rng, shape, self.detector_sigma, dtype,
                              None if out is None else out("detector_noise", shape, dtype))
        return element, detector


class TrainingDraws:
    """What one training batch draws (``update_every = 1``), for batches of one shape:
    ``draws(W, rng)`` returns ``(W_read, dW_factor, mix, element_noise, detector_noise)``, the
    bytes and the generator's advance of :meth:`Hardware.program_and_read` of ``W``, then
    :meth:`Hardware.jittered_mix`, then :meth:`Hardware.draw_noise`.

    The device constants, the work arrays (from ``out``, a function ``(name, shape, dtype) ->
    array``, as for :meth:`Hardware.draw_noise`) and their flat views are fixed here, once. Each
    call draws its keys and jitter normals in the order of the separate calls, then runs the
    element-wise work (programming, leaks, noise) as one compiled call: at the sizes of today's
    physical networks, the separate calls' own cost (checks, dispatch, a cold cache) came to
    more than their arithmetic. The arrays returned are the work arrays: valid until the next
    call."""

    def __init__(self, hw: Hardware, coupling: Coupling, batch: int, hidden: int,
                 w_shape: tuple, out=None):
        self.hw, self.coupling, self.batch, self.hidden = hw, coupling, batch, hidden
        self.dtype = dtype = np.dtype(coupling.a.dtype)
        out = out or (lambda name, shape, dt: np.empty(shape, dtype=dt))
        T = len(coupling.a)
        wts, sw = hw.weights, hw.switch
        self.w_shape = w_shape
        self.W_hw, self.mask = out("W_hw", w_shape, dtype), out("W_mask", w_shape, dtype)
        self.sigma = wts.written_read_sigma()
        self.jitter = sw.jitter_s != 0 and coupling.switches and coupling.router is not None
        self.z_shape = (T, batch if hw.jitter_draws == "sample" else 1)
        # the switching transitions' remainders, float64 (-> the batch's mixing)
        self.remainders = np.empty(self.z_shape if self.jitter else (0, 1))
        noise, det = hw.element_sigma, hw.detector_sigma
        self.noise = out("element_noise", (T, batch, hidden), dtype) if noise > 0 else None
        self.det = out("detector_noise", (batch, hidden), dtype) if det > 0 else None
        self.keys = np.zeros(3, dtype=np.uint64)
        # on threads when all the draws together pay for it (the bytes do not depend on it)
        draws = int(np.prod(w_shape)) + (noise > 0) * T * batch * hidden \
            + (det > 0) * batch * hidden
        self.run = training_pass_par if threads_pay(draws) else training_pass
        self.per_sample = hw.jitter_draws == "sample"
        self.mix = (np.empty(self.z_shape + (coupling.router.banks,)) if self.jitter
                    else None)
        nothing = np.zeros(0, dtype=dtype)
        self.args = (
            *wts.grid(dtype), self.sigma, self.W_hw.reshape(-1),
            self.mask.reshape(-1), coupling.gaps64, float(sw.jitter_s), *sw.kernel_args(),
            self.remainders, float(noise),
            nothing if self.noise is None else self.noise.reshape(-1),
            float(det), nothing if self.det is None else self.det.reshape(-1))

    def __call__(self, W: np.ndarray, rng: np.random.Generator):
        W = np.ascontiguousarray(W, dtype=self.dtype)  # the network's banks: as they are
        if W.shape != self.w_shape:
            raise ValueError(f"W: expected shape {self.w_shape} (got {W.shape})")
        keys = self.keys
        if self.sigma > 0:
            keys[0] = draw_key(rng)
        z = rng.standard_normal(self.z_shape) if self.jitter else _NO_DRAWS
        if self.noise is not None:
            keys[1] = draw_key(rng)
        if self.det is not None:
            keys[2] = draw_key(rng)
        self.run(W.reshape(-1), z, keys, *self.args)
        mix = None
        if self.jitter:  # the transitions' remainders -> every bank's share
            mix = self.coupling.router.mix_into(self.remainders, self.mix)
            mix = mix if self.per_sample else mix[:, 0]
        return self.W_hw, self.mask, mix, self.noise, self.det


_NO_DRAWS = np.zeros((0, 1))


class MachineTiming:
    """The timing model's answers for one machine running one schedule: each simulation run
    once, when first asked for, and kept.

    Per architecture (``relaxnet``, ``reprogram``: one bank rewritten between steps,
    ``unrolled``: a DNN of ``L_T`` banks) there are at most two runs of the SimPy model: the
    stream in the machine's pipelining mode, run to its steady state (:meth:`stream`: period,
    throughput, utilisation), and one inference alone (:meth:`alone`: latency, and the gaps and
    dwells the coupling is made from). In sequential mode the stream's first inference runs
    alone, so it is both: one run per architecture. :attr:`runs` counts the runs made.
    """

    def __init__(self, hw: "Hardware", schedule, banks: int):
        self.hw = hw
        self.schedule = tuple(int(k) for k in schedule)
        self.banks = int(banks)
        self._sims: dict[tuple[str, str], Simulation] = {}
        self.runs = 0

    def _banks(self, architecture: str) -> int:
        return {"relaxnet": self.banks, "rnn": 1, "reprogram": 1,
                "unrolled": len(self.schedule)}[architecture]

    def _run(self, architecture: str, kind: str) -> Simulation:
        key = (architecture, kind)
        if key not in self._sims:
            banks = self._banks(architecture)
            schedule, arch = self.schedule, architecture
            if architecture == "rnn":  # ReLaX-Net with one bank: nothing to switch
                schedule, arch = (0,) * len(self.schedule), "relaxnet"
            if kind == "stream":
                sim = self.hw.simulate(schedule, banks, arch, stream=True)
            else:
                sim = self.hw.simulate(schedule, banks, arch, pipelining="sequential", n=1)
            self._sims[key] = sim
            self.runs += 1
        return self._sims[key]

    def stream(self, architecture: str = "relaxnet") -> Simulation:
        """A stream of inferences through ``architecture`` in the machine's pipelining mode,
        run until its steady state."""
        return self._run(architecture, "stream")

    def alone(self, architecture: str = "relaxnet") -> Simulation:
        """``architecture`` running one inference alone (sequentially): the stream itself in
        sequential mode, whose first inference runs alone."""
        if self.hw.pipelining == "sequential":
            return self.stream(architecture)
        return self._run(architecture, "alone")

    def period(self) -> float:
        """Time per inference of this machine in the steady state of a stream, s."""
        return self.stream().period()

    def trace(self, n: int | None = None, pipelining: str | None = None) -> Simulation:
        """``n`` inferences (default: one sequential, a short stream of ``2 in_flight + 1``
        pipelined) with every event recorded (:attr:`Simulation.trace`): what the timeline and
        the trace file show. Run anew at each call (the trace is not kept)."""
        pipelining = pipelining or self.hw.pipelining
        if n is None:
            n = 1 if pipelining == "sequential" else 2 * self.hw.in_flight + 1
        return self.hw.simulate(self.schedule, self.banks, pipelining=pipelining, n=n,
                                record=True)


def propagation_time_s(hw_cfg, rows: int | None) -> float:
    """``T_MM``: the ``hardware.propagation_time`` set, or (``"auto"``) through the weight
    element's mesh of ``rows`` modes (:meth:`WeightElement.mesh_propagation_time_s`)."""
    t_mm = hw_cfg.seconds("propagation_time")
    if t_mm is None:
        if rows is None:
            raise ValueError("build_hardware: rows (the network's N) is needed for "
                             'propagation_time = "auto"')
        t_mm = hw_cfg.device("weights").mesh_propagation_time_s(int(rows),
                                                                "hardware.propagation_time")
    return t_mm


def build_hardware(hw_cfg, banks: int = 1, rows: int | None = None) -> Hardware:
    """Build the machine described by a validated ``hardware`` config section (its parsed
    times and device records: :meth:`relaxsim.config.Section.seconds`, ``.device``); an
    ``auto`` signal domain is the weight element's (:attr:`WeightElement.signal`); ``banks``:
    the network's ``L_W`` (the switch stages in the power budget); ``rows``: its ``N`` (row-serial
    programming)."""
    signal = hw_cfg["signal"]
    if signal == "auto":
        signal = hw_cfg.device("weights").signal
    hw = Hardware(
        switch=hw_cfg.device("switch"),
        weights=hw_cfg.device("weights"),
        active=hw_cfg.device("active"),
        clock_s=hw_cfg.seconds("clock"),
        propagation_time_s=propagation_time_s(hw_cfg, rows),
        settle_tolerance=hw_cfg["settle_tolerance"],
        drift_time_s=hw_cfg.seconds("drift_time"),
        update_every=hw_cfg["update_every"],
        mode=hw_cfg["mode"],
        readout_time_s=hw_cfg.seconds("readout_time"),
        pipelining=hw_cfg["pipelining"],
        in_flight=hw_cfg["in_flight"],
        program_banks=hw_cfg["program_banks"],
        jitter_draws=hw_cfg["jitter_draws"],
        signal=signal,
        leak_phase=hw_cfg["leak_phase"],
        switch_topology=hw_cfg["switch_topology"],
        mux=hw_cfg["mux"],
        laser_power_w=hw_cfg.quantity("laser_power"),
        coupling_loss_db=hw_cfg.quantity("coupling_loss"),
        input_bits=hw_cfg.quantity("input_bits"),
        readout_bits=hw_cfg.quantity("readout_bits"),
        banks=int(banks),
        io=hw_cfg.device("io"),
        digital=hw_cfg.device("digital"),
        input_layer=hw_cfg["input_layer"],
        utilisation=hw_cfg["utilisation"],
        rows=1 if rows is None else int(rows),
    )
    return hw  # a clock shorter than the propagation is refused when the config is validated


def describe_clock(hw) -> str:
    """``auto clock`` or ``clock 30 ps``: how the machine times its steps."""
    from relaxsim.devices import format_quantity

    return "auto clock" if hw.clock_s is None else f"clock {format_quantity(hw.clock_s, 'time')}"
