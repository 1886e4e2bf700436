"""Coherent photonic weight banks: a real bank ``W = U diag(s) V^T`` programmed into two
rectangular meshes of Mach-Zehnder interferometers (MZIs) and N attenuators, then rebuilt from the
phases the device actually holds (quantised, noisy, thermally coupled) and couplers that are not
exactly 50:50.

**The MZI as built.** An external phase shifter ``phi`` on the top input arm, a directional
coupler, an internal phase shifter ``theta`` on the top arm (``theta`` is the shifter's own phase,
not twice it), a second coupler; an amplitude transmission ``a`` (``a = 10^(-loss_dB / 20)``)
multiplies the whole. A coupler of power split ``1/2 + delta`` is ``B(delta) = [[t, i r],
[i r, t]]``, ``t = sqrt(1/2 + delta)``, ``r = sqrt(1/2 - delta)``, so, with the first coupler's
``t1, r1`` and the second's ``t2, r2``::

    M = a B(delta2) diag(e^{i theta}, 1) B(delta1) diag(e^{i phi}, 1)

      = a [[ e^{i phi} (t1 t2 e^{i theta} - r1 r2),   i (r1 t2 e^{i theta} + t1 r2) ],
           [ i e^{i phi} (t1 r2 e^{i theta} + r1 t2), t1 t2 - r1 r2 e^{i theta}     ]]

and with ideal couplers (``delta = 0``) and no loss::

    M(theta, phi) = i e^{i theta / 2} [[ e^{i phi} sin(theta / 2),  cos(theta / 2) ],
                                       [ e^{i phi} cos(theta / 2), -sin(theta / 2) ]]

(``theta = 0``: the cross state; ``theta = pi``: the bar state). Rows and columns are the modes
``(m, m + 1)``, top first: light in mode ``m + 1`` enters the lower arm.

**The mesh.** Clements et al., "Optimal design for universal multiport interferometers", Optica
3, 1460 (2016): a rectangular array of ``N (N - 1) / 2`` MZIs in ``N`` columns (column ``c``
holds the MZIs on mode pairs ``(m, m + 1)`` with ``m = c mod 2``; at ``N = 2`` the second column
is empty), followed by a screen of ``N`` output phases ``D``, realises any ``N x N`` unitary
``U = D M_K ... M_1`` (``M_1`` met first). The decomposition (:func:`decompose`) follows the
paper's procedure, which extends the triangular one of Reck et al., "Experimental realization of
any discrete unitary operator", Phys. Rev. Lett. 73, 58 (1994), with the physical element above
in place of the paper's ``T(theta, phi)``: it nulls the elements of ``U`` below the diagonal one
anti-diagonal at a time, alternately by MZIs applied from the right (``U M^-1``, the input side,
nulling the left element of the pair of columns: ``theta = 2 atan2(|b|, |a|)``,
``phi = arg a - arg b + pi`` for the row's ``(a, b)``) and from the left (``M U``, the output
side, nulling the lower element of the pair of rows: ``theta = 2 atan2(|a|, |b|)``,
``phi = arg b - arg a`` for the column's ``(a, b)``), leaving a diagonal ``D``. Each left
element is then moved through the diagonal: ``M(theta, phi)^-1 diag(d1, d2) =
diag(-e^{-i (theta + phi)} d2, -e^{-i theta} d2) M(theta, arg d1 - arg d2)``, so every MZI ends
up on the input side of one diagonal, and the phases returned are those the device is programmed
with. The order of the MZIs (which pair each nulls) depends on ``N`` only (:func:`layout`).

**A bank as built** (:func:`program_banks`): the SVD of each real bank; the singular values
clipped to ``w_max`` (the attenuators hold ``s / w_max`` in ``[0, 1]``); ``U`` and ``V^T`` each
decomposed; every phase (``theta``, ``phi`` of each MZI and the ``N`` output phases) taken as a
drive in ``[0, 2 pi)``, quantised to ``2^bits`` levels over ``[0, 2 pi)``, given Gaussian noise,
then thermal crosstalk; the couplers drawn; the meshes rebuilt (:func:`rebuild`) and the realised
weights read as the in-phase (real) part of ``U' diag(s) V'^T``. Losses are not compensated:
a path through ``k`` MZIs is scaled by ``a^k``.

Every function takes arrays and numbers; the random draws come from
:mod:`relaxsim.kernels.rng`'s counter-based streams, so a programming event is a pure function of
its key (the same bytes for any thread count: the banks run in parallel, each on one thread, and
the products call the kernels' single-threaded BLAS).
"""

from __future__ import annotations

import functools
import math
import threading
from typing import NamedTuple

import numba as nb
import numpy as np
from numba import prange

from relaxsim.kernels.passes import gemm
from relaxsim.kernels.rng import check_out, normal_from_key
from relaxsim.kernels.threads import numba_threads, single_threaded_kernel_blas
from relaxsim.kernels.tuning import FASTMATH

_jit = nb.njit(cache=True, fastmath=FASTMATH, error_model="numpy")
_pjit = nb.njit(cache=True, fastmath=FASTMATH, error_model="numpy", parallel=True)
_inline = nb.njit(cache=True, fastmath=FASTMATH, error_model="numpy", inline="always")

TWO_PI = 2.0 * math.pi
_INV_TWO_PI = 1.0 / TWO_PI
RIGHT, LEFT = 0, 1  # a nulling step applied on the input side (columns) or the output side (rows)

# Padding of a working matrix's rows (elements): a power-of-two row length maps the elements of
# a column onto a few cache sets, and the decomposition walks columns (measured at N = 128: 3x
# slower without).
PAD = 8

# Below this many multiply-adds of mesh work (banks x N^3), one thread does it all.
PARALLEL_MIN_MESH = 1 << 18


# -- layout ---------------------------------------------------------------------------------------

