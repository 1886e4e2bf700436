"""The counter-based normal draws of the hardware noise (relaxsim.kernels.rng)."""

from __future__ import annotations

import numba as nb
import numpy as np
import pytest
from scipy import stats

from relaxsim.kernels import rng as R


@nb.njit
def _logs(x, out):
    for i in range(x.shape[0]):
        out[i] = R._log32(np.float32(x[i]))


@nb.njit
def _sincos(f, s, c):
    for i in range(f.shape[0]):
        s[i], c[i] = R._sincos32(np.float32(f[i]))


def test_log_and_sincos_match_numpy_to_float32_precision():
    x = np.concatenate([np.linspace(0.5, 4.0, 20_001), np.geomspace(2.0**-40, 2.0**40, 40_001)])
    x = x.astype(np.float32).astype(np.float64)
    out = np.empty_like(x)
    _logs(x, out)
    assert np.max(np.abs(out - np.log(x))) <= 4 * np.spacing(np.float32(np.log(2.0**40)))
    near_one = np.abs(np.log(x)) < 0.35  # no exponent: the series alone, to a float32 ulp or two
    assert np.max(np.abs(out - np.log(x))[near_one]) <= 4 * np.spacing(np.float32(0.35))
    f = np.linspace(-0.5, 0.5, 20_001).astype(np.float32).astype(np.float64)
    s, c = np.empty_like(f), np.empty_like(f)
    _sincos(f, s, c)
    np.testing.assert_allclose(s, np.sin(f * np.pi / 2), rtol=0, atol=2e-7)
    np.testing.assert_allclose(c, np.cos(f * np.pi / 2), rtol=0, atol=2e-7)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_draws_are_standard_normal(dtype):
    z = R.normal(np.random.default_rng(11), (400_001,), dtype=dtype).astype(np.float64)
    assert z.dtype == np.float64 and z.shape == (400_001,)
    n = z.size
    assert abs(z.mean()) < 5 / np.sqrt(n)
    assert abs(z.std() - 1) < 5 / np.sqrt(2 * n)
    assert abs(stats.skew(z)) < 5 * np.sqrt(6 / n)
    assert abs(stats.kurtosis(z)) < 5 * np.sqrt(24 / n)
    assert stats.kstest(z, "norm").pvalue > 1e-3
    # the two draws of a pair (first and second halves of a block) are uncorrelated
    half = min(R.BLOCK_PAIRS, n // 2)
    assert abs(np.corrcoef(z[:half], z[half:2 * half])[0, 1]) < 5 / np.sqrt(half)


def test_scale_shape_dtype_and_one_key_per_call():
    rng = np.random.default_rng(3)
    state = np.random.default_rng(3)
    z = R.normal(rng, (3, 5, 7), 0.25, np.float32)
    assert z.shape == (3, 5, 7) and z.dtype == np.float32 and z.flags.c_contiguous
    state.integers(0, 2**63, dtype=np.int64)  # exactly one draw consumed
    assert rng.bit_generator.state == state.bit_generator.state
    again = R.normal(np.random.default_rng(3), (3, 5, 7), 1.0, np.float64)
    np.testing.assert_allclose(z, (0.25 * again).astype(np.float32), rtol=1e-6)


def test_an_odd_size_is_the_next_even_size_cut_short():
    """Draws come in whole pairs: 7 draws are the first 7 of the 8 the same key gives."""
    a = R.normal(np.random.default_rng(4), (7,))
    b = R.normal(np.random.default_rng(4), (8,))
    assert a.shape == (7,) and a.tobytes() == b[:7].tobytes()
    assert len(np.unique(b)) == 8


def test_serial_and_parallel_give_the_same_bytes(monkeypatch):
    shape = (3, R.BLOCK_PAIRS + 5)
    monkeypatch.setattr(R, "PARALLEL_MIN", 10**12)
    serial = R.normal(np.random.default_rng(9), shape, 0.5)
    monkeypatch.setattr(R, "PARALLEL_MIN", 0)
    parallel = R.normal(np.random.default_rng(9), shape, 0.5)
    assert serial.tobytes() == parallel.tobytes()


def test_different_keys_give_independent_streams():
    rng = np.random.default_rng(5)
    a, b = R.normal(rng, 50_000), R.normal(rng, 50_000)
    assert abs(np.corrcoef(a, b)[0, 1]) < 5 / np.sqrt(50_000)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("size", [0, 1, 2, 7, 2 * R.BLOCK_PAIRS - 1, 2 * R.BLOCK_PAIRS + 3])
@pytest.mark.parametrize("parallel", [False, True])
def test_add_normal_is_base_plus_normal_byte_for_byte(dtype, size, parallel, monkeypatch):
    """The fused add draws exactly what ``normal`` draws for the same generator state (odd
    sizes and block edges included), adds it in the base's dtype and advances the generator
    alike."""
    monkeypatch.setattr(R, "PARALLEL_MIN", 0 if parallel else 10**12)
    base = np.random.default_rng(1).standard_normal(size).astype(dtype).reshape(-1, 1)
    rng_a, rng_b = np.random.default_rng(6), np.random.default_rng(6)
    expect = base + R.normal(rng_a, base.shape, 0.3, dtype)
    got = R.add_normal(rng_b, base, 0.3)
    assert got.dtype == dtype and got.shape == base.shape
    assert got.tobytes() == expect.tobytes()
    assert rng_a.integers(1 << 30) == rng_b.integers(1 << 30)


def test_normal_from_key_is_normal_with_the_key_drawn():
    key = R.draw_key(np.random.default_rng(8))
    again = R.normal(np.random.default_rng(8), (4, 5), 2.0, np.float32)
    assert R.normal_from_key(key, (4, 5), 2.0, np.float32).tobytes() == again.tobytes()


def test_a_key_is_the_integer_numpy_draws():
    """Keys (hence every noise draw of a seeded run) stay what ``integers(0, 2**63)`` gives."""
    a, b = np.random.default_rng(7), np.random.default_rng(7)
    for i in range(2000):
        assert R.draw_key(a) == b.integers(0, 2**63, dtype=np.int64)
        a.standard_normal(i % 3), b.standard_normal(i % 3)


@pytest.mark.parametrize("out", [np.empty((3, 4), np.float64), np.empty((4, 3), np.float32),
                                 np.empty((3, 4), np.float64).T])
def test_a_wrong_work_array_is_refused_with_one_line(out):
    """A work array of another shape, dtype or layout would be written out of bounds: refused,
    naming the argument, the shape and dtype needed and the ones given."""
    with pytest.raises(ValueError, match=r"^out: expected a C-contiguous array of shape \(4, 3\) "
                                         r"and dtype float64 \(got "):
        R.normal(np.random.default_rng(0), (4, 3), out=out)
