"""The three kinds of device as frozen, validated records with SI units in every field name.

- :class:`Switch`: a fast switch that routes the signal into the bank of the current step.
- :class:`ActiveElement`: the fast nonlinear element (transfer function, response time, noise).
- :class:`WeightElement`: the slow programmable element that holds one weight of a bank.

Every record accepts numbers in SI units or quantity strings (``rise_time_s="200 ps"``), checks
every field when it is made and raises :class:`~relaxsim.errors.ConfigError` naming the field
(``switch.extinction_ratio: must be > 0 dB (got -3 dB)``). The defaults switch every effect off:
``Switch()``, ``ActiveElement()`` and ``WeightElement()`` are the ideal devices. The first-order
device response follows DESIGN.md section 3.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from relaxsim.errors import ConfigError
from relaxsim.registry import closest

from .fields import DeviceRecord, choice, join_field, quantity
from .units import describe_value

LN9 = math.log(9.0)  # a first-order response rises from 10 % to 90 % in tau ln 9
SPEED_OF_LIGHT = 299_792_458.0  # m/s (SI, exact)
INF = math.inf


def _settle(tau_s: float, tol: float) -> float:
    if not 0 < tol < 1:
        raise ValueError(f"tol must be in (0, 1) (got {tol!r})")
    return tau_s * math.log(1.0 / tol)


def _scalar_or_array(x: np.ndarray):
    return x if x.ndim else float(x)


# Step-response shapes of a switch, and the kernel code of each (relaxsim.kernels.programming).
RESPONSES = {"first_order": 0, "mzi": 1, "measured": 2}


def _mzi_x(share: float) -> float:
    """Time, in units of tau, at which an MZI driven by a first-order phase has moved ``share``
    of the power to its new port: ``sin^2(pi / 2 (1 - exp(-x))) = share``."""
    return -math.log(1.0 - (2.0 / math.pi) * math.asin(math.sqrt(share)))


MZI_RISE = _mzi_x(0.9) - _mzi_x(0.1)  # 10-90 % rise of the MZI shape, in units of tau: 1.3564


def read_step_response(path: str, field: str) -> tuple[np.ndarray, np.ndarray]:
    """A measured step response: a CSV of ``time, response`` rows (a header line allowed), time
    strictly increasing, the response monotone and rising. Returns ``(x, s)``: the time from the
    first row in units of the response's own 10-90 % rise time (so that the switch's
    ``rise_time`` sets its speed, :meth:`Switch.remainder`) and the response normalised from 0
    (first row) to 1 (last row). ``field`` names the setting in errors."""
    import csv
    from pathlib import Path

    p = Path(path).expanduser()
    try:
        with open(p, newline="") as fh:
            rows = [r for r in csv.reader(fh) if r and any(c.strip() for c in r)]
    except OSError as err:
        raise ConfigError(field, f"cannot read the step-response file ({err.strerror})",
                          describe_value(path)) from None
    except (UnicodeDecodeError, csv.Error):
        rows = None
    data = []
    for i, row in enumerate(rows or []):
        try:
            if len(row) != 2:
                raise ValueError
            data.append((float(row[0]), float(row[1])))
        except ValueError:
            if i == 0 and rows and len(row) == 2:
                continue  # a header
            data = None
            break
    if not data or len(data) < 3:
        raise ConfigError(field, "must be a CSV file of at least 3 rows 'time_s, response' "
                          "(two numbers a row, one header line allowed)", describe_value(path))
    t, y = np.array(data).T
    if not (np.all(np.isfinite(t)) and np.all(np.isfinite(y))):
        raise ConfigError(field, "must hold finite numbers only", describe_value(path))
    if np.any(np.diff(t) <= 0):
        raise ConfigError(field, "must have strictly increasing times", describe_value(path))
    if y[-1] <= y[0] or np.any(np.diff(y) < 0):
        raise ConfigError(field, "must be a monotone rising step response (each value >= the "
                          "one before, the last above the first)", describe_value(path))
    s = (y - y[0]) / (y[-1] - y[0])
    t = t - t[0]
    rise = np.interp(0.9, s, t, left=np.nan) - np.interp(0.1, s, t)
    return t / rise, s


@dataclass(frozen=True, kw_only=True)
class Switch(DeviceRecord):
    """A fast switch between banks: its step response (first order, an MZI's, or measured),
    extinction, loss, jitter and energy."""

    KIND: ClassVar[str] = "switch"

    rise_time_s: float = quantity(0.0, "time", "10-90 % rise time of a switching transition",
                                  lo=0)
    response: str = choice("first_order", tuple(RESPONSES),
                           "step response: first_order (power), mzi (first-order phase, port "
                           "powers cos^2 / sin^2 of half the phase) or measured (response_file)")
    response_file: str = choice("", None, "measured step response: CSV of 'time_s, response'")
    extinction_ratio_db: float = quantity(INF, "db", "on/off power ratio of the switch (inf: "
                                          "perfect)", lo=0, lo_open=True, inf=True)
    insertion_loss_db: float = quantity(0.0, "db", "power lost per pass through the switch", lo=0)
    jitter_s: float = quantity(0.0, "time", "rms timing jitter of the switching command", lo=0)
    energy_per_switch_j: float = quantity(0.0, "energy", "drive energy of one switching event "
                                          "of one device (a routed vector of N channels passes N "
                                          "devices)", lo=0)
    holding_power_w: float = quantity(0.0, "power", "power one switch device draws to hold its "
                                      "state (static)", lo=0)

    def _check(self, prefix: str) -> None:
        field = join_field(prefix, "response_file")
        if self.response == "measured":
            if not self.response_file:
                raise ConfigError(field, 'must name a CSV file with response = "measured"', '""')
            table = read_step_response(self.response_file, field)
        else:
            if self.response_file:
                raise ConfigError(field, 'must be "" unless response = "measured" (it would be '
                                  "ignored)", describe_value(self.response_file))
            table = (np.zeros(1), np.zeros(1))
        object.__setattr__(self, "_table", table)

    @property
    def tau_s(self) -> float:
        """Time constant of the transition, s, from the 10-90 % rise time: ``rise / ln 9``
        (first order), ``rise / 1.3564`` (MZI), the rise time itself (measured: the table's
        time is in units of its own rise time)."""
        if self.response == "mzi":
            return self.rise_time_s / MZI_RISE
        if self.response == "measured":
            return self.rise_time_s
        return self.rise_time_s / LN9

    @property
    def leak_floor(self) -> float:
        """Power fraction left in an off path once settled: ``10^(-ER/10)``, 0 for ER = inf."""
        return 10.0 ** (-self.extinction_ratio_db / 10.0)

    @property
    def amplitude_floor(self) -> float:
        """Amplitude fraction left in an off path of an electrical switch: ``10^(-ER/20)``."""
        return 10.0 ** (-self.extinction_ratio_db / 20.0)

    def kernel_args(self) -> tuple:
        """``(code, tau, tx, ty)`` of the compiled :func:`~relaxsim.kernels.programming.remainder`."""
        tx, ty = self._table
        return RESPONSES[self.response], float(self.tau_s), tx, ty

    def remainder(self, gap_s):
        """Share ``r`` of a switching transition still to go when the signal arrives ``gap_s``
        seconds after the command (numpy-vectorised): 1 before the command, 0 once settled (and
        for ``gap = inf``, or a switch with ``rise_time_s = 0``). First order: ``exp(-gap/tau)``;
        MZI: ``cos^2(pi/2 (1 - exp(-gap/tau)))``; measured: ``1 - s(gap / rise)``."""
        from relaxsim.kernels.programming import remainders

        gap = np.asarray(gap_s, dtype=np.float64)
        out = np.empty(gap.shape)
        remainders(gap.reshape(-1), *self.kernel_args(), out.reshape(-1))
        return _scalar_or_array(out)

    def leak(self, gap_s):
        """Power fraction ``eps`` still routed to the previous bank's port of a 1x2 stage when
        the signal arrives ``gap_s`` after the command: ``e_ER + (1 - 2 e_ER) r(gap)`` (the
        stage is lossless: the new port has the rest), with ``r`` :meth:`remainder`."""
        floor = self.leak_floor
        return _scalar_or_array(floor + (1.0 - 2.0 * floor) * np.asarray(self.remainder(gap_s)))

    def jittered_remainder(self, gaps, z):
        """:meth:`remainder` of the gaps moved by the timing jitter: ``gaps (T,) - jitter_s z``,
        with ``z (T, W)`` standard normal draws; 0 on the steps that do not switch
        (``gap = inf``). One compiled pass: it runs on every batch."""
        from relaxsim.kernels.programming import jittered_remainders

        gaps = np.ascontiguousarray(gaps, dtype=np.float64)
        z = np.ascontiguousarray(z, dtype=np.float64)
        out = np.empty(z.shape)
        jittered_remainders(gaps, z, self.jitter_s, *self.kernel_args(), out)
        return out

    def transmission(self) -> float:
        """Field-amplitude factor of one pass: ``10^(-IL_dB / 20)``."""
        return 10.0 ** (-self.insertion_loss_db / 20.0)

    def time_to_remainder(self, r: float) -> float:
        """Time after the command at which the transition's remainder falls to ``r`` (0 < r < 1;
        0 for an instant switch)."""
        if not 0 < r < 1:
            raise ValueError(f"r must be in (0, 1) (got {r!r})")
        tau = self.tau_s
        if tau == 0:
            return 0.0
        if self.response == "first_order":
            return tau * math.log(1.0 / r)
        if self.response == "mzi":
            return tau * _mzi_x(1.0 - r)
        tx, ty = self._table
        late = np.flatnonzero(1.0 - ty > r)  # the last tabulated time still above r
        if len(late) == 0:
            return 0.0
        i = late[-1]
        if i + 1 >= len(tx):
            return math.inf
        x0, x1, y0, y1 = tx[i], tx[i + 1], 1.0 - ty[i], 1.0 - ty[i + 1]
        return tau * float(x0 + (x1 - x0) * (y0 - r) / (y0 - y1))

    def settle_time_s(self, tol: float) -> float:
        """Time after the command until the transition's remainder is below ``tol``."""
        if not 0 < tol < 1:
            raise ValueError(f"tol must be in (0, 1) (got {tol!r})")
        return self.time_to_remainder(tol)


