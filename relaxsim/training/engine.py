"""Running a network on a machine: ideally, or with the hardware's non-idealities in the loop.

An :class:`Engine` owns the state that the hardware adds to a network: the weights as the weight
elements hold them (reprogrammed every ``update_every`` batches), the hardware time elapsed since
they were programmed (it drives drift), and the generator of every hardware noise draw. Training
and evaluation call ``loss_and_grad`` and ``evaluate`` and never see which machine they run on.

Gradients on hardware: the kernels give the exact gradient with respect to the weights the
hardware used (noise draws held fixed); it reaches the digital master weights straight through
quantisation and noise, scaled by the drift factor, and stops where the target was clipped.
"""

from __future__ import annotations

import math

import numpy as np

from relaxsim.hardware import Hardware, MachineTiming, Programmed

CALIBRATION_ROWS = 1024  # training samples the converters' full scales are calibrated on
from relaxsim.kernels.passes import Workspace
from relaxsim.model import Network


class Engine:
    """The ideal network: no state, no noise."""

    def __init__(self, net: Network):
        self.net = net

    def loss_and_grad(self, params, x, y):
        return self.net.loss_and_grad(params, x, y)

    def begin_evaluation(self, params) -> None:
        """Prepare to evaluate ``params`` (on hardware: program the banks once)."""

    def calibrate(self, params, data) -> None:
        """Set the converters' full scales for ``params`` from the training split of ``data``
        (on hardware with converters; nothing otherwise)."""

    def logits(self, params, x):
        return self.net.forward(params, x)

    def state(self) -> tuple[dict[str, np.ndarray], dict]:
        """What a checkpoint must keep between epochs: arrays by name, and JSON-able scalars."""
        return {}, {}

    def restore(self, arrays: dict[str, np.ndarray], scalars: dict) -> None:
        """Continue from what :meth:`state` returned."""


