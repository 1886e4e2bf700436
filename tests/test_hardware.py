"""Hardware in the loop: the ideal limit, the direction of every effect, training modes."""

from __future__ import annotations

import json

import numpy as np
import pytest

import relaxsim
from relaxsim.cli.app import main
from relaxsim.hardware import build_hardware
from relaxsim.kernels import passes as kernels
from relaxsim.training.evaluate import evaluate_run

IDEAL_LIMIT_TOL = 1e-12
IDEAL = {f"hardware.{kind}": {"preset": "ideal"} for kind in ("switch", "weights", "active")}
SMALL = {"network.hidden": 32, "training.epochs": 6}


# A PCM crossbar with noise alike for every weight and no wear (the compiled write path): the
# numbers of the pcm preset before its conductance statistics (relaxsim.devices.pcm)
UNIFORM_PCM = {"preset": "pcm", "statistics": "uniform", "drift_compensation": "none",
               "endurance_writes": "inf", "program_noise": 0.04, "read_noise": 0.01,
               "drift_nu": 0.05, "drift_nu_std": 0.008}

def test_ideal_presets_give_the_ideal_coupling():
    cfg = relaxsim.load_config(overrides={**IDEAL, "hardware.mode": "hardware_aware"})
    hw = build_hardware(cfg.hardware)
    net = relaxsim.build(cfg)
    cp = hw.coupling(net.schedule, net.alpha, "tanh")
    ideal = net.coupling
    for key in ("a", "c", "eps", "tr"):
        np.testing.assert_array_equal(getattr(cp, key), getattr(ideal, key))
    assert (cp.code, cp.act_params) == (ideal.code, ideal.act_params)


@pytest.mark.parametrize("mode", ["hardware_aware", "deploy"])
def test_ideal_limit_reproduces_the_ideal_network(mode):
    """Every effect off: the same metrics and weights as the ideal network, to 1e-12."""
    base = relaxsim.load_config(overrides={**SMALL, **IDEAL, "hardware.mode": "ideal"})
    ideal = relaxsim.run(base)
    on_hw = relaxsim.run(base.replace({"hardware.mode": mode}))
    for key in ("test_accuracy", "val_accuracy", "train_loss", "test_loss", "val_loss"):
        assert abs(on_hw[key] - ideal[key]) <= IDEAL_LIMIT_TOL * max(1.0, abs(ideal[key])), key
    assert on_hw["best_epoch"] == ideal["best_epoch"]


def test_insertion_loss_compounds_with_the_number_of_passes():
    """Linear elements, input at the first step only: h_T scales as tr^(L_T - 1)."""
    rng = np.random.default_rng(0)
    N, D = 6, 4
    for T in (2, 3, 5):
        params = {"W_in": rng.standard_normal((N, D)), "W": rng.standard_normal((1, N, N)),
                  "b": np.zeros((1, N)), "W_out": np.eye(N), "b_out": np.zeros(N)}
        X = rng.standard_normal((1, 3, D))
        slot = np.r_[0, -np.ones(T - 1, dtype=np.int64)]
        sched = np.zeros(T, dtype=np.int64)
        args = (params, X, slot, sched, sched, np.zeros(T), np.ones(T), np.zeros(T), 0)
        linear = (1.0, float("inf"), 0.0)
        Z0, _ = kernels.forward(*args, act_params=linear)
        tr = 10 ** (-3.0 / 20)  # 3 dB per pass
        Z1, _ = kernels.forward(*args, act_params=linear, tr=np.full(T, tr))
        np.testing.assert_allclose(Z1, Z0 * tr ** (T - 1), rtol=1e-12)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "ideal"
    cfg = relaxsim.load_config(overrides={**SMALL, **IDEAL, "hardware.mode": "ideal",
                                          "training.epochs": 12})
    relaxsim.run(cfg, out=out)
    return out


def accuracy_on(run, repeats=2, **overrides):
    return evaluate_run(run, overrides, repeats=repeats)["accuracy_mean"]


def assert_falls(accuracies, drop=0.05, slack=0.02):
    """Non-increasing (up to ``slack`` of noise) and at least ``drop`` lower at the end."""
    assert all(b <= a + slack for a, b in zip(accuracies, accuracies[1:])), accuracies
    assert accuracies[-1] <= accuracies[0] - drop, accuracies


@pytest.mark.filterwarnings("ignore::relaxsim.errors.HardwareWarning")  # unsettled on purpose
def test_accuracy_falls_as_switch_leak_grows(trained_run):
    """A fixed clock 20 ps after the signal: slower switches leave more of the old bank in."""
    accs = [accuracy_on(trained_run, repeats=1, **{"hardware.clock": "30 ps",
                                                    "hardware.propagation_time": "10 ps",
                                                    "hardware.switch.rise_time": rise})
            for rise in ("1 ps", "20 ps", "60 ps", "200 ps")]
    assert_falls(accs)


