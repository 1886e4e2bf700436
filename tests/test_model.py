"""The network description, the schedules, the Python API and training."""

from __future__ import annotations

import numpy as np
import pytest

import relaxsim
from relaxsim.schedules import SCHEDULES, previous_banks, resolve
from tests.conftest import make_batch, make_net


def test_schedules():
    assert resolve("cyclic", 3, 7).tolist() == [0, 1, 2, 0, 1, 2, 0]
    assert resolve("blocked", 3, 7).tolist() == [0, 0, 0, 1, 1, 2, 2]
    assert resolve([1, 0, 1], 2, 3).tolist() == [1, 0, 1]
    assert previous_banks(np.array([2, 0, 1])).tolist() == [2, 2, 0]
    assert SCHEDULES.names() == ["blocked", "cyclic"]


def test_registering_a_name_twice_is_an_error():
    with pytest.raises(ValueError, match="schedule 'cyclic' is already registered"):
        SCHEDULES.register("cyclic", lambda banks, steps: [0] * steps)


def test_rnn_and_dnn_are_special_cases():
    """L_W = 1 uses one bank at every step; L_W = L_T uses each bank once, in order."""
    assert resolve("cyclic", 1, 5).tolist() == [0] * 5
    assert resolve("cyclic", 4, 4).tolist() == resolve("blocked", 4, 4).tolist() == [0, 1, 2, 3]


def test_param_counts():
    cfg = relaxsim.load_config(overrides={"network.hidden": 16, "network.banks": 3,
                                          "network.steps": 6})
    counts = relaxsim.build(cfg).param_counts()
    assert counts == {"banks": 3 * (16 * 16 + 16), "input": 16 * 64, "readout": 10 * 16 + 10,
                      "total": 3 * 272 + 1024 + 170}


def test_python_api_shapes(rng):
    cfg = relaxsim.load_config(overrides={"network.hidden": 8})
    net = relaxsim.build(cfg)
    params = net.init_params(seed=0)
    assert {k: v.shape for k, v in params.items()} == {
        "W_in": (8, 64), "W": (2, 8, 8), "b": (2, 8), "W_out": (10, 8), "b_out": (10,)}
    x, y = rng.standard_normal((5, 64)), rng.integers(0, 10, 5)
    logits = net.forward(params, x)
    assert logits.shape == (5, 10)
    loss, grads = net.loss_and_grad(params, x, y)
    assert np.isfinite(loss) and loss > 0
    assert {k: v.shape for k, v in grads.items()} == {k: v.shape for k, v in params.items()}
    assert all(np.array_equal(a, b) for a, b in zip(params.values(),
                                                    net.init_params(seed=0).values()))


def test_init_scales_with_fan_in():
    net = make_net(hidden=400, n_inputs=900)
    params = net.init_params(seed=1)
    assert params["W"].std() == pytest.approx(1 / 20, rel=0.02)
    assert params["W_in"].std() == pytest.approx(1 / 30, rel=0.02)
    assert not params["b"].any() and not params["b_out"].any()


def test_first_step_injection_feeds_input_once(rng):
    """With first_step, changing the input after step 0 is impossible: only h_1 sees it, so the
    W_in gradient equals what a one-slot sequence gives."""
    net = make_net(injection="first_step", steps=4)
    X, slot = net.input_slots(np.ones((3, net.n_inputs)))
    assert slot.tolist() == [0, -1, -1, -1] and X.shape == (1, 3, net.n_inputs)


def test_sequence_injection_feeds_one_token_per_step(rng):
    net = make_net(injection="sequence", steps=3)
    x, _ = make_batch(net, 4, rng)
    X, slot = net.input_slots(x)
    assert slot.tolist() == [0, 1, 2]
    np.testing.assert_array_equal(X[1], x[:, 1])
    with pytest.raises(ValueError, match=r"x: expected shape \(batch, 3, 3\)"):
        net.input_slots(x[:, :2])


def test_static_input_shape_is_checked():
    net = make_net()
    with pytest.raises(ValueError, match=r"x: expected shape \(batch, 3\) \(got \(2, 5\)\)"):
        net.forward(net.init_params(), np.zeros((2, 5)))


def test_float32_network(rng):
    net = make_net(dtype=np.float32)
    params = net.init_params(0)
    assert all(v.dtype == np.float32 for v in params.values())
    x, y = make_batch(net, 6, rng)
    loss, grads = net.loss_and_grad(params, x, y)
    assert all(g.dtype == np.float32 for g in grads.values())
    ref = make_net().loss_and_grad({k: v.astype(np.float64) for k, v in params.items()}, x, y)
    assert loss == pytest.approx(ref[0], rel=1e-5)


@pytest.fixture(scope="module")
def default_result():
    return relaxsim.run(relaxsim.load_config())


def test_default_experiment_learns_the_digits(default_result):
    """The issue's figure: test accuracy >= 0.95 on the default experiment."""
    assert default_result["test_accuracy"] >= 0.95
    assert default_result["epochs"] == 30
    assert 1 <= default_result["best_epoch"] <= 30
    assert default_result["task"]["sizes"] == {"train": 1168, "val": 270, "test": 359}


def test_training_is_deterministic(default_result):
    again = relaxsim.run(relaxsim.load_config())
    for key in ("test_accuracy", "val_accuracy", "train_loss", "test_loss", "best_epoch"):
        assert again[key] == default_result[key]


@pytest.mark.parametrize("overrides", [
    {"training.optimizer": "sgd", "training.lr": 0.05, "training.momentum": 0.9},
    {"network.dtype": "float32"},
    {"network.schedule": "blocked", "network.activation": "relu"},
    {"network.input_injection": "first_step", "network.alpha": 0.5},
])
def test_variants_learn(overrides):
    cfg = relaxsim.load_config(overrides={"training.epochs": 8, **overrides})
    assert relaxsim.run(cfg)["test_accuracy"] > 0.85


def test_different_seeds_give_different_weights():
    cfg = relaxsim.load_config(overrides={"training.epochs": 1, "network.hidden": 8})
    a = relaxsim.run(cfg)
    b = relaxsim.run(cfg.replace({"training.seed": 1}))
    assert a["train_loss"] != b["train_loss"]


def test_divergence_stops_training_with_a_clear_message(tmp_path, capsys):
    """A NaN loss stops the run: one line naming epoch and batch, exit 2, earlier results kept."""
    from relaxsim.cli.app import main

    out = tmp_path / "run"
    common = ["run", "--quiet", "--out", str(out), "--set", "hardware.mode=ideal",
              "--set", "training.epochs=1", "--set", "network.hidden=8"]
    assert main(common) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()
    status = main([*common, "--overwrite", "--set", "training.optimizer=sgd",
                   "--set", "training.lr=1e200", "--set", "network.activation=relu"])
    err = capsys.readouterr().err
    assert status == 2
    assert err.startswith("relaxsim: error: training diverged at epoch 1, batch ")
    assert "the loss is nan; try a smaller training.lr (got 1e+200)" in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
