"""Programming writes and per-batch machine draws, compiled: the weight elements' clip,
quantisation and programming noise, the switch transition of a step (with timing jitter) and the
element-wise work of one training batch on the machine (programming, element and detector noise
in one parallel region).

Every function takes arrays and numbers: the device records (:mod:`relaxsim.devices`) hold the
numbers and the machine (:mod:`relaxsim.hardware`) hands them here. The random draws follow
:mod:`relaxsim.kernels.rng`'s counter-based layout, so a write is the same bytes on any thread
count.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from relaxsim.kernels.rng import block_pairs, blocks, fill_block, pair32
from relaxsim.kernels.tuning import CLIP_BLOCK

# Step-response shapes of a switch (relaxsim.devices.records.Switch.response), by code.
FIRST_ORDER, MZI, MEASURED = 0, 1, 2


@nb.njit(cache=True, inline="always")
def remainder(gap, code, tau, tx, ty):
    """Share of a switching transition still to go ``gap`` seconds after the command (1 before
    it, 0 once settled; NaN stays NaN): first order ``exp(-gap / tau)``; an MZI driven by a
    first-order phase, ``cos^2(pi / 2 (1 - exp(-gap / tau))) = sin^2(pi / 2 exp(-gap / tau))`` (its port powers are ``cos^2`` and
    ``sin^2`` of half the phase); measured, ``1 - s(gap / tau)`` with ``s`` the normalised step
    response tabulated at ``tx`` (in units of ``tau``, the rise time) as ``ty``."""
    if gap != gap:
        return gap
    if gap < 0:
        return 1.0
    if tau <= 0 or gap == math.inf:
        return 0.0
    x = gap / tau
    if code == FIRST_ORDER:
        return math.exp(-x)
    if code == MZI:
        c = math.sin(0.5 * math.pi * math.exp(-x))  # cos(pi/2 (1 - e^-x)), exact as x grows
        return c * c
    if x >= tx[tx.shape[0] - 1]:
        return 1.0 - ty[ty.shape[0] - 1]
    return 1.0 - np.interp(x, tx, ty)


@nb.njit(cache=True)
def remainders(gaps, code, tau, tx, ty, out):
    for i in range(gaps.shape[0]):
        out[i] = remainder(gaps[i], code, tau, tx, ty)


@nb.njit(cache=True)
def jittered_remainders(gaps, z, jitter, code, tau, tx, ty, out):
    """:func:`remainder` of each switching step's gap moved by ``-jitter z``; 0 on the steps that
    do not switch (``gap = inf``)."""
    for t in range(z.shape[0]):
        for w in range(z.shape[1]):
            out[t, w] = (remainder(gaps[t] - jitter * z[t, w], code, tau, tx, ty)
                         if math.isfinite(gaps[t]) else 0.0)


@nb.njit(cache=True, error_model="numpy", inline="always")
def quantise(x, lo, hi, step):
    """Round ``x`` (already in ``[lo, hi]``) to the nearest point of the grid ``lo + k step``."""
    q = lo + np.rint((x - lo) / step) * step
    return min(max(q, lo), hi)


@nb.njit(cache=True, error_model="numpy", inline="always")
def clip_q(x, w_max, step, differential):
    """One weight clipped to ``[-w_max, w_max]`` and, with ``step > 0``, quantised (bipolar
    over ``[-w_max, w_max]``, differential: each of the pair over ``[0, w_max]``), in the
    arithmetic of ``w_max``'s type (:meth:`relaxsim.devices.records.WeightElement.grid`)."""
    c = x if x != x else min(max(x, -w_max), w_max)  # NaN stays NaN, as np.clip keeps it
    if step > 0.0:
        if differential:
            zero = w_max - w_max
            c = (quantise(max(c, zero), zero, w_max, step)
                 - quantise(max(-c, zero), zero, w_max, step))
        else:
            c = quantise(c, -w_max, w_max, step)
    return c


@nb.njit(cache=True, error_model="numpy", inline="always")
def clip_quantise_range(w, w_max, step, differential, out, in_range):
    """Every element (no fast-math; float64: the same bits as the numpy expressions):
    ``in_range = |w| <= w_max``, ``out = clip_q(w)``."""
    for i in range(w.shape[0]):
        in_range[i] = abs(w[i]) <= w_max
        out[i] = clip_q(w[i], w_max, step, differential)


@nb.njit(cache=True, error_model="numpy", inline="always")
def write_block(w, w_max, step, differential, key, scale, out, in_range, j0, j1):
    """Pairs ``j0:j1`` of :func:`relaxsim.kernels.rng.add_normal`'s layout: ``out = clip_q(w)`` (in
    ``out``'s dtype) plus ``scale`` times the pair's draws, ``in_range = |w| <= w_max`` (in
    ``in_range``'s dtype): the bytes of a clip, then ``add_normal``, in one pass."""
    m = j1 - j0
    e1 = min(2 * j1, w.shape[0])  # one short in the last block of an odd-sized array
    # clipped and rounded to out's dtype, then the draws added in it, as add_normal adds them
    clip_quantise_range(w[2 * j0:e1], w_max, step, differential, out[2 * j0:e1],
                         in_range[2 * j0:e1])
    o1, o2 = out[2 * j0:2 * j0 + m], out[2 * j0 + m:e1]
    sc = np.float32(scale)
    full = o2.shape[0]
    for i in range(full):  # the block is in cache
        z0, z1 = pair32(key, j0 + i)
        o1[i] += sc * z0
        o2[i] += sc * z1
    for i in range(full, m):
        z0, z1 = pair32(key, j0 + i)
        o1[i] += sc * z0


