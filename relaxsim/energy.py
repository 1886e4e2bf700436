"""What a machine costs: device counts, static power, energy per inference and per training run.

Every term is a count times a device figure (docs/energy.md lists each with its source); nothing
here simulates: the times come from the timing model (:mod:`relaxsim.timing`), the device
figures from the records (:mod:`relaxsim.devices`). The functions take the machine as
``hw`` (a :class:`relaxsim.hardware.Hardware`: its devices, signal domain, routing and
converters) and the network's shape (:class:`Shape`).

Symbols: ``N`` units per bank, ``D`` inputs (per token for sequence input), ``C`` classes,
``L_T`` steps, ``L_W`` banks of the architecture (ReLaX-Net ``L_W``, RNN and reprogrammed bank 1,
unrolled DNN ``L_T``), ``g`` weight devices per weight (2 for a differential pair), ``S`` element
sets (``hardware.in_flight`` when pipelined, else 1; the unrolled DNN has ``L_T`` element layers).

Device counts (:func:`counts`):

- injection points ``P``: where the input enters: each element set (``S``); unrolled, every layer
  that takes input (``L_T``, or 1 for ``first_step`` input);
- values a conversion injects ``V``: ``N`` (``input_layer = "digital"``: the drive ``W_in x``
  computed digitally) or ``D`` (``"bank"``: the raw input, through an input bank of ``N x D``
  weights at every injection point);
- weight elements ``g (L_W N^2 + [bank] P N D)``; heaters: the weight elements that draw static
  power (``weights.static_power > 0``), or a mesh's phase shifters, ``N (N - 1)`` per Clements
  mesh of ``N`` modes and one per attenuator (``2 N (N - 1) + N`` a bank);
- switches (ReLaX-Net with ``L_W > 1`` only): ``S N d (2 if mux = "switch" else 1)``, ``d`` the
  devices of one routing side per channel (1 for a star, ``2^levels - 1`` for a tree);
- active elements: ``S N`` (``L_T N`` unrolled);
- detectors (optical machines): one per O-E-O active element and ``N`` at the readout;
- DAC channels and modulators (optical machines): ``P V``; ADC channels: ``N`` (the readout);
- laser channels (optical machines): ``P V`` (the modulators' light) and one per O-E-O element
  (it re-emits on a channel of its own).

Static power (:func:`static_power`), by kind: heaters ``weights.static_power`` each (a mesh's
``phase_power`` each: phases spread over ``[0, 2 pi)`` draw ``P_pi`` on average); switches
``holding_power`` each; active elements ``static_power`` each (an SOA's bias); detectors
``detector_power`` each (with the amplifier); lasers ``laser_power / laser_efficiency`` per
channel (wall-plug).

Energy of one inference (:func:`energy_per_inference`), by kind:

- ``switch``: drive ``energy_per_switch N t`` with ``t`` the devices toggled per channel over one
  inference, the return to the first step's bank for the next inference included (a star: one
  device per side per change; a tree: the ``2^l`` stages of every level ``l`` whose bit changes,
  level ``l`` driven by bit ``l`` of the bank index), plus the holding power's share;
- ``active``: ``energy_per_activation L_T N`` plus the bias power's share;
- ``weights``: the heaters' static power's share; ``programming``: ``write_energy`` per device
  written (the reprogrammed bank: the writes per inference the timing model counted, ``g N^2``
  devices each);
- ``detector``, ``laser``: their static power's share;
- ``modulator``, ``dac``: ``c V`` symbols and samples, ``c`` the conversions per inference (1
  for an input held over the walk through the element set, ``L_T`` for sequence input and for
  the unrolled DNN's layers with every-step input); DAC energy per sample ``FoM 2^bits``;
- ``adc``: ``N`` samples at the readout, ``FoM 2^bits`` each;
- ``digital``: the readout layer ``C N`` MACs and, with a digital input layer, ``u N D`` (``u``
  distinct inputs: ``L_T`` for sequence input, else 1), at ``energy_per_mac``.

A static power's share of one inference is ``P period / utilisation``: the power is paid all
the time, the machine delivers an inference every ``period`` while it runs, and it runs the
share ``hardware.utilisation`` of the time.

Multiply-accumulates of one inference: ``L_T N^2 + u N D + C N``; J/MAC is the energy over
them, TOPS/W ``2 MACs / E / 10^12`` (two operations per MAC).

Training (:func:`training`): forward passes (one period each, the energy of an inference at
full utilisation), the readout of the ``(L_T - 1) N`` further states backpropagation needs (by
the ``N`` readout ADCs at their sample rate), the digital gradient computation (recomputing the
pre-activations ``L_T N^2``, the gradients of the states and the banks ``2 L_T N^2``, of the
input layer ``u N D``, of the readout ``2 C N`` per sample, and ``ADAM_MACS`` per parameter per
batch for the optimizer), and the programming events (``T_program`` and ``write_energy`` per
device written). The phases run one after another; the static power is paid through all of
them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

ARCHITECTURES = ("relaxnet", "rnn", "reprogram", "unrolled")
# Kinds of energy, in the order the tables show them.
KINDS = ("weights", "programming", "switch", "active", "detector", "laser", "modulator", "dac",
         "adc", "digital")
STATIC_KINDS = ("weights", "switch", "active", "detector", "laser")
DEVICE_KINDS = ("weight_elements", "heaters", "switches", "active_elements", "detectors",
                "dac_channels", "adc_channels", "modulators", "laser_channels")
# Multiply-accumulates per parameter of one Adam update (two moments, their corrections and
# the step): an assumed count, documented in docs/energy.md.
ADAM_MACS = 5


@dataclass(frozen=True)
class Shape:
    """What the accounting needs of the network."""

    hidden: int           # N
    inputs: int           # D (per token for sequence input)
    classes: int          # C
    schedule: tuple       # bank of each step (L_T steps)
    banks: int            # L_W of ReLaX-Net
    injection: str = "every_step"

    @property
    def steps(self) -> int:
        return len(self.schedule)

    def distinct_inputs(self) -> int:
        """``u``: inputs an inference takes (``L_T`` tokens for sequence input, else 1)."""
        return self.steps if self.injection == "sequence" else 1

    def macs(self) -> int:
        """Multiply-accumulates of one inference: ``L_T N^2 + u N D + C N``."""
        N = self.hidden
        return self.steps * N * N + self.distinct_inputs() * N * self.inputs + self.classes * N


def arch_banks(shape: Shape, arch: str) -> int:
    """Physical banks of ``arch``: ReLaX-Net ``L_W``, RNN and reprogrammed 1, unrolled ``L_T``."""
    return {"relaxnet": shape.banks, "rnn": 1, "reprogram": 1, "unrolled": shape.steps}[arch]


def arch_schedule(shape: Shape, arch: str) -> tuple:
    """The physical bank of each step in ``arch``."""
    T = shape.steps
    return {"relaxnet": tuple(shape.schedule), "rnn": (0,) * T, "reprogram": (0,) * T,
            "unrolled": tuple(range(T))}[arch]


def element_sets(hw, shape: Shape, arch: str) -> int:
    """``S``: element sets (``in_flight`` when pipelined, else 1), or the unrolled DNN's
    ``L_T`` element layers."""
    if arch == "unrolled":
        return shape.steps
    return hw.in_flight if hw.pipelining == "pipelined" else 1


def injection_points(hw, shape: Shape, arch: str) -> int:
    """``P``: every element set, or every layer of the unrolled DNN that takes input."""
    if arch == "unrolled":
        return 1 if shape.injection == "first_step" else shape.steps
    return element_sets(hw, shape, arch)


def conversions(shape: Shape, arch: str) -> int:
    """``c``: conversions of the input per inference (held over an element set's walk; anew at
    every layer of the unrolled DNN with every-step input; every token of a sequence)."""
    if shape.injection == "sequence":
        return shape.steps
    if arch == "unrolled" and shape.injection == "every_step":
        return shape.steps
    return 1


def injected_values(hw, shape: Shape) -> int:
    """``V``: ``N`` (digital input layer: the drive) or ``D`` (input bank: the raw input)."""
    return shape.hidden if hw.input_layer == "digital" else shape.inputs


def optical(hw) -> bool:
    return hw.signal != "electrical"


def switch_devices_per_channel(hw, banks: int) -> int:
    """Switch devices per channel, both sides: ``d (2 if mux = "switch" else 1)``."""
    from relaxsim.devices.routing import stages

    if banks <= 1:
        return 0
    side = 1 if hw.switch_topology == "star" else 2 ** stages(banks, "tree") - 1
    return side * (2 if hw.mux == "switch" else 1)


def toggles_per_inference(hw, schedule: tuple, banks: int) -> int:
    """Switch devices toggled per channel over one inference, both sides: every change of bank
    in the schedule and the return to its first bank (the next inference starts there)."""
    if banks <= 1:
        return 0
    sides = 2 if hw.mux == "switch" else 1
    walk = list(schedule) + [schedule[0]]
    total = 0
    for p, k in zip(walk, walk[1:]):
        if p == k:
            continue
        if hw.switch_topology == "star":
            total += 1
        else:  # level l (bit l of the bank index) has 2^l stages, all driven alike
            diff = p ^ k
            total += sum(2 ** level for level in range(diff.bit_length()) if diff >> level & 1)
    return total * sides


def counts(hw, shape: Shape, arch: str) -> dict[str, int]:
    """Devices of ``arch`` by kind (:data:`DEVICE_KINDS`)."""
    N, g = shape.hidden, hw.weights.devices_per_weight
    S, P, V = element_sets(hw, shape, arch), injection_points(hw, shape, arch), \
        injected_values(hw, shape)
    banks = arch_banks(shape, arch)
    bank_input = hw.input_layer == "bank"
    weights = g * (banks * N * N + (P * N * shape.inputs if bank_input else 0))
    if hw.weights.model == "mesh":  # the phase shifters of the meshes and attenuators
        heaters = banks * hw.weights.mesh_heaters(N, N) + (
            P * hw.weights.mesh_heaters(N, shape.inputs) if bank_input else 0)
    else:
        heaters = weights if hw.weights.static_power_w > 0 else 0
    active = S * N
    light = optical(hw)
    oeo = active if (light and hw.active.detection == "oeo") else 0
    return {
        "weight_elements": weights,
        "heaters": heaters,
        "switches": (S * N * switch_devices_per_channel(hw, banks)
                     if arch == "relaxnet" else 0),
        "active_elements": active,
        "detectors": oeo + N if light else 0,
        "dac_channels": P * V,
        "adc_channels": N,
        "modulators": P * V if light else 0,
        "laser_channels": P * V + oeo if light else 0,
    }


def static_power(hw, devices: dict[str, int]) -> dict[str, float]:
    """Static power by kind (:data:`STATIC_KINDS`), W."""
    # a mesh's heaters at their mean: the phases spread over [0, 2 pi), P_pi on average
    per_heater = (hw.weights.phase_power_w if hw.weights.model == "mesh"
                  else hw.weights.static_power_w)
    return {
        "weights": devices["heaters"] * per_heater,
        "switch": devices["switches"] * hw.switch.holding_power_w,
        "active": devices["active_elements"] * hw.active.static_power_w,
        "detector": devices["detectors"] * hw.active.detector_power_w,
        "laser": devices["laser_channels"] * hw.laser_power_w / hw.io.laser_efficiency,
    }


def dynamic_energy(hw, shape: Shape, arch: str, writes_per_inference: float = 0.0
                   ) -> dict[str, float]:
    """Energy of one inference's events by kind (:data:`KINDS`), J: what it costs beyond the
    static power."""
    N, T = shape.hidden, shape.steps
    banks = arch_banks(shape, arch)
    c, V = conversions(shape, arch), injected_values(hw, shape)
    toggles = toggles_per_inference(hw, arch_schedule(shape, arch), banks) \
        if arch == "relaxnet" else 0
    digital_macs = shape.classes * N + (shape.distinct_inputs() * N * shape.inputs
                                        if hw.input_layer == "digital" else 0)
    written = hw.weights.devices_per_weight * banks * N * N
    return {
        "weights": 0.0,
        "programming": writes_per_inference * written * hw.weights.write_energy_j,
        "switch": N * toggles * hw.switch.energy_per_switch_j,
        "active": T * N * hw.active.energy_per_activation_j,
        "detector": 0.0,
        "laser": 0.0,
        "modulator": c * V * hw.io.modulator_energy_j if optical(hw) else 0.0,
        "dac": c * V * hw.io.dac_sample_j(hw.input_bits),
        "adc": N * hw.io.adc_sample_j(hw.readout_bits),
        "digital": digital_macs * hw.digital.energy_per_mac_j,
    }


def account(hw, shape: Shape, arch: str, *, latency_s: float, period_s: float,
            writes_per_inference: float = 0.0, utilisation: float | None = None) -> dict:
    """Everything one architecture costs: devices, static power, energy per inference by kind
    (the static power's share at the period and ``utilisation``, by default
    ``hw.utilisation``), MACs, J/MAC, TOPS/W, with the latency, period and throughput."""
    u = hw.utilisation if utilisation is None else float(utilisation)
    devices = counts(hw, shape, arch)
    static = static_power(hw, devices)
    energy = dynamic_energy(hw, shape, arch, writes_per_inference)
    share = period_s / u if math.isfinite(period_s) else math.inf
    for kind, power in static.items():
        energy[kind] += power * share if power > 0 else 0.0
    total = float(sum(energy.values()))
    macs = shape.macs()
    static_total = float(sum(static.values()))
    return {
        "banks": arch_banks(shape, arch),
        "latency_s": latency_s,
        "period_s": period_s,
        "throughput_per_s": 1.0 / period_s if period_s > 0 else math.inf,
        "devices": devices,
        "static_power_w": static,
        "static_power_total_w": static_total,
        "utilisation": u,
        "writes_per_inference": writes_per_inference,
        "energy_per_inference_j": total,
        "energy_breakdown_j": energy,
        "energy_static_j": static_total * share if static_total > 0 else 0.0,
        "macs_per_inference": macs,
        "j_per_mac": total / macs,
        "tops_per_w": 2.0 * macs / total / 1e12 if total > 0 else math.inf,
    }


def backward_macs(shape: Shape) -> int:
    """Digital multiply-accumulates of one training sample's backward pass: the
    pre-activations ``L_T N^2``, the states' and banks' gradients ``2 L_T N^2``, the input
    layer's ``u N D``, the readout's ``2 C N``."""
    N, T = shape.hidden, shape.steps
    return 3 * T * N * N + shape.distinct_inputs() * N * shape.inputs + 2 * shape.classes * N


def written_devices(hw, shape: Shape) -> int:
    """Weight devices one programming event of ReLaX-Net writes: its banks' ``g L_W N^2`` and,
    with ``input_layer = "bank"``, the input banks' ``g P N D``."""
    g, N = hw.weights.devices_per_weight, shape.hidden
    written = g * shape.banks * N * N
    if hw.input_layer == "bank":
        written += g * injection_points(hw, shape, "relaxnet") * N * shape.inputs
    return written


