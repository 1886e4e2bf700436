"""The training options: initial banks (``network.init``), gradient clipping
(``training.clip_norm``), the learning-rate schedule (``training.schedule``, ``training.warmup``)
and decoupled weight decay (``training.weight_decay``)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import relaxsim
import relaxsim.training.checkpoint as ckpt_module
from relaxsim.training.checkpoint import CHECKPOINT
from relaxsim.training.optim import SGD, Adam, LearningRate, clip_gradients, gradient_norm
from tests.conftest import interrupt_at, make_net
from tests.test_resume import comparable

# -- initial banks ------------------------------------------------------------------------------


@pytest.mark.parametrize("banks,hidden", [(1, 5), (3, 16), (2, 64)])
def test_orthogonal_banks_are_orthogonal(banks, hidden):
    net = make_net(banks=banks, steps=max(banks, 2), hidden=hidden, n_inputs=7)
    W = _with_init(net, "orthogonal").init_params(3)["W"]
    eye = np.eye(hidden)
    for bank in W:
        assert np.max(np.abs(bank @ bank.T - eye)) < 1e-12
        assert np.max(np.abs(bank.T @ bank - eye)) < 1e-12


def test_orthogonal_banks_follow_the_documented_draws():
    """W_in, then one Gaussian per bank, then W_out: each bank is the sign-corrected Q of its
    Gaussian, so Q^T G is upper triangular with a positive diagonal (Mezzadri 2007)."""
    normal = make_net(banks=3, steps=3, hidden=6, n_inputs=4)
    ortho = _with_init(normal, "orthogonal")
    p_n, p_o = normal.init_params(11), ortho.init_params(11)
    gauss = p_n["W"] * np.sqrt(6)  # the banks' Gaussians, as the normal init scales them
    for Q, G in zip(p_o["W"], gauss):
        R = Q.T @ G
        assert np.max(np.abs(np.tril(R, -1))) < 1e-12
        assert np.all(np.diag(R) > 0)
    for key in ("W_in", "b", "W_out", "b_out"):  # the same draws whatever the init
        assert np.array_equal(p_n[key], p_o[key])


def test_identity_banks_and_the_same_other_weights():
    normal = make_net(banks=2, steps=4, hidden=5, n_inputs=3)
    p_n = normal.init_params(2)
    p_i = _with_init(normal, "identity").init_params(2)
    assert p_i["W"].shape == (2, 5, 5)
    assert all(np.array_equal(bank, np.eye(5)) for bank in p_i["W"])
    for key in ("W_in", "b", "W_out", "b_out"):
        assert np.array_equal(p_n[key], p_i[key])


def test_init_from_the_config_and_float32():
    cfg = relaxsim.load_config(overrides={"network.hidden": 8, "network.init": "orthogonal",
                                          "network.dtype": "float32"})
    net = relaxsim.build(cfg)
    assert net.init == "orthogonal"
    W = net.init_params(0)["W"]
    assert W.dtype == np.float32
    assert np.max(np.abs(W[0] @ W[0].T - np.eye(8))) < 1e-6
    assert relaxsim.build(relaxsim.load_config()).init == "normal"
    with pytest.raises(ValueError, match="init"):
        _with_init(net, "uniform")


def _fields(net):
    return {name: getattr(net, name) for name in net.__dataclass_fields__
            if net.__dataclass_fields__[name].init}


def _with_init(net, init):
    return type(net)(**{**_fields(net), "init": init})


# -- gradient clipping --------------------------------------------------------------------------


def test_clipping_scales_to_the_hand_computed_norm():
    # 3^2 + 4^2 + 12^2 + 84^2 = 85^2
    grads = {"W": np.array([[3.0, 0.0], [0.0, 4.0]]), "b": np.array([12.0]),
             "W_out": np.array([84.0])}
    before = {k: v.copy() for k, v in grads.items()}
    assert gradient_norm(grads) == 85.0
    norm = clip_gradients(grads, 17.0)
    assert norm == 85.0
    factor = 17.0 / 85.0
    for key, value in grads.items():
        assert np.array_equal(value, before[key] * factor)  # exactly, in place
    assert gradient_norm(grads) == pytest.approx(17.0, rel=1e-15)


def test_clipping_leaves_small_gradients_alone():
    grads = {"W": np.array([3.0, 4.0], dtype=np.float32)}
    assert clip_gradients(grads, 5.0) == 5.0  # not larger: unchanged
    assert grads["W"].tolist() == [3.0, 4.0]
    assert clip_gradients(grads, 2.5) == 5.0
    assert grads["W"].dtype == np.float32 and grads["W"].tolist() == [1.5, 2.0]


def test_a_clip_that_never_triggers_changes_nothing(tmp_path):
    base = {"network.hidden": 16, "training.epochs": 3}
    runs = {}
    for clip in ("inf", 1e9):
        out = tmp_path / str(clip)
        relaxsim.run(relaxsim.load_config(overrides={**base, "training.clip_norm": clip}),
                     out=out)
        runs[clip] = comparable(out)
    assert runs[1e9]["weights.npz"] == runs["inf"]["weights.npz"]
    assert runs[1e9]["metrics"] == runs["inf"]["metrics"]


# -- the learning rate --------------------------------------------------------------------------


def test_cosine_schedule_with_warmup():
    lr, S_w, S = 0.1, 4, 20
    rate = LearningRate(lr, "cosine", warmup=S_w, total=S)
    assert not rate.constant
    assert [rate(t) for t in range(4)] == [lr * (t + 1) / S_w for t in range(4)]
    assert rate(0) == pytest.approx(0.025, rel=1e-15)
    assert rate(3) == lr  # the end of the warm-up: the full rate
    assert rate(4) == lr  # the cosine starts at lr
    assert rate(12) == pytest.approx(lr / 2, rel=1e-15)  # half-way
    for t in range(S_w, S):
        assert rate(t) == lr * 0.5 * (1 + math.cos(math.pi * (t - S_w) / (S - S_w)))
    assert rate(S - 1) == pytest.approx(lr * 0.5 * (1 + math.cos(math.pi * 15 / 16)))
    assert 0 < rate(S - 1) < rate(S - 2)  # decreasing, small at the last step
    assert rate(S) == pytest.approx(0.0, abs=1e-18)  # would be 0 one step after the last
    assert all(rate(t) < rate(t - 1) for t in range(S_w + 1, S))


def test_cosine_without_warmup_and_constant_schedules():
    rate = LearningRate(0.5, "cosine", warmup=0, total=10)
    assert rate(0) == 0.5 and rate(5) == pytest.approx(0.25, rel=1e-15)
    constant = LearningRate(0.002, "constant", warmup=0, total=100)
    assert constant.constant
    assert all(constant(t) is constant.lr for t in (0, 1, 50, 99))  # the lr itself: same bytes
    warm = LearningRate(0.3, "constant", warmup=3, total=9)
    assert [warm(t) for t in range(9)] == [0.3 * 1 / 3, 0.3 * 2 / 3, 0.3] + [0.3] * 6
    assert warm(0) == pytest.approx(0.1, rel=1e-15)
    all_warm = LearningRate(1.0, "cosine", warmup=5, total=5)  # warmup = epochs
    assert [all_warm(t) for t in range(5)] == [0.2, 0.4, 0.6, 0.8, 1.0]
    with pytest.raises(ValueError):
        LearningRate(1.0, "linear")
    with pytest.raises(ValueError):
        LearningRate(1.0, "cosine", warmup=6, total=5)


def test_training_steps_with_the_scheduled_rates(monkeypatch):
    """The loop counts optimizer steps from 0 across epochs: warm-up over the first epoch's
    batches, then the cosine over the rest."""
    seen = []
    real_step = Adam.step

    def recording(self, params, grads, lr=None):
        seen.append(lr)
        return real_step(self, params, grads, lr)

    monkeypatch.setattr(Adam, "step", recording)
    cfg = relaxsim.load_config(overrides={"network.hidden": 8, "training.epochs": 3,
                                          "hardware.mode": "ideal", "training.lr": 0.01,
                                          "training.schedule": "cosine", "training.warmup": 1})
    relaxsim.run(cfg)
    per_epoch, rest = divmod(len(seen), 3)
    assert rest == 0 and per_epoch > 1
    rate = LearningRate(0.01, "cosine", per_epoch, 3 * per_epoch)
    assert seen == [rate(t) for t in range(3 * per_epoch)]
    assert seen[per_epoch - 1] == 0.01 and seen[0] == 0.01 / per_epoch


# -- weight decay -------------------------------------------------------------------------------


def _params():
    rng = np.random.default_rng(4)
    return {"W_in": rng.standard_normal((3, 2)), "W": rng.standard_normal((2, 3, 3)),
            "b": rng.standard_normal((2, 3)), "W_out": rng.standard_normal((4, 3)),
            "b_out": rng.standard_normal(4)}


@pytest.mark.parametrize("optimizer", [SGD, Adam])
def test_weight_decay_shrinks_the_weights_exactly(optimizer):
    lr, wd = 0.1, 0.01
    params = _params()
    before = {k: v.copy() for k, v in params.items()}
    opt = optimizer(params, lr=lr, weight_decay=wd)
    opt.step(params, {k: np.zeros_like(v) for k, v in params.items()})
    for key in ("W_in", "W", "W_out"):
        assert np.array_equal(params[key], before[key] * (1 - lr * wd))
    for key in ("b", "b_out"):  # biases are not decayed
        assert np.array_equal(params[key], before[key])
    opt.step(params, {k: np.zeros_like(v) for k, v in params.items()}, lr=0.5)  # the step's lr
    assert np.array_equal(params["W"], before["W"] * (1 - lr * wd) * (1 - 0.5 * wd))


def test_no_weight_decay_by_default():
    params = _params()
    before = {k: v.copy() for k, v in params.items()}
    SGD(params, lr=0.1).step(params, {k: np.zeros_like(v) for k, v in params.items()})
    assert all(np.array_equal(params[k], before[k]) for k in params)


# -- kill and resume ----------------------------------------------------------------------------

OPTIONS = {"network.hidden": 16, "training.epochs": 4, "training.schedule": "cosine",
           "training.warmup": 1, "training.clip_norm": 1.0, "training.weight_decay": 0.01,
           "network.init": "orthogonal"}


@pytest.mark.parametrize("extra", [
    {},
    {"hardware.mode": "ideal", "training.optimizer": "sgd", "training.lr": 0.05,
     "training.momentum": 0.9},
], ids=["hardware_aware-adam", "ideal-sgd-momentum"])
def test_interrupted_then_resumed_with_the_options_is_bit_identical(extra, tmp_path,
                                                                    monkeypatch):
    cfg = relaxsim.load_config(overrides={**OPTIONS, **extra})
    reference = tmp_path / "reference"
    relaxsim.run(cfg, out=reference)
    out = tmp_path / "run"
    with monkeypatch.context() as patch:
        interrupt_at(patch, epoch=3, batch=7)
        with pytest.raises(KeyboardInterrupt):
            relaxsim.run(cfg, out=out)
    assert ckpt_module.load(out / CHECKPOINT).epoch == 2
    relaxsim.resume(out)
    assert comparable(out) == comparable(reference)


def test_the_options_change_the_training(tmp_path):
    """Each option on its own changes the weights of a short run (each is really applied)."""
    base = {"network.hidden": 8, "training.epochs": 2, "hardware.mode": "ideal"}
    weights = {}
    for name, extra in [("default", {}), ("clip", {"training.clip_norm": 0.1}),
                        ("cosine", {"training.schedule": "cosine"}),
                        ("warmup", {"training.warmup": 1}),
                        ("decay", {"training.weight_decay": 0.1}),
                        ("orthogonal", {"network.init": "orthogonal"}),
                        ("identity", {"network.init": "identity"})]:
        out = tmp_path / name
        relaxsim.run(relaxsim.load_config(overrides={**base, **extra}), out=out)
        weights[name] = (out / "weights.npz").read_bytes()
    assert len(set(weights.values())) == len(weights)
