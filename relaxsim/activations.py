"""Activation functions with their exact derivatives.

Each activation is registered under its name with a numpy pair ``(f, f')`` (used by the numpy
twins and documentation) and an integer ``code`` that selects the same function inside the numba
kernels (:func:`relaxsim.kernels.activate`). Device transfer functions of active elements register
here the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .registry import Registry

ACTIVATIONS: Registry = Registry("activation")


@dataclass(frozen=True)
class Activation:
    """A transfer function ``f`` with derivative ``df``, and the kernel code that computes both."""

    name: str
    code: int
    f: Callable[[np.ndarray], np.ndarray]
    df: Callable[[np.ndarray], np.ndarray]
    doc: str = ""


def _sigmoid(u):
    return 0.5 * (1.0 + np.tanh(0.5 * u))


def _register(act: Activation) -> Activation:
    return ACTIVATIONS.register(act.name, act)


TANH = _register(Activation("tanh", 0, np.tanh, lambda u: 1.0 - np.tanh(u) ** 2,
                            "hyperbolic tangent, f' = 1 - f^2"))
SIGMOID = _register(Activation("sigmoid", 1, _sigmoid,
                               lambda u: _sigmoid(u) * (1.0 - _sigmoid(u)),
                               "logistic 1 / (1 + exp(-u)), f' = f (1 - f)"))
RELU = _register(Activation("relu", 2, lambda u: np.maximum(u, 0.0),
                            lambda u: (u > 0).astype(u.dtype),
                            "max(u, 0), f' = 1 for u > 0, else 0"))
