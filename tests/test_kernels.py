"""The numba kernels against their numpy twins (relaxsim.kernels.reference)."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import textwrap

import numba as nb
import numpy as np
import pytest

from relaxsim.activations import ACTIVATIONS
from relaxsim.kernels import passes as kernels
from relaxsim.validation.kernels import device_params, max_rel, random_problem, run_both

# Kernels and twins do the same float64 arithmetic in a different order (BLAS blocking, fused
# element-wise loops); the spread is a few ulps times the depth, far below this bound.
TWIN_TOL = 1e-12
# float32 kernels against the float64 twin: float32 has a 6e-8 unit roundoff; products of length
# N <= 16 and 7 steps stay well inside 1e-4 relative.
FLOAT32_TOL = 1e-4


CASES = list(itertools.product(
    ACTIVATIONS.names(), ["static", "first", "sequence"], [True, False], [True, False],
    ["ideal", "device"]))


@pytest.mark.parametrize("act,slots,per_sample,noise,params", CASES)
def test_kernels_match_numpy_twin(act, slots, per_sample, noise, params, rng):
    p = random_problem(rng, slots=slots, per_sample=per_sample, noise=noise)
    ap = device_params(act, rng) if params == "device" else None
    (Z, tape, loss, grads), (Zr, H, loss_r, grads_r) = run_both(p, ACTIVATIONS.get(act).code,
                                                                act_params=ap)
    assert max_rel(Z, Zr) < TWIN_TOL
    assert max_rel(tape.H, H) < TWIN_TOL
    assert abs(loss - loss_r) < TWIN_TOL * abs(loss_r)
    for key in grads_r:
        assert grads[key].shape == grads_r[key].shape
        assert max_rel(grads[key], grads_r[key]) < TWIN_TOL, key


@pytest.mark.parametrize("schedule", [[0, 0, 0, 0], [0, 1, 2, 3], [2, 2, 0, 1, 1, 0], [1, 0]])
def test_kernels_match_twin_over_schedules(schedule, rng):
    """Repeated banks (no mixing), a DNN, an explicit order and a two-step reuse."""
    L = max(schedule) + 1
    p = random_problem(rng, L=L, schedule=schedule)
    (Z, _, _, grads), (Zr, _, _, grads_r) = run_both(p, 0)
    assert max_rel(Z, Zr) < TWIN_TOL
    for key in grads_r:
        assert max_rel(grads[key], grads_r[key]) < TWIN_TOL, key


@pytest.mark.parametrize("act", ACTIVATIONS.names())
def test_float32_kernels_follow_float64(act, rng):
    """Every transfer function (tanh and the SOA's have float32-arithmetic loops of their own)."""
    p = random_problem(rng, noise=True)
    ap = None if act == "tanh" else device_params(act, rng)
    (Z, tape, _, grads), (Zr, _, _, grads_r) = run_both(p, ACTIVATIONS.get(act).code,
                                                        dtype=np.float32, act_params=ap)
    assert Z.dtype == np.float32 and tape.H.dtype == np.float32
    assert grads["W"].dtype == np.float32
    assert max_rel(Z, Zr) < FLOAT32_TOL
    for key in grads_r:
        assert max_rel(grads[key], grads_r[key]) < FLOAT32_TOL, key


def test_mix_plan_bakes_each_distinct_row_once():
    """A one-hot row runs on its bank; equal mixed rows share one baked bank; a per-sample
    matrix keeps its common part baked and the columns that differ as per-row terms."""
    mix = np.array([[1.0, 0.0, 0.0], [0.1, 0.9, 0.0], [0.0, 0.0, 1.0], [0.1, 0.9, 0.0],
                    [0.0, 0.5, 0.0]])
    at, rows, tb, tc, nt = kernels.mix_plan(mix, 3)
    assert at.tolist() == [0, 3, 2, 3, 4]
    np.testing.assert_array_equal(rows, [[0.1, 0.9, 0.0], [0.0, 0.5, 0.0]])
    assert tb.shape == (5, 0) and not nt.any()
    per = np.repeat(mix[:, None, :], 4, axis=1)
    per[1, :, 0] = [0.1, 0.2, 0.3, 0.4]
    at, rows, tb, tc, nt = kernels.mix_plan(per, 3)
    assert at.tolist() == [0, 3, 2, 4, 5]  # step 1: its common part (0.9 of bank 1) baked
    np.testing.assert_array_equal(rows, [[0.0, 0.9, 0.0], [0.1, 0.9, 0.0], [0.0, 0.5, 0.0]])
    assert nt.tolist() == [0, 1, 0, 0, 0] and tb[1, 0] == 0
    np.testing.assert_array_equal(tc[1, 0], [0.1, 0.2, 0.3, 0.4])


def test_mix_from_eps_is_the_two_bank_leak():
    sched, prev = np.array([0, 1, 1, 0]), np.array([0, 0, 1, 1])
    m = kernels.mix_from_eps(sched, prev, np.full(4, 0.25), 2)
    np.testing.assert_array_equal(m, [[1, 0], [0.25, 0.75], [0, 1], [0.75, 0.25]])
    with pytest.raises(ValueError, match=r"mix: expected shape \(4, 2\)"):
        kernels.check_mix(np.zeros((4, 3)), 4, 5, 2)


@pytest.mark.parametrize("per_sample", [True, False])
@pytest.mark.parametrize("slots", ["static", "sequence"])
def test_kernels_match_twin_with_every_bank_mixed(per_sample, slots, rng):
    """A share of every bank at every step (a switch leaking into all the banks), per step or
    with per-sample shares on the switching steps."""
    p = random_problem(rng, slots=slots, per_sample=per_sample, mixing="full")
    (Z, tape, loss, grads), (Zr, H, loss_r, grads_r) = run_both(p, 0)
    assert len(tape.rows) > 0 and (tape.nt.any() == per_sample)
    assert max_rel(Z, Zr) < TWIN_TOL
    for key in grads_r:
        assert max_rel(grads[key], grads_r[key]) < TWIN_TOL, key


def test_float32_kernels_follow_float64_with_every_bank_mixed(rng):
    p = random_problem(rng, per_sample=True, mixing="full")
    (Z, _, _, grads), (Zr, _, _, grads_r) = run_both(p, 0, dtype=np.float32)
    assert max_rel(Z, Zr) < FLOAT32_TOL
    for key in grads_r:
        assert max_rel(grads[key], grads_r[key]) < FLOAT32_TOL, key


def test_leak_mixes_the_previous_bank(rng):
    """eps = 1 on a step routes the signal wholly through the previous bank."""
    p = random_problem(rng, per_sample=False, noise=False)
    p["eps"][:] = 0.0
    p["eps"][3] = 1.0
    Z_leak, _ = kernels.forward(p["params"], p["X"], p["slot"], p["sched"], p["prev"], p["a"],
                                p["c"], p["eps"], 0, tr=p["tr"])
    swapped = p["sched"].copy()
    swapped[3] = p["prev"][3]
    Z_swap, _ = kernels.forward(p["params"], p["X"], p["slot"], swapped, p["prev"], p["a"],
                                p["c"], np.zeros_like(p["eps"]), 0, tr=p["tr"])
    np.testing.assert_allclose(Z_leak, Z_swap, rtol=TWIN_TOL, atol=TWIN_TOL)


def test_relu_derivative_is_zero_at_and_below_zero():
    inf = float("inf")
    assert kernels.activate(2, 0.0, 1.0, inf, 0.0) == (0.0, 0.0)
    assert kernels.activate(2, -3.0, 1.0, inf, 0.0) == (0.0, 0.0)
    assert kernels.activate(2, 2.0, 1.0, inf, 0.0) == (2.0, 1.0)
    assert kernels.activate(2, 2.0, 1.0, 1.5, 0.0) == (1.5, 0.0)  # saturated


def test_sigmoid_kernel_does_not_overflow():
    assert kernels.activate(1, -1000.0, 1.0, 1.0, 0.0) == (0.0, 0.0)
    assert kernels.activate(1, 1000.0, 1.0, 1.0, 0.0) == (1.0, 0.0)


@pytest.mark.parametrize("name", ACTIVATIONS.names())
def test_scalar_transfer_matches_registry(name, rng):
    """The kernel's scalar transfer and derivative against the registry's numpy pair."""
    act = ACTIVATIONS.get(name)
    u = rng.uniform(-3, 3, 50)
    for params in (act.ideal, device_params(name, rng)):
        got = np.array([kernels.activate(act.code, x, *params) for x in u])
        np.testing.assert_allclose(got[:, 0], act.f(u, *params), rtol=TWIN_TOL, atol=TWIN_TOL)
        np.testing.assert_allclose(got[:, 1], act.df(u, *params), rtol=TWIN_TOL, atol=TWIN_TOL)


@pytest.mark.parametrize("name", ACTIVATIONS.names())
def test_registry_derivative_matches_finite_differences(name, rng):
    act = ACTIVATIONS.get(name)
    u = rng.uniform(-3, 3, 50)
    u = u[np.abs(u) > 1e-3]  # away from relu's kink
    params = device_params(name, rng)
    h = 1e-6
    fd = (act.f(u + h, *params) - act.f(u - h, *params)) / (2 * h)
    np.testing.assert_allclose(act.df(u, *params), fd, rtol=1e-6, atol=1e-8)


def test_ideal_parameters_give_the_textbook_functions(rng):
    u = rng.uniform(-3, 3, 20)
    np.testing.assert_array_equal(ACTIVATIONS.get("tanh").f(u, *ACTIVATIONS.get("tanh").ideal),
                                  np.tanh(u))
    np.testing.assert_array_equal(ACTIVATIONS.get("relu").f(u, *ACTIVATIONS.get("relu").ideal),
                                  np.maximum(u, 0))


@pytest.mark.parametrize("name,shape,msg", [
    ("a", (3,), "a: expected shape (7,), (7, 1) or (7, 6)"),
    ("eps", (7, 4), "eps: expected shape (7,), (7, 1) or (7, 6)"),
    ("noise", (7, 6, 4), "noise: expected shape (7, 6, 5)"),
])
def test_wrapper_rejects_wrong_coefficient_shapes(name, shape, msg, rng):
    p = random_problem(rng)
    p[name] = np.zeros(shape)
    with pytest.raises(ValueError) as err:
        kernels.forward(p["params"], p["X"], p["slot"], p["sched"], p["prev"], p["a"], p["c"],
                        p["eps"], 0, p["noise"])
    assert msg in str(err.value)


def test_kernels_run_as_plain_python():
    """The kernels are valid Python too (NUMBA_DISABLE_JIT=1), and agree with the twin there."""
    code = textwrap.dedent("""
        import numpy as np
        from relaxsim.validation.kernels import max_rel, random_problem, run_both
        p = random_problem(np.random.default_rng(1))
        (Z, _, _, g), (Zr, _, _, gr) = run_both(p, 3, act_params=(1.2, 1.5, 0.4))
        assert max_rel(Z, Zr) < 1e-12
        assert all(max_rel(g[k], gr[k]) < 1e-12 for k in g)
        print("ok")
    """)
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=root, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


@pytest.mark.parametrize("slots", ["static", "sequence"])
def test_parallel_and_serial_drivers_give_the_same_bytes(slots, rng, monkeypatch):
    """Large batches run their chunks in parallel, small ones serially: same chunks, same bytes;
    and the parallel drivers agree with the twin."""
    p = random_problem(rng, B=70, N=20, slots=slots)  # 70 rows: chunks of 8, the last one short
    runs = {}
    monkeypatch.setattr(kernels, "PARALLEL_MIN_WORK", 0)  # chunked as a big batch is
    for name, parallel in (("serial", False), ("parallel", True)):
        monkeypatch.setattr(kernels, "parallel_pays", lambda *shape, on=parallel: on)
        (Z, tape, loss, grads), twin = run_both(p, 5, act_params=(1.1, 1.5, 0.0))
        runs[name] = (Z, grads)
    assert runs["serial"][0].tobytes() == runs["parallel"][0].tobytes()
    for key in runs["serial"][1]:
        assert runs["serial"][1][key].tobytes() == runs["parallel"][1][key].tobytes(), key
    Zr, _, _, grads_r = twin
    assert max_rel(runs["parallel"][0], Zr) < TWIN_TOL
    for key in grads_r:
        assert max_rel(runs["parallel"][1][key], grads_r[key]) < TWIN_TOL, key


def test_loss_and_grad_reuses_buffers_without_leaking_state(rng):
    """One call keeps its work buffers for the next: a sequence of calls on changing problems
    (shapes, leaks, transmissions, noise) gives the same bytes as fresh forward + backward."""
    problems = [random_problem(rng, B=9, N=6, per_sample=True),
                random_problem(rng, B=9, N=6, per_sample=False),
                random_problem(rng, B=9, N=6, per_sample=True, slots="sequence"),
                random_problem(rng, B=4, N=6, per_sample=True)]
    for p in problems + problems[::-1]:
        args = (p["params"], p["X"], p["slot"], p["sched"], p["prev"], p["a"], p["c"], p["eps"],
                3)
        kw = dict(tr=p["tr"], det=p["det"], act_params=(1.2, 1.5, 0.4))
        loss, grads = kernels.loss_and_grad(*args, p["y"], p["noise"], **kw)
        Z, tape = kernels.forward(*args, p["noise"], **kw)
        ref_loss, gZ = kernels.loss(Z, p["y"])
        ref = kernels.backward(p["params"], tape, gZ)
        assert loss == ref_loss
        for key in ref:
            assert grads[key].tobytes() == ref[key].tobytes(), key


@nb.njit
def _tanh_both(x, out64, out32):
    for i in range(x.shape[0]):
        out64[i] = kernels.fast_tanh(x[i])
        out32[i] = kernels.fast_tanh32(np.float32(x[i]))


def test_fast_tanh_is_within_a_few_ulp_of_libm():
    x = np.concatenate([np.linspace(-25, 25, 400_001), np.geomspace(1e-300, 1, 20_000),
                        -np.geomspace(1e-30, 1, 20_000), [0.0, -0.0, np.inf, -np.inf]])
    t64, t32 = np.empty_like(x), np.empty(x.shape, np.float32)
    _tanh_both(x, t64, t32)
    ref = np.tanh(x)
    assert np.max(np.abs(t64 - ref) / np.spacing(np.abs(ref))) <= 3
    ref32 = np.tanh(x.astype(np.float32).astype(np.float64))
    ulp32 = np.spacing(np.abs(ref32).astype(np.float32)).astype(np.float64)
    assert np.max(np.abs(t32 - ref32) / np.maximum(ulp32, 1e-45)) <= 4
    assert np.signbit(t64[-3]) and np.signbit(t32[-3])  # tanh(-0) = -0
    nan64, nan32 = np.empty(1), np.empty(1, np.float32)
    _tanh_both(np.array([np.nan]), nan64, nan32)
    assert np.isnan(nan64[0]) and np.isnan(nan32[0])  # NaN passes through to the guards


def test_numba_threads_follows_set_num_threads_in_each_thread():
    """The cheap thread-count query the kernels use is numba's own count, per thread."""
    import threading

    from relaxsim.kernels.threads import numba_threads

    before = nb.get_num_threads()
    try:
        nb.set_num_threads(1)
        assert numba_threads() == nb.get_num_threads() == 1
        seen = []
        worker = threading.Thread(target=lambda: seen.append((numba_threads(),
                                                              nb.get_num_threads())))
        worker.start()
        worker.join()
        assert seen[0][0] == seen[0][1]  # a new thread has its own count
    finally:
        nb.set_num_threads(before)
    assert numba_threads() == before


@pytest.mark.parametrize("N", [16, 32, 64, 128, 200, 512, 1024])
@pytest.mark.parametrize("B", [1, 37, 128, 256, 1024])
def test_work_split_gives_both_threads_a_share(N, B):
    """Chunks of rows and blocks of gradient rows: a multiple of 16 gradient rows, and at least
    two tasks of each kind wherever there are rows enough for them (two threads share the work)."""
    block = kernels.grad_block(N, B)
    assert block % 16 == 0 and block >= kernels.GRAD_BLOCK
    if N > kernels.GRAD_BLOCK:
        assert -(-N // block) >= 2
    rows = kernels.chunk_rows(B, N, split=True)
    assert 1 <= rows <= max(1, -(-B // 2))
    if B >= 2:
        assert -(-B // rows) >= 2


@pytest.mark.parametrize("slots", ["static", "first", "sequence"])
@pytest.mark.parametrize("bits", [(3, 4), (6, np.inf), (np.inf, 2)])
def test_converters_match_the_twin(slots, bits, rng):
    """A DAC on the injected drive and an ADC at the readout, some values clipped: the
    quantised forward and the straight-through gradient (stopped where clipped) as the twin."""
    from relaxsim.kernels import reference

    p = random_problem(rng, slots=slots, per_sample=False, mixing="full")
    conv = (0.8, bits[0], 0.5, bits[1])
    kw = dict(tr=p["tr"], det=p["det"], mix=p["mix"], converters=conv)
    args = (p["X"], p["slot"], p["sched"], p["prev"], p["a"], p["c"], p["eps"], 0, p["noise"])
    Z, tape = kernels.forward(p["params"], *args, **kw)
    grads = kernels.backward(p["params"], tape, kernels.loss(Z, p["y"])[1])
    Zr, H, U = reference.forward(p["params"], *args, **kw)
    grads_r = reference.backward(p["params"], *args[:-1], H, U, reference.loss(Zr, p["y"])[1],
                                 **kw)
    assert max_rel(Z, Zr) < TWIN_TOL
    for key in grads_r:
        assert max_rel(grads[key], grads_r[key]) < TWIN_TOL, key
    if np.isfinite(bits[1]):  # the readout takes 2^bits values at most
        assert len(np.unique(tape.HR)) <= 2 ** bits[1]
        assert 0 < tape.MO.mean() < 1  # some states clipped, some not
    plain, _ = kernels.forward(p["params"], *args, tr=p["tr"], det=p["det"], mix=p["mix"])
    assert not np.allclose(plain, Z)  # the converters change the logits


def test_converter_steps_and_bad_converters():
    np.testing.assert_array_equal(kernels.converter_steps(None), [0, 0, 0, 0])
    np.testing.assert_allclose(kernels.converter_steps((1.0, 2, 3.0, np.inf)),
                               [1.0, 2 / 3, 0, 0])
    with pytest.raises(ValueError, match="converters: readout full scale must be finite"):
        kernels.converter_steps((1.0, 4, 0.0, 4))
    with pytest.raises(ValueError, match="converters: input bits must be a whole number"):
        kernels.converter_steps((1.0, 0, 1.0, 4))


def test_per_sample_mixing_of_every_bank_matches_the_twin(rng):
    """A tree switch in transition moves every bank's share per sample: one product per
    varying bank on top of the common part (here all three vary on the switching steps)."""
    p = random_problem(rng, per_sample=True, mixing="full")
    T, B, L = p["mix"].shape
    for t in range(1, T):
        if p["sched"][t] != p["prev"][t]:
            p["mix"][t] = rng.uniform(0.0, 1.0, (B, L))
    (Z, tape, _, grads), (Zr, _, _, grads_r) = run_both(p, 0)
    assert tape.nt.max() == L
    assert max_rel(Z, Zr) < TWIN_TOL
    for key in grads_r:
        assert max_rel(grads[key], grads_r[key]) < TWIN_TOL, key
