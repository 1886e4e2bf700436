"""Coherent meshes of MZIs (relaxsim.kernels.mesh) against numpy twins written from the physics:
each MZI an explicit product of coupler and phase-shifter matrices, embedded in an identity and
multiplied in the order light meets them."""

from __future__ import annotations

import math

import numba
import numpy as np
import pytest
from scipy.stats import ortho_group, unitary_group

from relaxsim.kernels import mesh
from relaxsim.kernels.rng import normal_from_key

DECOMPOSE_TOL = 1e-10  # a rebuilt decomposition against its unitary (max abs)
TWIN_TOL = 1e-12       # the compiled rebuild against the numpy product


# -- numpy twins ----------------------------------------------------------------------------------

def coupler(delta):
    """A directional coupler of power split ``1/2 + delta``."""
    t, r = np.sqrt(0.5 + delta), np.sqrt(0.5 - delta)
    return np.array([[t, 1j * r], [1j * r, t]])


def shifter(phase):
    """A phase shifter on the top arm."""
    return np.diag([np.exp(1j * phase), 1.0])


def mzi_twin(theta, phi, delta1=0.0, delta2=0.0, amplitude=1.0):
    """External shifter, coupler, internal shifter, coupler; times the amplitude transmission."""
    return amplitude * coupler(delta2) @ shifter(theta) @ coupler(delta1) @ shifter(phi)


def rebuild_twin(modes, theta, phi, psi, delta=None, amplitude=None):
    """``diag(e^{i psi}) M_K ... M_1``, each ``M_k`` a 2 x 2 embedded in an N x N identity."""
    n, K = len(psi), len(modes)
    delta = np.zeros((K, 2)) if delta is None else delta
    amplitude = np.ones(K) if amplitude is None else amplitude
    P = np.eye(n, dtype=complex)
    for k, m in enumerate(modes):
        T = np.eye(n, dtype=complex)
        T[m:m + 2, m:m + 2] = mzi_twin(theta[k], phi[k], delta[k, 0], delta[k, 1], amplitude[k])
        P = T @ P
    return np.diag(np.exp(1j * np.asarray(psi))) @ P


def drive_twin(x, step, noise):
    x = np.mod(x, 2 * np.pi)
    if step > 0:
        x = np.mod(np.rint(x / step) * step, 2 * np.pi)
    return x + noise


def couple_twin(x, pairs, kappa):
    """``x[k] + kappa * x[j]`` for each neighbour ``j`` of ``k`` (``pairs[k]``, -1: none)."""
    out = x.copy()
    for k, nbs in enumerate(pairs):
        for j in nbs:
            if j >= 0:
                out[k] += kappa * x[j]
    return out


def program_twin(W, w_max, bits, sigma, kappa, imbalance, loss_db, key):
    """:func:`mesh.program_banks` from its docstring: numpy's SVD, the complex decomposition,
    the drive of each shifter, the draws in the documented layout and the numpy rebuild."""
    L, n = W.shape[0], W.shape[1]
    lay = mesh.layout(n)
    K = n * (n - 1) // 2
    step = 0.0 if math.isinf(bits) else 2 * np.pi / 2.0 ** bits
    z = normal_from_key(key, (2 * L, 4 * K + n))
    screen = [[m - 1, m + 1 if m + 1 < n else -1] for m in range(n)]
    out = np.empty(W.shape)
    for bank in range(L):
        U, s, Vt = np.linalg.svd(W[bank])
        realised = []
        for i, Q in ((2 * bank, U), (2 * bank + 1, Vt)):
            m = mesh.decompose(Q)
            zi = z[i]
            th = couple_twin(drive_twin(m.theta, step, sigma * zi[:K]), lay.neighbours, kappa)
            ph = couple_twin(drive_twin(m.phi, step, sigma * zi[K:2 * K]), lay.neighbours, kappa)
            ps = couple_twin(drive_twin(np.angle(m.D), step, sigma * zi[2 * K:2 * K + n]),
                             screen, kappa)
            delta = np.clip(imbalance * np.stack([zi[2 * K + n:3 * K + n],
                                                  zi[3 * K + n:]], axis=1), -0.5, 0.5)
            amp = np.full(K, 10 ** (-loss_db / 20))
            realised.append(rebuild_twin(m.modes, th, ph, ps, delta, amp))
        out[bank] = (realised[0] @ np.diag(np.minimum(s, w_max)) @ realised[1]).real
    return out