class Layout(NamedTuple):
    """Where the ``K = N (N - 1) / 2`` MZIs of an ``N``-mode rectangular mesh sit, in the order
    light meets them (column by column, top to bottom in each column): ``modes[k]`` the upper mode
    ``m`` of MZI ``k`` (it couples ``m`` and ``m + 1``), ``columns[k]`` its column,
    ``neighbours[k]`` the MZIs of the same column on the adjacent mode pairs (``m - 2`` and
    ``m + 2``; -1 where there is none), ``screen[m]`` those of output phase ``m``
    (``m - 1`` and ``m + 1``). ``kind``, ``pair``, ``target`` and ``slot`` are the
    decomposition's steps in the order it performs them: right or left, the pair's upper mode, the
    row (right) or column (left) of the element it nulls, and the MZI it becomes."""

    n: int
    modes: np.ndarray
    columns: np.ndarray
    neighbours: np.ndarray
    screen: np.ndarray
    kind: np.ndarray
    pair: np.ndarray
    target: np.ndarray
    slot: np.ndarray

    @property
    def depth(self) -> int:
        """Columns holding at least one MZI (``N`` for ``N >= 3``)."""
        return int(self.columns.max()) + 1 if self.columns.size else 0


@functools.lru_cache(maxsize=None)
def layout(n: int) -> Layout:
    """The mesh of ``n`` modes (cached; the arrays are read-only). The nulling steps of Clements
    et al. (2016), zero-based: for ``i = 0 .. n - 2``, with ``i`` even, ``j = 0 .. i``: the
    element ``(n - 1 - j, i - j)`` by an MZI on the input modes ``(i - j, i - j + 1)``; with ``i``
    odd, ``j = 1 .. i + 1``: the element ``(n + j - i - 2, j - 1)`` by an MZI on the output modes
    ``(n + j - i - 3, n + j - i - 2)``. Light meets the right steps in the order performed, then
    the left ones in reverse; each MZI's column is the earliest after those of the MZIs before it
    on its modes."""
    n = int(n)
    if n < 1:
        raise ValueError(f"a mesh needs at least one mode (got {n})")
    steps = []  # (kind, pair, target)
    for i in range(n - 1):
        if i % 2 == 0:
            steps += [(RIGHT, i - j, n - 1 - j) for j in range(i + 1)]
        else:
            steps += [(LEFT, n + j - i - 3, j - 1) for j in range(1, i + 2)]
    rights = [s for s, st in enumerate(steps) if st[0] == RIGHT]
    lefts = [s for s, st in enumerate(steps) if st[0] == LEFT]
    light = rights + lefts[::-1]  # step indices in the order light meets them
    last = [-1] * n
    column = {}
    for s in light:
        m = steps[s][1]
        column[s] = max(last[m], last[m + 1]) + 1
        last[m] = last[m + 1] = column[s]
    order = sorted(light, key=lambda s: (column[s], steps[s][1]))
    k = len(steps)
    slot = np.empty(k, dtype=np.int64)
    slot[order] = np.arange(k)
    modes = np.array([steps[s][1] for s in order], dtype=np.int64)
    columns = np.array([column[s] for s in order], dtype=np.int64)
    where = {(int(c), int(m)): i for i, (c, m) in enumerate(zip(columns, modes))}
    neighbours = np.array([[where.get((int(c), int(m) + side), -1) for side in (-2, 2)]
                           for c, m in zip(columns, modes)], dtype=np.int64).reshape(k, 2)
    screen = np.array([[m - 1, m + 1 if m + 1 < n else -1] for m in range(n)],
                      dtype=np.int64)
    kind, pair, target = (np.array([st[i] for st in steps], dtype=np.int64).reshape(k)
                          for i in range(3))
    arrays = [modes, columns, neighbours, screen, kind, pair, target, slot]
    for arr in arrays:
        arr.setflags(write=False)
    return Layout(n, *arrays)


# -- the MZI --------------------------------------------------------------------------------------

@_inline
def mzi(theta, phi, delta1, delta2, amplitude):
    """The MZI's transfer ``(m00, m01, m10, m11)`` (module docstring): couplers of split
    ``1/2 + delta1`` (first) and ``1/2 + delta2``, amplitude transmission ``amplitude``."""
    t1, r1 = math.sqrt(0.5 + delta1), math.sqrt(0.5 - delta1)
    t2, r2 = math.sqrt(0.5 + delta2), math.sqrt(0.5 - delta2)
    et = complex(math.cos(theta), math.sin(theta))
    ep = complex(math.cos(phi), math.sin(phi)) * amplitude
    return (ep * (t1 * t2 * et - r1 * r2), 1j * amplitude * (r1 * t2 * et + t1 * r2),
            1j * ep * (t1 * r2 * et + r1 * t2), amplitude * (t1 * t2 - r1 * r2 * et))


@_inline
def _wrap(x):
    """``x`` brought into ``[0, 2 pi)``."""
    y = x - TWO_PI * math.floor(x * _INV_TWO_PI)
    y = y + TWO_PI if y < 0.0 else y  # x * _INV_TWO_PI rounded up to a whole number
    return y - TWO_PI if y >= TWO_PI else y


@_inline
def _arg(z):
    return math.atan2(z.imag, z.real)


# -- decomposition --------------------------------------------------------------------------------

