"""Numpy twins of the numba kernels: slow, obvious, written straight from the equations.

Used by the tests and the benchmark as the reference; never by training.
"""

from __future__ import annotations

import numpy as np

from .activations import ACTIVATIONS


def _by_code(code):
    for name in ACTIVATIONS:
        act = ACTIVATIONS.get(name)
        if act.code == code:
            return act
    raise KeyError(code)


def _col(coef, t):
    """Coefficient of step t as a column broadcasting over the rows of a batch."""
    return np.asarray(coef, dtype=float).reshape(len(coef), -1)[t][:, None]


def forward(params, X, slot, sched, prev, a, c, eps, act, noise=None):
    """Return ``(logits, H, U)`` with states ``H[t]`` (T+1, B, N) and pre-activations ``U[t]``."""
    f = _by_code(act).f
    W_in, W, b = params["W_in"], params["W"], params["b"]
    T, (_, B, _), N = len(sched), X.shape, W.shape[1]
    H = np.zeros((T + 1, B, N))
    U = np.zeros((T, B, N))
    for t in range(T):
        k, p = sched[t], prev[t]
        e = _col(eps, t)
        u = (1 - e) * (H[t] @ W[k].T + b[k]) + e * (H[t] @ W[p].T + b[p])
        if slot[t] >= 0:
            u = u + X[slot[t]] @ W_in.T
        if noise is not None:
            u = u + noise[t]
        U[t] = u
        H[t + 1] = _col(a, t) * H[t] + _col(c, t) * f(u)
    Z = H[T] @ params["W_out"].T + params["b_out"]
    return Z, H, U


def loss(Z, y):
    """Mean softmax cross-entropy and ``dL/dZ``."""
    Z = Z - Z.max(axis=1, keepdims=True)
    P = np.exp(Z) / np.exp(Z).sum(axis=1, keepdims=True)
    B = len(y)
    value = -np.mean(np.log(P[np.arange(B), y]))
    onehot = np.eye(Z.shape[1])[y]
    return value, (P - onehot) / B


def backward(params, X, slot, sched, prev, a, c, eps, act, H, U, gZ):
    """BPTT exactly as in DESIGN.md section 4."""
    df = _by_code(act).df
    W = params["W"]
    T = len(sched)
    grads = {key: np.zeros_like(value, dtype=float) for key, value in params.items()}
    grads["W_out"] = gZ.T @ H[T]
    grads["b_out"] = gZ.sum(axis=0)
    dh = gZ @ params["W_out"]
    for t in range(T - 1, -1, -1):
        k, p = sched[t], prev[t]
        e = _col(eps, t)
        du = dh * _col(c, t) * df(U[t])
        grads["W"][k] += ((1 - e) * du).T @ H[t]
        grads["b"][k] += ((1 - e) * du).sum(axis=0)
        grads["W"][p] += (e * du).T @ H[t]
        grads["b"][p] += (e * du).sum(axis=0)
        if slot[t] >= 0:
            grads["W_in"] += du.T @ X[slot[t]]
        dh = _col(a, t) * dh + ((1 - e) * du) @ W[k] + (e * du) @ W[p]
    return grads
