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


def mixing(sched, prev, eps, banks, mix=None):
    """The share ``m[t, r, j]`` of bank j in step t for row r, ``(T, B or 1, L_W)``: ``mix`` as
    given, else the two-bank leak ``(1 - eps)`` on ``sched[t]`` and ``eps`` on ``prev[t]``."""
    T = len(sched)
    if mix is not None:
        m = np.asarray(mix, dtype=float)
        return m[:, None, :] if m.ndim == 2 else m
    e = np.asarray(eps, dtype=float).reshape(T, -1)
    m = np.zeros((T, e.shape[1], banks))
    for t in range(T):
        if sched[t] == prev[t]:
            m[t, :, sched[t]] = 1.0
        else:
            m[t, :, sched[t]] = 1.0 - e[t]
            m[t, :, prev[t]] = e[t]
    return m


def forward(params, X, slot, sched, prev, a, c, eps, act, noise=None, *, tr=None, det=None,
            act_params=None, mix=None, converters=None):
    """Return ``(logits, H, U)`` with states ``H[t]`` (T+1, B, N) and pre-activations ``U[t]``;
    ``converters = (fs_in, bits_in, fs_out, bits_out)``: a DAC on ``W_in x``, an ADC at the
    readout (``bits = inf``: none)."""
    fs_in, bits_in, fs_out, bits_out = converters or (1.0, np.inf, 1.0, np.inf)
    f, _ = _transfer(act, act_params)
    W_in, W, b = params["W_in"], params["W"], params["b"]
    T, (_, B, _), N = len(sched), X.shape, W.shape[1]
    tr = np.ones(T) if tr is None else tr
    m = mixing(sched, prev, np.zeros(T) if eps is None else eps, W.shape[0], mix)
    H = np.zeros((T + 1, B, N))
    U = np.zeros((T, B, N))
    for t in range(T):
        u = np.zeros((B, N))
        for j in range(W.shape[0]):
            share = m[t, :, j][:, None]
            u += _col(tr, t) * share * (H[t] @ W[j].T) + share * b[j]
        if slot[t] >= 0:
            drive = X[slot[t]] @ W_in.T
            u = u + (drive if np.isinf(bits_in) else convert(drive, fs_in, bits_in)[0])
        U[t] = u
        H[t + 1] = _col(a, t) * H[t] + _col(c, t) * f(u)
        if noise is not None:
            H[t + 1] += noise[t]
    read = H[T] if det is None else H[T] + det
    if not np.isinf(bits_out):
        read = convert(read, fs_out, bits_out)[0]
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
             act_params=None, mix=None, converters=None):
    """BPTT exactly as in DESIGN.md section 4, with the mixing, transmission and readout noise,
    and the converters' straight-through gradient (passed where the value was in range)."""
    fs_in, bits_in, fs_out, bits_out = converters or (1.0, np.inf, 1.0, np.inf)
    _, df = _transfer(act, act_params)
    W = params["W"]
    T = len(sched)
    tr = np.ones(T) if tr is None else tr
    m = mixing(sched, prev, np.zeros(T) if eps is None else eps, W.shape[0], mix)
    grads = {key: np.zeros_like(value, dtype=float) for key, value in params.items()}
    read = H[T] if det is None else H[T] + det
    out_mask = 1.0
    if not np.isinf(bits_out):
        read, out_mask = convert(read, fs_out, bits_out)
    grads["W_out"] = gZ.T @ read
    grads["b_out"] = gZ.sum(axis=0)
    dh = (gZ @ params["W_out"]) * out_mask
    for t in range(T - 1, -1, -1):
        g = _col(tr, t)
        du = dh * _col(c, t) * df(U[t])
        back = np.zeros_like(dh)
        for j in range(W.shape[0]):
            share = m[t, :, j][:, None]
            grads["W"][j] += (share * du).T @ (g * H[t])
            grads["b"][j] += (share * du).sum(axis=0)
            back += (share * du) @ W[j]
        if slot[t] >= 0:
            in_mask = 1.0
            if not np.isinf(bits_in):
                in_mask = convert(X[slot[t]] @ params["W_in"].T, fs_in, bits_in)[1]
            grads["W_in"] += (du * in_mask).T @ X[slot[t]]
        dh = _col(a, t) * dh + g * back
    return grads


def convert(V, fs, bits):
    """A converter: clip to ``[-fs, fs]``, round to the grid ``-fs + k step`` with
    ``step = 2 fs / (2^bits - 1)``; returns the values and the in-range mask."""
    step = 2.0 * fs / (2.0 ** bits - 1.0)
    mask = (V >= -fs) & (V <= fs)
    q = -fs + np.rint((np.clip(V, -fs, fs) + fs) / step) * step
    return np.clip(q, -fs, fs), mask.astype(float)