@_inline
def _decompose_into(A, kind, pair, target, slot, theta, phi, D):
    """Clements's decomposition of the unitary ``A`` (overwritten) into ``theta, phi (K,)`` (in
    the layout's order) and the output phases ``D (N,)``."""
    n = A.shape[0]
    K = kind.shape[0]
    for s in range(K):
        p, t = pair[s], target[s]
        if kind[s] == RIGHT:  # A <- A M^-1 on columns p, p + 1: null A[t, p]
            a, b = A[t, p], A[t, p + 1]
            th = 2.0 * math.atan2(abs(b), abs(a))
            ph = _wrap(_arg(a) - _arg(b) + math.pi)
        else:  # A <- M A on rows p, p + 1: null A[p + 1, t]
            a, b = A[p, t], A[p + 1, t]
            th = 2.0 * math.atan2(abs(a), abs(b))
            ph = _wrap(_arg(b) - _arg(a))
        sn, cs = math.sin(0.5 * th), math.cos(0.5 * th)
        g = complex(-math.sin(0.5 * th), math.cos(0.5 * th))  # i e^{i theta / 2}
        if kind[s] == RIGHT:
            # [x, y] M^-1 = conj(g) [x e^{-i phi} sin + y cos, x e^{-i phi} cos - y sin]
            gc = g.conjugate()
            es = complex(math.cos(ph), -math.sin(ph)) * sn * gc
            ec = complex(math.cos(ph), -math.sin(ph)) * cs * gc
            ycs, ysn = gc * cs, gc * sn
            for i in range(t + 1):  # the rows below t are zero in both columns
                x, y = A[i, p], A[i, p + 1]
                A[i, p] = es * x + ycs * y
                A[i, p + 1] = ec * x - ysn * y
        else:
            # M [x; y] = g [e^{i phi} sin x + cos y; e^{i phi} cos x - sin y]
            es = complex(math.cos(ph), math.sin(ph)) * sn * g
            ec = complex(math.cos(ph), math.sin(ph)) * cs * g
            ycs, ysn = g * cs, g * sn
            top, bottom = A[p, :n], A[p + 1, :n]
            for j in range(t, n):  # the columns left of t are zero in both rows
                x, y = top[j], bottom[j]
                top[j] = es * x + ycs * y
                bottom[j] = ec * x - ysn * y
        theta[slot[s]] = th
        phi[slot[s]] = ph
    psi = np.empty(n)
    for m in range(n):
        psi[m] = _arg(A[m, m])
    _through_diagonal(kind, pair, slot, theta, phi, psi)
    for m in range(n):
        D[m] = complex(math.cos(psi[m]), math.sin(psi[m]))


@_inline
def _through_diagonal(kind, pair, slot, theta, phi, psi):
    """Every left MZI moved through the diagonal ``diag(e^{i psi})`` to its input side,
    innermost (last performed) first: ``M(theta, phi)^-1 diag(d1, d2) = diag(-e^{-i (theta + phi)}
    d2, -e^{-i theta} d2) M(theta, arg d1 - arg d2)``, in phases (``psi`` in rad, updated; the
    new ``phi`` in ``[0, 2 pi)``)."""
    for s in range(kind.shape[0] - 1, -1, -1):
        if kind[s] == LEFT:
            p, k = pair[s], slot[s]
            th, ph = theta[k], phi[k]
            p1, p2 = psi[p], psi[p + 1]
            phi[k] = _wrap(p1 - p2)
            psi[p] = _wrap(p2 + math.pi - th - ph)
            psi[p + 1] = _wrap(p2 + math.pi - th)


@_jit
def _decompose(U, kind, pair, target, slot, theta, phi, D):
    n = U.shape[0]
    A = np.empty((n, n + PAD), dtype=np.complex128)
    A[:, :n] = U
    _decompose_into(A, kind, pair, target, slot, theta, phi, D)


@_jit
def _rotate(top, bottom, a, b, c, d):
    """``(top, bottom) <- (a top + b bottom, c top - d bottom)``, element by element (a
    function of its own, on views indexed from 0, so that the loop vectorises)."""
    for j in range(top.shape[0]):
        x, y = top[j], bottom[j]
        top[j] = a * x + b * y
        bottom[j] = c * x - d * y


@_inline
def _decompose_real_into(R, kind, pair, target, slot, theta, phi, psi, rho, gamma):
    """:func:`_decompose_into` of a real orthogonal ``R`` (overwritten) in real arithmetic: the
    working matrix is kept as ``diag(e^{i rho}) R diag(e^{i gamma})`` with ``R`` real and
    ``rho``, ``gamma`` (``(N,)``, rad) phases of its rows and columns. An MZI that nulls an
    element of such a matrix mixes its two rows (columns) by a real rotation, up to a common
    phase: for a right step with ``a = R[t, p]``, ``b = R[t, p + 1]``,
    ``phi = gamma_p - gamma_{p + 1} + arg a - arg b + pi`` (``arg`` of a real: 0 or pi) makes
    ``e^{-i phi} e^{i (gamma_p - gamma_{p + 1})} = w = -sign(a) sign(b)``, so the columns become
    ``(w sin R_p + cos R_{p + 1}, w cos R_p - sin R_{p + 1})`` (of ``theta / 2``), both of phase
    ``gamma_{p + 1} - pi / 2 - theta / 2`` (``M^-1`` carries ``conj(i e^{i theta / 2})``); a left
    step likewise, ``phi = rho_{p + 1} - rho_p + arg b - arg a``, ``w = sign(a) sign(b)`` and the
    rows' phase ``rho_{p + 1} + pi / 2 + theta / 2``. The same phases as the complex procedure,
    at a quarter of the arithmetic. Only the rows (right step) or columns (left step) not yet
    nulled are touched: the others are zero in both."""
    n = R.shape[0]  # R: (n, n + PAD), the matrix in its first n columns
    K = kind.shape[0]
    for m in range(n):
        rho[m] = 0.0
        gamma[m] = 0.0
    for s in range(K):
        p, t = pair[s], target[s]
        if kind[s] == RIGHT:  # columns p, p + 1: null R[t, p]; rows below t are zero in both
            a, b = R[t, p], R[t, p + 1]
            u, v = abs(b), abs(a)  # sin and cos of theta / 2, times h
            base = gamma[p] - gamma[p + 1]
            w = -1.0
        else:  # rows p, p + 1: null R[p + 1, t]; columns left of t are zero in both
            a, b = R[p, t], R[p + 1, t]
            u, v = abs(a), abs(b)
            base = rho[p + 1] - rho[p]
            w = 1.0
        if (a < 0.0) != (b < 0.0):
            w = -w
            base += math.pi
        if kind[s] == RIGHT:
            base += math.pi
        h = math.sqrt(u * u + v * v)  # entries of an orthogonal matrix: no overflow
        sn, cs = (u / h, v / h) if h > 0.0 else (0.0, 1.0)
        th = 2.0 * math.atan2(u, v)
        ws, wc = w * sn, w * cs
        if kind[s] == RIGHT:
            for i in range(t + 1):
                x, y = R[i, p], R[i, p + 1]
                R[i, p] = ws * x + cs * y
                R[i, p + 1] = wc * x - sn * y
            gamma[p] = gamma[p + 1] = _wrap(gamma[p + 1] - 0.5 * math.pi - 0.5 * th)
        else:
            _rotate(R[p, t:n], R[p + 1, t:n], ws, cs, wc, sn)
            rho[p] = rho[p + 1] = _wrap(rho[p + 1] + 0.5 * math.pi + 0.5 * th)
        theta[slot[s]] = th
        phi[slot[s]] = _wrap(base)
    for m in range(n):
        psi[m] = _wrap(rho[m] + gamma[m] + (math.pi if R[m, m] < 0.0 else 0.0))
    _through_diagonal(kind, pair, slot, theta, phi, psi)


