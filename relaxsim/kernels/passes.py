"""Numba kernels: forward and backward pass of a ReLaX-Net over (batch, step).

The model (DESIGN.md section 4), for rows ``r`` of a batch and steps ``t = 0 .. T-1``::

    Wt_t = sum_j m[t, j] W[j]                   (bt_t likewise: every bank's share at step t)
    u_t  = W_in x_{slot[t]} + tr (h_t Wt_t^T) + bt_t      (tr: transmission of the switch path)
    h_{t+1} = a h_t + c f(u_t) + noise_t        (a: carry-over, c: drive, noise: element noise)
    z = (h_T + det) W_out^T + b_out             (det: detector noise at readout)

The mixing matrix ``m`` (``(T, L_W)``, or per sample ``(T, B, L_W)``) holds the share of each
bank in the step: 1 for the bank switched in and 0 for the others on an ideal machine; a real
switch leaks into the others (:mod:`relaxsim.routing`). The coefficients ``coef = [a, c, tr]``
have shape ``(3, T, 1)`` (per step) or ``(3, T, B)`` (per step and sample). Input slots ``X`` have
shape ``(S, B, D)``; ``slot[t]`` picks the slot fed at step t or is -1 when step t gets no input
(``every_step``: S = 1 and every slot 0; ``first_step``: slot 0 then -1; ``sequence``: slot t).

The wrapper builds each distinct mixed bank ``sum_j m[t, j] W[j]`` once per call and runs the step
on it (one product, however many banks leak into it), folding its gradient back onto every bank
by its share (:func:`mix_plan`). A per-sample matrix (switch timing jitter drawn per sample) runs
as its common part, baked, plus one product per bank whose share differs between samples, mixed
row by row: a per-sample matrix is never built. ``f`` is the transfer function with kernel code
``act`` and parameters ``ap = (gain, saturation, p)`` (relaxsim.activations). Noise draws are
inputs: they change values, not the form of the equations, so the same backward pass is exact for
them.

Public functions validate and allocate, then call private ``@njit`` kernels that take arrays only and
never raise. Rows never interact in the recursion, so the batch is cut into chunks that run in
parallel, each doing its matrix products as single-threaded BLAS calls (:func:`gemm`: ?gemm with
transposes, accumulation and strided sub-matrices) with the element-wise physics fused and
vectorised (:func:`fast_tanh`). Each kernel has a numpy twin in
:mod:`relaxsim.kernels.reference` that the tests compare against.
"""

from __future__ import annotations

import ctypes
import math
import threading

import llvmlite.binding as llvm_binding
import numba as nb
import numpy as np
from numba import prange
from numba.extending import get_cython_function_address

from relaxsim.activations import by_code
from relaxsim.kernels.rng import bits_double, bits_float
from relaxsim.kernels.threads import numba_threads, single_threaded_kernel_blas
from relaxsim.kernels.tuning import (
    CHUNK_MIN_WORK,
    ELEMENTWISE,
    FASTMATH,
    GRAD_BLOCK,
    PARALLEL_MIN_WORK,
)

A, C, TR = 0, 1, 2  # rows of the coefficient array

_jit = nb.njit(cache=True, fastmath=FASTMATH, error_model="numpy")
_pjit = nb.njit(cache=True, fastmath=FASTMATH, error_model="numpy", parallel=True)


# BLAS: the kernels call ?gemm of the BLAS that scipy ships (through scipy.linalg.cython_blas),
# with transposes, accumulation (beta) and sub-matrices given by strides, so no product needs a
# copy, a transposed store or a temporary. Compiled kernels call them as external functions by a
# symbol name registered here (so numba's on-disk cache can keep the kernels); with the JIT
# disabled they are ctypes calls.
_BLAS_ADDRESS = {name: get_cython_function_address("scipy.linalg.cython_blas", name)
                 for name in ("dgemm", "sgemm")}
if nb.config.DISABLE_JIT:
    _GEMM_TYPE = ctypes.CFUNCTYPE(None, *([ctypes.c_void_p] * 13))
    _dgemm, _sgemm = (_GEMM_TYPE(_BLAS_ADDRESS[name]) for name in ("dgemm", "sgemm"))
else:
    for _name, _address in _BLAS_ADDRESS.items():
        llvm_binding.add_symbol(f"relaxsim_{_name}", _address)
    _dgemm, _sgemm = (nb.types.ExternalFunction(f"relaxsim_{name}",
                                                nb.types.void(*([nb.types.voidptr] * 13)))
                      for name in ("dgemm", "sgemm"))


