"""Normal draws for the hardware's noise: counter-based, vectorised, parallel, reproducible.

The machine's noise (element and detector noise on every forward pass, read noise on every weight
read, programming noise and drift exponents at every write) needs several normal draws per
multiply-add of the network at small N; numpy's generator draws one at a time (ziggurat, about
5-15 ns each here), which cost more than the network itself. These draws are instead a pure
function of a key and the draw's index:

- 64 random bits per pair of draws from the SplitMix64 finaliser (Steele, Lea and Flood, 2014) of
  ``key + index * golden``: a bijective mix that passes BigCrush as a counter-based generator;
- two uniforms, ``(k + 1/2) / 2^31`` from 31 bits and ``(k + 1/2) / 2^24`` from 24 (31 and 24 bits
  convert to float32 in one vector instruction; 32 would not), turned into two independent
  standard normals by the Box-Muller transform, with ``log`` (exponent read from the float's
  bits), ``cos`` and ``sin`` evaluated by range reduction and series in float32 arithmetic only
  (within a float32 ulp or two: the noise of a physical device needs no more than seven digits),
  so the loop vectorises eight lanes wide.

The key is drawn from the caller's numpy Generator (one draw per array), so a run stays
deterministic under its seed; the bytes do not depend on the thread count (each draw depends only on
its index). With 31-bit uniforms the largest draw is 6.66 standard deviations: the distribution is
the normal one truncated where its tails hold 3e-11 of the mass.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np
from llvmlite import ir
from numba import prange
from numba.core import types
from numba.extending import intrinsic

from relaxsim.kernels.threads import numba_threads
from relaxsim.kernels.tuning import BLOCK_PAIRS, FASTMATH, PARALLEL_MIN  # noqa: F401

_FLAGS = FASTMATH  # no contraction or reassociation: the same bytes compiled or cached
_ejit = nb.njit(cache=True, fastmath=_FLAGS, error_model="numpy")
_inline = nb.njit(cache=True, fastmath=_FLAGS, error_model="numpy", inline="always")

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S33 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(33)
_LOW32 = np.uint64(0xFFFFFFFF)
_LN2 = 0.6931471805599453
_SQRT2 = 1.4142135623730951
_HALF_PI = 1.5707963267948966



@_inline
def _splitmix(z):
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


_f = np.float32
_LN2_32 = np.float32(_LN2)


@intrinsic
def _float_bits(typingctx, x):
    """The bits of a float32 as an int32 (a free reinterpretation, vectorises)."""
    if x != types.float32:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(32))
    return types.int32(types.float32), codegen


def _bits_as(kind, llvm_kind, width: int):
    """An intrinsic: the ``kind`` float whose bits are the integer ``x`` (cut or sign-extended
    to ``width`` bits); a free reinterpretation, so loops over it vectorise."""
    @intrinsic
    def bits_as(typingctx, x):
        if not isinstance(x, types.Integer):
            return None

        def codegen(context, builder, signature, args):
            bits = args[0]
            if x.bitwidth > width:
                bits = builder.trunc(bits, ir.IntType(width))
            elif x.bitwidth < width:
                bits = builder.sext(bits, ir.IntType(width))
            return builder.bitcast(bits, llvm_kind)
        return kind(x), codegen
    return bits_as


bits_float = _bits_as(types.float32, ir.FloatType(), 32)
bits_double = _bits_as(types.float64, ir.DoubleType(), 64)


_MANTISSA = np.int32(0x7FFFFF)
_ONE_BITS = np.int32(0x3F800000)  # the exponent field of 1.0f


@_inline
def _log32(x):
    """Natural log of a positive, normal float32 ``x``: ``x = 2^e m`` read from its bits, ``m``
    brought into ``[1/sqrt 2, sqrt 2]``, then the series ``2 atanh(s)``,
    ``s = (m - 1) / (m + 1)``, ``|s| <= 0.172``, to ``s^9``."""
    b = _float_bits(x)
    e = _f((b >> np.int32(23)) - np.int32(127))
    m = bits_float((b & _MANTISSA) | _ONE_BITS)  # in [1, 2)
    big = m > _f(_SQRT2)
    m = m * _f(0.5) if big else m
    e += _f(1.0) if big else _f(0.0)
    s = (m - _f(1.0)) / (m + _f(1.0))
    s2 = s * s
    q = _f(1.0 / 9.0)
    q = _f(1.0 / 7.0) + s2 * q
    q = _f(1.0 / 5.0) + s2 * q
    q = _f(1.0 / 3.0) + s2 * q
    return e * _LN2_32 + _f(2.0) * s * (_f(1.0) + s2 * q)


@_inline
def _sincos32(f):
    """``(sin, cos)`` of ``f pi / 2`` for ``|f| <= 1/2`` (|angle| <= pi / 4), Taylor to 9th and
    8th order."""
    p = f * _f(_HALF_PI)
    p2 = p * p
    s = _f(1.0 / 362880.0)
    s = _f(-1.0 / 5040.0) + p2 * s
    s = _f(1.0 / 120.0) + p2 * s
    s = _f(-1.0 / 6.0) + p2 * s
    c = _f(1.0 / 40320.0)
    c = _f(-1.0 / 720.0) + p2 * c
    c = _f(1.0 / 24.0) + p2 * c
    c = _f(-0.5) + p2 * c
    return p + p * (p2 * s), _f(1.0) + p2 * c


@_inline
def pair32(key, j):
    """Two independent standard normals (float32), the pair ``j`` of the stream ``key``."""
    bits = _splitmix(key + np.uint64(j) * _GOLDEN)
    hi = _f(np.int32(bits >> _S33)) + _f(0.5)             # 31 bits, in [0.5, 2^31)
    lo = np.int32(np.int64(bits & _LOW32) >> np.int64(8))  # 24 bits: exact in float32
    r = math.sqrt(_f(-2.0) * (_log32(hi) - _f(31.0) * _LN2_32))
    v = (_f(lo) + _f(0.5)) * _f(4.0 / 16777216.0)         # 4 u2 in (0, 4)
    q = np.floor(v + _f(0.5))
    sf, cf = _sincos32(v - q)
    q = q - _f(4.0) * np.floor(q * _f(0.25))
    odd = (q == _f(1.0)) | (q == _f(3.0))
    c = sf if odd else cf
    s = cf if odd else sf
    c = -c if (q == _f(1.0)) | (q == _f(2.0)) else c
    s = -s if (q == _f(2.0)) | (q == _f(3.0)) else s
    return r * c, r * s


@nb.njit(cache=True, inline="always")
def blocks(size):
    """Blocks of :data:`BLOCK_PAIRS` pairs covering ``size`` draws (an odd size: a last lone
    draw)."""
    return ((size + 1) // 2 + BLOCK_PAIRS - 1) // BLOCK_PAIRS


@nb.njit(cache=True, inline="always")
def block_pairs(b, size):
    """``(j0, j1)``: the pairs of block ``b`` of an array of ``size`` draws."""
    j0 = b * BLOCK_PAIRS
    return j0, min((size + 1) // 2, j0 + BLOCK_PAIRS)


@_ejit
def fill_block(key, out, scale, j0, j1):
    """Pairs ``j0:j1`` into ``out[2 j0 : 2 j1]``: first draws of the pairs, then the second
    draws (two contiguous stores per pair, so the loop vectorises). An odd-sized array ends
    with a lone first draw: the last pair's second one is dropped."""
    m = j1 - j0
    first = out[2 * j0:2 * j0 + m]
    second = out[2 * j0 + m:2 * j1]  # one short in the last block of an odd-sized array
    sc = _f(scale)
    full = second.shape[0]
    for i in range(full):  # views indexed from 0, so the loop vectorises
        z0, z1 = pair32(key, j0 + i)
        first[i] = sc * z0
        second[i] = sc * z1
    for i in range(full, m):
        z0, z1 = pair32(key, j0 + i)
        first[i] = sc * z0