# error_model="numpy": the draws' division needs no zero check, so the loops vectorise
@nb.njit(cache=True, error_model="numpy")
def write_ser(w, w_max, step, differential, key, scale, out, in_range):
    for b in range(blocks(w.shape[0])):
        j0, j1 = block_pairs(b, w.shape[0])
        write_block(w, w_max, step, differential, key, scale, out, in_range, j0, j1)


@nb.njit(cache=True, error_model="numpy", parallel=True)
def write_par(w, w_max, step, differential, key, scale, out, in_range):
    for b in nb.prange(blocks(w.shape[0])):
        j0, j1 = block_pairs(b, w.shape[0])
        write_block(w, w_max, step, differential, key, scale, out, in_range, j0, j1)




@nb.njit(cache=True, error_model="numpy")
def clip_quantise(w, w_max, step, differential, out, in_range):
    """One pass over the weights, :func:`clip_quantise_range` of all of them."""
    clip_quantise_range(w, w_max, step, differential, out, in_range)


@nb.njit(cache=True, error_model="numpy", parallel=True)
def clip_quantise_par(w, w_max, step, differential, out, in_range):
    """:func:`clip_quantise` in parallel over blocks of elements (the same bytes)."""
    n = w.shape[0]
    for bi in nb.prange((n + CLIP_BLOCK - 1) // CLIP_BLOCK):
        i0 = bi * CLIP_BLOCK
        i1 = min(n, i0 + CLIP_BLOCK)
        clip_quantise_range(w[i0:i1], w_max, step, differential, out[i0:i1],
                             in_range[i0:i1])


@nb.njit(cache=True, error_model="numpy", inline="always")
def training_block(bi, w, keys, w_max, step, differential, w_sigma, w_out, mask, n_scale, noise,
                    d_scale, det):
    """Block ``bi`` of a batch's element-wise work: the programming's blocks, then the element
    noise's, then the detector noise's; each block the one the separate call runs (the same
    bytes, whichever thread runs it)."""
    nw, nn = blocks(w.shape[0]), blocks(noise.shape[0])
    if bi < nw:
        j0, j1 = block_pairs(bi, w.shape[0])
        if w_sigma > 0:
            write_block(w, w_max, step, differential, keys[0], w_sigma, w_out, mask, j0, j1)
        else:
            e0, e1 = 2 * j0, min(2 * j1, w.shape[0])
            clip_quantise_range(w[e0:e1], w_max, step, differential, w_out[e0:e1],
                                 mask[e0:e1])
    elif bi < nw + nn:
        j0, j1 = block_pairs(bi - nw, noise.shape[0])
        fill_block(keys[1], noise, n_scale, j0, j1)
    else:
        j0, j1 = block_pairs(bi - nw - nn, det.shape[0])
        fill_block(keys[2], det, d_scale, j0, j1)


@nb.njit(cache=True, error_model="numpy")
def training_pass(w, z, keys, w_max, step, differential, w_sigma, w_out, mask, gaps, jitter,
                  code, tau, tx, ty, eps, n_scale, noise, d_scale, det):
    """The element-wise work of :class:`relaxsim.hardware.TrainingDraws`, given its draws (``keys``: programming,
    element noise, detector noise): the switch transitions' remainders, then every block of programming and noise
    (:func:`training_block`), on one thread."""
    if z.shape[0]:
        jittered_remainders(gaps, z, jitter, code, tau, tx, ty, eps)
    for bi in range(blocks(w.shape[0]) + blocks(noise.shape[0])
                    + blocks(det.shape[0])):
        training_block(bi, w, keys, w_max, step, differential, w_sigma, w_out, mask, n_scale,
                        noise, d_scale, det)


@nb.njit(cache=True, error_model="numpy", parallel=True)
def training_pass_par(w, z, keys, w_max, step, differential, w_sigma, w_out, mask, gaps, jitter,
                      code, tau, tx, ty, eps, n_scale, noise, d_scale, det):
    """:func:`training_pass` with the blocks shared among the threads: one parallel region for
    the programming and both noises, so that each thread gets its share of all three."""
    if z.shape[0]:
        jittered_remainders(gaps, z, jitter, code, tau, tx, ty, eps)
    for bi in nb.prange(blocks(w.shape[0]) + blocks(noise.shape[0])
                        + blocks(det.shape[0])):
        training_block(bi, w, keys, w_max, step, differential, w_sigma, w_out, mask, n_scale,
                        noise, d_scale, det)


def write(w, w_max, step, differential, key, sigma, out, in_range, parallel: bool):
    """Clip, quantise and (``sigma > 0``) add ``sigma`` times the draws of ``key`` to the flat
    weights ``w``, into ``out`` and ``in_range`` (``|w| <= w_max``): one compiled pass, on all
    threads when ``parallel``."""
    if sigma > 0:
        (write_par if parallel else write_ser)(w, w_max, step, differential, key, sigma, out,
                                               in_range)
    else:
        (clip_quantise_par if parallel else clip_quantise)(w, w_max, step, differential, out,
                                                           in_range)


@nb.njit(cache=True, error_model="numpy")
def mixing(k, p, r, banks, levels, on, floor, square, root, cos_phase, out):
    """Every bank's share of each step (:func:`relaxsim.devices.routing.mixing_steps`):
    ``k, p (T,)`` the banks of each step and of the step before, ``r (T, W)`` the transition
    remainders, ``levels`` 0 for a star else the tree's levels, ``on``/``floor`` a settled port's
    share selected / not; the port share ``P`` becomes ``P^2`` (``square``: a mirrored switch,
    not coherent), ``sqrt(P)`` (``root``: coherent through a combiner) or ``P``, times
    ``cos_phase[t, j]`` (empty: in phase). Into ``out (T, W, L_W)``."""
    T, W = r.shape
    phased = cos_phase.shape[0] > 0
    for t in range(T):
        kt, pt = k[t], p[t]
        for w in range(W):
            rise = floor + (on - floor) * (1.0 - r[t, w])
            fall = floor + (on - floor) * r[t, w]
            for j in range(banks):
                if banks == 1:
                    P = 1.0
                elif levels == 0:
                    if j == kt:
                        P = on if kt == pt else rise
                    elif j == pt:
                        P = fall
                    else:
                        P = floor
                else:
                    P = 1.0
                    for lv in range(levels):
                        bk, bp, bj = (kt >> lv) & 1, (pt >> lv) & 1, (j >> lv) & 1
                        if bk == bp:
                            P *= on if bj == bk else floor
                        else:
                            P *= rise if bj == bk else fall
                m = P * P if square else (math.sqrt(P) if root else P)
                out[t, w, j] = m * cos_phase[t, j] if phased else m


# -- the statistical PCM model and wear (relaxsim.devices.pcm, relaxsim.hardware.Wear) ---------

@nb.njit(cache=True, error_model="numpy")
def pcm_program(g, z, c0, c1, c2, scale, out):
    """Programmed conductances: ``max(g + (c0 + c1 g + c2 g^2) / scale z, 0)`` per element of
    the flat arrays ``g`` and ``z``, into ``out`` (the twin: :func:`relaxsim.devices.pcm.program`)."""
    for i in range(g.size):
        gi = g[i]
        out[i] = max(gi + (c0 + c1 * gi + c2 * gi * gi) / scale * z[i], 0.0)


@nb.njit(cache=True, error_model="numpy", parallel=True)
def pcm_read(g_prog, nu, ratio, accumulated, z, out):
    """Conductances read after drift and 1/f noise: ``g_d = g_prog ratio^(-nu)`` (``ratio = t /
    t0``; no drift, and ``nu`` not read, when ``ratio <= 1``), then ``max(g_d + |g_d| Q_s
    accumulated z, 0)`` with ``Q_s = min(0.0088 / max(g_prog^0.65, 1e-3), 0.2)`` and
    ``accumulated = sqrt(ln((t + t_read) / (2 t_read)))``; flat arrays, into ``out`` (the twin:
    :func:`relaxsim.devices.pcm.read`)."""
    drifts = ratio > 1.0
    log_ratio = math.log(ratio) if drifts else 0.0
    for i in nb.prange(g_prog.size):
        g = g_prog[i]
        gd = g * math.exp(-nu[i] * log_ratio) if drifts else g
        a = abs(g)
        q_s = 0.2 if a <= 0.0 else min(0.0088 / max(math.exp(0.65 * math.log(a)), 1e-3), 0.2)
        out[i] = max(gd + abs(gd) * q_s * accumulated * z[i], 0.0)


@nb.njit(cache=True)
def wear_write(targets, programmed, level, value, writes, stuck, endurance, failed):
    """One programming event of devices with a write history (flat arrays): a device whose
    target differs from its level, and is not stuck, is written; its write count grows, and a
    write past ``endurance`` fails (the device sticks, ``failed`` marks it, its value stays);
    a write that succeeds takes the programmed value and the new level. Returns the number of
    devices that failed (their stuck value, when drawn at random, is set by the caller)."""
    n_failed = 0
    for i in range(targets.size):
        failed[i] = False
        t = targets[i]
        if stuck[i] or t == level[i]:
            continue
        writes[i] += 1
        if writes[i] > endurance:
            stuck[i] = True
            failed[i] = True
            n_failed += 1
        else:
            value[i] = programmed[i]
            level[i] = t
    return n_failed