@_inline
def _decompose_one(Q, i, kind, pair, target, slot, theta, phi, psi, R, phases):
    """The real orthogonal ``Q[i]`` of the stack ``Q`` (``(M, N, N)``) into row ``i`` of the
    outputs; ``R (M, N, N + PAD)`` and ``phases (M, 2, N)`` work arrays (C-contiguous: the
    slices of ``R``'s rows are too, so the loops over them vectorise)."""
    n = Q.shape[1]
    Ri = R[i]
    Ri[:, :n] = Q[i]
    _decompose_real_into(Ri, kind, pair, target, slot, theta[i], phi[i], psi[i], phases[i, 0],
                         phases[i, 1])


@_jit
def _decompose_stack_ser(Q, kind, pair, target, slot, theta, phi, psi, R, phases):
    for i in range(Q.shape[0]):
        _decompose_one(Q, i, kind, pair, target, slot, theta, phi, psi, R, phases)


@_pjit
def _decompose_stack_par(Q, kind, pair, target, slot, theta, phi, psi, R, phases):
    for i in prange(Q.shape[0]):
        _decompose_one(Q, i, kind, pair, target, slot, theta, phi, psi, R, phases)


class Mesh(NamedTuple):
    """A programmed mesh: ``modes (K,)`` the upper mode of each MZI's pair ``(m, m + 1)``,
    ``columns (K,)``, ``theta, phi (K,)`` the internal and external phases in ``[0, 2 pi)``
    (``theta`` in ``[0, pi]``), in the order light meets the MZIs; ``D (N,)`` the output phases
    (complex, of modulus 1)."""

    modes: np.ndarray
    columns: np.ndarray
    theta: np.ndarray
    phi: np.ndarray
    D: np.ndarray


def decompose(U) -> Mesh:
    """The rectangular mesh (Clements et al. 2016) of the ``N x N`` unitary ``U`` (any real or
    complex dtype, taken as complex128): with ``m = decompose(U)``,
    ``rebuild(m.modes, m.theta, m.phi, m.D)`` gives ``U`` back. ``U`` is not checked for
    unitarity: a matrix that is not unitary gives the phases of some other matrix."""
    U = np.ascontiguousarray(U, dtype=np.complex128)
    if U.ndim != 2 or U.shape[0] != U.shape[1]:
        raise ValueError(f"U: expected a square matrix (got shape {U.shape})")
    lay = layout(U.shape[0])
    K = lay.kind.shape[0]
    theta, phi = np.empty(K), np.empty(K)
    D = np.empty(U.shape[0], dtype=np.complex128)
    _decompose(U, lay.kind, lay.pair, lay.target, lay.slot, theta, phi, D)
    return Mesh(lay.modes, lay.columns, theta, phi, D)


# -- rebuild --------------------------------------------------------------------------------------

@_jit
def _mix(xr, xi, yr, yi, a_r, a_i, b_r, b_i, c_r, c_i, e_r, e_i):
    """Two rows ``x = xr + i xi``, ``y = yr + i yi`` through the 2 x 2 ``[[a, b], [c, e]]`` (a
    function of its own, on views indexed from 0, so that the loop vectorises)."""
    for j in range(xr.shape[0]):
        pr, pi_, qr, qi = xr[j], xi[j], yr[j], yi[j]
        xr[j] = (a_r * pr - a_i * pi_) + (b_r * qr - b_i * qi)
        xi[j] = (a_r * pi_ + a_i * pr) + (b_r * qi + b_i * qr)
        yr[j] = (c_r * pr - c_i * pi_) + (e_r * qr - e_i * qi)
        yi[j] = (c_r * pi_ + c_i * pr) + (e_r * qi + e_i * qr)


# pi / 2 = _PIO2_HI + _PIO2_LO to 1e-27, _PIO2_HI with 33 significant bits: q * _PIO2_HI is exact
# for |q| < 2^20
_PIO2_HI = 1.5707963267341256e+00
_PIO2_LO = 6.0771005065061922e-11
_TWO_OVER_PI = 0.6366197723675814


@_inline
def _sincos(x):
    """``(sin x, cos x)`` for ``|x| < 10^5`` in arithmetic only (so loops over it vectorise;
    libm's are scalar calls): ``x = q pi / 2 + r``, ``|r| <= pi / 4`` (Cody and Waite), the
    Taylor series of ``sin r`` to ``r^17`` and of ``cos r`` to ``r^18`` (truncation below
    1e-17), and the quadrant of ``q``. Within a few ulp of libm."""
    q = np.rint(x * _TWO_OVER_PI)
    r = (x - q * _PIO2_HI) - q * _PIO2_LO
    r2 = r * r
    sp = 1.0 / 355687428096000.0  # 1 / 17!
    sp = -1.0 / 1307674368000.0 + r2 * sp
    sp = 1.0 / 6227020800.0 + r2 * sp
    sp = -1.0 / 39916800.0 + r2 * sp
    sp = 1.0 / 362880.0 + r2 * sp
    sp = -1.0 / 5040.0 + r2 * sp
    sp = 1.0 / 120.0 + r2 * sp
    sp = -1.0 / 6.0 + r2 * sp
    sr = r + r * (r2 * sp)
    cp = 1.0 / 6402373705728000.0  # 1 / 18!
    cp = -1.0 / 20922789888000.0 + r2 * cp
    cp = 1.0 / 87178291200.0 + r2 * cp
    cp = -1.0 / 479001600.0 + r2 * cp
    cp = 1.0 / 3628800.0 + r2 * cp
    cp = -1.0 / 40320.0 + r2 * cp
    cp = 1.0 / 720.0 + r2 * cp
    cp = -1.0 / 24.0 + r2 * cp
    cp = 0.5 + r2 * cp
    cr = 1.0 - r2 * cp
    quad = q - 4.0 * np.floor(q * 0.25)  # q mod 4, in {0, 1, 2, 3}
    odd = (quad == 1.0) | (quad == 3.0)
    sn = cr if odd else sr
    cs = sr if odd else cr
    sn = -sn if quad >= 2.0 else sn
    cs = -cs if (quad == 1.0) | (quad == 2.0) else cs
    return sn, cs