@_jit
def gemm(ta, tb, alpha, A, B, beta, C):
    """``C = alpha op(A) op(B) + beta C`` for 2-d arrays (float64 or float32, all one dtype)
    whose rows are contiguous; ``op`` transposes when ``ta``/``tb``. ``C`` is ``(M, N)``."""
    M, N = C.shape
    K = A.shape[0] if ta else A.shape[1]
    if M == 0 or N == 0:
        return
    isz = C.itemsize
    # BLAS is column-major: a row-major matrix is its transpose there, so C^T = op(B)^T op(A)^T.
    dims = np.empty(6, dtype=np.int32)
    dims[0] = N
    dims[1] = M
    dims[2] = K
    dims[3] = max(B.strides[0] // isz, 1)
    dims[4] = max(A.strides[0] // isz, 1)
    dims[5] = max(C.strides[0] // isz, 1)
    flags = np.empty(2, dtype=np.uint8)
    flags[0] = 84 if tb else 78  # 'T' or 'N'
    flags[1] = 84 if ta else 78
    scal = np.empty(2, dtype=C.dtype)
    scal[0] = alpha
    scal[1] = beta
    if isz == 8:
        _dgemm(flags[0:].ctypes, flags[1:].ctypes, dims[0:].ctypes, dims[1:].ctypes,
               dims[2:].ctypes, scal[0:].ctypes, B.ctypes, dims[3:].ctypes, A.ctypes,
               dims[4:].ctypes, scal[1:].ctypes, C.ctypes, dims[5:].ctypes)
    else:
        _sgemm(flags[0:].ctypes, flags[1:].ctypes, dims[0:].ctypes, dims[1:].ctypes,
               dims[2:].ctypes, scal[0:].ctypes, B.ctypes, dims[3:].ctypes, A.ctypes,
               dims[4:].ctypes, scal[1:].ctypes, C.ctypes, dims[5:].ctypes)


_ejit = nb.njit(cache=True, fastmath=ELEMENTWISE, error_model="numpy")

_INV_LN2 = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01  # ln 2 in two parts (Cody and Waite): n * _LN2_HI is exact
_LN2_LO = 1.90821492927058770002e-10


@nb.njit(cache=True, fastmath=ELEMENTWISE, error_model="numpy", inline="always")
def fast_tanh(x):
    """tanh(x) to within 3 ulp, in arithmetic only, so that loops over it vectorise (libm's tanh
    is a scalar call, about 20 ns; this is about 3 ns per element on AVX2).

    tanh|x| = -m / (2 + m) with m = expm1(-2|x|); expm1(z) = 2^n (expm1(r) + 1) - 1 with
    z = n ln2 + r, |r| <= ln2 / 2, expm1(r) by its Taylor series to r^13 (truncation below
    1e-17 relative), and 2^n for n in [-58, 0] built from its exponent bits.
    |x| is capped at 20, where tanh is 1 to double precision; NaN passes through.
    """
    ax = abs(x)
    ax = 20.0 if ax > 20.0 else ax
    z = -2.0 * ax
    n = np.floor(z * _INV_LN2 + 0.5)
    r = (z - n * _LN2_HI) - n * _LN2_LO
    # (expm1(r) - r) / r^2 = sum r^i / (i + 2)!, i < 12, by Estrin's scheme: pairs, then
    # quads, then octets, so the chain of dependent operations is 8 deep instead of Horner's 22
    # (the loop over elements was bound by that latency)
    r2 = r * r
    r4 = r2 * r2
    q0 = (0.5 + r * (1.0 / 6.0)) + r2 * (1.0 / 24.0 + r * (1.0 / 120.0))
    q1 = (1.0 / 720.0 + r * (1.0 / 5040.0)) + r2 * (1.0 / 40320.0 + r * (1.0 / 362880.0))
    q2 = (1.0 / 3628800.0 + r * (1.0 / 39916800.0)) \
        + r2 * (1.0 / 479001600.0 + r * (1.0 / 6227020800.0))
    q = (q0 + r4 * q1) + (r4 * r4) * q2
    q = r + r * (r * q)  # expm1(r)
    # 2^n (n in [-58, 0]) built from its bits: exponent field 1023 + n (via int32, which
    # converts in one vector instruction; int64 would not)
    scale = bits_double((np.int64(np.int32(n)) + np.int64(1023)) << np.int64(52))
    em = scale * q + (scale - 1.0)
    return math.copysign(-em / (2.0 + em), x)


_F32 = np.float32
_LN2_HI32 = np.float32(0.693145751953125)  # ln 2 in two float32 parts
_LN2_LO32 = np.float32(1.428606765330187e-06)


@nb.njit(cache=True, fastmath=ELEMENTWISE, error_model="numpy", inline="always")
def fast_tanh32(x):
    """tanh of a float32 in float32 arithmetic (eight lanes per AVX2 instruction): the scheme
    of :func:`fast_tanh` with |x| capped at 9 (tanh 9 is 1 in float32), expm1(r) to r^7 and
    2^n for n in [-26, 0]; within a few float32 ulp."""
    ax = abs(x)
    ax = _F32(9.0) if ax > _F32(9.0) else ax
    z = _F32(-2.0) * ax
    n = np.floor(z * _F32(1.4426950408889634) + _F32(0.5))
    r = (z - n * _LN2_HI32) - n * _LN2_LO32
    r2 = r * r  # Estrin's scheme, as in fast_tanh
    q = (_F32(0.5) + r * _F32(1.0 / 6.0)) + r2 * (_F32(1.0 / 24.0) + r * _F32(1.0 / 120.0)) \
        + (r2 * r2) * (_F32(1.0 / 720.0) + r * _F32(1.0 / 5040.0))
    q = r + r * (r * q)
    scale = bits_float((np.int32(n) + np.int32(127)) << np.int32(23))  # 2^n, n in [-26, 0]
    em = scale * q + (scale - _F32(1.0))
    return math.copysign(-em / (_F32(2.0) + em), x)


@nb.njit(cache=True, fastmath=ELEMENTWISE, error_model="numpy", inline="always")
def activate(code, u, g, s, p):
    """``(f(u), f'(u))`` of the transfer function with kernel ``code`` and parameters g, s, p."""
    if code == 0:  # tanh: s tanh(g u / s), linear when s = inf
        if s == math.inf:
            return g * u, g
        f = fast_tanh(g * u / s)
        return s * f, g * (1.0 - f * f)
    if code == 1:  # sigmoid, as 0.5 (1 + tanh(x / 2)): no overflow for large |x|
        y = 0.5 * (1.0 + fast_tanh(0.5 * g * u))
        return s * y, s * g * y * (1.0 - y)
    if code == 2:  # relu with saturation
        if u > 0.0 and g * u < s:
            return g * u, g
        if u > 0.0:
            return s, 0.0
        return 0.0 * u, 0.0 * u
    q = (u / s) * (u / s)
    if code == 3:  # saturable absorber
        return (g * u * (1.0 - p / (1.0 + q)),
                g * (1.0 - p / (1.0 + q) + 2.0 * p * q / ((1.0 + q) * (1.0 + q))))
    if code == 4:  # sin^2 modulator
        x = g * u + p
        sx = math.sin(x)
        return s * sx * sx, s * g * math.sin(2.0 * x)
    # soa: gain saturation
    r = 1.0 / math.sqrt(1.0 + q)
    return g * u * r, g * r * r * r


@_ejit
def _transfer(code, U, D, g, s, p):
    """``U <- f(U)`` and ``D <- f'(U)`` over a block of rows, one loop per transfer function so
    that each loop vectorises (the function is chosen once per block, not per element)."""
    nr, N = U.shape
    if code == 0 and s == math.inf:
        for rr in range(nr):
            for i in range(N):
                U[rr, i] = g * U[rr, i]
                D[rr, i] = g
    elif code == 0 and U.itemsize == 4:  # float32 network: float32 arithmetic
        gs, s32, g32 = _F32(g / s), _F32(s), _F32(g)
        for rr in range(nr):
            for i in range(N):
                f32 = fast_tanh32(gs * U[rr, i])
                U[rr, i] = s32 * f32
                D[rr, i] = g32 * (_F32(1.0) - f32 * f32)
    elif code == 0:
        gs = g / s  # one division per block, not per element
        for rr in range(nr):
            for i in range(N):
                f = fast_tanh(gs * U[rr, i])
                U[rr, i] = s * f
                D[rr, i] = g * (1.0 - f * f)
    elif code == 1:
        for rr in range(nr):
            for i in range(N):
                y = 0.5 * (1.0 + fast_tanh(0.5 * g * U[rr, i]))
                U[rr, i] = s * y
                D[rr, i] = s * g * y * (1.0 - y)
    elif code == 5 and U.itemsize == 4:  # soa, float32 network: float32 arithmetic
        inv_s, g32, one = _F32(1.0 / s), _F32(g), _F32(1.0)
        for rr in range(nr):
            for i in range(N):
                u = U[rr, i]
                q = u * inv_s
                r = one / np.sqrt(one + q * q)
                U[rr, i] = g32 * u * r
                D[rr, i] = g32 * r * r * r
    elif code == 5:
        for rr in range(nr):
            for i in range(N):
                u = U[rr, i]
                r = 1.0 / math.sqrt(1.0 + (u / s) * (u / s))
                U[rr, i] = g * u * r
                D[rr, i] = g * r * r * r
    else:
        for rr in range(nr):
            for i in range(N):
                U[rr, i], D[rr, i] = activate(code, U[rr, i], g, s, p)


# Each driver exists twice: parallel over chunks, and serial for problems too small to repay
# waking the threads (on a loaded machine a parallel region waits for a descheduled thread). Both
# run the same chunks in the same order, so they give the same bytes.

@_pjit
def _forward_par(X, slot, W_in, W, b, W_out, b_out, bank_at, tb, tc, nt, coef, act, ap, noise,
                 det, conv, QM, chunk, H, G, Z):
    B = X.shape[1]
    for ci in prange((B + chunk - 1) // chunk):
        r0 = ci * chunk
        _forward_rows(X, slot, W_in, W, b, W_out, b_out, bank_at, tb, tc, nt, coef, act, ap,
                      noise, det, conv, QM, r0, min(B, r0 + chunk), H, G, Z)


@_jit
def _forward_ser(X, slot, W_in, W, b, W_out, b_out, bank_at, tb, tc, nt, coef, act, ap, noise,
                 det, conv, QM, chunk, H, G, Z):
    B = X.shape[1]
    for ci in range((B + chunk - 1) // chunk):
        r0 = ci * chunk
        _forward_rows(X, slot, W_in, W, b, W_out, b_out, bank_at, tb, tc, nt, coef, act, ap,
                      noise, det, conv, QM, r0, min(B, r0 + chunk), H, G, Z)


@_jit
def _forward_rows(X, slot, W_in, W, b, W_out, b_out, bank_at, tb, tc, nt, coef, act, ap, noise,
                  det, conv, QM, r0, r1, H, G, Z):
    T = bank_at.shape[0]
    N = W.shape[1]
    dt = H.dtype
    sc = 1 if coef.shape[2] > 1 else 0  # 0: one coefficient for all rows
    has_noise = noise.shape[0] > 0
    g, s, pp = ap[0], ap[1], ap[2]
    nr = r1 - r0
    U = np.empty((nr, N), dtype=dt)
    U2 = np.empty((nr, N), dtype=dt)
    Din = np.empty((nr, N), dtype=dt)
    H[0, r0:r1, :] = 0.0
    loaded = -1
    for t in range(T):
        k = bank_at[t]
        sl = slot[t]
        if t == 0 or k < 0:  # h_0 = 0, or no bank shared by every row
            U[:] = 0.0
        else:
            gemm(False, True, 1.0, H[t, r0:r1], W[k], 0.0, U)
        for q in range(nt[t] if t > 0 else 0):  # per-row shares of further banks
            gemm(False, True, 1.0, H[t, r0:r1], W[tb[t, q]], 0.0, U2)
            for rr in range(nr):
                w = tc[t, q, r0 + rr]
                for i in range(N):
                    U[rr, i] += w * U2[rr, i]
        if sl >= 0 and sl != loaded:
            gemm(False, True, 1.0, X[sl, r0:r1], W_in, 0.0, Din)
            if conv[1] > 0:  # the DAC of the injected drive (its in-range mask for the STE)
                _convert(Din, conv[0], conv[1], QM[sl, r0:r1])
            loaded = sl
        for rr in range(nr):  # pre-activation, in place in U
            r = r0 + rr
            tt = coef[TR, t, r * sc]
            if k >= 0 and sl >= 0:  # the input in the same pass
                for i in range(N):
                    U[rr, i] = tt * U[rr, i] + b[k, i] + Din[rr, i]
            elif k >= 0:
                for i in range(N):
                    U[rr, i] = tt * U[rr, i] + b[k, i]
            elif sl >= 0:
                for i in range(N):
                    U[rr, i] = tt * U[rr, i] + Din[rr, i]
            else:
                for i in range(N):
                    U[rr, i] = tt * U[rr, i]
            for q in range(nt[t]):
                j = tb[t, q]
                w = tc[t, q, r]
                for i in range(N):
                    U[rr, i] += w * b[j, i]
        _transfer(act, U, G[t, r0:r1], g, s, pp)  # U <- f(u), G_t <- f'(u)
        for rr in range(nr):  # state update, with the element noise in the same pass
            r = r0 + rr
            at = coef[A, t, r * sc]
            ct = coef[C, t, r * sc]
            if has_noise:
                for i in range(N):
                    H[t + 1, r, i] = at * H[t, r, i] + ct * U[rr, i] + noise[t, r, i]
                    G[t, r, i] *= ct
            else:
                for i in range(N):
                    H[t + 1, r, i] = at * H[t, r, i] + ct * U[rr, i]
                    G[t, r, i] *= ct
    if det.shape[0] > 0:
        R = H[T, r0:r1] + det[r0:r1]
        gemm(False, True, 1.0, R, W_out, 0.0, Z[r0:r1])
    else:
        gemm(False, True, 1.0, H[T, r0:r1], W_out, 0.0, Z[r0:r1])
    for r in range(r0, r1):
        for j in range(Z.shape[1]):
            Z[r, j] += b_out[j]


@_jit
def _convert(V, fs, step, mask):
    """A converter of full scale ``fs`` and level spacing ``step`` in place on ``V``: clipped to
    ``[-fs, fs]`` and rounded to the grid ``-fs + k step``; ``mask`` gets 1 where the value was
    in range (the straight-through gradient passes), 0 where it was clipped."""
    for r in range(V.shape[0]):
        for i in range(V.shape[1]):
            x = V[r, i]
            inside = -fs <= x <= fs
            x = min(max(x, -fs), fs)
            q = -fs + np.rint((x + fs) / step) * step
            V[r, i] = min(max(q, -fs), fs)
            mask[r, i] = 1.0 if inside else 0.0


@_pjit
def _rows_backward_par(W, W_out, bank_at, tb, tc, nt, slot, coef, H, G, gZ, QM, MO, chunk, DU,
                       GX, HS):
    B = H.shape[1]
    for ci in prange((B + chunk - 1) // chunk):
        r0 = ci * chunk
        _backward_rows(W, W_out, bank_at, tb, tc, nt, slot, coef, H, G, gZ, QM, MO, r0,
                       min(B, r0 + chunk), DU, GX, HS)


@_jit
def _rows_backward_ser(W, W_out, bank_at, tb, tc, nt, slot, coef, H, G, gZ, QM, MO, chunk, DU,
                       GX, HS):
    B = H.shape[1]
    for ci in range((B + chunk - 1) // chunk):
        r0 = ci * chunk
        _backward_rows(W, W_out, bank_at, tb, tc, nt, slot, coef, H, G, gZ, QM, MO, r0,
                       min(B, r0 + chunk), DU, GX, HS)


@_pjit
def _weights_backward_par(X, bank_at, tb, tc, nt, HB, alpha, DU, GX, block, rows, scratch, sums,
                          HQ, dW_in, dW, db):
    N = HB.shape[2]
    for bi in prange((N + block - 1) // block):
        i0 = bi * block
        _weight_grads(X, bank_at, tb, tc, nt, HB, alpha, DU, GX, i0, min(N, i0 + block), rows,
                      scratch[bi], sums[bi], HQ[bi], dW_in, dW, db)


@_jit
def _weights_backward_ser(X, bank_at, tb, tc, nt, HB, alpha, DU, GX, block, rows, scratch, sums,
                          HQ, dW_in, dW, db):
    N = HB.shape[2]
    for bi in range((N + block - 1) // block):
        i0 = bi * block
        _weight_grads(X, bank_at, tb, tc, nt, HB, alpha, DU, GX, i0, min(N, i0 + block), rows,
                      scratch[bi], sums[bi], HQ[bi], dW_in, dW, db)


@_jit
def _backward_rows(W, W_out, bank_at, tb, tc, nt, slot, coef, H, G, gZ, QM, MO, r0, r1, DU, GX,
                   HS):
    """The recursion for dh over rows r0:r1; stores du_t per step and the gradient reaching
    each input slot, all row-major. Converters pass the gradient straight through where their
    input was in range (``QM``: the DAC's mask per slot, ``MO``: the ADC's; empty: none)."""
    T = bank_at.shape[0]
    N = W.shape[1]
    dt = G.dtype
    sc = 1 if coef.shape[2] > 1 else 0
    nr = r1 - r0
    dh = np.empty((nr, N), dtype=dt)
    back = np.empty((nr, N), dtype=dt)
    DS = np.empty((nr if tb.shape[1] > 0 else 0, N), dtype=dt)
    if HS.shape[0] > 0:
        for t in range(T):
            for r in range(r0, r1):
                tt = coef[TR, t, r * sc]
                for i in range(N):
                    HS[t, r, i] = tt * H[t, r, i]
    gemm(False, False, 1.0, gZ[r0:r1], W_out, 0.0, dh)
    if MO.shape[0] > 0:
        for rr in range(nr):
            for i in range(N):
                dh[rr, i] *= MO[r0 + rr, i]
    dac = QM.shape[0] > 0
    for t in range(T - 1, -1, -1):
        k = bank_at[t]
        sl = slot[t]
        for rr in range(nr):
            r = r0 + rr
            if sl >= 0 and dac:
                for i in range(N):
                    gu = dh[rr, i] * G[t, r, i]
                    DU[t, r, i] = gu
                    GX[sl, r, i] += gu * QM[sl, r, i]
            elif sl >= 0:  # the input's gradient in the same pass
                for i in range(N):
                    gu = dh[rr, i] * G[t, r, i]
                    DU[t, r, i] = gu
                    GX[sl, r, i] += gu
            else:
                for i in range(N):
                    DU[t, r, i] = dh[rr, i] * G[t, r, i]
        if t == 0:
            break  # dh_0 is not needed: h_0 = 0 is not a parameter
        if k >= 0:
            gemm(False, False, 1.0, DU[t, r0:r1], W[k], 0.0, back)
        else:
            back[:] = 0.0
        for q in range(nt[t]):
            for rr in range(nr):
                w = tc[t, q, r0 + rr]
                for i in range(N):
                    DS[rr, i] = w * DU[t, r0 + rr, i]
            gemm(False, False, 1.0, DS, W[tb[t, q]], 1.0, back)
        for rr in range(nr):
            at = coef[A, t, (r0 + rr) * sc]
            tt = coef[TR, t, (r0 + rr) * sc]
            for i in range(N):
                dh[rr, i] = at * dh[rr, i] + tt * back[rr, i]


@_jit
def _weight_grads(X, bank_at, tb, tc, nt, H, alpha, DU, GX, i0, i1, rows, scratch, sums, HQ,
                  dW_in, dW, db):
    """Rows i0:i1 of every weight gradient, summed over the steps in step order:
    ``dW[k] += alpha_t du_t^T h_t`` (one product with a transposed, strided operand; ``alpha_t``:
    the step's transmission), ``db[k] += sum du_t``, ``dW_in += gx_s^T x_s``. A step run on a
    baked mixed bank ``j`` (index ``L + j``, :func:`_bake_mix`) has its rows computed into a
    scratch block (``scratch``, ``sums``: this task's work arrays) and sent at once, while in
    cache, to every bank of its row ``rows[j]``, each its share. A per-row share ``w_r`` of bank
    ``l`` adds ``alpha_t du_t^T diag(w) h_t`` (the scaled states in ``HQ``, this task's)."""
    T = bank_at.shape[0]
    S = X.shape[0]
    L = dW.shape[0]
    B = H.shape[1]
    dW[:, i0:i1, :] = 0.0
    db[:, i0:i1] = 0.0
    scratch = scratch[:i1 - i0]
    sums = sums[:i1 - i0]
    for t in range(T):
        k = bank_at[t]
        if 0 <= k < L:
            _accumulate(DU[t, :, i0:i1], H[t], alpha[t], dW[k, i0:i1], db[k, i0:i1], t > 0)
        elif k >= L:
            j = k - L
            sums[:] = 0.0
            _column_sums(DU[t, :, i0:i1], sums)
            if t > 0:
                gemm(True, False, alpha[t], DU[t, :, i0:i1], H[t], 0.0, scratch)
            else:  # h_0 = 0
                scratch[:] = 0.0
            _fold_rows(dW, db, i0, i1, scratch, sums, rows[j])
        for q in range(nt[t]):
            jb = tb[t, q]
            for r in range(B):
                w = tc[t, q, r]
                for c in range(H.shape[2]):
                    HQ[r, c] = w * H[t, r, c]
                for i in range(i0, i1):
                    db[jb, i] += w * DU[t, r, i]
            if t > 0:
                gemm(True, False, alpha[t], DU[t, :, i0:i1], HQ, 1.0, dW[jb, i0:i1])
    for sl in range(S):
        gemm(True, False, 1.0, GX[sl, :, i0:i1], X[sl], 1.0 if sl > 0 else 0.0, dW_in[i0:i1])


@_jit
def _fold_rows(dW, db, i0, i1, g, gb, row):
    """A mixed bank's gradient rows ``g`` (and bias sums ``gb``) back to the banks it mixes:
    ``row[l]`` of them to bank ``l``."""
    for l in range(row.shape[0]):
        w = row[l]
        if w == 0:
            continue
        for r in range(g.shape[0]):
            for c in range(g.shape[1]):
                dW[l, i0 + r, c] += w * g[r, c]
            db[l, i0 + r] += w * gb[r]


@_jit
def _accumulate(du, h, alpha, dw, db, product):
    """``dw += alpha du^T h`` (when ``product``: h_0 = 0 adds nothing) and ``db += column sums of
    du`` for one block of columns ``du (B, i)``."""
    if product:
        gemm(True, False, alpha, du, h, 1.0, dw)
    _column_sums(du, db)


@_jit
def _column_sums(du, db):
    """``db += column sums of du``."""
    for r in range(du.shape[0]):
        for i in range(du.shape[1]):
            db[i] += du[r, i]


@_jit
def _softmax_xent(Z, y, gZ):
    """Mean softmax cross-entropy of logits ``Z`` against labels ``y``; fills ``gZ = dL/dZ``."""
    B, C_ = Z.shape
    losses = np.empty(B, dtype=np.float64)
    for r in range(B):
        zmax = Z[r, 0]
        for j in range(1, C_):
            zmax = max(zmax, Z[r, j])
        total = 0.0
        for j in range(C_):
            e = math.exp(Z[r, j] - zmax)
            gZ[r, j] = e
            total += e
        for j in range(C_):
            gZ[r, j] = (gZ[r, j] / total - (1.0 if j == y[r] else 0.0)) / B
        losses[r] = math.log(total) + zmax - Z[r, y[r]]
    out = 0.0
    for r in range(B):  # serial sum: the same bytes whatever the thread count
        out += losses[r]
    return out / B


# ----------------------------------------------------------------------------------------------
# Public wrappers: check shapes and dtypes, allocate, call the kernels.


def _as(arr, dtype, ndim, name):
    out = np.ascontiguousarray(arr, dtype=dtype)
    if out.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-d array (got shape {out.shape})")
    return out


def coefficients(a, c, tr, T, B, dtype) -> np.ndarray:
    """Stack ``a, c, tr`` (each per step ``(T,)``/``(T, 1)`` or per sample ``(T, B)``) into
    one ``(3, T, 1)`` or ``(3, T, B)`` array."""
    if all(type(v) is np.ndarray and v.shape == (T,) for v in (a, c, tr)):
        return np.array((a, c, tr), dtype=dtype)[:, :, None]  # per step (training)
    arrays = []
    width = 1
    for name, arr in (("a", a), ("c", c), ("tr", tr)):
        arr = np.asarray(arr)
        if arr.ndim == 1:
            arr = arr.reshape(-1, 1)
        if arr.ndim != 2 or arr.shape[0] != T or arr.shape[1] not in (1, B):
            raise ValueError(f"{name}: expected shape ({T},), ({T}, 1) or ({T}, {B}) "
                             f"(got {arr.shape})")
        arrays.append(arr)
        width = max(width, arr.shape[1])
    out = np.empty((3, T, width), dtype=dtype)
    for row, arr in zip(out, arrays):
        row[...] = arr  # broadcasts a per-step column over the samples
    return out


@_ejit
def adam_update(p, g, m, v, scale, b1, b2, eps):
    """One Adam step in place on flat arrays, fused: ``m = b1 m + (1 - b1) g``,
    ``v = b2 v + (1 - b2) g^2``, ``p -= scale m / (sqrt(v) + eps)``."""
    for i in range(p.shape[0]):
        gi = g[i]
        mi = b1 * m[i] + (1.0 - b1) * gi
        vi = b2 * v[i] + (1.0 - b2) * gi * gi
        m[i] = mi
        v[i] = vi
        p[i] -= scale * mi / (math.sqrt(vi) + eps)




def big_enough(B: int, N: int, D: int, T: int) -> bool:
    """Whether a batch holds enough work to run its chunks in parallel (shapes only)."""
    return B * N * (N + D) * T >= PARALLEL_MIN_WORK


def parallel_pays(B: int, N: int, D: int, T: int) -> bool:
    """Whether a batch is large enough for the parallel drivers to pay off (never with one
    numba thread: ``NUMBA_NUM_THREADS=1`` or ``numba.set_num_threads(1)``, as scans set it)."""
    return big_enough(B, N, D, T) and numba_threads() > 1


def grad_block(N: int, B: int) -> int:
    """Rows of the weight gradients per task: about 8 tasks (4 when N >= 256: each task
    re-reads the states), at least ``CHUNK_MIN_WORK`` multiply-adds per product, but at most
    half the rows (two threads share the work), a multiple of 16 rows, at least ``GRAD_BLOCK``;
    depends on the shapes only, so results are the same bytes for any thread count."""
    tasks = 4 if N >= 256 else 8
    block = max(GRAD_BLOCK, -(-N // (16 * tasks)) * 16, -(-CHUNK_MIN_WORK // (16 * B * N)) * 16)
    return min(block, max(GRAD_BLOCK, -(-N // 32) * 16))




def chunk_rows(batch: int, N: int, split: bool = False) -> int:
    """Rows per parallel task: about 8 tasks per batch (4 when N >= 256: each task's products
    re-read the N x N bank, which then costs more than the finer split gains), 8 to 128 rows
    each, more rows when N is small (at least ``CHUNK_MIN_WORK`` multiply-adds per product, up
    to the whole batch); with ``split`` (:func:`big_enough`), at most half the batch, so that
    two threads share the work.

    Depends on the shapes only, never on the thread count, so results are the same bytes
    whatever the number of threads.
    """
    tasks = 4 if N >= 256 else 8
    rows = max(min(max(batch // tasks, 8), 128), min(batch, -(-CHUNK_MIN_WORK // (N * N))))
    return min(rows, -(-batch // 2)) if split else rows


def mix_from_eps(bank_at, prev, eps, banks: int) -> np.ndarray:
    """The mixing matrix of the two-bank leak ``(1 - eps) W[k] + eps W[p]``: ``(T, L_W)`` for a
    per-step ``eps`` ``(T,)``, ``(T, B, L_W)`` for a per-sample one ``(T, B)``; a step that stays
    on its bank (``k == p``) has share 1 whatever its ``eps``."""
    bank_at, prev = np.asarray(bank_at), np.asarray(prev)
    eps = np.asarray(eps, dtype=np.float64)
    T = bank_at.shape[0]
    if eps.ndim == 2 and eps.shape[1] == 1:
        eps = eps[:, 0]
    if eps.ndim not in (1, 2) or eps.shape[0] != T:
        raise ValueError(f"eps: expected shape ({T},) or ({T}, B) (got {eps.shape})")
    e = np.where((bank_at == prev).reshape((T,) + (1,) * (eps.ndim - 1)), 0.0, eps)
    m = np.zeros(eps.shape + (banks,))
    steps = np.arange(T)
    if eps.ndim == 1:
        m[steps, bank_at] += 1.0 - e
        m[steps, prev] += e
    else:
        m[steps, :, bank_at] += 1.0 - e
        m[steps, :, prev] += e
    return m


def check_mix(mix, T: int, B: int, banks: int) -> np.ndarray:
    """``mix`` as float64 ``(T, L_W)`` (a ``(T, 1, L_W)`` one squeezed) or ``(T, B, L_W)``."""
    m = np.asarray(mix, dtype=np.float64)
    if m.ndim == 3 and m.shape[1] == 1:
        m = m[:, 0]
    if not ((m.ndim == 2 and m.shape == (T, banks)) or (m.ndim == 3 and m.shape == (T, B, banks))):
        raise ValueError(f"mix: expected shape ({T}, {banks}) or ({T}, {B}, {banks}) "
                         f"(got {np.shape(mix)})")
    return m


_PLANS: dict = {}  # per-step mixing matrices seen lately -> their plan (the same on every batch)


def mix_plan(mix: np.ndarray, banks: int):
    """Split a mixing matrix into what the kernels run: the bank of each step, ``(T,)`` (a raw
    bank ``0 .. L_W - 1`` when its row is that bank alone with share 1, ``L_W + j`` for the
    ``j``-th distinct mixed row, -1 when no share is common to every sample), the distinct mixed
    rows ``(F, L_W)``, and the per-sample terms: banks ``(T, Q)`` and shares ``(T, Q, B)`` of the
    columns that differ between samples (``Q = 0`` for a per-step matrix).

    A per-sample matrix ``(T, B, L_W)`` is run as a common part (baked, one product) plus one
    product per bank whose share differs between samples (jitter moves only the banks a
    switching transition touches)."""
    if mix.ndim == 2:  # the same matrix batch after batch: planned once
        key = (banks, mix.shape, mix.tobytes())
        plan = _PLANS.get(key)
        if plan is None:
            if len(_PLANS) > 256:
                _PLANS.clear()
            plan = _PLANS[key] = _mix_plan(mix, banks)
        return plan
    return _mix_plan(mix, banks)


def _mix_plan(mix: np.ndarray, banks: int):
    T = mix.shape[0]
    if mix.ndim == 3:
        varying = (mix != mix[:, :1, :]).any(axis=1)
        base = np.where(varying, 0.0, mix[:, 0, :])
        Q = int(varying.sum(axis=1).max(initial=0))
        B = mix.shape[1]
        tb = np.full((T, Q), -1, dtype=np.int64)
        tc = np.zeros((T, Q, B))
        nt = np.zeros(T, dtype=np.int64)
        for t in range(T):
            cols = np.flatnonzero(varying[t])
            nt[t] = len(cols)
            tb[t, :len(cols)] = cols
            tc[t, :len(cols)] = mix[t, :, cols]
    else:
        base = mix
        tb, tc, nt = (np.zeros((T, 0), dtype=np.int64), np.zeros((T, 0, 1)),
                      np.zeros(T, dtype=np.int64))
    at = np.empty(T, dtype=np.int64)
    rows_buf = np.empty((T, banks))
    F = _plan_rows(np.ascontiguousarray(base), at, rows_buf)
    rows = rows_buf[:F]
    return at, rows, tb, tc, nt


@_jit
def _plan_rows(base, at, rows):
    """The bank of each step (``at``): a raw bank where its row is that bank alone with share
    1, -1 where the row is empty, ``L_W + j`` for the ``j``-th distinct mixed row (in order of
    first use, into ``rows``); returns the number of distinct mixed rows."""
    T, L = base.shape
    F = 0
    for t in range(T):
        count, last = 0, -1
        for j in range(L):
            if base[t, j] != 0:
                count += 1
                last = j
        if count == 0:
            at[t] = -1
            continue
        if count == 1 and base[t, last] == 1.0:
            at[t] = last
            continue
        found = -1
        for f in range(F):
            same = True
            for j in range(L):
                if rows[f, j] != base[t, j]:
                    same = False
                    break
            if same:
                found = f
                break
        if found < 0:
            for j in range(L):
                rows[F, j] = base[t, j]
            found = F
            F += 1
        at[t] = L + found
    return F


class Tape:
    """What the forward pass keeps for the backward pass."""

    __slots__ = ("X", "slot", "bank_at", "tb", "tc", "nt", "coef", "H", "G", "HR", "Z", "chunk",
                 "W", "rows", "QM", "MO")

    def __init__(self, **kw):
        for key, value in kw.items():
            setattr(self, key, value)


class Workspace:
    """Work buffers reused from one training step to the next (states, derivatives, gradients
    with respect to u): a step of the same shapes then allocates no large array, and its pages
    are already mapped. One per thread (:func:`workspace`); only :func:`loss_and_grad` uses it,
    because its buffers never leave the call."""

    def __init__(self):
        self.arrays: dict[tuple, np.ndarray] = {}

    def get(self, name: str, shape: tuple, dtype, zero: bool = False) -> np.ndarray:
        key = (name, shape, dtype)  # the dtype as given: hashable, and cheaper than np.dtype()
        arr = self.arrays.get(key)
        if arr is None:
            if len(self.arrays) > 64:  # many shapes seen: start over rather than grow
                self.arrays.clear()
            arr = self.arrays[key] = np.empty(shape, dtype=dtype)
        if zero:
            arr.fill(0)
        return arr


_local = threading.local()


def workspace() -> Workspace:
    """This thread's :class:`Workspace`."""
    ws = getattr(_local, "workspace", None)
    if ws is None:
        ws = _local.workspace = Workspace()
    return ws


def _buffer(ws, name, shape, dtype, zero=False):
    if ws is None:
        return np.zeros(shape, dtype=dtype) if zero else np.empty(shape, dtype=dtype)
    return ws.get(name, shape, dtype, zero)


def loss_and_grad(params, X, slot, bank_at, prev, a, c, eps, act, y, noise=None,
                  dtype=np.float64, *, tr=None, det=None, act_params=None, mix=None,
                  converters=None):
    """Forward pass, mean cross-entropy against ``y`` and every parameter's gradient, in one call
    that keeps its work buffers for the next (the tape never leaves it). Arguments as
    :func:`forward`; returns ``(loss, grads)``."""
    ws = workspace()
    Z, tape = forward(params, X, slot, bank_at, prev, a, c, eps, act, noise, dtype, tr=tr,
                      det=det, act_params=act_params, mix=mix, converters=converters, _ws=ws)
    value, gZ = loss(Z, y)
    return value, backward(params, tape, gZ, _ws=ws)


# Mixed banks are built between two parallel kernels, while the threads are still awake: on
# threads from this many elements (measured: N = 64, L_W = 4 with 4 mixed banks gains there).
BAKE_PARALLEL_MIN = 1 << 14
_NO_CONVERTERS = np.zeros(4)
_ALONE: dict = {}


def _alone_plan(bank_at: np.ndarray, banks: int):
    """:func:`mix_plan` of a schedule whose every step runs on its bank alone (no leak): the
    banks as they are, no mixed rows, no per-sample terms (made once per step count)."""
    T = bank_at.shape[0]
    empty = _ALONE.get((T, banks))
    if empty is None:
        empty = _ALONE[(T, banks)] = (np.zeros((0, banks)), np.zeros((T, 0), dtype=np.int64),
                                      np.zeros((T, 0, 1)), np.zeros(T, dtype=np.int64))
    return (bank_at, *empty)
_EMPTY = {}


def _empty(dtype, ndim: int) -> np.ndarray:
    """An empty array of ``dtype`` and rank ``ndim`` (a kernel's "none"), made once."""
    key = (np.dtype(dtype), ndim)
    arr = _EMPTY.get(key)
    if arr is None:
        arr = _EMPTY[key] = np.zeros((0,) + (1,) * (ndim - 1), dtype=dtype)
    return arr


def converter_steps(converters) -> np.ndarray:
    """``(fs_in, bits_in, fs_out, bits_out)`` (``None``: no converters) as the kernels take
    them: ``[fs_in, step_in, fs_out, step_out]``, ``step = 2 fs / (2^bits - 1)`` (0: none)."""
    out = np.zeros(4)
    if converters is None:
        return out
    fs_in, bits_in, fs_out, bits_out = (float(v) for v in converters)
    for i, (fs, bits, name) in enumerate(((fs_in, bits_in, "input"), (fs_out, bits_out,
                                                                       "readout"))):
        if math.isinf(bits):
            continue
        if not (bits >= 1 and bits == int(bits)):
            raise ValueError(f"converters: {name} bits must be a whole number >= 1 or inf "
                             f"(got {bits!r})")
        if not (math.isfinite(fs) and fs > 0):
            raise ValueError(f"converters: {name} full scale must be finite and > 0 "
                             f"(got {fs!r})")
        out[2 * i], out[2 * i + 1] = fs, 2.0 * fs / (2.0 ** bits - 1.0)
    return out


def forward(params, X, slot, bank_at, prev, a, c, eps, act, noise=None, dtype=np.float64, *,
            tr=None, det=None, act_params=None, mix=None, converters=None, _ws=None):
    """Run the forward pass; return ``(logits, tape)``.

    ``params`` holds ``W_in (N, D)``, ``W (L_W, N, N)``, ``b (L_W, N)``, ``W_out (C, N)``,
    ``b_out (C,)``; ``X`` is ``(S, B, D)``; ``a, c, tr`` are per-step ``(T,)`` or per-sample
    ``(T, B)`` coefficients (``tr`` defaults to 1); ``noise`` is ``None`` or ``(T, B, N)``, added to
    the element output; ``det`` is ``None`` or ``(B, N)``, added to ``h_T`` at readout; ``act`` is
    a kernel code and ``act_params`` its ``(gain, saturation, p)`` (default: the ideal ones).

    The bank each step runs on: ``mix``, the share ``m[t, j]`` of every bank ``j`` at step ``t``
    (``(T, L_W)``, or per sample ``(T, B, L_W)``): ``W_eff,t = sum_j m[t, j] W[j]`` (and the
    biases likewise). Without ``mix``, the two-bank leak ``eps`` (``(T,)`` or ``(T, B)``) into
    the previous bank ``prev[t]`` of the step's bank ``bank_at[t]``
    (:func:`mix_from_eps`; ``eps = None``: no leak).

    ``converters``: ``(fs_in, bits_in, fs_out, bits_out)``, a DAC on the injected drive
    ``W_in x`` and an ADC at the readout, each clipping to ``[-fs, fs]`` and rounding to
    ``2^bits`` levels (``bits = inf``: none), with a straight-through gradient where the value
    was in range.
    """
    W_in = _as(params["W_in"], dtype, 2, "W_in")
    W = _as(params["W"], dtype, 3, "W")
    b = _as(params["b"], dtype, 2, "b")
    W_out = _as(params["W_out"], dtype, 2, "W_out")
    b_out = _as(params["b_out"], dtype, 1, "b_out")
    X = _as(X, dtype, 3, "X")
    bank_at = np.ascontiguousarray(bank_at, dtype=np.int64)
    slot = np.ascontiguousarray(slot, dtype=np.int64)
    T, (_, B, D), N, L = bank_at.shape[0], X.shape, W.shape[1], W.shape[0]
    if W_in.shape != (N, D):
        raise ValueError(f"W_in: expected shape ({N}, {D}) (got {W_in.shape})")
    if mix is None and eps is not None:
        eps = np.asarray(eps)
        if eps.shape not in ((T,), (T, 1), (T, B)):
            raise ValueError(f"eps: expected shape ({T},), ({T}, 1) or ({T}, {B}) "
                             f"(got {eps.shape})")
        mix = mix_from_eps(bank_at, prev, eps, L) if eps.any() else None
    coef = coefficients(a, c, np.ones(T) if tr is None else tr, T, B, dtype)
    noise = _optional(noise, (T, B, N), dtype, "noise")
    det = _optional(det, (B, N), dtype, "det")
    ap = np.asarray(by_code(act).ideal if act_params is None else act_params, dtype=np.float64)
    if mix is None:  # each step on its bank alone: nothing to plan
        at, rows, tb, tc, nt = _alone_plan(bank_at, L)
    else:
        at, rows, tb, tc, nt = mix_plan(check_mix(mix, T, B, L), L)
    tc = np.ascontiguousarray(tc, dtype=dtype)
    rows = rows.astype(dtype, copy=False)
    if len(rows):
        W, b = _bake_mix(W, b, rows, _ws)
    H = _buffer(_ws, "H", (T + 1, B, N), dtype)
    G = _buffer(_ws, "G", (T, B, N), dtype)
    Z = np.empty((B, W_out.shape[0]), dtype=dtype)
    chunk = chunk_rows(B, N, big_enough(B, N, D, T))
    single_threaded_kernel_blas()
    driver = _forward_par if parallel_pays(B, N, D, T) else _forward_ser
    conv = _NO_CONVERTERS if converters is None else converter_steps(converters)
    QM = (_buffer(_ws, "QM", (X.shape[0], B, N), dtype) if conv[1] > 0
          else _empty(dtype, 3))
    driver(X, slot, W_in, W, b, W_out, b_out, at, tb, tc, nt, coef, act, ap, noise, det,
           conv, QM, chunk, H, G, Z)
    HR = H[T]
    if det.shape[0]:
        HR = np.add(HR, det, out=_buffer(_ws, "HR", HR.shape, dtype))
    MO = _empty(dtype, 2)
    if conv[3] > 0:  # the ADC at the readout: the logits from the converted states
        if not det.shape[0]:  # a copy: H keeps the states as they were
            HR = _buffer(_ws, "HR", HR.shape, dtype)
            HR[...] = H[T]
        MO = _buffer(_ws, "MO", HR.shape, dtype)
        _convert(HR, conv[2], conv[3], MO)
        gemm(False, True, 1.0, HR, W_out, 0.0, Z)  # the kernels' BLAS, as the kernel's own
        Z += b_out
    tape = Tape(X=X, slot=slot, bank_at=at, tb=tb, tc=tc, nt=nt, coef=coef, H=H, G=G, HR=HR,
                Z=Z, chunk=chunk, W=W, rows=rows, QM=QM, MO=MO)
    return Z, tape


def _bake_mix(W, b, rows, ws=None):
    """Build each distinct mixed bank ``sum_l rows[j, l] W[l]`` once (and its bias likewise) and
    append it after the ``L_W`` banks: a step runs on it with one product, whatever the number
    of banks it mixes."""
    L, F = W.shape[0], rows.shape[0]
    Wx = _buffer(ws, "Wx", (L + F,) + W.shape[1:], W.dtype)
    bx = _buffer(ws, "bx", (L + F, b.shape[1]), b.dtype)
    if BAKE_PARALLEL_MIN <= (L + F) * W.shape[1] * W.shape[2] and numba_threads() > 1:
        _mix_banks_par(W, b, rows, Wx, bx)
    else:
        _mix_banks(W, b, rows, Wx, bx)
    return Wx, bx


@_jit
def _mix_rows(W, b, rows, Wx, bx, r):
    """Row ``r`` of ``Wx = [W; sum_l rows[j, l] W[l]]`` and of ``bx`` likewise."""
    L = W.shape[0]
    for k in range(L):
        Wx[k, r] = W[k, r]
        bx[k, r] = b[k, r]
    for j in range(rows.shape[0]):
        first = True
        for l in range(L):
            w = rows[j, l]
            if w == 0:
                continue
            if first:
                for c in range(W.shape[2]):
                    Wx[L + j, r, c] = w * W[l, r, c]
                bx[L + j, r] = w * b[l, r]
                first = False
            else:
                for c in range(W.shape[2]):
                    Wx[L + j, r, c] += w * W[l, r, c]
                bx[L + j, r] += w * b[l, r]


@_jit
def _mix_banks(W, b, rows, Wx, bx):
    for r in range(W.shape[1]):
        _mix_rows(W, b, rows, Wx, bx, r)


@_pjit
def _mix_banks_par(W, b, rows, Wx, bx):
    for r in prange(W.shape[1]):
        _mix_rows(W, b, rows, Wx, bx, r)


def _optional(arr, shape, dtype, name):
    """``arr`` checked against ``shape``, or an empty array of that rank when ``arr`` is None."""
    if arr is None:
        return np.zeros((0,) + shape[1:], dtype=dtype)
    arr = _as(arr, dtype, len(shape), name)
    if arr.shape != shape:
        raise ValueError(f"{name}: expected shape {shape} (got {arr.shape})")
    return arr


def loss(Z, y):
    """Mean softmax cross-entropy and its gradient with respect to the logits ``Z``."""
    Z = np.ascontiguousarray(Z)
    gZ = np.empty_like(Z)
    value = _softmax_xent(Z, np.ascontiguousarray(y, dtype=np.int64), gZ)
    return value, gZ


def backward(params, tape, gZ, *, _ws=None):
    """Gradients of the loss with respect to every parameter, given ``gZ = dL/dz``."""
    dtype = tape.H.dtype
    W = tape.W  # the banks the forward pass ran on (with any baked mixed banks appended)
    W_out = _as(params["W_out"], dtype, 2, "W_out")
    L = W.shape[0] - len(tape.rows)  # the banks, without any baked mixed ones
    grads = {
        "W_in": np.empty(np.shape(params["W_in"]), dtype=dtype),
        "W": np.empty((L,) + W.shape[1:], dtype=dtype),
        "b": np.empty((L, W.shape[1]), dtype=dtype),
        "W_out": np.empty(W_out.shape, dtype=dtype),
        "b_out": np.empty(np.shape(params["b_out"]), dtype=dtype),
    }
    T, B, N = tape.G.shape
    S, _, D = tape.X.shape
    coef = tape.coef
    # The banks saw tr h_t: a per-step transmission scales the weight-gradient products (BLAS
    # alpha); a per-sample one needs the scaled states stored.
    scaled = coef.shape[2] > 1 and bool((coef[TR] != coef[TR, :, :1]).any())
    alpha = np.ones(T) if scaled else coef[TR, :, 0].astype(np.float64)
    # Phase 1, over chunks of rows: the recursion for dh runs per row. The gradients with respect
    # to u_t are stored, (T, B, N), for phase 2; so are the states as the banks saw them (tr h_t)
    # when the transmission is per sample.
    DU = _buffer(_ws, "DU", (T, B, N), dtype)
    GX = _buffer(_ws, "GX", (S, B, N), dtype, zero=True)
    HS = _buffer(_ws, "HS", (T if scaled else 0, B, N), dtype)
    gZ = np.ascontiguousarray(gZ, dtype=dtype)
    par = parallel_pays(B, N, D, T)
    (_rows_backward_par if par else _rows_backward_ser)(
        W, W_out, tape.bank_at, tape.tb, tape.tc, tape.nt, tape.slot, coef, tape.H, tape.G, gZ,
        tape.QM, tape.MO, tape.chunk, DU, GX, HS)
    # Phase 2, over blocks of rows of the weight gradients: each block sums its rows over every
    # step, in step order; blocks never share an output row.
    block = grad_block(N, B)
    tasks = -(-N // block)
    rows = block if len(tape.rows) else 0  # a scratch block per task for the folds
    scratch = _buffer(_ws, "fold", (tasks, rows, N), dtype)
    sums = _buffer(_ws, "fold_sums", (tasks, rows), dtype)
    HQ = _buffer(_ws, "HQ", (tasks, B if tape.tb.shape[1] else 0, N), dtype)
    (_weights_backward_par if par else _weights_backward_ser)(
        tape.X, tape.bank_at, tape.tb, tape.tc, tape.nt, HS if scaled else tape.H, alpha, DU, GX,
        block, tape.rows, scratch, sums, HQ, grads["W_in"], grads["W"], grads["b"])
    gemm(True, False, 1.0, gZ, tape.HR, 0.0, grads["W_out"])  # the kernels' BLAS, one thread
    np.sum(gZ, axis=0, out=grads["b_out"])
    return grads
