"""Normal draws for the hardware's noise: counter-based, vectorised, parallel, reproducible.

The machine's noise (element and detector noise on every forward pass, read noise on every weight
read, programming noise and drift exponents at every write) needs several normal draws per
multiply-add of the network at small N; numpy's generator draws one at a time (ziggurat, about
5-15 ns each here), which cost more than the network itself. These draws are instead a pure
function of a key and the draw's index:

- 64 random bits per pair of draws from the SplitMix64 finaliser (Steele, Lea and Flood, 2014) of
  ``key + index * golden``: a bijective mix that passes BigCrush as a counter-based generator;
- two uniforms of 32 bits each, ``(k + 1/2) / 2^32``, turned into two independent standard
  normals by the Box-Muller transform, with ``log``, ``cos`` and ``sin`` evaluated by range
  reduction and series in arithmetic only (accurate to a few ulp), so the loop vectorises.

The key is drawn from the caller's numpy Generator (one draw per array), so a run stays
deterministic under its seed; the bytes do not depend on the thread count (each draw depends only on
its index). With 32-bit uniforms the largest draw is 6.8 standard deviations: the distribution is
the normal one truncated where its tails hold 1e-11 of the mass.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np
from numba import prange

_FLAGS = {"nsz"}  # no contraction or reassociation: the same bytes compiled or cached
_ejit = nb.njit(cache=True, fastmath=_FLAGS, error_model="numpy")
_inline = nb.njit(cache=True, fastmath=_FLAGS, error_model="numpy", inline="always")

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S32 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(32)
_LOW32 = np.uint64(0xFFFFFFFF)
_LN2 = 0.6931471805599453
_SQRT2 = 1.4142135623730951
_HALF_PI = 1.5707963267948966

# Pairs of draws per parallel task (fixed: the bytes never depend on the thread count).
BLOCK_PAIRS = 16_384
PARALLEL_MIN = 1 << 17  # draws below which one thread fills the array


@_inline
def _splitmix(z):
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@_inline
def _log(x):
    """Natural log of ``x`` in ``[0.5, 2^32]`` by halvings (selects, no branches) and the
    series ``2 atanh(s)``, ``s = (m - 1) / (m + 1)``, ``|s| <= 0.172``."""
    e = 0.0
    big = x >= 65536.0
    x = x * (1.0 / 65536.0) if big else x
    e += 16.0 if big else 0.0
    big = x >= 256.0
    x = x * (1.0 / 256.0) if big else x
    e += 8.0 if big else 0.0
    big = x >= 16.0
    x = x * 0.0625 if big else x
    e += 4.0 if big else 0.0
    big = x >= 4.0
    x = x * 0.25 if big else x
    e += 2.0 if big else 0.0
    big = x >= 2.0
    x = x * 0.5 if big else x
    e += 1.0 if big else 0.0
    big = x > _SQRT2
    x = x * 0.5 if big else x
    e += 1.0 if big else 0.0
    small = x < 1.0 / _SQRT2
    x = x * 2.0 if small else x
    e -= 1.0 if small else 0.0
    s = (x - 1.0) / (x + 1.0)
    s2 = s * s
    q = 1.0 / 21.0
    q = 1.0 / 19.0 + s2 * q
    q = 1.0 / 17.0 + s2 * q
    q = 1.0 / 15.0 + s2 * q
    q = 1.0 / 13.0 + s2 * q
    q = 1.0 / 11.0 + s2 * q
    q = 1.0 / 9.0 + s2 * q
    q = 1.0 / 7.0 + s2 * q
    q = 1.0 / 5.0 + s2 * q
    q = 1.0 / 3.0 + s2 * q
    return e * _LN2 + 2.0 * s * (1.0 + s2 * q)


@_inline
def _sincos_half_pi(f):
    """``(sin, cos)`` of ``f pi / 2`` for ``|f| <= 1/2`` (|angle| <= pi / 4), Taylor to 17th
    and 16th order."""
    p = f * _HALF_PI
    p2 = p * p
    s = 1.0 / 355687428096000.0
    s = -1.0 / 1307674368000.0 + p2 * s
    s = 1.0 / 6227020800.0 + p2 * s
    s = -1.0 / 39916800.0 + p2 * s
    s = 1.0 / 362880.0 + p2 * s
    s = -1.0 / 5040.0 + p2 * s
    s = 1.0 / 120.0 + p2 * s
    s = -1.0 / 6.0 + p2 * s
    c = 1.0 / 20922789888000.0
    c = -1.0 / 87178291200.0 + p2 * c
    c = 1.0 / 479001600.0 + p2 * c
    c = -1.0 / 3628800.0 + p2 * c
    c = 1.0 / 40320.0 + p2 * c
    c = -1.0 / 720.0 + p2 * c
    c = 1.0 / 24.0 + p2 * c
    c = -0.5 + p2 * c
    return p + p * (p2 * s), 1.0 + p2 * c


@_inline
def _pair(key, j):
    """Two independent standard normals, the pair ``j`` of the stream ``key``."""
    bits = _splitmix(key + np.uint64(j) * _GOLDEN)
    hi = np.float64(np.int64(bits >> _S32)) + 0.5        # in [0.5, 2^32)
    lo = np.float64(np.int64(bits & _LOW32)) + 0.5
    r = math.sqrt(-2.0 * (_log(hi) - 32.0 * _LN2))       # u1 = hi / 2^32
    v = lo * (4.0 / 4294967296.0)                          # 4 u2 in (0, 4)
    q = np.floor(v + 0.5)
    sf, cf = _sincos_half_pi(v - q)
    # angle 2 pi u2 = (q + f) pi / 2: rotate (cos f, sin f) by q quarter turns
    q = q - 4.0 * np.floor(q * 0.25)
    odd = (q == 1.0) | (q == 3.0)
    c = sf if odd else cf
    s = cf if odd else sf
    c = -c if (q == 1.0) | (q == 2.0) else c
    s = -s if (q == 2.0) | (q == 3.0) else s
    return r * c, r * s


@_ejit
def _fill_block(key, out, scale, j0, j1):
    """Pairs ``j0:j1`` into ``out[2 j0 : 2 j1]``: first draws of the pairs, then the second
    draws (two contiguous stores per pair, so the loop vectorises)."""
    m = j1 - j0
    first = out[2 * j0:2 * j0 + m]
    second = out[2 * j0 + m:2 * j1]
    for i in range(m):
        z0, z1 = _pair(key, j0 + i)
        first[i] = scale * z0
        second[i] = scale * z1


@_ejit
def _fill_ser(key, out, scale):
    pairs = out.shape[0] // 2
    for b in range((pairs + BLOCK_PAIRS - 1) // BLOCK_PAIRS):
        j0 = b * BLOCK_PAIRS
        _fill_block(key, out, scale, j0, min(pairs, j0 + BLOCK_PAIRS))


@nb.njit(cache=True, fastmath=_FLAGS, error_model="numpy", parallel=True)
def _fill_par(key, out, scale):
    pairs = out.shape[0] // 2
    for b in prange((pairs + BLOCK_PAIRS - 1) // BLOCK_PAIRS):
        j0 = b * BLOCK_PAIRS
        _fill_block(key, out, scale, j0, min(pairs, j0 + BLOCK_PAIRS))


def normal(rng: np.random.Generator, shape, scale: float = 1.0, dtype=np.float64) -> np.ndarray:
    """``scale`` times standard normal draws of ``shape`` and ``dtype``, keyed by one draw from
    ``rng`` (so ``rng`` advances by one 64-bit draw whatever the size). The draws are the same
    bytes for any thread count."""
    key = np.uint64(rng.integers(0, 2**63, dtype=np.int64))
    size = int(np.prod(shape, dtype=np.int64))
    buf = np.empty(size + size % 2, dtype=dtype)  # whole pairs
    if size >= PARALLEL_MIN and nb.get_num_threads() > 1:
        _fill_par(key, buf, scale)
    else:
        _fill_ser(key, buf, scale)
    return buf[:size].reshape(shape)