# rows of the MZI coefficients: m00, m01, m10, m11, each real and imaginary part
N_COEF = 8


@_inline
def _coefficient(k, theta, phi, t1, r1, t2, r2, a, coef):
    st, ct = _sincos(theta)
    sp, cp = _sincos(phi)
    cp, sp = a * cp, a * sp
    tt, rr, rt, tr = t1 * t2, r1 * r2, r1 * t2, t1 * r2
    u_r, u_i = tt * ct - rr, tt * st  # t1 t2 e^{i theta} - r1 r2
    v_r, v_i = tr * ct + rt, tr * st  # t1 r2 e^{i theta} + r1 t2
    coef[0, k] = cp * u_r - sp * u_i  # m00 = e^{i phi} u
    coef[1, k] = cp * u_i + sp * u_r
    coef[2, k] = -a * (rt * st)  # m01 = i (r1 t2 e^{i theta} + t1 r2)
    coef[3, k] = a * (rt * ct + tr)
    coef[4, k] = -(cp * v_i + sp * v_r)  # m10 = i e^{i phi} v
    coef[5, k] = cp * v_r - sp * v_i
    coef[6, k] = a * (tt - rr * ct)  # m11 = t1 t2 - r1 r2 e^{i theta}
    coef[7, k] = -a * (rr * st)


@_jit
def _coefficients(theta, phi, delta, amplitude, coef):
    """Every MZI's transfer (the module docstring's formula, :func:`mzi`), as the rows of
    ``coef (8, K)``: ``m00, m01, m10, m11``, real and imaginary parts. ``delta (2, K)`` the
    first and second couplers' imbalances (``(2, 0)``: ideal couplers), ``amplitude (K,)``.
    (All arrays C-contiguous: the loops vectorise.)"""
    if delta.shape[1] == 0:
        h = math.sqrt(0.5)
        for k in range(theta.shape[0]):
            _coefficient(k, theta[k], phi[k], h, h, h, h, amplitude[k], coef)
    else:
        for k in range(theta.shape[0]):
            d1, d2 = delta[0, k], delta[1, k]
            _coefficient(k, theta[k], phi[k], math.sqrt(0.5 + d1), math.sqrt(0.5 - d1),
                         math.sqrt(0.5 + d2), math.sqrt(0.5 - d2), amplitude[k], coef)


@_inline
def _rebuild_into(modes, coef, psi, re, im):
    """``D M_K ... M_1`` into ``re + i im`` (``(N, N)``): each MZI ``k`` (its transfer in
    ``coef[:, k]``, :func:`_coefficients`) on rows ``modes[k]``, ``modes[k] + 1`` in order, then
    the output phase ``psi[m]`` on row ``m``. Row ``m`` of the product is nonzero only on the
    inputs light can reach it from, an interval ``[lo[m], hi[m]]``: only those columns are
    computed."""
    n = re.shape[0]
    re[:] = 0.0
    im[:] = 0.0
    lo = np.arange(n)
    hi = np.arange(n)
    for m in range(n):
        re[m, m] = 1.0
    for k in range(modes.shape[0]):
        m = modes[k]
        j0, j1 = min(lo[m], lo[m + 1]), max(hi[m], hi[m + 1]) + 1
        _mix(re[m, j0:j1], im[m, j0:j1], re[m + 1, j0:j1], im[m + 1, j0:j1],
             coef[0, k], coef[1, k], coef[2, k], coef[3, k], coef[4, k], coef[5, k], coef[6, k],
             coef[7, k])
        lo[m] = lo[m + 1] = j0
        hi[m] = hi[m + 1] = j1 - 1
    for m in range(n):
        ci, cr = _sincos(psi[m])
        xr, xi = re[m], im[m]
        for j in range(n):
            pr, pi_ = xr[j], xi[j]
            xr[j] = cr * pr - ci * pi_
            xi[j] = cr * pi_ + ci * pr


@_jit
def _rebuild_mesh(modes, coef, psi, re, im):
    _rebuild_into(modes, coef, psi, re, im)


@_jit
def _rebuild(modes, theta, phi, psi, delta, amplitude, re, im):
    coef = np.empty((N_COEF, modes.shape[0]))
    _coefficients(theta, phi, delta, amplitude, coef)
    _rebuild_into(modes, coef, psi, re, im)


