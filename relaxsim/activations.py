"""Transfer functions of the active elements, with their exact derivatives.

Each transfer function is registered under its name with a numpy pair ``(f, df)`` taking
``(u, gain, saturation, p)`` (used by the numpy twins and for documentation), an integer ``code``
that selects the same function inside the numba kernels (:func:`relaxsim.kernels.passes.activate`), and
the parameters ``ideal`` under which it is the textbook function (tanh, sigmoid, relu).

The three parameters are ``gain`` g (small-signal slope), ``saturation`` s (output level where the
device saturates; ``inf`` for none) and a third, transfer-specific ``p`` (phase bias of a sin^2
modulator in radians, unsaturated absorption of a saturable absorber).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from relaxsim.registry import Registry

ACTIVATIONS: Registry = Registry("activation")


@dataclass(frozen=True)
class Activation:
    """A transfer function ``f(u; g, s, p)``, its derivative ``df`` and its kernel code."""

    name: str
    code: int
    f: Callable[..., np.ndarray]
    df: Callable[..., np.ndarray]
    doc: str
    ideal: tuple[float, float, float] = (1.0, 1.0, 0.0)


def _register(*args, **kw) -> Activation:
    act = Activation(*args, **kw)
    return ACTIVATIONS.register(act.name, act)


def _tanh(u, g, s, p):
    return g * u if math.isinf(s) else s * np.tanh(g * u / s)


def _dtanh(u, g, s, p):
    return np.full_like(u, g) if math.isinf(s) else g * (1.0 - np.tanh(g * u / s) ** 2)


def _sigmoid(u, g, s, p):
    return s * 0.5 * (1.0 + np.tanh(0.5 * g * u))


def _dsigmoid(u, g, s, p):
    y = 0.5 * (1.0 + np.tanh(0.5 * g * u))
    return s * g * y * (1.0 - y)


def _sa(u, g, s, p):
    return g * u * (1.0 - p / (1.0 + (u / s) ** 2))


def _dsa(u, g, s, p):
    q = (u / s) ** 2
    return g * (1.0 - p / (1.0 + q) + 2.0 * p * q / (1.0 + q) ** 2)


TANH = _register("tanh", 0, _tanh, _dtanh,
                 "s tanh(g u / s): slope g at 0, saturating at +-s (g u when s = inf)")
SIGMOID = _register("sigmoid", 1, _sigmoid, _dsigmoid, "s / (1 + exp(-g u))")
RELU = _register("relu", 2, lambda u, g, s, p: np.minimum(g * np.maximum(u, 0.0), s),
                 lambda u, g, s, p: np.where((u > 0) & (g * u < s), g, 0.0).astype(u.dtype),
                 "min(g max(u, 0), s)", ideal=(1.0, math.inf, 0.0))
SATURABLE_ABSORBER = _register(
    "saturable_absorber", 3, _sa, _dsa,
    "g u (1 - p / (1 + (u/s)^2)): absorption p bleached by intensity (u/s)^2",
    ideal=(1.0, 1.0, 0.5))
SIN2 = _register("sin2", 4, lambda u, g, s, p: s * np.sin(g * u + p) ** 2,
                 lambda u, g, s, p: s * g * np.sin(2.0 * (g * u + p)),
                 "s sin^2(g u + p): intensity modulator biased at phase p",
                 ideal=(1.0, 1.0, math.pi / 4))
SOA = _register("soa", 5, lambda u, g, s, p: g * u / np.sqrt(1.0 + (u / s) ** 2),
                lambda u, g, s, p: g / (1.0 + (u / s) ** 2) ** 1.5,
                "g u / sqrt(1 + (u/s)^2): amplifier with gain saturation at output g s")


def by_code(code: int) -> Activation:
    """The activation with kernel ``code``."""
    for name in ACTIVATIONS:
        act = ACTIVATIONS.get(name)
        if act.code == code:
            return act
    raise KeyError(f"no activation with kernel code {code}")
