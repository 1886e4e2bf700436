"""Optimizers that update a parameter dict in place from a gradient dict of the same keys."""

from __future__ import annotations

import numpy as np

from .registry import Registry

OPTIMIZERS: Registry = Registry("optimizer")


@OPTIMIZERS.register("sgd")
class SGD:
    """Gradient descent with optional heavy-ball momentum: ``v = m v + g``, ``p -= lr v``."""

    def __init__(self, params: dict[str, np.ndarray], lr: float, momentum: float = 0.0, **_):
        self.lr, self.momentum = lr, momentum
        self.velocity = {k: np.zeros_like(v) for k, v in params.items()}

    def step(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> None:
        for key, g in grads.items():
            v = self.velocity[key]
            v *= self.momentum
            v += g
            params[key] -= self.lr * v



@OPTIMIZERS.register("adam")
class Adam:
    """Adam (Kingma and Ba, 2015) with bias correction."""

    def __init__(self, params: dict[str, np.ndarray], lr: float, beta1: float = 0.9,
                 beta2: float = 0.999, eps: float = 1e-8, **_):
        self.lr, self.beta1, self.beta2, self.eps = lr, beta1, beta2, eps
        self.t = 0
        self.m = {k: np.zeros_like(v) for k, v in params.items()}
        self.v = {k: np.zeros_like(v) for k, v in params.items()}

    def step(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> None:
        self.t += 1
        b1, b2 = self.beta1, self.beta2
        scale = self.lr * np.sqrt(1.0 - b2 ** self.t) / (1.0 - b1 ** self.t)
        for key, g in grads.items():
            m, v = self.m[key], self.v[key]
            m *= b1
            m += (1.0 - b1) * g
            v *= b2
            v += (1.0 - b2) * g * g
            params[key] -= scale * m / (np.sqrt(v) + self.eps)
