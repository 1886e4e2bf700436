"""Optimizers that update a parameter dict in place from a gradient dict of the same keys, and
what training does around their step: the learning rate per step (:class:`LearningRate`) and
global gradient-norm clipping (:func:`clip_gradients`).

Both optimizers take ``weight_decay``: decoupled weight decay (Loshchilov and Hutter, 2019,
"AdamW"), ``p *= 1 - lr_t weight_decay`` for the weight matrices (``DECAYED``; not the biases),
applied in the step before the gradient update. Their ``step`` takes the step's learning rate
``lr`` (default: the one they were made with).
"""

from __future__ import annotations

import math

import numpy as np

from relaxsim.kernels.passes import adam_update
from relaxsim.registry import OPTIMIZERS  # noqa: F401  (registered there by name)

DECAYED = ("W_in", "W", "W_out")  # the parameters weight decay shrinks


def _decay(params: dict[str, np.ndarray], lr: float, weight_decay: float) -> None:
    """``p *= 1 - lr weight_decay`` in place for the weight matrices (one pass each)."""
    factor = 1.0 - lr * weight_decay
    for key in DECAYED:
        if key in params:
            params[key] *= factor


class SGD:
    """Gradient descent with optional heavy-ball momentum: ``v = m v + g``, ``p -= lr v``."""

    def __init__(self, params: dict[str, np.ndarray], lr: float, momentum: float = 0.0,
                 weight_decay: float = 0.0, **_):
        self.lr, self.momentum, self.weight_decay = lr, momentum, weight_decay
        self.velocity = {k: np.zeros_like(v) for k, v in params.items()}

    def step(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray],
             lr: float | None = None) -> None:
        lr = self.lr if lr is None else lr
        if self.weight_decay:
            _decay(params, lr, self.weight_decay)
        for key, g in grads.items():
            v = self.velocity[key]
            v *= self.momentum
            v += g
            params[key] -= lr * v

    def state(self) -> tuple[dict[str, np.ndarray], dict]:
        """What a checkpoint must keep: arrays by name, and JSON-able scalars."""
        return {f"velocity/{k}": v for k, v in self.velocity.items()}, {}

    def restore(self, arrays: dict[str, np.ndarray], scalars: dict) -> None:
        """Continue from what :meth:`state` returned."""
        self.velocity = {k: arrays[f"velocity/{k}"].copy() for k in self.velocity}


class Adam:
    """Adam (Kingma and Ba, 2015) with bias correction; AdamW with ``weight_decay > 0``."""

    def __init__(self, params: dict[str, np.ndarray], lr: float, beta1: float = 0.9,
                 beta2: float = 0.999, eps: float = 1e-8, weight_decay: float = 0.0, **_):
        self.lr, self.beta1, self.beta2, self.eps = lr, beta1, beta2, eps
        self.weight_decay = weight_decay
        self.t = 0
        self.m = {k: np.zeros_like(v) for k, v in params.items()}
        self.v = {k: np.zeros_like(v) for k, v in params.items()}

    def step(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray],
             lr: float | None = None) -> None:
        lr = self.lr if lr is None else lr
        if self.weight_decay:
            _decay(params, lr, self.weight_decay)
        self.t += 1
        b1, b2 = self.beta1, self.beta2
        scale = lr * np.sqrt(1.0 - b2 ** self.t) / (1.0 - b1 ** self.t)
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


class LearningRate:
    """The learning rate of optimizer step ``t`` (counted from 0 over the whole training).

    With ``S_w = warmup`` steps of warm-up and ``S = total`` steps in all::

        t <  S_w:             lr_t = lr (t + 1) / S_w                           (linear warm-up)
        t >= S_w, constant:   lr_t = lr
        t >= S_w, cosine:     lr_t = lr (1 + cos(pi (t - S_w) / (S - S_w))) / 2

    The cosine starts at ``lr`` at the end of the warm-up and would reach 0 at ``t = S``, one
    step after the last (the last step's rate is small but not 0). Without warm-up, the constant
    schedule is ``lr`` itself at every step.
    """

    def __init__(self, lr: float, schedule: str = "constant", warmup: int = 0, total: int = 0):
        if schedule not in ("constant", "cosine"):
            raise ValueError(f"schedule: expected 'constant' or 'cosine' (got {schedule!r})")
        if warmup < 0 or total < warmup:
            raise ValueError(f"need 0 <= warmup <= total steps (got {warmup}, {total})")
        self.lr, self.schedule, self.warmup, self.total = lr, schedule, warmup, total

    @classmethod
    def of(cls, training, batches_per_epoch: int) -> LearningRate:
        """The rate of a ``training`` config section (``lr``, ``schedule``, ``warmup`` in
        epochs, ``epochs``) with ``batches_per_epoch`` optimizer steps per epoch."""
        return cls(training.lr, training.schedule, training.warmup * batches_per_epoch,
                   training.epochs * batches_per_epoch)

    @property
    def constant(self) -> bool:
        """Whether every step has the rate ``lr``."""
        return self.schedule == "constant" and self.warmup == 0

    def __call__(self, t: int) -> float:
        lr = self.lr
        if t < self.warmup:
            return lr * (t + 1) / self.warmup
        if self.schedule == "constant":
            return lr
        span = self.total - self.warmup  # > 0 here: t >= warmup and t < total
        return lr * 0.5 * (1.0 + math.cos(math.pi * (t - self.warmup) / span))


def gradient_norm(grads: dict[str, np.ndarray]) -> float:
    """The global norm ``sqrt(sum of g^2 over every gradient array)``, in float64, the arrays
    taken in sorted key order (each summed pairwise by numpy: the same bytes every time)."""
    total = 0.0
    for key in sorted(grads):
        g = np.asarray(grads[key], dtype=np.float64)
        total += float(np.sum(g * g))
    return math.sqrt(total)


def clip_gradients(grads: dict[str, np.ndarray], max_norm: float) -> float:
    """Scale every gradient in place by ``max_norm / norm`` when the global norm
    (:func:`gradient_norm`) exceeds ``max_norm``; return the norm before clipping."""
    norm = gradient_norm(grads)
    if norm > max_norm:
        factor = max_norm / norm
        for g in grads.values():
            g *= factor
    return norm