def rebuild(modes, theta, phi, D, delta=None, amplitude=1.0) -> np.ndarray:
    """The unitary (with loss: sub-unitary) ``D M_K ... M_1`` of a mesh, complex128 ``(N, N)``:
    MZI ``k`` (module docstring) couples modes ``modes[k]`` and ``modes[k] + 1`` with phases
    ``theta[k]``, ``phi[k]``, couplers of split ``1/2 + delta[k, 0]`` (first) and
    ``1/2 + delta[k, 1]`` (``delta (K, 2)``, each in ``[-1/2, 1/2]``; None: ideal), amplitude
    transmission ``amplitude`` (a number or ``(K,)``); the MZIs act in the order given, then the
    output phases ``D (N,)`` (complex: their argument is used; real: taken as phases in rad)."""
    modes = np.ascontiguousarray(modes, dtype=np.int64)
    theta = np.ascontiguousarray(theta, dtype=np.float64)
    phi = np.ascontiguousarray(phi, dtype=np.float64)
    D = np.asarray(D)
    psi = np.ascontiguousarray(np.angle(D) if np.iscomplexobj(D) else D, dtype=np.float64)
    n, K = psi.shape[0], modes.shape[0]
    if modes.ndim != 1 or theta.shape != (K,) or phi.shape != (K,) or psi.ndim != 1:
        raise ValueError(f"modes, theta, phi: expected three (K,) arrays and D (N,) (got "
                         f"{modes.shape}, {theta.shape}, {phi.shape}, {psi.shape})")
    if K and (modes.min() < 0 or modes.max() > n - 2):
        raise ValueError(f"modes: each MZI's upper mode must be in [0, {n - 2}]")
    delta = np.zeros((0, 2)) if delta is None else np.asarray(delta, dtype=np.float64)
    if delta.shape not in ((K, 2), (0, 2)):
        raise ValueError(f"delta: expected shape ({K}, 2) (got {delta.shape})")
    if delta.size and not np.abs(delta).max() <= 0.5:
        raise ValueError("delta: a coupler's imbalance must be in [-1/2, 1/2]")
    amp = np.ascontiguousarray(np.broadcast_to(np.asarray(amplitude, dtype=np.float64), (K,)))
    re, im = np.empty((n, n)), np.empty((n, n))
    _rebuild(modes, theta, phi, psi, np.ascontiguousarray(delta.T), amp, re, im)
    return re + 1j * im


# -- a bank as built ------------------------------------------------------------------------------

@_jit
def _drive(x, z, step, sigma, out):
    """Phases as driven: each ``x`` brought into ``[0, 2 pi)``, rounded to the grid of ``step``
    (``step = 0``: analog) and wrapped, plus ``sigma z`` (``z`` empty: no noise)."""
    noisy = z.shape[0] > 0
    for k in range(x.shape[0]):
        v = _wrap(x[k])
        if step > 0.0:
            v = _wrap(np.rint(v / step) * step)
        out[k] = v + sigma * z[k] if noisy else v


@_jit
def _couple(driven, neighbours, kappa, out):
    """Thermal crosstalk: ``out[k] = driven[k] + kappa (driven[j] for j in neighbours[k],
    j >= 0)``."""
    for k in range(driven.shape[0]):
        v = driven[k]
        for side in range(neighbours.shape[1]):
            j = neighbours[k, side]
            if j >= 0:
                v += kappa * driven[j]
        out[k] = v


@_inline
def _realise_one(i, theta, phi, psi, modes, neighbours, screen, z, step, sigma, kappa,
                 imbalance, amplitude, re, im, work, dl, amp, coef):
    """Mesh ``i``: its phases as driven (quantised, noisy, coupled), its couplers and loss, and
    its rebuilt matrix into ``re[i], im[i]``. ``work (6, max(K, N))``, ``dl (2, K)``, ``amp
    (K,)`` and ``coef (8, K)`` are its work arrays. ``z[i]`` holds the draws (empty: none needed):
    ``[theta (K) | phi (K) | output phases (N) | first couplers (K) | second couplers (K)]``."""
    K, n = theta.shape[1], psi.shape[1]
    noisy, zi = sigma > 0.0, z[i]
    th, ph, ps = work[0, :K], work[1, :K], work[2, :n]
    _drive(theta[i], zi[0:K] if noisy else zi[:0], step, sigma, th)
    _drive(phi[i], zi[K:2 * K] if noisy else zi[:0], step, sigma, ph)
    _drive(psi[i], zi[2 * K:2 * K + n] if noisy else zi[:0], step, sigma, ps)
    if kappa > 0.0:  # each shifter picks up kappa times its neighbours' phases (as driven)
        th2, ph2, ps2 = work[3, :K], work[4, :K], work[5, :n]
        _couple(th, neighbours, kappa, th2)
        _couple(ph, neighbours, kappa, ph2)
        _couple(ps, screen, kappa, ps2)
        th, ph, ps = th2, ph2, ps2
    for k in range(K):
        amp[k] = amplitude
    if imbalance > 0.0:
        base = 2 * K + n
        for c in range(2):
            for k in range(K):
                dl[c, k] = min(max(imbalance * zi[base + c * K + k], -0.5), 0.5)
        _coefficients(th, ph, dl, amp, coef)
    else:
        _coefficients(th, ph, np.empty((2, 0)), amp, coef)
    _rebuild_mesh(modes, coef, ps, re[i], im[i])


@_jit
def _realise_ser(theta, phi, psi, modes, neighbours, screen, z, step, sigma, kappa, imbalance,
                 amplitude, re, im, work, dl, amp, coef):
    for i in range(theta.shape[0]):
        _realise_one(i, theta, phi, psi, modes, neighbours, screen, z, step, sigma, kappa,
                     imbalance, amplitude, re, im, work[i], dl[i], amp[i], coef[i])


@_pjit
def _realise_par(theta, phi, psi, modes, neighbours, screen, z, step, sigma, kappa, imbalance,
                 amplitude, re, im, work, dl, amp, coef):
    for i in prange(theta.shape[0]):
        _realise_one(i, theta, phi, psi, modes, neighbours, screen, z, step, sigma, kappa,
                     imbalance, amplitude, re, im, work[i], dl[i], amp[i], coef[i])


@_inline
def _product_one(l, s, re, im, out, a, b):
    """``out[l] = Re(U' diag(s) V'^T) = Ur diag(s) Vr - Ui diag(s) Vi`` (``U'``: mesh ``2 l``,
    ``V'^T``: mesh ``2 l + 1``); ``a``, ``b`` work arrays ``(N, N)``."""
    n = s.shape[1]
    for r in range(n):
        for c in range(n):
            a[r, c] = re[2 * l, r, c] * s[l, c]
            b[r, c] = im[2 * l, r, c] * s[l, c]
    gemm(False, False, 1.0, a, re[2 * l + 1], 0.0, out[l])
    gemm(False, False, -1.0, b, im[2 * l + 1], 1.0, out[l])