def training(hw, shape: Shape, *, samples: float, batches: float, writes: float, params: int,
             period_s: float, inference: dict, device_writes: float | None = None) -> dict:
    """Hardware time and energy of training on the machine: ``samples`` forward passes,
    ``batches`` optimizer steps over ``params`` parameters, ``writes`` programming events of the
    banks; ``inference``: the machine's :func:`account` (its energy per inference at full
    utilisation is what a forward pass costs); ``device_writes``: the device writes counted
    (:class:`relaxsim.hardware.Wear`), else every device at every event. Phases one after
    another, by name: ``forward``,
    ``readout``, ``digital``, ``programming``; the static power also runs through the ones
    after the forward pass (``static``)."""
    N, T = shape.hidden, shape.steps
    io, digital = hw.io, hw.digital
    extra_states = samples * (T - 1) * N
    macs = samples * backward_macs(shape) + batches * ADAM_MACS * params
    written = written_devices(hw, shape)
    time = {
        "forward": samples * period_s,
        "readout": extra_states / (N * io.adc_rate_hz) if math.isfinite(io.adc_rate_hz) else 0.0,
        "digital": macs / digital.mac_rate if math.isfinite(digital.mac_rate) else 0.0,
        "programming": writes * hw.program_time_s(shape.banks),
    }
    full = account(hw, shape, "relaxnet", latency_s=inference["latency_s"], period_s=period_s,
                   writes_per_inference=0.0, utilisation=1.0)
    after = time["readout"] + time["digital"] + time["programming"]
    energy = {
        "forward": samples * full["energy_per_inference_j"],
        "readout": extra_states * io.adc_sample_j(hw.readout_bits),
        "digital": macs * digital.energy_per_mac_j,
        # every device at every event, or the device writes counted (an element that wears
        # out is written only where its level changes)
        "programming": (writes * written if device_writes is None else device_writes)
        * hw.weights.write_energy_j,
        "static": after * full["static_power_total_w"],
    }
    return {
        "samples": samples, "batches": batches, "programming_events": writes,
        "digital_macs": macs,
        "time_s": time, "time_total_s": float(sum(time.values())),
        "energy_j": energy, "energy_total_j": float(sum(energy.values())),
    }
