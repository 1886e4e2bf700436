"""Mesh weights as a machine: the geometry (propagation time, heaters, static power), and bad
input. The mesh's numerics are in tests/test_mesh.py."""

from __future__ import annotations

import json

import pytest

import relaxsim
from relaxsim.cli.app import main

C = 299_792_458.0
MESH = {"preset": "thermo_optic", "model": "mesh", "bits": "inf", "program_noise": 0.0,
        "static_power": "0 W"}


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
    ({"hardware.propagation_time": "auto"},
     'hardware.propagation_time: must be a time unless the weights are a mesh (model = "mesh"; '
     'thermo_optic is a crossbar) (got "auto")'),
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
