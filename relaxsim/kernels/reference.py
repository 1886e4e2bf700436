"""Numpy twins of the numba kernels: slow, obvious, written straight from the equations.

Used by the tests and the benchmark as the reference; never by training.
"""

from __future__ import annotations

import numpy as np

from relaxsim.activations import by_code


def _col(coef, t):
    """Coefficient of step t as a column broadcasting over the rows of a batch."""
    return np.asarray(coef, dtype=float).reshape(len(coef), -1)[t][:, None]


def _transfer(act, act_params):
    fn = by_code(act)
    g, s, p = fn.ideal if act_params is None else act_params
    return (lambda u: fn.f(u, g, s, p)), (lambda u: fn.df(u, g, s, p))


def forward(params, X, slot, sched, prev, a, c, eps, act, noise=None, *, tr=None, det=None,
            act_params=None):
    """Return ``(logits, H, U)`` with states ``H[t]`` (T+1, B, N) and pre-activations ``U[t]``."""
    f, _ = _transfer(act, act_params)
    W_in, W, b = params["W_in"], params["W"], params["b"]
    T, (_, B, _), N = len(sched), X.shape, W.shape[1]
    tr = np.ones(T) if tr is None else tr
    H = np.zeros((T + 1, B, N))
    U = np.zeros((T, B, N))
    for t in range(T):
        k, p = sched[t], prev[t]
        e = _col(eps, t)
        u = _col(tr, t) * ((1 - e) * (H[t] @ W[k].T) + e * (H[t] @ W[p].T))
        u = u + (1 - e) * b[k] + e * b[p]
        if slot[t] >= 0:
            u = u + X[slot[t]] @ W_in.T
        U[t] = u
        H[t + 1] = _col(a, t) * H[t] + _col(c, t) * f(u)
        if noise is not None:
            H[t + 1] += noise[t]
    read = H[T] if det is None else H[T] + det
    Z = read @ params["W_out"].T + params["b_out"]
    return Z, H, U


def loss(Z, y):
    """Mean softmax cross-entropy and ``dL/dZ``."""
    Z = Z - Z.max(axis=1, keepdims=True)
    P = np.exp(Z) / np.exp(Z).sum(axis=1, keepdims=True)
    B = len(y)
    value = -np.mean(np.log(P[np.arange(B), y]))
    onehot = np.eye(Z.shape[1])[y]
    return value, (P - onehot) / B


def backward(params, X, slot, sched, prev, a, c, eps, act, H, U, gZ, *, tr=None, det=None,
             act_params=None):
    """BPTT exactly as in DESIGN.md section 4, with the transmission ``tr`` and readout noise."""
    _, df = _transfer(act, act_params)
    W = params["W"]
    T = len(sched)
    tr = np.ones(T) if tr is None else tr
    grads = {key: np.zeros_like(value, dtype=float) for key, value in params.items()}
    read = H[T] if det is None else H[T] + det
    grads["W_out"] = gZ.T @ read
    grads["b_out"] = gZ.sum(axis=0)
    dh = gZ @ params["W_out"]
    for t in range(T - 1, -1, -1):
        k, p = sched[t], prev[t]
        e, g = _col(eps, t), _col(tr, t)
        du = dh * _col(c, t) * df(U[t])
        grads["W"][k] += ((1 - e) * du).T @ (g * H[t])
        grads["b"][k] += ((1 - e) * du).sum(axis=0)
        grads["W"][p] += (e * du).T @ (g * H[t])
        grads["b"][p] += (e * du).sum(axis=0)
        if slot[t] >= 0:
            grads["W_in"] += du.T @ X[slot[t]]
        dh = _col(a, t) * dh + g * (((1 - e) * du) @ W[k] + (e * du) @ W[p])
    return grads