def bank(rng, L, n, dtype=np.float64, norm=0.9):
    """``L`` random banks of spectral norm ``norm``."""
    W = rng.standard_normal((L, n, n))
    W *= norm / np.linalg.norm(W, 2, axis=(1, 2))[:, None, None]
    return W.astype(dtype)


def rel(a, b):
    return np.abs(a - b).max() / np.abs(b).max()


# -- the MZI and the rebuild ----------------------------------------------------------------------

def test_mzi_is_the_product_of_its_parts(rng):
    for _ in range(20):
        theta, phi = rng.uniform(0, 2 * np.pi, 2)
        d1, d2 = rng.uniform(-0.1, 0.1, 2)
        a = rng.uniform(0.5, 1.0)
        M = np.array(mesh.mzi(theta, phi, d1, d2, a)).reshape(2, 2)
        np.testing.assert_allclose(M, mzi_twin(theta, phi, d1, d2, a), rtol=0, atol=1e-15)


def test_ideal_mzi_closed_form_and_states():
    theta, phi = 1.1, 0.4
    h = theta / 2
    closed = 1j * np.exp(1j * h) * np.array([[np.exp(1j * phi) * np.sin(h), np.cos(h)],
                                             [np.exp(1j * phi) * np.cos(h), -np.sin(h)]])
    np.testing.assert_allclose(mzi_twin(theta, phi), closed, rtol=0, atol=1e-15)
    cross, bar = np.abs(mzi_twin(0.0, 0.3)), np.abs(mzi_twin(np.pi, 0.3))
    np.testing.assert_allclose(cross, [[0, 1], [1, 0]], atol=1e-15)
    np.testing.assert_allclose(bar, [[1, 0], [0, 1]], atol=1e-15)


@pytest.mark.parametrize("n", [2, 3, 5, 8, 16])
def test_rebuild_matches_numpy_twin(n, rng):
    lay = mesh.layout(n)
    K = lay.modes.size
    theta, phi = rng.uniform(0, 2 * np.pi, (2, K))
    psi = rng.uniform(0, 2 * np.pi, n)
    delta = rng.uniform(-0.1, 0.1, (K, 2))
    amp = rng.uniform(0.8, 1.0, K)
    got = mesh.rebuild(lay.modes, theta, phi, psi, delta, amp)
    np.testing.assert_allclose(got, rebuild_twin(lay.modes, theta, phi, psi, delta, amp),
                               rtol=0, atol=TWIN_TOL)
    ideal = mesh.rebuild(lay.modes, theta, phi, np.exp(1j * psi))  # D as complex phases
    np.testing.assert_allclose(ideal, rebuild_twin(lay.modes, theta, phi, psi), rtol=0,
                               atol=TWIN_TOL)
    np.testing.assert_allclose(ideal @ ideal.conj().T, np.eye(n), rtol=0, atol=1e-13)


def test_rebuild_in_any_mode_order(rng):
    """The MZIs act in the order given, on any mode pairs (not only the layout's)."""
    n = 5
    modes = rng.integers(0, n - 1, 12)
    theta, phi = rng.uniform(0, 2 * np.pi, (2, 12))
    psi = rng.uniform(0, 2 * np.pi, n)
    np.testing.assert_allclose(mesh.rebuild(modes, theta, phi, psi),
                               rebuild_twin(modes, theta, phi, psi), rtol=0, atol=TWIN_TOL)