@pytest.mark.filterwarnings("ignore::relaxsim.errors.HardwareWarning")  # unsettled on purpose
def test_accuracy_falls_as_the_active_element_slows(trained_run):
    accs = [accuracy_on(trained_run, repeats=1, **{"hardware.clock": "30 ps",
                                                    "hardware.propagation_time": "10 ps",
                                                    "hardware.active.response_time": tau})
            for tau in ("1 ps", "20 ps", "200 ps", "2 ns")]
    assert_falls(accs)


def test_accuracy_falls_with_read_noise(trained_run):
    accs = [accuracy_on(trained_run, **{"hardware.weights.read_noise": sigma,
                                        "hardware.weights.w_max": 4.0})
            for sigma in (0.0, 0.05, 0.2, 0.5)]
    assert_falls(accs)


def test_pcm_drift_lowers_accuracy_with_elapsed_time(trained_run):
    """PCM cells drift as (t / t0)^-nu (nu = 0.1, the fast end of the published 0.05-0.1), with
    programming and read noise off so that only the drift acts."""
    pcm = {"hardware.weights": {**UNIFORM_PCM, "program_noise": 0.0, "read_noise": 0.0,
                                "drift_nu_std": 0.0, "bits": float("inf"), "w_max": 100.0,
                                "drift_nu": 0.1}}
    accs = [accuracy_on(trained_run, **pcm, **{"hardware.drift_time": t})
            for t in ("0 s", "1 h", "1 day", "1000 day")]
    assert_falls(accs, drop=0.02, slack=0.0)


def test_hardware_aware_training_on_realistic_devices_learns():
    cfg = relaxsim.load_config(overrides={**SMALL, "hardware.mode": "hardware_aware"})
    result = relaxsim.run(cfg)
    assert result["test_accuracy"] > 0.85
    assert result["hardware"]["mode"] == "hardware_aware"
    assert result["hardware"]["programming_events"] > 0


def test_deploy_reports_the_ideal_accuracy_too():
    cfg = relaxsim.load_config(overrides={**SMALL, "hardware.mode": "deploy",
                                          "hardware.weights.read_noise": 0.3})
    result = relaxsim.run(cfg)
    assert result["test_accuracy_ideal"] > result["test_accuracy"]


def test_evaluate_command(trained_run, capsys, tmp_path):
    before = {p.name: p.read_bytes() for p in trained_run.iterdir()}
    status = main(["evaluate", str(trained_run), "--repeats", "3", "--json",
                   str(tmp_path / "e.json"), "--set", "hardware.weights.read_noise=0.1",
                   "--set", "hardware.weights.w_max=4"])
    out = capsys.readouterr().out
    assert status == 0 and "+-" in out and "ideal" in out
    res = json.loads((tmp_path / "e.json").read_text())
    assert res["repeats"] == 3 and len(res["accuracies"]) == 3 and res["accuracy_std"] > 0
    assert {p.name: p.read_bytes() for p in trained_run.iterdir()} == before


@pytest.mark.parametrize("argv,fragment", [
    (["--repeats", "0"], "--repeats: must be >= 1 (got 0)"),
    (["--set", "hardware.clock=5 ps"],
     "hardware.clock: must be longer than hardware.propagation_time"),
    (["--set", "hardware.switch.preset=nosuch"], "nosuch"),
    (["--set", "hardware.weights.read_noise=0.1"], "hardware.weights.w_max: must be finite"),
])
def test_evaluate_bad_input(trained_run, capsys, argv, fragment):
    status = main(["evaluate", str(trained_run), *argv])
    err = capsys.readouterr().err
    assert status == 2 and fragment in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_evaluate_refuses_a_directory_without_a_run(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path)]) == 2
    assert "config.toml" in capsys.readouterr().err