@_ejit
def _fill_ser(key, out, scale):
    for b in range(blocks(out.shape[0])):
        j0, j1 = block_pairs(b, out.shape[0])
        fill_block(key, out, scale, j0, j1)


@nb.njit(cache=True, fastmath=_FLAGS, error_model="numpy", parallel=True)
def _fill_par(key, out, scale):
    for b in prange(blocks(out.shape[0])):
        j0, j1 = block_pairs(b, out.shape[0])
        fill_block(key, out, scale, j0, j1)


def draw_key(rng: np.random.Generator) -> np.uint64:
    """The key of one array of draws: one 64-bit draw from ``rng``, the number
    ``rng.integers(0, 2**63)`` gives (Lemire's method on a power-of-two range keeps the top 63
    bits), at a third of its cost."""
    return np.uint64(rng.bit_generator.random_raw() >> 1)


def threads_pay(size: int) -> bool:
    """Whether an element-wise pass over ``size`` elements (draws, programming, mixed banks)
    pays for waking the threads."""
    return size >= PARALLEL_MIN and numba_threads() > 1


def check_out(name: str, arr: np.ndarray, shape: tuple, *dtypes) -> None:
    """A work array handed to a compiled pass: C-contiguous, of ``shape`` and one of ``dtypes``
    (a wrong one would be written out of bounds); else a one-line ValueError naming it."""
    if arr.shape != shape or arr.dtype not in dtypes or not arr.flags.c_contiguous:
        kinds = " or ".join(dict.fromkeys(str(np.dtype(k)) for k in dtypes))
        raise ValueError(f"{name}: expected a C-contiguous array of shape {shape} and dtype "
                         f"{kinds} (got {arr.dtype} {arr.shape})")


