"""The statistical PCM model: conductance-dependent programming noise, drift and read noise.

After aihwkit's ``PCMLikeNoiseModel`` (``aihwkit/inference/noise/pcm.py``), fitted on a million
PCM devices: Nandakumar et al., ICECS 2019; Joshi et al., Nat. Commun. 11, 2473 (2020). A weight
``w`` is a pair of devices with conductances ``g+ = max(w, 0) / w_max`` and ``g- = max(-w, 0) /
w_max``, in units of ``G_max`` (``w = w_max (g+ - g-)``); every formula below takes and returns
conductances in those units.

- Programming noise: ``g_prog = max(g + sigma_prog(g) z, 0)`` with
  ``sigma_prog(g) = (c0 + c1 g + c2 g^2) / 25`` (the polynomial is fitted in uS at
  ``G_max = 25 uS``: ``c = (0.26348, 1.9650, -1.1731)``; 4.2 % of ``G_max`` at ``g = 1``).
- Drift exponent of each device, drawn once at programming: ``nu = |mu(g) + sigma(g) z|`` with
  ``mu(g) = clip(-0.0155 ln g + 0.0244, 0.049, 0.1)`` and
  ``sigma(g) = clip(-0.0125 ln g - 0.0059, 0.008, 0.045)`` (``g`` clipped below at 1e-7).
- Drift and read noise ``t_inf`` seconds after programming, with ``t = t_inf + t0``:
  ``g_drift = g_prog (t / t0)^(-nu)`` (for ``t > t0``), then the 1/f noise accumulated since
  programming, ``g_final = max(g_drift + |g_drift| Q_s sqrt(ln((t + t_read) / (2 t_read))) z,
  0)`` with ``Q_s = min(0.0088 / max(g_prog^0.65, 1e-3), 0.2)`` and ``t_read = 250 ns``.

The numbers are aihwkit's defaults; ``t0`` is the weight element's ``drift_t0`` (aihwkit: 20 s).
:func:`program_compiled` and :func:`read_compiled` are the compiled passes the machine runs
(:mod:`relaxsim.kernels.programming`); :func:`program` and :func:`read` their numpy twins.
"""

from __future__ import annotations

import numpy as np

PROG_COEFF = (0.26348, 1.9650, -1.1731)  # uS, fitted at G_max = 25 uS (aihwkit defaults)
PROG_G_MAX_US = 25.0
T_READ_S = 250e-9  # the 1/f fit's read time
G_FLOOR = 1e-7     # conductances below this (relative) count as this in the logarithms


def programming_sigma(g):
    """rms programming error of a device of target conductance ``g`` (relative to ``G_max``):
    ``(c0 + c1 g + c2 g^2) / 25``."""
    g = np.asarray(g, dtype=np.float64)
    c0, c1, c2 = PROG_COEFF
    return (c0 + c1 * g + c2 * g * g) / PROG_G_MAX_US


def drift_mean(g):
    """Mean drift exponent at conductance ``g``: ``clip(-0.0155 ln g + 0.0244, 0.049, 0.1)``."""
    g = np.maximum(np.abs(np.asarray(g, dtype=np.float64)), G_FLOOR)
    return np.clip(-0.0155 * np.log(g) + 0.0244, 0.049, 0.1)


def drift_std(g):
    """Spread of the drift exponent at ``g``: ``clip(-0.0125 ln g - 0.0059, 0.008, 0.045)``."""
    g = np.maximum(np.abs(np.asarray(g, dtype=np.float64)), G_FLOOR)
    return np.clip(-0.0125 * np.log(g) - 0.0059, 0.008, 0.045)


def drift_exponents(g, z):
    """Each device's drift exponent from standard normals ``z``: ``|mu(g) + sigma(g) z|``."""
    return np.abs(drift_mean(g) + drift_std(g) * z)


def read_sigma(g_prog, t_inf: float, t0: float):
    """rms 1/f noise accumulated ``t_inf`` seconds after programming, relative to the drifted
    conductance: ``Q_s(g) sqrt(ln((t + t_read) / (2 t_read)))``, ``t = t_inf + t0``."""
    g = np.abs(np.asarray(g_prog, dtype=np.float64))
    q_s = np.minimum(0.0088 / np.maximum(g ** 0.65, 1e-3), 0.2)
    t = t_inf + t0
    return q_s * np.sqrt(np.log((t + T_READ_S) / (2.0 * T_READ_S)))


def program(g_target, z):
    """Programmed conductances from targets ``g_target`` and standard normals ``z``."""
    g = np.asarray(g_target, dtype=np.float64)
    return np.maximum(g + programming_sigma(g) * z, 0.0)


def drift_factor(nu, t_inf: float, t0: float):
    """``(t / t0)^(-nu)`` with ``t = t_inf + t0`` (1 at ``t_inf = 0``)."""
    t = t_inf + t0
    return (t / t0) ** (-np.asarray(nu)) if t > t0 else np.ones(np.shape(nu))


def read(g_prog, nu, t_inf: float, t0: float, z):
    """Conductances read ``t_inf`` seconds after programming: drift, then 1/f read noise
    (standard normals ``z``), clipped at 0."""
    g_prog = np.asarray(g_prog, dtype=np.float64)
    g_drift = g_prog * drift_factor(nu, t_inf, t0)
    noisy = g_drift + np.abs(g_drift) * read_sigma(g_prog, t_inf, t0) * z
    return np.maximum(noisy, 0.0)


def program_compiled(g_target: np.ndarray, z: np.ndarray) -> np.ndarray:
    """:func:`program` in one compiled pass (float64, any shape)."""
    from relaxsim.kernels.programming import pcm_program

    g = np.ascontiguousarray(g_target, dtype=np.float64)
    z = np.ascontiguousarray(z, dtype=np.float64)
    out = np.empty_like(g)
    pcm_program(g.reshape(-1), z.reshape(-1), *PROG_COEFF, PROG_G_MAX_US, out.reshape(-1))
    return out


def read_compiled(g_prog: np.ndarray, nu, t_inf: float, t0: float, z: np.ndarray) -> np.ndarray:
    """:func:`read` in one compiled pass (``nu`` may be ``None`` when ``t_inf = 0``: no drift)."""
    from relaxsim.kernels.programming import pcm_read

    g = np.ascontiguousarray(g_prog, dtype=np.float64)
    z = np.ascontiguousarray(z, dtype=np.float64)
    t = t_inf + t0
    if t <= t0:  # no drift yet: the exponents are not read
        nu = np.zeros(1)
    elif nu is None:
        raise ValueError("read_compiled: the drift exponents are needed after t0")
    else:
        nu = np.ascontiguousarray(np.broadcast_to(nu, g.shape), dtype=np.float64)
    out = np.empty_like(g)
    pcm_read(g.reshape(-1), nu.reshape(-1), t / t0,
             float(np.sqrt(np.log((t + T_READ_S) / (2.0 * T_READ_S)))), z.reshape(-1),
             out.reshape(-1))
    return out