@_jit
def _product_ser(s, re, im, out, work):
    for l in range(s.shape[0]):
        _product_one(l, s, re, im, out, work[l, 0], work[l, 1])


@_pjit
def _product_par(s, re, im, out, work):
    for l in prange(s.shape[0]):
        _product_one(l, s, re, im, out, work[l, 0], work[l, 1])


@_inline
def _svd_one(W, l, U, s, Vt):
    u, sv, vt = np.linalg.svd(W[l])
    U[l] = u
    s[l] = sv
    Vt[l] = vt


@nb.njit(cache=True)
def _svd_ser(W, U, s, Vt):
    for l in range(W.shape[0]):
        _svd_one(W, l, U, s, Vt)


@nb.njit(cache=True, parallel=True)
def _svd_par(W, U, s, Vt):
    for l in prange(W.shape[0]):
        _svd_one(W, l, U, s, Vt)


_local = threading.local()


def _buffer(name: str, shape: tuple) -> np.ndarray:
    """A float64 work array of this thread, kept from one call to the next (a programming event
    of the same shapes then allocates no large array, and its pages are already mapped: at
    N = 128 the fresh pages cost as much as a third of the event)."""
    arrays = getattr(_local, "arrays", None)
    if arrays is None:
        arrays = _local.arrays = {}
    arr = arrays.get(name)
    if arr is None or arr.shape != shape:
        arr = arrays[name] = np.empty(shape)
    return arr


def _parallel(banks: int, n: int) -> bool:
    return banks > 1 and banks * n ** 3 >= PARALLEL_MIN_MESH and numba_threads() > 1


def bank_svd(W: np.ndarray):
    """``(U, s, Vt)`` of every bank of the ``(L, N, N)`` stack ``W`` (taken as float64;
    LAPACK's gesdd, one bank per thread): ``W[l] = U[l] diag(s[l]) Vt[l]``, ``s``
    descending."""
    single_threaded_kernel_blas()
    W = _stack("W", W)
    L, n = W.shape[0], W.shape[1]
    U, Vt, s = np.empty((L, n, n)), np.empty((L, n, n)), np.empty((L, n))
    (_svd_par if _parallel(L, n) else _svd_ser)(W, U, s, Vt)
    return U, s, Vt


def _stack(name: str, arr) -> np.ndarray:
    arr = np.ascontiguousarray(arr, dtype=np.float64)
    if arr.ndim != 3 or arr.shape[1] != arr.shape[2]:
        raise ValueError(f"{name}: expected a stack of square matrices (M, N, N) (got shape "
                         f"{arr.shape})")
    return arr


def decompose_stack(Q, out: tuple | None = None):
    """:func:`decompose` of every real orthogonal matrix of the stack ``Q (M, N, N)`` (taken as
    float64; one per thread, in real arithmetic: :func:`_decompose_real_into`): ``(theta, phi
    (M, K), psi (M, N))`` in :func:`layout`'s order, ``psi`` the output phases in rad
    (``D = e^{i psi}``). ``out``: the three float64 C-contiguous arrays to fill."""
    Q = _stack("Q", Q)
    M, n = Q.shape[0], Q.shape[1]
    lay = layout(n)
    K = lay.kind.shape[0]
    if out is None:
        theta, phi, psi = np.empty((M, K)), np.empty((M, K)), np.empty((M, n))
    else:
        theta, phi, psi = out
        for name, arr, shape in (("theta", theta, (M, K)), ("phi", phi, (M, K)),
                                 ("psi", psi, (M, n))):
            check_out(name, arr, shape, np.float64)
    (_decompose_stack_par if _parallel(M, n) else _decompose_stack_ser)(
        Q, lay.kind, lay.pair, lay.target, lay.slot, theta, phi, psi,
        _buffer("R", (M, n, n + PAD)), _buffer("phases", (M, 2, n)))
    return theta, phi, psi


def phase_step(phase_bits: float) -> float:
    """The phase grid of a ``phase_bits``-bit driver: ``2 pi / 2^bits`` (0 when analog:
    ``inf``)."""
    return 0.0 if math.isinf(phase_bits) else TWO_PI / 2.0 ** phase_bits


