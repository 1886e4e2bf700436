"""Optimizers that update a parameter dict in place from a gradient dict of the same keys."""

from __future__ import annotations

import numpy as np

from relaxsim.kernels.passes import adam_update
from relaxsim.registry import OPTIMIZERS  # noqa: F401  (registered there by name)


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

    def state(self) -> tuple[dict[str, np.ndarray], dict]:
        """What a checkpoint must keep: arrays by name, and JSON-able scalars."""
        return {f"velocity/{k}": v for k, v in self.velocity.items()}, {}

    def restore(self, arrays: dict[str, np.ndarray], scalars: dict) -> None:
        """Continue from what :meth:`state` returned."""
        self.velocity = {k: arrays[f"velocity/{k}"].copy() for k in self.velocity}


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
            p, m, v = params[key], self.m[key], self.v[key]
            g = np.asarray(g, dtype=p.dtype)
            if all(a.flags.c_contiguous for a in (p, g, m, v)):  # one fused pass (numba)
                adam_update(p.reshape(-1), g.reshape(-1), m.reshape(-1), v.reshape(-1), scale,
                            b1, b2, self.eps)
                continue
            m *= b1
            m += (1.0 - b1) * g
            v *= b2
            v += (1.0 - b2) * g * g
            p -= scale * m / (np.sqrt(v) + self.eps)

    def state(self) -> tuple[dict[str, np.ndarray], dict]:
        """What a checkpoint must keep: arrays by name, and JSON-able scalars."""
        arrays = {f"m/{k}": v for k, v in self.m.items()}
        arrays.update({f"v/{k}": v for k, v in self.v.items()})
        return arrays, {"t": self.t}

    def restore(self, arrays: dict[str, np.ndarray], scalars: dict) -> None:
        """Continue from what :meth:`state` returned."""
        self.t = int(scalars["t"])
        self.m = {k: arrays[f"m/{k}"].copy() for k in self.m}
        self.v = {k: arrays[f"v/{k}"].copy() for k in self.v}