class HardwareEngine(Engine):
    """The network on ``hw``: programmed banks, drift, noise; deterministic given ``rng``."""

    def __init__(self, net: Network, hw: Hardware, rng: np.random.Generator,
                 inference_time_s: float | None = None):
        super().__init__(net)
        self.hw = hw
        self.rng = rng
        self.programmed: Programmed | None = None
        self._buffers = Workspace()
        self._prepared = {}  # batch size -> TrainingDraws
        self.writes = 0  # programming events (each writes every bank weight once)
        self.batches_since_program = 0
        # The slow time scale, simulated: hardware time of forward passes (one period of the
        # machine's stream each, :meth:`MachineTiming.period`) and programming.
        self.inference_time_s = (MachineTiming(hw, net.schedule, net.banks).period()
                                 if inference_time_s is None else float(inference_time_s))
        self.clock_s = 0.0
        self.programming_s = 0.0
        self.programmed_at = 0.0
        self.converters = None  # (fs_in, bits_in, fs_out, bits_out) once calibrated
        # hardware.input_layer = "bank": W_in held in a weight bank of its own, programmed with
        # the banks (its drift exponents, like theirs, fixed at programming)
        self.programmed_in: Programmed | None = None
        self._programmed_in_now: Programmed | None = None  # the input bank of this batch
        # every device's writes, when the weight element wears out (a finite endurance)
        shapes = net.param_shapes()
        self.wear = hw.wear(shapes["W"])
        self.wear_in = hw.wear(shapes["W_in"]) if hw.input_bank else None

    # -- training ----------------------------------------------------------------------------

    def loss_and_grad(self, params, x, y):
        hw, net = self.hw, self.net
        on_hw = {}
        if hw.update_every == 1 and hw.plain_writes:  # each write read once, at once: one draw
            # for both noises, in one compiled pass
            W_hw, dW_factor, mix, noise, det = self._draws(len(y))(params["W"], self.rng)
            if hw.input_bank:  # the input bank, written and read as the banks are
                on_hw["W_in"] = hw.program_and_read(params["W_in"], self.rng, wear=self.wear_in)
            self._wrote()
        else:
            if self.programmed is None or self.batches_since_program >= hw.update_every:
                self.programmed = hw.program(params["W"], self.rng, self.wear)
                if hw.input_bank:
                    self.programmed_in = hw.program(params["W_in"], self.rng, self.wear_in)
                self._wrote()
            elapsed = self.clock_s - self.programmed_at
            W_hw, dW_factor = hw.read(self.programmed, elapsed, self.rng)
            if hw.input_bank:
                on_hw["W_in"] = hw.read(self.programmed_in, elapsed, self.rng)
                self._programmed_in_now = self.programmed_in
            mix = hw.jittered_mix(net.coupling, len(y), self.rng)
            noise, det = hw.draw_noise(self.rng, net.steps, len(y), net.hidden, net.dtype,
                                       out=self._buffer)
        used = {**params, "W": W_hw, **{k: v[0] for k, v in on_hw.items()}}
        loss, grads = net.loss_and_grad(used, x, y, noise=noise, det=det, mix=mix,
                                        converters=self.converters)
        grads["W"] *= dW_factor
        for key, (_, factor) in on_hw.items():  # straight through, stopped where clipped
            grads[key] *= factor
        if hw.weights.model == "mesh":  # and along the singular values a mesh clipped
            grads["W"] = hw.pass_gradient(self.programmed, grads["W"])
            if "W_in" in on_hw:
                grads["W_in"] = hw.pass_gradient(self._programmed_in_now, grads["W_in"])
        self.batches_since_program += 1
        self.clock_s += len(y) * self.inference_time_s
        return loss, grads

    def _draws(self, batch: int):
        """The machine's draws for a training batch of ``batch`` samples, prepared once per
        batch size (:meth:`Hardware.training_draws`)."""
        draws = self._prepared.get(batch)
        if draws is None:
            net = self.net
            draws = self._prepared[batch] = self.hw.training_draws(
                net.coupling, batch, net.hidden, net.param_shapes()["W"], out=self._buffer)
        return draws

    def _buffer(self, name: str, shape: tuple, dtype) -> np.ndarray:
        """A work array of one training step, the same one at every step of these shapes: the
        machine's draws and programmed banks are not allocated anew (nor their pages faulted
        in) at every batch. Never handed out beyond the step."""
        return self._buffers.get(name, shape, dtype)

    def _wrote(self) -> None:
        """Count one programming event and advance the hardware clock by its duration."""
        self.batches_since_program = 0
        self.writes += 1
        t_prog = self.hw.program_time_s(self.net.banks)
        self.clock_s += t_prog
        self.programming_s += t_prog
        self.programmed_at = self.clock_s

    # -- checkpoints -------------------------------------------------------------------------

    def state(self) -> tuple[dict[str, np.ndarray], dict]:
        """The machine between epochs: the banks as programmed (none with ``update_every = 1``:
        every batch writes them anew), the hardware clock, the counters and the generator. (The
        banks programmed for an evaluation are not kept: every evaluation programs its own.)"""
        arrays, nu_key, nu_key_in = {}, None, None
        if self.programmed is not None:
            arrays = {"programmed/W": self.programmed.W, "programmed/mask": self.programmed.mask}
            nu_key = self.programmed.nu_key  # the drift exponents are drawn from it
        if self.programmed_in is not None:
            arrays.update({"programmed_in/W": self.programmed_in.W,
                           "programmed_in/mask": self.programmed_in.mask})
            nu_key_in = self.programmed_in.nu_key
        for prefix, programmed in (("programmed", self.programmed),
                                   ("programmed_in", self.programmed_in)):
            if programmed is not None and programmed.devices is not None:
                arrays[f"{prefix}/devices"] = programmed.devices
        for prefix, wear in (("wear", self.wear), ("wear_in", self.wear_in)):
            if wear is not None:
                arrays.update(wear.state(prefix))
        return arrays, {
            "rng": self.rng.bit_generator.state, "writes": self.writes, "nu_key": nu_key,
            "nu_key_in": nu_key_in,
            "batches_since_program": self.batches_since_program, "clock_s": self.clock_s,
            "programming_s": self.programming_s, "programmed_at": self.programmed_at}

    def restore(self, arrays: dict[str, np.ndarray], scalars: dict) -> None:
        """Continue from what :meth:`state` returned."""
        self.rng.bit_generator.state = scalars["rng"]
        self.programmed = None
        if "programmed/W" in arrays:
            self.programmed = Programmed(W=arrays["programmed/W"],
                                         mask=arrays["programmed/mask"],
                                         nu_key=scalars.get("nu_key"),
                                         # earlier checkpoints kept the exponents themselves
                                         nu_draws=arrays.get("programmed/nu_draws"),
                                         devices=arrays.get("programmed/devices"))
        self.programmed_in = None
        if "programmed_in/W" in arrays:
            self.programmed_in = Programmed(W=arrays["programmed_in/W"],
                                            mask=arrays["programmed_in/mask"],
                                            nu_key=scalars.get("nu_key_in"),
                                            devices=arrays.get("programmed_in/devices"))
        for prefix, wear in (("wear", self.wear), ("wear_in", self.wear_in)):
            if wear is not None:
                wear.restore(arrays, prefix)
        self.writes = int(scalars["writes"])
        self.batches_since_program = int(scalars["batches_since_program"])
        self.clock_s = float(scalars["clock_s"])
        self.programming_s = float(scalars["programming_s"])
        self.programmed_at = float(scalars["programmed_at"])

    # -- evaluation --------------------------------------------------------------------------

    def begin_evaluation(self, params) -> None:
        """Program the banks from ``params`` once; they are read after ``hardware.drift_time``."""
        self._eval_programmed = self.hw.program(params["W"], self.rng, self.wear)
        self._eval_programmed_in = (self.hw.program(params["W_in"], self.rng, self.wear_in)
                                    if self.hw.input_bank else None)

    def logits(self, params, x):
        """Logits of one chunk: a fresh read-noise and element-noise draw per chunk."""
        hw, net = self.hw, self.net
        W_hw, _ = hw.read(self._eval_programmed, hw.drift_time_s, self.rng)
        used = {**params, "W": W_hw}
        if self._eval_programmed_in is not None:
            used["W_in"] = hw.read(self._eval_programmed_in, hw.drift_time_s, self.rng)[0]
        mix = hw.jittered_mix(net.coupling, len(x), self.rng)
        noise, det = hw.draw_noise(self.rng, net.steps, len(x), net.hidden, net.dtype)
        return net.forward(used, x, noise=noise, det=det, mix=mix, converters=self.converters)

    def calibrate(self, params, data) -> None:
        """The converters' full scales, from the first :data:`CALIBRATION_ROWS` samples of the
        training split with ``params`` (no noise, no converters): the largest injected drive
        ``|W_in x|`` and the largest readout state ``|h_T|``. A function of ``params`` and the
        data alone (no random draws), so a resumed run calibrates as the uninterrupted one."""
        hw = self.hw
        if math.isinf(hw.input_bits) and math.isinf(hw.readout_bits):
            return
        n = min(CALIBRATION_ROWS, len(data.labels("train")))
        x = data.batch("train", np.arange(n), self.net.dtype)
        fs_in, fs_out = self.net.full_scales(params, x)
        tiny = np.finfo(np.float64).tiny  # all-zero drive: any full scale is exact
        self.converters = (max(fs_in, tiny), hw.input_bits, max(fs_out, tiny), hw.readout_bits)


def engines_for(machine, seed: int):
    """The engines for training and for testing of an :class:`~relaxsim.assembly.Assembly`, as
    its hardware mode asks (on hardware: its network on its machine, with the machine's simulated
    period, not simulated again).

    - ``ideal``: both ideal;
    - ``hardware_aware``: both on hardware (validation too, so model selection sees the machine);
    - ``deploy``: trained and selected ideal, tested on hardware.
    """
    hw = machine.hardware
    if hw.mode == "ideal":
        engine = Engine(machine.network)
        return engine, engine
    # The hardware's draws come from their own stream, so the ideal part of a run (initial
    # weights, shuffling) consumes exactly the same numbers in every mode.
    rng = np.random.default_rng([seed, 0x4857])
    on_hw = HardwareEngine(machine.network_on_hardware, hw, rng, machine.inference_time_s)
    if hw.mode == "hardware_aware":
        return on_hw, on_hw
    return Engine(machine.network), on_hw