@dataclass(frozen=True, kw_only=True)
class ActiveElement(DeviceRecord):
    """The fast nonlinear element after each bank: transfer function, response time and noise."""

    KIND: ClassVar[str] = "active"

    transfer: str = choice("network", None, 'transfer function: a registered activation, or '
                           '"network" for network.activation')
    response_time_s: float = quantity(0.0, "time", "response time constant tau_a", lo=0)
    noise: float = quantity(0.0, "ratio", "additive rms noise on the element output, of full "
                            "scale (auto: from the power budget)", lo=0, auto=True)
    detector_noise: float = quantity(0.0, "ratio", "additive rms noise at the readout, of full "
                                     "scale (auto: from the power budget)", lo=0, auto=True)
    detection: str = choice("oeo", ("oeo", "optical"),
                            "oeo: a detector in front of the element (O-E-O); optical: "
                            "all-optical (no detector until the readout)")
    responsivity: float = quantity(1.0, "ratio", "detector responsivity, A/W", lo=0,
                                   lo_open=True)
    thermal_noise: float = quantity(0.0, "ratio", "detector input-referred noise current "
                                    "density, A/sqrt(Hz)", lo=0)
    rin_db: float = quantity(-200.0, "db", "laser relative intensity noise, dB/Hz", hi=0)
    noise_figure_db: float = quantity(0.0, "db", "noise figure of an optical amplifier in the "
                                      "element (ASE); 0 dB: no amplifier", lo=0)
    bandwidth_hz: float = quantity(0.0, "frequency", "detector noise bandwidth (0: 1 / (4 "
                                   "tau_a) of the element's response; for an instant element, "
                                   "half the clock rate, or of 1 / T_MM with the auto clock)",
                                   lo=0)
    gain: float = quantity(1.0, "ratio", "small-signal gain of the transfer function", lo=0,
                           lo_open=True)
    saturation: float = quantity(1.0, "ratio", "input scale at which the response saturates",
                                 lo=0, lo_open=True, inf=True)
    bias_rad: float = quantity(0.0, "angle", "phase bias of a sin^2 modulator")
    absorption: float = quantity(0.0, "ratio", "unsaturated absorption of a saturable absorber",
                                 lo=0, hi=1, hi_open=True)
    energy_per_activation_j: float = quantity(0.0, "energy", "energy of one activation (one "
                                              "element, one step)", lo=0)
    static_power_w: float = quantity(0.0, "power", "power one element draws whether it acts or "
                                     "not (an SOA's bias current, a modulator's bias), static",
                                     lo=0)
    detector_power_w: float = quantity(0.0, "power", "power of one detector with its amplifier "
                                       "(TIA), static: every O-E-O element and every readout "
                                       "channel of an optical machine has one", lo=0)

    def _check(self, prefix: str) -> None:
        from relaxsim.activations import ACTIVATIONS  # at validation time: names register late

        if self.transfer != "network" and self.transfer not in ACTIVATIONS:
            known = ", ".join(ACTIVATIONS.names())
            raise ConfigError(join_field(prefix, "transfer"),
                              f'must be "network" or one of {known}',
                              describe_value(self.transfer),
                              closest(self.transfer, ACTIVATIONS.names()).removeprefix("; "))
        if self.transfer == "network":
            # the network's own activation has no device parameters: refuse them, never ignore
            for key, value, plain in (("gain", self.gain, 1.0), ("saturation", self.saturation, 1.0),
                                      ("bias", self.bias_rad, 0.0),
                                      ("absorption", self.absorption, 0.0)):
                if value != plain:
                    raise ConfigError(join_field(prefix, key),
                                      f'must be {plain:g} with transfer = "network" (the network\'s '
                                      "activation); set a device transfer to use it",
                                      f"{value:g}")

    def carry_over(self, dwell_s):
        """Share ``a = exp(-dwell / tau_a)`` of the old state kept after ``dwell_s`` seconds
        (numpy-vectorised); 0 for every dwell >= 0 when ``response_time_s = 0``."""
        dwell = np.asarray(dwell_s, dtype=np.float64)
        if self.response_time_s > 0:
            a = np.exp(-np.maximum(dwell, 0.0) / self.response_time_s)
        else:
            a = np.where(dwell < 0, 1.0, 0.0)
        return _scalar_or_array(np.where(np.isnan(dwell), np.nan, a))

    def settle_time_s(self, tol: float) -> float:
        """Dwell after which less than ``tol`` of the old state remains: ``tau_a ln(1/tol)``."""
        return _settle(self.response_time_s, tol)

    def transfer_params(self, network_activation: str) -> tuple[int, float, float, float]:
        """``(code, p0, p1, p2)`` for the kernels: the activation's code, gain, saturation, and
        ``bias_rad`` for ``sin2`` or ``absorption`` otherwise; for ``transfer == "network"``,
        ``network_activation`` with its ideal parameters (relu unsaturated, sin2 at quadrature)."""
        from relaxsim.activations import ACTIVATIONS

        if self.transfer == "network":  # the textbook function, with its own parameters
            act = ACTIVATIONS.get(network_activation, field="network.activation")
            return (int(act.code), *(float(v) for v in act.ideal))
        code = ACTIVATIONS.get(self.transfer, field=f"{self.KIND}.transfer").code
        p2 = self.bias_rad if self.transfer == "sin2" else self.absorption
        return int(code), float(self.gain), float(self.saturation), float(p2)