def realise(theta, phi, psi, s, *, phase_bits=math.inf, phase_noise=0.0, crosstalk=0.0,
            imbalance=0.0, loss_db=0.0, key=0) -> np.ndarray:
    """The weights realised from the meshes ``(theta, phi (2L, K), psi (2L, N))`` of
    :func:`decompose_stack` (mesh ``2 l`` holds ``U`` of bank ``l``, mesh ``2 l + 1`` its
    ``V^T``) and the attenuated singular values ``s (L, N)``: float64 ``(L, N, N)``,
    ``Re(U' diag(s) V'^T)``. Effects as :func:`program_banks`."""
    theta, phi, psi, s = (np.ascontiguousarray(x, dtype=np.float64) for x in (theta, phi, psi, s))
    M, n = psi.shape
    lay = layout(n)
    K = lay.modes.shape[0]
    if theta.shape != (M, K) or phi.shape != (M, K) or M % 2 or s.shape != (M // 2, n):
        raise ValueError(f"theta, phi, psi, s: expected (2L, {K}), (2L, {K}), (2L, {n}) and "
                         f"(L, {n}) (got {theta.shape}, {phi.shape}, {psi.shape}, {s.shape})")
    need = phase_noise > 0.0 or imbalance > 0.0
    z = (normal_from_key(key, (M, 4 * K + n), out=_buffer("z", (M, 4 * K + n))) if need
         else np.empty((M, 0)))
    par = _parallel(M, n)
    re, im = _buffer("re", (M, n, n)), _buffer("im", (M, n, n))
    work = (_buffer("work", (M, 6, max(K, n))), _buffer("dl", (M, 2, K)), _buffer("amp", (M, K)),
            _buffer("coef", (M, N_COEF, K)))
    (_realise_par if par else _realise_ser)(
        theta, phi, psi, lay.modes, lay.neighbours, lay.screen, z, phase_step(phase_bits),
        float(phase_noise), float(crosstalk), float(imbalance), 10.0 ** (-float(loss_db) / 20.0),
        re, im, *work)
    single_threaded_kernel_blas()
    out = np.empty((M // 2, n, n))
    (_product_par if par else _product_ser)(s, re, im, out, _buffer("product", (M // 2, 2, n, n)))
    return out


class MeshWrite(NamedTuple):
    """A programming event of :func:`program_banks`: ``weights (L, N, N)`` the realised banks,
    ``clipped (L, N)`` the singular values above ``w_max`` (bool), and the target's SVD
    ``W = U diag(s) Vt`` (``s`` unclipped, descending), all in ``W``'s dtype."""

    weights: np.ndarray
    clipped: np.ndarray
    U: np.ndarray
    s: np.ndarray
    Vt: np.ndarray


def _check(name: str, value, lo: float, hi: float = math.inf, hi_open: bool = False) -> float:
    value = float(value)
    if not (lo <= value and (value < hi if hi_open else value <= hi)):
        raise ValueError(f"{name}: must be in [{lo:g}, {hi:g}{')' if hi_open else ']'} "
                         f"(got {value!r})")
    return value


def program_banks(W, w_max: float, phase_bits: float = math.inf, phase_noise: float = 0.0,
                  crosstalk: float = 0.0, imbalance: float = 0.0, loss_db: float = 0.0,
                  key=0) -> MeshWrite:
    """Program the real banks ``W (L, N, N)`` (float64 or float32) into coherent meshes and read
    back the weights they realise.

    Per bank: ``W = U diag(s) V^T``; singular values above ``w_max`` are clipped to it (the
    attenuators hold ``min(s, w_max) / w_max``; ``w_max = inf``: none clipped); ``U`` and ``V^T``
    are each decomposed into a rectangular mesh (:func:`decompose`). Every phase shifter (each
    MZI's ``theta`` and ``phi``, each output phase) is then driven as follows, in this order:

    1. its phase taken in ``[0, 2 pi)`` and, with finite ``phase_bits``, rounded to the nearest of
       the ``2^bits`` levels ``k 2 pi / 2^bits`` (wrapping to 0 at ``2 pi``);
    2. plus ``phase_noise`` (rad, rms) times a standard normal draw;
    3. thermal crosstalk: plus ``crosstalk`` times the phase (after 1 and 2) of each neighbouring
       shifter of the same kind in the same column: a ``theta`` picks up the ``theta`` of the MZIs
       on the adjacent mode pairs of its column (upper modes ``m - 2`` and ``m + 2``), a ``phi``
       the ``phi`` of the same MZIs, an output phase those of the output phases on modes
       ``m - 1`` and ``m + 1``; one pass (the pick-up is not itself coupled on).

    Each coupler's ``delta`` is ``imbalance`` times a standard normal draw, clipped to
    ``[-1/2, 1/2]``; each MZI transmits the amplitude ``10^(-loss_db / 20)``. The meshes are
    rebuilt (:func:`rebuild`) into ``U'`` and ``V'^T`` and the weights are
    ``Re(U' diag(min(s, w_max)) V'^T)``: the in-phase part of the output field, scaled by the
    mesh's transmission (a path through ``k`` MZIs by ``10^(-k loss_db / 20)``; not
    compensated). With every effect off and ``||W||_2 <= w_max`` this is ``W`` (to rounding).

    The draws are the normals of ``key`` (:func:`relaxsim.kernels.rng.normal_from_key`), one row
    of ``4 K + N`` per mesh (``K = N (N - 1) / 2``; mesh ``2 l``: ``U`` of bank ``l``, ``2 l + 1``:
    its ``V^T``), laid out ``[theta | phi | output phases | first couplers | second couplers]``
    in :func:`layout`'s order, the same whichever effects are on; none are drawn when neither
    noise nor imbalance is. The same key gives the same bytes, on any thread count.

    Returns a :class:`MeshWrite`: realised ``weights``, ``clipped`` (``s > w_max``), and the
    target's ``U, s, Vt`` (for the caller's straight-through gradient), all in ``W``'s dtype.
    """
    W = np.asarray(W)
    if W.dtype not in (np.float64, np.float32):
        raise ValueError(f"W: expected float64 or float32 weights (got {W.dtype})")
    if W.ndim != 3 or W.shape[1] != W.shape[2]:
        raise ValueError(f"W: expected banks of square matrices (L, N, N) (got shape {W.shape})")
    if not np.isfinite(W).all():
        raise ValueError("W: the weights must be finite")
    if not float(w_max) > 0.0:
        raise ValueError(f"w_max: must be positive (got {w_max!r})")
    if not float(phase_bits) > 0.0:
        raise ValueError(f"phase_bits: must be positive or inf (got {phase_bits!r})")
    phase_noise = _check("phase_noise", phase_noise, 0.0)
    crosstalk = _check("crosstalk", crosstalk, 0.0, 1.0, hi_open=True)
    imbalance = _check("imbalance", imbalance, 0.0)
    loss_db = _check("loss_db", loss_db, 0.0)
    dtype = W.dtype
    U, s, Vt = bank_svd(np.ascontiguousarray(W, dtype=np.float64))
    clipped = s > w_max
    L, n = W.shape[0], W.shape[1]
    Q = _buffer("Q", (2 * L, n, n))
    Q[0::2], Q[1::2] = U, Vt
    K = n * (n - 1) // 2
    theta, phi, psi = decompose_stack(Q, out=(_buffer("theta", (2 * L, K)),
                                              _buffer("phi", (2 * L, K)),
                                              _buffer("psi", (2 * L, n))))
    weights = realise(theta, phi, psi, np.minimum(s, float(w_max)), phase_bits=float(phase_bits),
                      phase_noise=phase_noise, crosstalk=crosstalk, imbalance=imbalance,
                      loss_db=loss_db, key=np.uint64(key))
    return MeshWrite(weights.astype(dtype, copy=False), clipped, U.astype(dtype, copy=False),
                     s.astype(dtype, copy=False), Vt.astype(dtype, copy=False))