def normal_from_key(key, shape, scale: float = 1.0, dtype=np.float64,
                    out: np.ndarray | None = None) -> np.ndarray:
    """``scale`` times the standard normal draws of stream ``key``, of ``shape`` and ``dtype``:
    a pure function of its arguments (the same bytes whenever, and for any thread count).
    ``out``: a C-contiguous array of that shape and dtype to fill (no allocation)."""
    shape = (int(shape),) if isinstance(shape, (int, np.integer)) else tuple(shape)
    if out is None:
        out = np.empty(shape, dtype=dtype)
    else:
        check_out("out", out, shape, dtype)
    fill = _fill_par if threads_pay(out.size) else _fill_ser
    fill(np.uint64(key), out.reshape(-1), scale)
    return out


def normal(rng: np.random.Generator, shape, scale: float = 1.0, dtype=np.float64,
           out: np.ndarray | None = None) -> np.ndarray:
    """``scale`` times standard normal draws of ``shape`` and ``dtype``, keyed by one draw from
    ``rng`` (so ``rng`` advances by one 64-bit draw whatever the size). The draws are the same
    bytes for any thread count. ``out`` as :func:`normal_from_key`."""
    return normal_from_key(draw_key(rng), shape, scale, dtype, out)


def add_normal(rng: np.random.Generator, base: np.ndarray, scale: float) -> np.ndarray:
    """``base + normal(rng, base.shape, scale, base.dtype)`` in one pass into a new array,
    without the array of draws: the same bytes and the same advance of ``rng``. (Never in
    place: with ``out`` aliasing ``base`` the loop would not vectorise.)"""
    key = draw_key(rng)
    base = np.ascontiguousarray(base)
    out = np.empty_like(base)
    add = _add_par if threads_pay(base.size) else _add_ser
    add(key, base.reshape(-1), out.reshape(-1), scale)
    return out


@_ejit
def _add_block(key, base, out, scale, j0, j1):
    """``out = base + draws`` for pairs ``j0:j1``, laid out as :func:`fill_block` lays them
    (an odd-sized array drops the last pair's second draw, as :func:`normal` does)."""
    m = j1 - j0
    b1 = base[2 * j0:2 * j0 + m]
    b2 = base[2 * j0 + m:2 * j1]  # one short in the last block of an odd-sized array
    f1 = out[2 * j0:2 * j0 + m]
    f2 = out[2 * j0 + m:2 * j1]
    sc = _f(scale)
    full = b2.shape[0]
    for i in range(full):  # views indexed from 0, so the loop vectorises
        z0, z1 = pair32(key, j0 + i)
        f1[i] = b1[i] + sc * z0
        f2[i] = b2[i] + sc * z1
    for i in range(full, m):
        z0, z1 = pair32(key, j0 + i)
        f1[i] = b1[i] + sc * z0


@_ejit
def _add_ser(key, base, out, scale):
    for b in range(blocks(base.shape[0])):
        j0, j1 = block_pairs(b, base.shape[0])
        _add_block(key, base, out, scale, j0, j1)


@nb.njit(cache=True, fastmath=_FLAGS, error_model="numpy", parallel=True)
def _add_par(key, base, out, scale):
    for b in prange(blocks(base.shape[0])):
        j0, j1 = block_pairs(b, base.shape[0])
        _add_block(key, base, out, scale, j0, j1)