@dataclass(frozen=True, kw_only=True)
class WeightElement(DeviceRecord):
    """A slow programmable element holding one weight: range, precision, noise, drift, cost."""

    KIND: ClassVar[str] = "weight"

    w_max: float = quantity(INF, "ratio", "largest |weight| the element represents", lo=0,
                            lo_open=True, inf=True)
    sign: str = choice("bipolar", ("bipolar", "differential"),
                       "bipolar, or differential (a pair of unipolar devices)")
    bits: float = quantity(INF, "ratio", "programming precision, 2^bits levels (inf: analog)",
                           lo=1, inf=True, whole=True)
    program_noise: float = quantity(0.0, "ratio", "programming noise, rms relative to w_max", lo=0)
    read_noise: float = quantity(0.0, "ratio", "read noise, rms relative to w_max", lo=0)
    drift: str = choice("none", ("none", "power_law", "exponential"), "drift model")
    drift_nu: float = quantity(0.0, "ratio", "mean power-law drift exponent nu", lo=0)
    drift_nu_std: float = quantity(0.0, "ratio", "device-to-device std of nu", lo=0)
    drift_t0_s: float = quantity(20.0, "time", "reference time t0 of the power law", lo=0,
                                 lo_open=True)
    drift_tau_s: float = quantity(INF, "time", "time constant of exponential drift", lo=0,
                                  lo_open=True, inf=True)
    program_time_s: float = quantity(0.0, "time", "10-90 % response time of one write (a "
                                     "bank settles to half a level of its precision: "
                                     "write_settle_time)", lo=0)
    write_energy_j: float = quantity(0.0, "energy", "energy of one weight write", lo=0)
    endurance_writes: float = quantity(INF, "ratio", "writes a device survives (inf: no limit)",
                                       lo=0, lo_open=True, inf=True, whole=True)
    static_power_w: float = quantity(0.0, "power", "power to hold one weight", lo=0)
    insertion_loss_db: float = quantity(0.0, "db", "optical loss of one pass through a bank",
                                        lo=0)
    signal: str = choice("coherent", ("coherent", "incoherent", "electrical"),
                         "what the banks act on: coherent (optical fields), incoherent (optical "
                         "powers) or electrical (voltages, currents)")
    # how a bank is built: weight by weight, or a Mach-Zehnder mesh programmed by its phases
    model: str = choice("crossbar", ("crossbar", "mesh"),
                        "crossbar (one element per weight) or mesh (W = U S V^T: two Clements "
                        "meshes of MZIs set by their phases, and N attenuators)")
    mzi_length_m: float = quantity(0.0, "length", "mesh: length of one MZI column along the "
                                   "light's path (couplers and phase shifters)", lo=0)
    group_index: float = quantity(0.0, "ratio", "mesh: group index of the waveguides (the "
                                  "propagation time is depth x length x n_g / c)", lo=0)
    phase_power_w: float = quantity(0.0, "power", "mesh: heater power for a phase of pi (P_pi)",
                                    lo=0)
    phase_bits: float = quantity(INF, "ratio", "mesh: bits of the heater DACs over a phase of "
                                 "2 pi (inf: analog)", lo=1, inf=True, whole=True)
    phase_noise_rad: float = quantity(0.0, "angle", "mesh: rms programming error of a phase",
                                      lo=0)
    crosstalk: float = quantity(0.0, "ratio", "mesh: thermal crosstalk, the share of a phase "
                                "shifter's phase that each neighbour in its column picks up",
                                lo=0, hi=1, hi_open=True)
    splitter_imbalance: float = quantity(0.0, "ratio", "mesh: rms deviation of a directional "
                                         "coupler's power split from 50 %", lo=0, hi=0.5,
                                         hi_open=True)
    mzi_loss_db: float = quantity(0.0, "db", "mesh: optical loss of one MZI", lo=0)
    # conductance statistics, drift compensation and wear
    statistics: str = choice("uniform", ("uniform", "pcm"),
                             "uniform (programming and read noise alike for every weight) or "
                             "pcm (aihwkit's conductance-dependent PCM noise and drift)")
    drift_compensation: str = choice("none", ("none", "global"),
                                     "none, or global: one scale calibrated at read time on a "
                                     "reference input undoes the mean drift (aihwkit)")
    failure: str = choice("last", ("last", "random"),
                          "a worn-out device (past endurance_writes) sticks at its last level or "
                          "at a random level drawn at failure")
    row_time_s: float = quantity(0.0, "time", "time to program one row of a bank "
                                 "(hardware.program_banks = row_serial)", lo=0)

    def _check(self, prefix: str) -> None:
        if self.w_max == INF and (self.bits != INF or self.program_noise or self.read_noise
                                  or self.statistics != "uniform" or self.model == "mesh"):
            raise ConfigError(join_field(prefix, "w_max"),
                              "must be finite unless bits = inf, program_noise = read_noise = 0, "
                              'statistics = "uniform" and model = "crossbar"', "inf")
        if self.statistics == "pcm":
            # the conductance-dependent formulas take the place of these: refuse, never ignore
            if self.sign != "differential":
                raise ConfigError(join_field(prefix, "sign"), 'must be "differential" with '
                                  'statistics = "pcm" (a weight is a pair of conductances)',
                                  describe_value(self.sign))
            if self.drift != "power_law":
                raise ConfigError(join_field(prefix, "drift"), 'must be "power_law" with '
                                  'statistics = "pcm" (the exponents follow from the '
                                  "conductance)", describe_value(self.drift))
            for key, value in (("program_noise", self.program_noise),
                               ("read_noise", self.read_noise), ("drift_nu", self.drift_nu),
                               ("drift_nu_std", self.drift_nu_std)):
                if value != 0:
                    raise ConfigError(join_field(prefix, key), 'must be 0 with statistics = '
                                      '"pcm" (it follows from the conductance: docs/hardware.md)',
                                      f"{value:g}")
        elif self.drift_compensation != "none" and self.drift == "none":
            raise ConfigError(join_field(prefix, "drift_compensation"),
                              'must be "none" without drift (there is nothing to compensate)',
                              describe_value(self.drift_compensation))
        if self.model == "mesh":
            for key, value, plain in (("bits", self.bits, INF),
                                      ("program_noise", self.program_noise, 0.0),
                                      ("static_power", self.static_power_w, 0.0)):
                if value != plain:
                    raise ConfigError(join_field(prefix, key), f"must be {plain:g} with model = "
                                      '"mesh" (a mesh is programmed by its phases: phase_bits, '
                                      "phase_noise; its heaters draw phase_power)", f"{value:g}")
            if self.sign != "bipolar" or self.statistics != "uniform":
                raise ConfigError(join_field(prefix, "model"), 'must be "crossbar" with '
                                  f'sign = "{self.sign}" and statistics = "{self.statistics}" '
                                  "(a mesh holds signed weights in its phases)", '"mesh"')

    @property
    def devices_per_weight(self) -> int:
        return 2 if self.sign == "differential" else 1

    def mesh_heaters(self, rows: int, cols: int) -> int:
        """Phase shifters of a mesh bank of ``rows x cols`` weights: two per MZI of the two
        Clements meshes (``rows (rows - 1) / 2`` and ``cols (cols - 1) / 2`` MZIs) and one per
        attenuator (``min(rows, cols)``)."""
        return rows * (rows - 1) + cols * (cols - 1) + min(rows, cols)

    def mesh_columns(self, n: int) -> int:
        """MZI columns a signal crosses in a mesh bank of ``n`` modes: ``n`` for each of the two
        Clements meshes (U and V^T) and one of attenuators."""
        return 2 * n + 1

    def mesh_propagation_time_s(self, n: int, field: str = "propagation_time") -> float:
        """Propagation through a mesh bank of ``n`` modes: ``(2 n + 1) mzi_length group_index /
        c``; ``field`` names the setting that asked, in the error when there is no mesh or no
        geometry."""
        if self.model != "mesh":
            raise ConfigError(field, 'must be a time unless the weights are a mesh (model = '
                              f'"mesh"; {self.name} is a crossbar)', '"auto"')
        for key, value in (("mzi_length", self.mzi_length_m), ("group_index", self.group_index)):
            if not value > 0:
                raise ConfigError(f"hardware.weights.{key}", f'must be > 0 for {field} = "auto" '
                                  "(the mesh's geometry)", f"{value:g}")
        return self.mesh_columns(n) * self.mzi_length_m * self.group_index / SPEED_OF_LIGHT

    def write_settle_time_s(self, tol: float) -> float:
        """Time for a write to settle within half a level of the element's precision: a
        first-order response of 10-90 % time ``program_time`` (``tau = program_time / ln 9``)
        falls to ``1 / (2 (2^b - 1))`` of its swing after ``tau ln(2 (2^b - 1))``; ``b`` the
        ``bits`` (``phase_bits`` of a mesh); an analog element settles to ``tol``."""
        bits = self.phase_bits if self.model == "mesh" else self.bits
        share = tol if bits == INF else 1.0 / (2.0 * (2.0 ** bits - 1.0))
        return self.program_time_s / LN9 * math.log(1.0 / share)

    # -- devices: what wear and the statistical PCM model act on ---------------------------
    #
    # A weight is one device (bipolar) or a pair (differential: w = d+ - d-). A device's value
    # is in the weight's units, or (statistics = "pcm") a conductance relative to G_max, so
    # that the pair holds w = w_max (g+ - g-).

    @property
    def tracks_wear(self) -> bool:
        """Whether writes are counted per device (a finite ``endurance_writes``): a device is
        then written only when its level changes, and sticks once worn out."""
        return self.endurance_writes != INF

    def device_targets(self, w):
        """The level each device is programmed to for weights ``w`` (clipped and quantised as
        :meth:`program` does, without noise), ``(devices_per_weight,) + w.shape`` float64, and
        ``in_range`` (``|w| <= w_max``)."""
        w = np.ascontiguousarray(w, dtype=np.float64)
        target, in_range = self._write(w, None, 0.0, "")
        if self.sign == "bipolar":
            return target[None], in_range
        pair = np.stack([np.maximum(target, 0.0), np.maximum(-target, 0.0)])
        return (pair / self.w_max if self.statistics == "pcm" else pair), in_range

    def device_program(self, targets, rng: np.random.Generator):
        """Devices programmed to ``targets`` (:meth:`device_targets`) with their programming
        noise, one standard normal per device from ``rng`` when there is noise: the statistical
        PCM model's conductance-dependent noise (:mod:`relaxsim.devices.pcm`), else
        ``program_noise w_max`` per device; a device of a pair never goes below 0."""
        from relaxsim.kernels.rng import draw_key, normal_from_key

        from . import pcm

        if self.statistics == "pcm":
            return pcm.program_compiled(targets, normal_from_key(draw_key(rng),
                                                                 np.shape(targets)))
        sigma = self.program_noise * self.w_max
        if sigma == 0:
            return np.array(targets, dtype=np.float64)
        out = targets + normal_from_key(draw_key(rng), np.shape(targets), sigma)
        return out if self.sign == "bipolar" else np.maximum(out, 0.0, out=out)

    def device_weights(self, values):
        """The weights devices of ``values`` hold: ``d``, ``d+ - d-`` or ``w_max (g+ - g-)``."""
        values = np.asarray(values)
        if self.sign == "bipolar":
            return values[0]
        diff = values[0] - values[1]
        return self.w_max * diff if self.statistics == "pcm" else diff

    def device_random_levels(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` levels drawn uniformly at random, as a device worn out with
        ``failure = "random"`` sticks at: one of the ``2^bits`` levels of its range (any value
        when analog); the range is ``[-w_max, w_max]`` bipolar, ``[0, w_max]`` for a device of
        a pair (``[0, 1]`` relative for PCM conductances)."""
        lo = -self.w_max if self.sign == "bipolar" else 0.0
        hi = 1.0 if self.statistics == "pcm" else self.w_max
        if self.bits == INF:
            return rng.uniform(lo, hi, n)
        levels = 2.0 ** self.bits - 1.0
        return lo + (hi - lo) * rng.integers(0, int(levels) + 1, n) / levels

    def pcm_program(self, w, rng: np.random.Generator):
        """Write ``w`` into conductance pairs (statistics = "pcm"): ``(g, in_range)``, ``g`` of
        shape ``(2,) + w.shape`` relative to ``G_max``, each device with its
        conductance-dependent programming noise."""
        targets, in_range = self.device_targets(w)
        return self.device_program(targets, rng), in_range

    def pcm_exponents(self, g, key: int):
        """The drift exponent of each device of conductances ``g``, drawn from ``key``."""
        from relaxsim.kernels.rng import normal_from_key

        from . import pcm

        return pcm.drift_exponents(g, normal_from_key(key, np.shape(g), 1.0))

    def pcm_read(self, g, nu, elapsed_s: float, rng: np.random.Generator):
        """The pairs' conductances ``elapsed_s`` after programming (drift and 1/f read noise,
        one standard normal per device, drawn from a key of ``rng``), as weights
        ``w_max (g+ - g-)``; ``nu`` may be ``None`` at ``elapsed_s = 0`` (no drift yet)."""
        from relaxsim.kernels.rng import draw_key, normal_from_key

        from . import pcm

        z = normal_from_key(draw_key(rng), np.shape(g))
        g_t = pcm.read_compiled(g, nu, float(elapsed_s), self.drift_t0_s, z)
        return self.w_max * (g_t[0] - g_t[1])

    def program(self, w, rng: np.random.Generator | None = None):
        """Write the weights ``w``: ``(w_prog, in_range)``.

        Clip to ``[-w_max, w_max]``; quantise (bipolar: 2^bits levels over ``[-w_max, w_max]``;
        differential: ``max(w, 0)`` and ``max(-w, 0)`` each on 2^bits levels over ``[0, w_max]``);
        add N(0, (program_noise w_max)^2) per device, drawn from ``rng``. ``in_range`` is
        ``|w| <= w_max``, where the straight-through gradient passes. With bits = inf, no noise
        and ``|w| <= w_max`` the result equals ``w`` bit for bit, and ``rng`` is not touched.
        """
        return self._write(w, rng, self.program_sigma(), "program: a numpy Generator is needed "
                           "when program_noise > 0")

    def program_and_read(self, w, rng: np.random.Generator | None = None, out=None,
                         in_range=None):
        """Write ``w`` and read it at once, before any drift: ``(w_read, in_range)``.

        The programming error stays with the weight and each read adds a fresh one; for a
        single read they are two independent normals on the same weight, drawn here as one of
        the summed variance: the distribution of :meth:`program` followed by one read, with one
        draw per weight instead of two. ``out`` and ``in_range``: arrays of ``w``'s shape to
        fill instead of new ones (``in_range`` boolean or in ``w``'s dtype)."""
        return self._write(w, rng, self.written_read_sigma(), "program_and_read: a numpy Generator is needed when "
                           "program_noise > 0 or read_noise > 0", out, in_range)

    def _write(self, w, rng, sigma: float, no_rng: str, out=None, in_range=None):
        """Clip, quantise and add N(0, sigma^2) per weight in one pass (into ``out`` and
        ``in_range`` when given: arrays of ``w``'s shape, ``in_range`` boolean or in ``w``'s
        dtype, 1 where the gradient passes)."""
        from relaxsim.kernels.programming import write
        from relaxsim.kernels.rng import check_out, draw_key, threads_pay

        if not (type(w) is np.ndarray and w.dtype.kind == "f" and w.flags.c_contiguous):
            w = np.asarray(w)
            w = np.ascontiguousarray(w, dtype=w.dtype if w.dtype.kind == "f" else np.float64)
        dtype = w.dtype
        out = np.empty_like(w) if out is None else out
        in_range = np.empty(w.shape, dtype=np.bool_) if in_range is None else in_range
        check_out("out", out, w.shape, dtype)
        check_out("in_range", in_range, w.shape, dtype, np.bool_)
        flat = w.reshape(-1)
        w_max, step, differential = self.grid(dtype)
        if sigma > 0 and rng is None:
            raise ValueError(no_rng)
        write(flat, w_max, step, differential, draw_key(rng) if sigma > 0 else 0, sigma,
              out.reshape(-1), in_range.reshape(-1), threads_pay(w.size))
        return out, in_range

    def grid(self, dtype) -> tuple:
        """``(w_max, step, differential)`` of the compiled writes for weights of ``dtype``:
        ``w_max`` and the quantisation step (0: analog) as scalars of ``dtype``, so that float32
        weights are clipped and quantised in float32 arithmetic (eight lanes a vector; float64
        ones exactly as before)."""
        kind = np.dtype(dtype).type
        differential = self.sign == "differential"
        if self.bits == INF:
            return kind(self.w_max), kind(0.0), differential
        span = self.w_max if differential else 2.0 * self.w_max
        return kind(self.w_max), kind(span / (2.0 ** self.bits - 1.0)), differential

    def written_read_sigma(self) -> float:
        """The noise of a weight written and read at once: programming and read noise as one
        normal of the summed variance (:meth:`program_and_read`)."""
        return math.hypot(self.program_sigma(), self.read_sigma())

    def program_sigma(self) -> float:
        """Programming noise of one weight, rms: ``program_noise w_max`` (times sqrt 2 for a
        pair: its two independent errors sum to one normal of sqrt 2 times the width)."""
        if self.program_noise == 0:
            return 0.0
        return self.program_noise * self.w_max * math.sqrt(self.devices_per_weight)

    @property
    def drifts_apart(self) -> bool:
        """Whether each weight has its own drift exponent (power law with ``drift_nu_std > 0``)."""
        return self.drift == "power_law" and self.drift_nu_std > 0

    def drift_key(self, rng: np.random.Generator | None = None):
        """The key of the per-weight drift exponents of one write (one draw from ``rng``), or
        ``None`` when every weight drifts alike (no draw): the exponents themselves are drawn
        from it when first needed (:meth:`drift_exponents`), the same ones whenever."""
        if not self.drifts_apart:
            return None
        if rng is None:
            raise ValueError("drift_exponents: a numpy Generator is needed when drift_nu_std > 0")
        from relaxsim.kernels.rng import draw_key

        return int(draw_key(rng))

    def drift_exponents(self, shape, rng: np.random.Generator | None = None, key=None):
        """Per-weight power-law exponents ``nu_ij = drift_nu + drift_nu_std N(0, 1)``, drawn once
        when a bank is programmed (from ``rng``, or from a ``key`` of :meth:`drift_key`);
        ``None`` when every weight drifts alike (no draw)."""
        if not self.drifts_apart:
            return None
        from relaxsim.kernels.rng import normal_from_key

        key = self.drift_key(rng) if key is None else key
        return self.drift_nu + normal_from_key(key, shape, self.drift_nu_std)

    def drift_factor(self, elapsed_s: float, shape, rng: np.random.Generator | None = None,
                     nu=None):
        """Factor by which each weight has drifted ``elapsed_s`` seconds after programming.

        ``none``: ones; ``power_law``: ``(max(t, t0) / t0)^(-nu_ij)`` with the exponents ``nu``
        drawn at programming (:meth:`drift_exponents`; drawn here from ``rng`` when not given);
        ``exponential``: ``exp(-t / drift_tau_s)``.
        """
        t = float(elapsed_s)
        if not t >= 0:
            raise ValueError(f"elapsed_s must be >= 0 (got {elapsed_s!r})")
        if self.drift == "none":
            return np.ones(shape)
        if self.drift == "exponential":
            return np.full(shape, math.exp(-t / self.drift_tau_s))
        if nu is None:
            nu = self.drift_exponents(shape, rng)
        nu = np.broadcast_to(self.drift_nu if nu is None else nu, shape)
        return (max(t, self.drift_t0_s) / self.drift_t0_s) ** (-nu)

    def drift_is_identity(self, elapsed_s: float) -> bool:
        """Whether :meth:`drift_factor` is 1 for every weight after ``elapsed_s`` (no drift model,
        no time elapsed, or a power law before its onset ``t0``)."""
        if self.drift == "none":
            return True
        if self.drift == "exponential":
            return elapsed_s == 0
        return elapsed_s <= self.drift_t0_s

    def read_sigma(self) -> float:
        """Read noise of one weight, rms: ``read_noise w_max`` (times sqrt 2 for a pair)."""
        if self.read_noise == 0:
            return 0.0
        return self.read_noise * self.w_max * math.sqrt(self.devices_per_weight)


@dataclass(frozen=True, kw_only=True)
class Interface(DeviceRecord):
    """The machine's edge: the laser feeding its channels, the modulators and DACs that inject
    the inputs, the ADCs that read the states out. A converter's energy per sample is its
    Walden figure of merit times ``2^bits`` (``E = FoM 2^bits``: the FoM is power over
    ``2^ENOB f_s``), unless set."""

    KIND: ClassVar[str] = "io"

    laser_efficiency: float = quantity(1.0, "ratio", "laser wall-plug efficiency: optical power "
                                       "out over electrical power in", lo=0, lo_open=True, hi=1)
    modulator_energy_j: float = quantity(0.0, "energy", "energy of one modulator symbol (one "
                                         "injected value on one channel)", lo=0)
    dac_fom_j: float = quantity(0.0, "energy", "DAC Walden figure of merit, energy per "
                                "conversion step", lo=0)
    dac_bits: float = quantity(8.0, "ratio", "DAC resolution its energy is counted at when "
                               "hardware.input_bits is inf (no quantisation modelled)", lo=1,
                               hi=32, whole=True)
    dac_energy_j: float = quantity("auto", "energy", "energy of one DAC sample (auto: dac_fom "
                                   "2^bits)", lo=0, auto=True)
    dac_rate_hz: float = quantity(INF, "frequency", "DAC sample rate per channel", lo=0,
                                  lo_open=True, inf=True)
    adc_fom_j: float = quantity(0.0, "energy", "ADC Walden figure of merit, energy per "
                                "conversion step", lo=0)
    adc_bits: float = quantity(8.0, "ratio", "ADC resolution its energy is counted at when "
                               "hardware.readout_bits is inf (no quantisation modelled)", lo=1,
                               hi=32, whole=True)
    adc_energy_j: float = quantity("auto", "energy", "energy of one ADC sample (auto: adc_fom "
                                   "2^bits)", lo=0, auto=True)
    adc_rate_hz: float = quantity(INF, "frequency", "ADC sample rate per channel (the readout "
                                  "of the states training needs)", lo=0, lo_open=True, inf=True)

    def dac_sample_j(self, bits: float) -> float:
        """Energy of one DAC sample: ``dac_energy``, or ``dac_fom 2^b`` with ``b`` = ``bits``
        when finite (the converter modelled), else ``dac_bits``."""
        return self._sample("dac", bits)

    def adc_sample_j(self, bits: float) -> float:
        """Energy of one ADC sample: ``adc_energy``, or ``adc_fom 2^b`` (see
        :meth:`dac_sample_j`)."""
        return self._sample("adc", bits)

    def _sample(self, name: str, bits: float) -> float:
        if not self.is_auto(f"{name}_energy"):
            return float(getattr(self, f"{name}_energy_j"))
        b = bits if math.isfinite(bits) else getattr(self, f"{name}_bits")
        return float(getattr(self, f"{name}_fom_j")) * 2.0 ** b


@dataclass(frozen=True, kw_only=True)
class Processor(DeviceRecord):
    """The digital processor beside the machine: the digital input layer, the readout layer,
    and training's gradient computation."""

    KIND: ClassVar[str] = "digital"

    mac_rate: float = quantity(INF, "ratio", "multiply-accumulates per second the processor "
                               "sustains (inf: instant)", lo=0, lo_open=True, inf=True)
    energy_per_mac_j: float = quantity(0.0, "energy", "energy of one multiply-accumulate, "
                                       "memory traffic included", lo=0)


RECORDS: dict[str, type[DeviceRecord]] = {cls.KIND: cls for cls in
                                          (Switch, ActiveElement, WeightElement, Interface,
                                           Processor)}
