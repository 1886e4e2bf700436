"""The optical power budget: what reaches a detector, and the noise it sees.

Each of the ``N`` channels is fed by a laser of power ``P_laser`` (``hardware.laser_power``). On
its way to an active element's detector a signal at full scale (a network value of 1) loses

    L_dB = coupling_loss + weights.insertion_loss + switch path (both sides, combiner)

so the detector receives ``P_rx = P_laser 10^(-L_dB / 10)`` (:func:`received_power`). A detector
of responsivity ``R`` (A/W) and noise bandwidth ``B`` turns it into the photocurrent ``I = R P_rx``
with the noise currents (Agrawal, *Fiber-Optic Communication Systems*, 4th ed., sec. 4.4)

    shot      i_sh^2  = 2 q I B
    thermal   i_th^2  = i_n^2 B            (i_n: input-referred current density, A/sqrt(Hz))
    RIN       i_rin^2 = 10^(RIN/10) I^2 B  (RIN in dB/Hz)

and ``SNR = I / sqrt(i_sh^2 + i_th^2 + i_rin^2)`` (:func:`detector_snr`); shot noise alone gives
``SNR = sqrt(P_rx R / (2 q B))``. An optical amplifier of noise figure ``NF`` in front of an
all-optical element adds amplified spontaneous emission: a shot-noise-limited input has
``SNR_in = P_in / (2 h nu B)`` and the amplifier divides it by its noise figure ``F_n``, so
``SNR_ASE = P_in / (2 F_n h nu B)`` (Agrawal sec. 7.1.4; ``h nu`` at 1550 nm), a field noise of
``1 / sqrt(SNR_ASE)`` of the full scale (:func:`ase_snr`).

The noise the network sees is the rms noise relative to the full-scale signal, ``sigma = 1 / SNR``
(element noise per step, detector noise at the readout). Assumptions: every channel carries its
full-scale power (the worst-case shot noise of a bright signal is not reduced for dim ones); an
O-E-O element re-modulates a fresh carrier at every step, so every step receives ``P_rx``; an
all-optical element's gain restores the level it lost.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

Q = 1.602176634e-19          # elementary charge, C (SI 2019, exact)
H = 6.62607015e-34           # Planck constant, J s (SI 2019, exact)
C_LIGHT = 299792458.0        # speed of light, m/s (exact)
WAVELENGTH_M = 1550e-9       # the C band: the presets' devices are telecom-band devices
PHOTON_J = H * C_LIGHT / WAVELENGTH_M


def received_power(laser_w: float, loss_db: float) -> float:
    """``P_laser 10^(-loss_dB / 10)``."""
    return laser_w * 10.0 ** (-loss_db / 10.0)


def detector_snr(power_w: float, responsivity: float, bandwidth_hz: float,
                 thermal_a_per_rthz: float = 0.0, rin_db_hz: float = -math.inf) -> float:
    """Photocurrent over rms noise current at a detector receiving ``power_w`` (shot, thermal and
    RIN noise in ``bandwidth_hz``); inf without noise."""
    current = responsivity * power_w
    var = (2.0 * Q * current * bandwidth_hz + thermal_a_per_rthz ** 2 * bandwidth_hz
           + 10.0 ** (rin_db_hz / 10.0) * current ** 2 * bandwidth_hz)
    return math.inf if var == 0 else current / math.sqrt(var)


def shot_limited_snr(power_w: float, responsivity: float, bandwidth_hz: float) -> float:
    """``sqrt(P R / (2 q B))``."""
    return math.sqrt(power_w * responsivity / (2.0 * Q * bandwidth_hz))


def shot_equals_thermal_w(responsivity: float, thermal_a_per_rthz: float) -> float:
    """Received power above which shot noise exceeds thermal noise: ``2 q R P = i_n^2``."""
    return thermal_a_per_rthz ** 2 / (2.0 * Q * responsivity)


def ase_snr(power_w: float, noise_figure_db: float, bandwidth_hz: float) -> float:
    """Power SNR of a signal ``power_w`` behind an amplifier of noise figure ``F_n``:
    ``P / (2 F_n h nu B)`` (inf for ``F_n = 0 dB``: no amplifier)."""
    if noise_figure_db == 0:
        return math.inf
    return power_w / (2.0 * 10.0 ** (noise_figure_db / 10.0) * PHOTON_J * bandwidth_hz)


@dataclass(frozen=True)
class Budget:
    """The power budget of one machine at full scale (see the module's formulas)."""

    laser_w: float
    loss_db: float                  # laser to detector, total
    losses_db: dict                 # by part: coupling, weights, switches
    received_w: float
    responsivity: float
    bandwidth_hz: float
    snr: float                      # at the element's (and the readout's) detector
    shot_snr: float                 # the shot-noise limit at this power
    ase_snr: float                  # power SNR of the amplifier's ASE (inf: none)
    element_sigma: float            # rms element noise per step, of full scale
    detector_sigma: float           # rms detector noise at the readout, of full scale
    shot_equals_thermal_w: float    # received power where shot noise passes thermal noise

    @property
    def laser_for_shot_limit_w(self) -> float:
        """Laser power per channel at which shot noise passes thermal noise."""
        return self.shot_equals_thermal_w * 10.0 ** (self.loss_db / 10.0)

    def summary(self) -> dict:
        """Plain numbers for ``timing --json`` and ``result.json``."""
        def num(x):
            return None if math.isinf(x) else float(x)

        return {"laser_power_w": self.laser_w, "loss_db": self.loss_db,
                "losses_db": dict(self.losses_db), "received_power_w": self.received_w,
                "responsivity_a_per_w": self.responsivity, "bandwidth_hz": self.bandwidth_hz,
                "snr": num(self.snr), "shot_limited_snr": num(self.shot_snr),
                "ase_snr": num(self.ase_snr), "element_noise": self.element_sigma,
                "detector_noise": self.detector_sigma,
                "shot_equals_thermal_laser_w": num(self.laser_for_shot_limit_w)}