def test_rebuild_rejects_bad_inputs():
    lay = mesh.layout(4)
    zeros = np.zeros(6)
    with pytest.raises(ValueError, match="delta: expected shape"):
        mesh.rebuild(lay.modes, zeros, zeros, np.zeros(4), delta=np.zeros((6, 3)))
    with pytest.raises(ValueError, match=r"delta: a coupler's imbalance must be in \[-1/2, 1/2\]"):
        mesh.rebuild(lay.modes, zeros, zeros, np.zeros(4), delta=np.full((6, 2), 0.6))
    with pytest.raises(ValueError, match=r"modes: each MZI's upper mode must be in \[0, 2\]"):
        mesh.rebuild(lay.modes + 1, zeros, zeros, np.zeros(4))


# -- the decomposition ----------------------------------------------------------------------------

@pytest.mark.parametrize("n", [2, 3, 4, 7, 16, 64])
def test_decomposition_rebuilds_haar_unitaries(n):
    for seed in range(3):
        U = unitary_group.rvs(n, random_state=seed)
        m = mesh.decompose(U)
        assert m.theta.shape == m.phi.shape == (n * (n - 1) // 2,) and m.D.shape == (n,)
        assert ((m.theta >= 0) & (m.theta <= np.pi)).all()
        assert ((m.phi >= 0) & (m.phi < 2 * np.pi)).all()
        np.testing.assert_allclose(np.abs(m.D), 1.0, atol=1e-15)
        assert np.abs(mesh.rebuild(m.modes, m.theta, m.phi, m.D) - U).max() < DECOMPOSE_TOL
        # the phases are those of the physical MZI: the numpy product of its parts agrees
        twin = rebuild_twin(m.modes, m.theta, m.phi, np.angle(m.D))
        assert np.abs(twin - U).max() < DECOMPOSE_TOL


@pytest.mark.parametrize("n", [2, 3, 8, 33, 64])
def test_real_orthogonal_matrices_both_paths(n):
    """The real path (banks: real arithmetic with tracked phases) and the complex one give the
    same mesh of a real orthogonal matrix, and both rebuild it."""
    Q = ortho_group.rvs(n, random_state=n)
    m = mesh.decompose(Q)
    assert np.abs(mesh.rebuild(m.modes, m.theta, m.phi, m.D) - Q).max() < DECOMPOSE_TOL
    theta, phi, psi = mesh.decompose_stack(Q[None])
    assert np.abs(mesh.rebuild(m.modes, theta[0], phi[0], psi[0]) - Q).max() < DECOMPOSE_TOL

    def wrapped(a, b):
        return np.abs(np.angle(np.exp(1j * (a - b)))).max()
    assert wrapped(theta[0], m.theta) < 1e-9
    assert wrapped(phi[0], m.phi) < 1e-8
    assert wrapped(psi[0], np.angle(m.D)) < 1e-9


@pytest.mark.parametrize("Q", [np.eye(6), np.eye(6)[::-1], -np.eye(5), np.diag([1, -1, 1, -1.0]),
                               np.kron(np.eye(3), [[0, 1], [1, 0]])])
def test_decomposition_of_matrices_with_exact_zeros(Q):
    """Identity, permutations and signs: the elements to null are already zero."""
    m = mesh.decompose(Q)
    assert np.abs(mesh.rebuild(m.modes, m.theta, m.phi, m.D) - Q).max() < DECOMPOSE_TOL
    theta, phi, psi = mesh.decompose_stack(np.ascontiguousarray(Q, dtype=float)[None])
    assert np.abs(mesh.rebuild(m.modes, theta[0], phi[0], psi[0]) - Q).max() < DECOMPOSE_TOL


@pytest.mark.parametrize("n", list(range(1, 11)) + [64])
def test_mesh_count_and_depth(n):
    """N (N - 1) / 2 MZIs in N columns (Clements et al. 2016); column c holds the pairs
    (m, m + 1) with m = c mod 2; the N = 2 mesh is one MZI (its second column is empty)."""
    lay = mesh.layout(n)
    K = n * (n - 1) // 2
    assert lay.modes.shape == lay.columns.shape == (K,)
    assert lay.depth == (n if n >= 3 else K)
    assert ((lay.modes - lay.columns) % 2 == 0).all()
    counts = np.bincount(lay.columns, minlength=n)
    assert counts.tolist() == [(n - c % 2) // 2 for c in range(n)]
    assert (np.diff(lay.columns) >= 0).all()  # column order
    for c in range(n):  # no two MZIs of a column share a mode
        used = lay.modes[lay.columns == c]
        assert len(set(used) | set(used + 1)) == 2 * len(used)
    for k, (lo, hi) in enumerate(lay.neighbours):
        for j, side in ((lo, -2), (hi, 2)):
            if j >= 0:
                assert lay.columns[j] == lay.columns[k] and lay.modes[j] == lay.modes[k] + side


# -- a bank as built ------------------------------------------------------------------------------

@pytest.mark.parametrize("n", [1, 2, 5, 16, 64])
def test_program_with_effects_off_gives_the_weights(n, rng):
    W = bank(rng, 3, n)
    out = mesh.program_banks(W, w_max=1.0)
    assert out.weights.dtype == np.float64 and out.weights.shape == W.shape
    assert rel(out.weights, W) < 1e-10
    assert out.clipped.shape == (3, n) and out.clipped.dtype == bool and not out.clipped.any()
    np.testing.assert_allclose(out.U @ (out.s[:, :, None] * out.Vt), W, rtol=0, atol=1e-13)
    # the meshes alone, without the SVD's short cut: decompose and realise
    Q = np.empty((6, n, n))
    Q[0::2], Q[1::2] = out.U, out.Vt
    theta, phi, psi = mesh.decompose_stack(Q)
    assert rel(mesh.realise(theta, phi, psi, out.s), W) < 1e-10


def test_singular_values_above_w_max_are_clipped(rng):
    W = bank(rng, 2, 8, norm=2.0)
    out = mesh.program_banks(W, w_max=1.0)
    assert out.clipped[:, 0].all() and (out.clipped == (out.s > 1.0)).all()
    expected = out.U @ (np.minimum(out.s, 1.0)[:, :, None] * out.Vt)
    assert rel(out.weights, expected) < 1e-10
    assert np.linalg.norm(out.weights, 2, axis=(1, 2)).max() <= 1.0 + 1e-12


@pytest.mark.parametrize("effects", [
    dict(phase_bits=6.0),
    dict(phase_noise=0.02),
    dict(crosstalk=0.03),
    dict(imbalance=0.05),
    dict(loss_db=0.2),
    dict(phase_bits=7.0, phase_noise=0.01, crosstalk=0.02, imbalance=0.03, loss_db=0.1),
])
def test_program_matches_twin_from_the_docstring(effects, rng):
    """Every effect as documented (order, neighbours, draw layout) against a numpy twin."""
    W = bank(rng, 2, 6)
    kw = dict(phase_bits=math.inf, phase_noise=0.0, crosstalk=0.0, imbalance=0.0, loss_db=0.0)
    kw.update(effects)
    out = mesh.program_banks(W, 1.0, key=np.uint64(77), **kw)
    twin = program_twin(W, 1.0, kw["phase_bits"], kw["phase_noise"], kw["crosstalk"],
                        kw["imbalance"], kw["loss_db"], np.uint64(77))
    np.testing.assert_allclose(out.weights, twin, rtol=0, atol=1e-10)
    assert rel(out.weights, W) > 1e-4  # the effect changes the weights


def test_loss_scales_a_two_mode_bank_by_the_transmission(rng):
    """At N = 2 every path crosses one MZI of each mesh: the weights scale by 10^(-2 dB / 20)."""
    W = bank(rng, 2, 2)
    out = mesh.program_banks(W, 1.0, loss_db=0.5)
    assert rel(out.weights, W * 10 ** (-2 * 0.5 / 20)) < 1e-12


def test_quantisation_error_halves_per_bit(rng):
    W = bank(rng, 2, 16)
    bits = np.arange(4, 13)
    err = np.array([np.linalg.norm(mesh.program_banks(W, 1.0, phase_bits=b).weights - W)
                    for b in bits]) / np.linalg.norm(W)
    assert (np.diff(np.log2(err)) < 0).all()  # falls with every bit
    slope = np.polyfit(bits, np.log2(err), 1)[0]
    assert -1.3 < slope < -0.7  # about 2x per bit
    assert err[-1] < 1e-2


def test_crosstalk_changes_the_matrix_and_zero_does_not(rng):
    W = bank(rng, 2, 8)
    base = mesh.program_banks(W, 1.0, phase_bits=8, phase_noise=0.01, key=3)
    zero = mesh.program_banks(W, 1.0, phase_bits=8, phase_noise=0.01, crosstalk=0.0, key=3)
    some = mesh.program_banks(W, 1.0, phase_bits=8, phase_noise=0.01, crosstalk=0.01, key=3)
    assert zero.weights.tobytes() == base.weights.tobytes()
    assert np.abs(some.weights - base.weights).max() > 1e-4


def test_same_key_same_bytes_different_key_different_bytes(rng):
    W = bank(rng, 2, 64)
    kw = dict(phase_bits=8, phase_noise=0.01, crosstalk=0.01, imbalance=0.02, loss_db=0.05)
    a = mesh.program_banks(W, 1.0, key=np.uint64(11), **kw)
    b = mesh.program_banks(W, 1.0, key=np.uint64(11), **kw)
    c = mesh.program_banks(W, 1.0, key=np.uint64(12), **kw)
    assert a.weights.tobytes() == b.weights.tobytes()
    assert a.weights.tobytes() != c.weights.tobytes()
    assert np.abs(a.weights - c.weights).max() > 1e-4


def test_same_bytes_on_one_thread(rng):
    """The banks' parallel and serial passes give the same bytes."""
    W = bank(rng, 2, 64)
    kw = dict(phase_bits=8, phase_noise=0.01, crosstalk=0.01, imbalance=0.02, loss_db=0.05,
              key=np.uint64(5))
    many = mesh.program_banks(W, 1.0, **kw)
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        one = mesh.program_banks(W, 1.0, **kw)
    finally:
        numba.set_num_threads(threads)
    for x, y in zip(many, one):
        assert x.tobytes() == y.tobytes()


def test_float32_weights(rng):
    W = bank(rng, 2, 16, dtype=np.float32)
    out = mesh.program_banks(W, np.float32(1.0))
    assert out.weights.dtype == out.U.dtype == out.s.dtype == out.Vt.dtype == np.float32
    assert out.clipped.dtype == bool
    assert rel(out.weights.astype(float), W.astype(float)) < 1e-6
    noisy = mesh.program_banks(W, 1.0, phase_noise=0.01, key=4)
    assert noisy.weights.dtype == np.float32
    same = mesh.program_banks(W.astype(float), 1.0, phase_noise=0.01, key=4)
    np.testing.assert_allclose(noisy.weights, same.weights, rtol=0, atol=1e-6)


@pytest.mark.parametrize("kwargs, message", [
    (dict(W=np.zeros((2, 3, 3), dtype=np.int64)), "W: expected float64 or float32 weights"),
    (dict(W=np.zeros((3, 3))), r"W: expected banks of square matrices \(L, N, N\)"),
    (dict(W=np.zeros((1, 3, 4))), r"W: expected banks of square matrices \(L, N, N\)"),
    (dict(W=np.full((1, 3, 3), np.nan)), "W: the weights must be finite"),
    (dict(w_max=0.0), "w_max: must be positive"),
    (dict(phase_bits=0.0), "phase_bits: must be positive or inf"),
    (dict(phase_noise=-0.1), r"phase_noise: must be in \[0, inf\]"),
    (dict(crosstalk=1.0), r"crosstalk: must be in \[0, 1\)"),
    (dict(imbalance=-1e-3), r"imbalance: must be in \[0, inf\]"),
    (dict(loss_db=float("nan")), r"loss_db: must be in \[0, inf\]"),
])
def test_bad_inputs_get_one_line(kwargs, message):
    args = dict(W=np.zeros((1, 3, 3)), w_max=1.0)
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        mesh.program_banks(**args)
