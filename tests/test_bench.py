"""``relaxsim bench`` and what it measures: its options, the PyTorch twin of the training step,
the BLAS bound's product list, the fused optimizer step and the fast digits loader."""

from __future__ import annotations

import json

import numpy as np
import pytest

from relaxsim.cli.app import main
from relaxsim.training.optim import Adam
from relaxsim.validation import bench, train_step


@pytest.mark.parametrize("args, message", [
    (["--sizes", "17x"], "--sizes: must be whole numbers (got '17x')"),
    (["--sizes", "0"], "--sizes: must be between 1 and 4096 (got 0)"),
    (["--sizes", "100000"], "--sizes: must be between 1 and 4096 (got 100000)"),
    (["--sizes", ","], "--sizes: must list at least one value (got ',')"),
    (["--batches", "-3"], "--batches: must be between 1 and 4096 (got -3)"),
    (["--dtypes", "float16"], "--dtypes: unknown value 'float16'; choose from float32, float64"),
    (["--only", "speed"], "--only: unknown value 'speed'; choose from step, kernels, timing, "
                          "start, memory"),
    (["--repeats", "0"], "--repeats: must be at least 1 (got 0)"),
    (["--json", "{tmp}/nodir/b.json"], "--json '{tmp}/nodir/b.json': directory '{tmp}/nodir' "
                                       "does not exist"),
    (["--json", "{tmp}"], "--json '{tmp}': is a directory; give a file name"),
])
def test_bad_options_get_one_line_and_exit_2(args, message, capsys, tmp_path):
    out = tmp_path / "bench.json"
    args = [arg.replace("{tmp}", str(tmp_path)) for arg in args]
    if "--json" not in args:
        args += ["--json", str(out)]
    assert main(["bench", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"relaxsim: error: {message.replace('{tmp}', str(tmp_path))}"]
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_bench_runs_without_torch_and_says_what_it_skipped(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(bench, "torch_module", lambda: None)
    out = tmp_path / "bench.json"
    assert main(["bench", "--only", "step", "--sizes", "8", "--batches", "16",
                 "--dtypes", "float64", "--repeats", "1", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "PyTorch not importable: the PyTorch columns are skipped" in text
    report = json.loads(out.read_text())
    (row,) = report["step"]["rows"]
    assert report["step"]["torch"] is None and "ours_over_torch" not in row
    assert row["N"] == 8 and row["batch"] == 16 and row["dtype"] == "float64"
    assert row["ours_s"] > 0 and row["physics_s"] > 0 and row["bound_s"] > 0
    assert row["physics_over_ideal"] == pytest.approx(row["physics_s"] / row["ours_s"])


def test_product_list_counts_the_products_of_a_step():
    T, L = train_step.STEPS, train_step.BANKS
    ideal = train_step.product_shapes(16, 32, physics=False)
    # input, T-1 bank products, readout; readout's two gradients; T-1 dh and T-1 dW; input grad
    assert len(ideal) == 1 + (T - 1) + 1 + 2 + 2 * (T - 1) + 1
    # cyclic over L banks: every step after the first switches bank (T > L > 1)
    assert L > 1 and len(train_step.product_shapes(16, 32, physics=True)) == len(ideal) + 3 * (T - 1)
    assert ((32, 16), (16, 16)) in ideal and ((16, 32), (32, 16)) in ideal


def test_ours_and_torch_steps_compute_the_same_loss():
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    ours = train_step.OursStep(12, 20, "float64", physics=False)
    twin = train_step.TorchStep(12, 20, "float64", physics=False)
    assert ours() == pytest.approx(twin(), rel=1e-12)  # same params, data, model: same loss
    # after one Adam step each: close, not equal (PyTorch adds eps after the bias correction of
    # the second moment, relaxsim before it, as Kingma and Ba's efficient form does)
    assert ours() == pytest.approx(twin(), rel=1e-6)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fused_adam_follows_the_textbook_update(dtype):
    rng = np.random.default_rng(0)
    params = {"W": rng.standard_normal((3, 8, 8)).astype(dtype), "b": np.zeros(5, dtype)}
    ref = {k: v.astype(np.float64) for k, v in params.items()}
    opt = Adam(params, lr=1e-2)
    m = {k: np.zeros_like(v) for k, v in ref.items()}
    v = {k: np.zeros_like(x) for k, x in ref.items()}
    for t in range(1, 11):
        grads = {k: rng.standard_normal(x.shape).astype(dtype) for k, x in params.items()}
        opt.step(params, grads)
        scale = 1e-2 * np.sqrt(1 - 0.999 ** t) / (1 - 0.9 ** t)
        for k, g in grads.items():
            m[k] = 0.9 * m[k] + 0.1 * g
            v[k] = 0.999 * v[k] + 0.001 * g * g
            ref[k] -= scale * m[k] / (np.sqrt(v[k]) + 1e-8)
    tol = 1e-12 if dtype == np.float64 else 1e-5
    for k in params:
        assert params[k].dtype == dtype
        np.testing.assert_allclose(params[k], ref[k], rtol=0, atol=tol)


def test_adam_on_non_contiguous_parameters_takes_the_numpy_path():
    rng = np.random.default_rng(1)
    base = rng.standard_normal((6, 6))
    strided = {"W": base[:, ::2]}  # a view: not contiguous
    dense = {"W": np.ascontiguousarray(base[:, ::2])}
    a, b = Adam(strided, lr=0.1), Adam(dense, lr=0.1)
    g = {"W": rng.standard_normal((6, 3))}
    a.step(strided, g)
    b.step(dense, g)
    np.testing.assert_allclose(strided["W"], dense["W"], rtol=0, atol=1e-15)
    assert np.shares_memory(strided["W"], base)  # updated in place


def test_digits_loader_reads_the_same_data_as_scikit_learn():
    from sklearn.datasets import load_digits as sklearn_digits

    from relaxsim.data.tasks import load_digits

    x, y = load_digits()
    ref = sklearn_digits()
    assert x.dtype == np.float64 and y.dtype == np.int64 and x.flags.c_contiguous
    np.testing.assert_array_equal(x, ref.data)
    np.testing.assert_array_equal(y, ref.target)


def test_paired_ratio_is_the_median_of_the_repeats_ratios():
    from relaxsim.validation.bench import paired_ratio

    times = {"a": [2.0, 9.0, 3.0], "b": [1.0, 10.0, 1.0]}  # a slow spell in the second repeat
    assert paired_ratio(times, "a", "b") == 2.0  # ratios 2, 0.9, 3
    assert paired_ratio(times, "b", "a") == 0.5


def test_side_by_side_pauses_only_before_each_family(monkeypatch):
    """With ``settle``, the pause (for other thread pools to go quiet) comes before the first
    variant of each family only; the variants of a family run back to back, in order."""
    from relaxsim.validation import bench

    log = []
    monkeypatch.setattr(bench.time, "sleep", lambda s: log.append("pause"))
    cases = {name: (lambda name=name: log.append(name)) for name in ("a", "a2", "b", "b2")}
    times = bench.time_side_by_side(cases, repeats=2, inner=1, samples=True, settle={"a", "b"})
    assert all(len(v) == 2 for v in times.values())
    timed = log[8:]  # after the warm-up: two calls of each
    assert timed == ["pause", "a", "a", "a2", "a2", "pause", "b", "b", "b2", "b2"] * 2