def test_gradient_through_programming_matches_finite_differences():
    """Clipping to the element's range and drift on (quantisation and noise off): the gradient the
    engine applies to the master weights is the exact gradient of L(drift * clip(W))."""
    from relaxsim.validation.gradients import finite_differences
    from tests.test_gradients import assert_gradients_match

    cfg = relaxsim.load_config(overrides={
        "network.hidden": 4, "hardware.drift_time": "0.5 s",
        "hardware.weights": {"preset": "ideal", "w_max": 0.3, "drift": "exponential",
                             "drift_tau": "2 s"}})
    hw, net = build_hardware(cfg.hardware), relaxsim.build(cfg)
    rng = np.random.default_rng(3)
    params = net.init_params(rng)
    params["W"] = rng.uniform(-0.6, 0.6, params["W"].shape)
    params["W"][np.abs(np.abs(params["W"]) - 0.3) < 1e-2] = 0.1  # away from the clipping kink
    assert (np.abs(params["W"]) > 0.3).any() and (np.abs(params["W"]) < 0.3).any()
    x, y = rng.standard_normal((5, 64)), rng.integers(0, 10, 5)

    def on_hardware(W):
        W_hw, factor = hw.read(hw.program(W, rng), hw.drift_time_s, rng)
        return W_hw, factor

    W_hw, factor = on_hardware(params["W"])
    np.testing.assert_allclose(W_hw, np.exp(-0.25) * np.clip(params["W"], -0.3, 0.3), rtol=1e-15)
    grad = net.loss_and_grad({**params, "W": W_hw}, x, y)[1]["W"] * factor
    fd = finite_differences(
        lambda p: net.loss_and_grad({**params, "W": on_hardware(p["W"])[0]}, x, y)[0],
        {"W": params["W"].copy()})
    assert_gradients_match({"W": grad}, fd)


def test_program_and_read_is_program_then_read_at_once():
    """Without noise, writing and reading at once (how ``update_every = 1`` trains) gives the
    weights and the gradient factor of a write then a read at time 0, into the buffers given;
    wrong buffers are refused before anything is written."""
    cfg = relaxsim.load_config(overrides={"hardware.weights": {
        **UNIFORM_PCM, "w_max": 0.5, "program_noise": 0, "read_noise": 0, "drift_nu_std": 0}})
    hw = build_hardware(cfg.hardware)
    W = np.random.default_rng(0).uniform(-2.0, 2.0, (2, 6, 6))  # some outside the range
    W_read, factor = hw.read(hw.program(W, np.random.default_rng(1)), 0.0,
                             np.random.default_rng(1))
    assert 0 < factor.sum() < factor.size
    out = (np.empty_like(W), np.empty_like(W))
    got = hw.program_and_read(W, np.random.default_rng(1), out=out)
    assert got[0] is out[0] and got[1] is out[1]
    np.testing.assert_array_equal(got[0], W_read)
    np.testing.assert_array_equal(got[1], factor)
    with pytest.raises(ValueError, match=r"out: expected a C-contiguous array of shape \(2, 6"):
        hw.program_and_read(W, np.random.default_rng(1), out=(np.empty((2, 6)), out[1]))
    with pytest.raises(ValueError, match="in_range: .* dtype float64 or bool"):
        hw.program_and_read(W, np.random.default_rng(1), out=(out[0], out[1].astype(np.int8)))


def test_drift_exponents_are_fixed_at_programming_and_drawn_when_first_needed():
    """Programming draws only the key of each weight's drift exponent; the exponents drawn from
    it later are the ones an eager draw at programming gives, the same at every read, and a read
    before the drift's onset draws none."""
    cfg = relaxsim.load_config(overrides={"hardware.weights": UNIFORM_PCM})
    hw = build_hardware(cfg.hardware)
    W = np.random.default_rng(0).uniform(-0.5, 0.5, (2, 6, 6))
    programmed = hw.program(W, np.random.default_rng(4))
    hw.read(programmed, 0.0, np.random.default_rng(1))
    assert programmed.nu_key is not None and programmed.nu_draws is None
    rng = np.random.default_rng(4)
    hw.weights.program(W, rng)  # the same draws as hw.program up to the exponents
    eager = hw.weights.drift_exponents(W.shape, rng)
    assert eager.std() > 0
    first = hw.drift_factor(programmed, 1e3)
    np.testing.assert_array_equal(programmed.nu_draws, eager)
    np.testing.assert_array_equal(first, hw.weights.drift_factor(1e3, W.shape, nu=eager))
    np.testing.assert_array_equal(hw.drift_factor(programmed, 1e3), first)


