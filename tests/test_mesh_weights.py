"""Mesh weights as a machine: the geometry (propagation time, heaters, static power), and bad
input. The mesh's numerics are in tests/test_mesh.py."""

from __future__ import annotations

import json

import pytest

import relaxsim
from relaxsim.cli.app import main

C = 299_792_458.0
MESH = {"preset": "thermo_optic"}  # a mesh


def test_propagation_through_the_mesh():
    cfg = relaxsim.load_config(overrides={"hardware.weights": MESH, "network.hidden": 16,
                                          "hardware.propagation_time": "auto"})
    hw = relaxsim.assemble(cfg).hardware
    # 2 x 16 + 1 columns of 200 um at n_g = 4.2
    assert hw.propagation_time_s == pytest.approx(33 * 200e-6 * 4.2 / C, rel=1e-15)


def test_heaters_and_static_power_follow_from_the_mesh():
    cfg = relaxsim.load_config(overrides={"hardware.weights": MESH, "network.hidden": 16})
    acc = relaxsim.assemble(cfg).figures["architectures"]
    # per bank: two meshes of 16 x 15 / 2 MZIs with two shifters each, 16 attenuators
    per_bank = 2 * 16 * 15 + 16
    assert acc["relaxnet"]["devices"]["heaters"] == 2 * per_bank
    assert acc["unrolled"]["devices"]["heaters"] == 4 * per_bank
    assert acc["relaxnet"]["static_power_w"]["weights"] == pytest.approx(2 * per_bank * 30e-3)


@pytest.mark.parametrize("overrides, message", [
    ({"hardware.weights": {**MESH, "mzi_length": "0 m"}, "hardware.propagation_time": "auto"},
     'hardware.weights.mzi_length: must be > 0 for hardware.propagation_time = "auto" (the '
     "mesh's geometry) (got 0)"),
    ({"hardware.weights.preset": "rram", "hardware.propagation_time": "auto"},
     'hardware.propagation_time: must be a time unless the weights are a mesh (model = "mesh"; '
     'rram is a crossbar) (got "auto")'),
    ({"hardware.weights": {**MESH, "crosstalk": 1.0}},
     "hardware.weights.crosstalk: must be in [0, 1) (got 1)"),
    ({"hardware.weights": {**MESH, "crosstalk": -0.1}},
     "hardware.weights.crosstalk: must be in [0, 1) (got -0.1)"),
    ({"hardware.weights": {**MESH, "bits": 8}},
     'hardware.weights.bits: must be inf with model = "mesh" (a mesh is programmed by its '
     "phases: phase_bits, phase_noise; its heaters draw phase_power) (got 8)"),
    ({"hardware.weights": {**MESH, "model": "ring"}},
     'hardware.weights.model: must be one of crossbar, mesh (got "ring")'),
])
def test_bad_mesh_input_is_one_line(tmp_path, capsys, overrides, message):
    args = ["run", "--out", str(tmp_path / "r")]
    for key, value in overrides.items():
        items = ({f"{key}.{k}": v for k, v in value.items()} if isinstance(value, dict)
                 else {key: value})
        for name, v in items.items():
            args += ["--set", f"{name}={json.dumps(v)}"]
    assert main(args) == 2
    out, err = capsys.readouterr()
    assert err.strip().splitlines() == [f"relaxsim: error: {message}"]
    assert not (tmp_path / "r").exists()  # nothing written


# -- the mesh in training: the ideal limit, the gradient, the input bank --------------------------

import numpy as np  # noqa: E402

from relaxsim.data.tasks import TaskInfo  # noqa: E402
from relaxsim.training.engine import engines_for  # noqa: E402

QUIET = {"phase_bits": "inf", "phase_noise": "0 rad", "crosstalk": 0.0, "splitter_imbalance": 0.0,
         "mzi_loss": "0 dB", "read_noise": 0.0}


def engine(weights: dict, **extra):
    cfg = relaxsim.load_config(overrides={
        "hardware.weights": {**MESH, **weights}, "network.hidden": 8, "hardware.update_every": 1,
        "hardware.switch": "ideal", "hardware.active": "ideal", **extra})
    machine = relaxsim.assemble(cfg, TaskInfo(n_inputs=5, n_classes=3))
    eng = engines_for(machine, seed=0)[0]
    params = machine.network_on_hardware.init_params(0)
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(6, 5)), rng.integers(0, 3, 6)
    return machine, eng, params, x, y


def test_an_ideal_mesh_is_the_ideal_network():
    machine, eng, params, x, y = engine({**QUIET, "w_max": 100.0})
    loss, grads = eng.loss_and_grad(params, x, y)
    ideal_loss, ideal_grads = machine.network_on_hardware.loss_and_grad(params, x, y)
    assert loss == pytest.approx(ideal_loss, rel=1e-10)
    for key in grads:
        np.testing.assert_allclose(grads[key], ideal_grads[key], rtol=1e-8, atol=1e-12)


def test_the_gradient_stops_along_clipped_singular_values():
    machine, eng, params, x, y = engine({**QUIET, "w_max": 0.8})
    params = {**params, "W": params["W"] * 2.0}  # singular values past 0.8
    _, grads = eng.loss_and_grad(params, x, y)
    U, Vt, clipped, _ = eng.programmed.clip
    assert clipped.any() and not clipped.all()
    for l, i in zip(*np.nonzero(clipped)):
        assert abs(U[l, :, i] @ grads["W"][l] @ Vt[l, i, :]) < 1e-12
    # along an unclipped direction it passes unchanged
    raw = machine.network_on_hardware.loss_and_grad({**params, "W": eng.programmed.W}, x, y)[1]
    l, i = next(zip(*np.nonzero(~clipped)))
    assert U[l, :, i] @ grads["W"][l] @ Vt[l, i, :] == pytest.approx(
        U[l, :, i] @ raw["W"][l] @ Vt[l, i, :], rel=1e-10)
    # the realised banks' spectral norm is the bound
    assert np.linalg.norm(eng.programmed.W[0], 2) == pytest.approx(0.8, rel=1e-9)


def test_phase_errors_spread_over_the_whole_matrix():
    machine, eng, params, x, y = engine({**QUIET, "w_max": 100.0, "phase_noise": "0.01 rad"})
    eng.loss_and_grad(params, x, y)
    err = eng.programmed.W - params["W"]
    assert np.all(err != 0)  # every weight moves, not a few
    assert 1e-4 < np.std(err) < 0.1


def test_an_input_bank_in_a_mesh():
    machine, eng, params, x, y = engine({**QUIET, "w_max": 100.0},
                                        **{"hardware.input_layer": "bank"})
    loss, grads = eng.loss_and_grad(params, x, y)
    ideal_loss = machine.network_on_hardware.loss_and_grad(params, x, y)[0]
    assert loss == pytest.approx(ideal_loss, rel=1e-10)
    assert grads["W_in"].shape == params["W_in"].shape
