"""The machine a network runs on: devices, the step timing, and what they do to the physics.

:class:`Hardware` is built once from the ``hardware`` section of a config. It turns the devices
into what the kernels take (the per-step coupling arrays ``a, c, eps, tr``, the transfer function
and its parameters, noise draws) and what training does on the slow time scale (programming the
banks into the weight elements, drift, the straight-through gradient).

Step timing, closed form (one sample in flight, DESIGN.md section 3): a step is the propagation
through a bank ``T_MM`` followed by a window ``w`` in which the switch reconfigures and the active
element settles. With ``clock = "auto"`` the window lasts until both have settled to
``settle_tolerance``; with a fixed clock period ``T_clk`` it is ``T_clk - T_MM``. Then

- switch leak on a step that changes bank: ``eps = e_ER + (1 - e_ER) exp(-w / tau_s)``;
- active-element carry-over ``rho = exp(-w / tau_a)``: ``a_t = alpha + rho`` and ``c_t = 1 - rho``
  (the element relaxes from its old state towards ``f(u_t)`` for the dwell ``w``);
- transmission of the switch path ``tr = 10^(-IL_dB / 20)`` on every pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .activations import ACTIVATIONS, Activation

MODES = ("ideal", "hardware_aware", "deploy")


@dataclass(frozen=True)
class Coupling:
    """Everything the kernels need to know of the machine, per step."""

    a: np.ndarray      # (T,) carry-over of the state
    c: np.ndarray      # (T,) drive of the transfer function
    eps: np.ndarray    # (T,) switch leak into the previous bank
    tr: np.ndarray     # (T,) transmission of the switch path
    code: int          # transfer function kernel code
    act_params: tuple[float, float, float]

    @classmethod
    def ideal(cls, steps: int, alpha: float, activation: Activation, dtype=np.float64):
        return cls(a=np.full(steps, alpha, dtype=dtype), c=np.ones(steps, dtype=dtype),
                   eps=np.zeros(steps, dtype=dtype), tr=np.ones(steps, dtype=dtype),
                   code=activation.code, act_params=tuple(activation.ideal))


@dataclass(frozen=True)
class Programmed:
    """Bank weights as the weight elements hold them after one programming event."""

    W: np.ndarray        # programmed weights (clipped, quantised, with programming noise)
    mask: np.ndarray     # 1 where the target was inside the element's range (gradient passes)
    nu_draws: np.ndarray | None  # per-weight drift exponents, fixed at programming


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

    @property
    def window_s(self) -> float:
        """The switching / settling window after each propagation through a bank."""
        if self.clock_s is None:
            tol = self.settle_tolerance
            return max(self.switch.settle_time_s(tol), self.active.settle_time_s(tol))
        return self.clock_s - self.propagation_time_s

    @property
    def step_time_s(self) -> float:
        return self.propagation_time_s + self.window_s

    def latency_s(self, steps: int) -> float:
        """Closed-form latency of one inference: ``L_T (T_MM + w)``."""
        return steps * self.step_time_s

    def coupling(self, schedule: np.ndarray, alpha: float, network_activation: str,
                 dtype=np.float64) -> Coupling:
        """Per-step coupling arrays of this machine for ``schedule``."""
        T = len(schedule)
        w = self.window_s
        changes = np.zeros(T, dtype=bool)
        changes[1:] = schedule[1:] != schedule[:-1]
        eps = np.where(changes, self.switch.leak(w), 0.0)
        rho = self.active.carry_over(w)
        code, g, s, p = self.active.transfer_params(network_activation)
        if self.active.transfer == "network":
            g, s, p = ACTIVATIONS.get(network_activation).ideal
        return Coupling(a=np.full(T, alpha + rho, dtype=dtype),
                        c=np.full(T, 1.0 - rho, dtype=dtype), eps=eps.astype(dtype),
                        tr=np.full(T, self.switch.transmission(), dtype=dtype), code=code,
                        act_params=(float(g), float(s), float(p)))

    # -- slow time scale: the weight elements ----------------------------------------------

    def program(self, W: np.ndarray, rng: np.random.Generator) -> Programmed:
        """Write the bank weights ``W`` into the weight elements."""
        W_prog, mask = self.weights.program(W, rng)
        nu = None
        if self.weights.drift == "power_law" and self.weights.drift_nu_std > 0:
            nu = self.weights.drift_nu + self.weights.drift_nu_std * rng.standard_normal(W.shape)
        return Programmed(W=W_prog, mask=mask.astype(W.dtype), nu_draws=nu)

    def drift_factor(self, programmed: Programmed, elapsed_s: float) -> np.ndarray | float:
        """Factor by which the programmed weights have drifted after ``elapsed_s``."""
        wt = self.weights
        if wt.drift == "none" or elapsed_s <= 0:
            return 1.0
        if wt.drift == "exponential":
            return float(np.exp(-elapsed_s / wt.drift_tau_s))
        ratio = max(elapsed_s, wt.drift_t0_s) / wt.drift_t0_s
        nu = wt.drift_nu if programmed.nu_draws is None else programmed.nu_draws
        return ratio ** (-nu)

    def read(self, programmed: Programmed, elapsed_s: float, rng: np.random.Generator):
        """Bank weights as one forward pass reads them, and the factor ``dW_hw/dW``.

        The gradient passes straight through quantisation and noise, is scaled by the drift and
        stops where the target was clipped.
        """
        drift = self.drift_factor(programmed, elapsed_s)
        W = programmed.W if np.isscalar(drift) and drift == 1.0 else drift * programmed.W
        sigma = self.weights.read_sigma()
        if sigma > 0:
            W = W + sigma * rng.standard_normal(W.shape)
        return W.astype(programmed.W.dtype, copy=False), drift * programmed.mask

    # -- fast time scale: noise draws ------------------------------------------------------

    def draw_noise(self, rng: np.random.Generator, steps: int, batch: int, hidden: int,
                   dtype=np.float64):
        """Element noise ``(T, B, N)`` and detector noise ``(B, N)`` for one forward pass
        (``None`` where the device is noiseless: no random numbers are consumed)."""
        element = detector = None
        if self.active.noise > 0:
            element = (self.active.noise * rng.standard_normal((steps, batch, hidden))).astype(
                dtype)
        if self.active.detector_noise > 0:
            detector = (self.active.detector_noise * rng.standard_normal((batch, hidden))).astype(
                dtype)
        return element, detector


def build_hardware(hw_cfg) -> Hardware:
    """Build the machine described by a validated ``hardware`` config section."""
    from relaxsim.devices import load_device

    from .config import seconds_of

    hw = Hardware(
        switch=load_device("switch", hw_cfg["switch"], "hardware.switch"),
        weights=load_device("weight", hw_cfg["weights"], "hardware.weights"),
        active=load_device("active", hw_cfg["active"], "hardware.active"),
        clock_s=(None if hw_cfg["clock"] == "auto"
                 else seconds_of("hardware.clock", hw_cfg["clock"], positive=True)),
        propagation_time_s=seconds_of("hardware.propagation_time", hw_cfg["propagation_time"]),
        settle_tolerance=hw_cfg["settle_tolerance"],
        drift_time_s=seconds_of("hardware.drift_time", hw_cfg["drift_time"]),
        update_every=hw_cfg["update_every"],
        mode=hw_cfg["mode"],
    )
    return hw  # a clock shorter than the propagation is refused when the config is validated