@pytest.mark.parametrize("setting,message", [
    ("hardware.propagation_time=-5 ps",
     "hardware.propagation_time: must be a finite time > 0 or 'auto' (got '-5 ps')"),
    ("hardware.drift_time=nan", 'hardware.drift_time: must be a time such as "200 ps" (got nan)'),
    ("hardware.clock=5 ps", "hardware.clock: must be longer than hardware.propagation_time "
                            "(got 5 ps <= 10 ps)"),
    ("hardware.clock=0", "hardware.clock: must be a finite time > 0 or 'auto' (got 0)"),
    ("hardware.mode=hw", "hardware.mode: must be one of ideal, hardware_aware, deploy (got 'hw')"),
    ("hardware.switch=3", 'hardware.switch: must be a table such as { preset = "ideal" } (got 3)'),
    ("hardware.update_every=0", "hardware.update_every: must be >= 1 (got 0)"),
    ("hardware.switch.rise_time=5 pJ",
     'hardware.switch.rise_time: must be a time such as "200 ps" (got "5 pJ")'),
    ("hardware.switch.extinction_ratio=0 dB",
     "hardware.switch.extinction_ratio: must be > 0 dB (got 0 dB)"),
    ("hardware.weights.bits=0", "hardware.weights.bits: must be >= 1 (got 0)"),
    ("hardware.switch.preset=nosuch",
     "hardware.switch.preset: unknown switch preset 'nosuch'; known: eo_mzi, ideal, mems, "
     "si_mzi_carrier, soa_gate"),
    ("hardware.switch.rise_tme=1 ps",
     "hardware.switch.rise_tme: unknown key; did you mean 'rise_time'?"),
])
def test_hardware_bad_input_exits_2(setting, message, capsys, tmp_path):
    status = main(["run", "--quiet", "--out", str(tmp_path / "out"), "--set", setting])
    captured = capsys.readouterr()
    assert status == 2 and captured.out == ""
    assert captured.err.strip() == f"relaxsim: error: {message}"
    assert not (tmp_path / "out").exists()


def test_evaluate_refuses_truncated_or_mismatched_weights(trained_run, tmp_path, capsys):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(trained_run, broken)
    (broken / "weights.npz").write_bytes((trained_run / "weights.npz").read_bytes()[:100])
    assert main(["evaluate", str(broken), "--repeats", "1"]) == 2
    assert "weights.npz: not a readable weights file" in capsys.readouterr().err
    assert main(["evaluate", str(trained_run), "--repeats", "1",
                 "--set", "network.hidden=8"]) == 2
    err = capsys.readouterr().err
    assert "weights.npz: W_in has shape (32, 64) but the config's network needs (8, 64)" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("jitter_draws", ["batch", "sample"])
@pytest.mark.parametrize("hidden,batch,threads", [(13, 7, False), (64, 300, True)])
@pytest.mark.parametrize("weight_noise", [0.02, 0.0])
def test_training_batch_draws_what_the_separate_calls_draw(dtype, jitter_draws, hidden, batch,
                                                           threads, weight_noise, monkeypatch):
    """A training batch's draws prepared once and run as one compiled call: the bytes and the
    generator's advance of program_and_read, jittered_mix and draw_noise called in turn (also for
    banks handed over in another dtype or layout: converted to the network's first)."""
    from relaxsim.data.tasks import TaskInfo
    from relaxsim.kernels import rng as R
    from relaxsim.kernels.passes import Workspace
    from relaxsim.model import build

    monkeypatch.setattr(R, "PARALLEL_MIN", 1 << 12 if threads else 1 << 40)
    cfg = relaxsim.load_config(overrides={
        "network.hidden": hidden, "network.steps": 6, "network.banks": 3, "network.dtype": dtype,
        "hardware.mode": "hardware_aware", "hardware.switch": "si_mzi_carrier",
        "hardware.weights": UNIFORM_PCM, "hardware.clock": "60 ps",
        "hardware.active": {"preset": "soa", "noise": 0.02, "detector_noise": 0.01},
        "hardware.jitter_draws": jitter_draws, "hardware.weights.bits": 6,
        "hardware.weights.program_noise": weight_noise, "hardware.weights.read_noise": weight_noise})
    net = build(cfg, TaskInfo(n_inputs=5, n_classes=3))
    hw = build_hardware(cfg.hardware)
    cp = hw.coupling(net.schedule, net.alpha, cfg.network.activation, net.dtype)
    W = net.init_params(0)["W"] * 3  # some outside the elements' range
    draws = hw.training_draws(cp, batch, hidden, W.shape, out=Workspace().get)
    r1, r2 = np.random.default_rng(5), np.random.default_rng(5)
    for _ in range(2):  # the second call reuses the work arrays
        got = draws(W, r1)
        want = (*hw.program_and_read(W, r2), hw.jittered_mix(cp, batch, r2),
                *hw.draw_noise(r2, 6, batch, hidden, net.dtype))
        for g, w in zip(got, want):
            assert g.dtype == w.dtype and g.shape == w.shape  # the mixing: float64 always
            np.testing.assert_array_equal(g, w)
        assert r1.bit_generator.state == r2.bit_generator.state
    assert got[2].shape == ((6, batch, 3) if jitter_draws == "sample" else (6, 3))
    other = np.asfortranarray(W.astype(np.float64 if dtype == "float32" else np.float32))
    got = draws(other, np.random.default_rng(9))
    want = hw.program_and_read(np.ascontiguousarray(other, dtype=dtype), np.random.default_rng(9))
    np.testing.assert_array_equal(got[0], want[0])
    with pytest.raises(ValueError, match=rf"W: expected shape \(3, {hidden}, {hidden}\)"):
        draws(W[:, :-1].copy(), r1)
