"""relaxsim.assemble: one place turns a config into the network on its machine, and the timing
model runs once per (architecture, pipelining mode) a run reports."""

from __future__ import annotations

import json

import numpy as np
import pytest
import simpy

import relaxsim
from relaxsim.assembly import Assembly
from relaxsim.hardware import build_hardware
from relaxsim.training.engine import HardwareEngine, engines_for

SMALL = {"network.hidden": 8, "training.epochs": 1}


@pytest.fixture
def environments(monkeypatch):
    """The number of SimPy environments made while the test runs (each is one simulation)."""
    made = []
    init = simpy.Environment.__init__

    def counting(self, *args, **kwargs):
        made.append(self)
        init(self, *args, **kwargs)

    monkeypatch.setattr(simpy.Environment, "__init__", counting)
    return made


@pytest.mark.parametrize("overrides, runs", [
    # the default (hardware_aware, sequential): ReLaX-Net, RNN, reprogrammed bank, DNN
    ({}, 4),
    ({"hardware.mode": "ideal"}, 4),
    ({"hardware.mode": "deploy"}, 4),
    # pipelined: each architecture's stream, and its inference alone (latency, coupling)
    ({"hardware.pipelining": "pipelined", "hardware.in_flight": 3}, 8),
])
def test_a_run_simulates_each_architecture_once_per_pipelining_mode(environments, tmp_path,
                                                                     overrides, runs):
    relaxsim.run(relaxsim.load_config(overrides={**SMALL, **overrides}), out=tmp_path / "r")
    assert len(environments) == runs


def test_the_assembly_is_what_the_parts_give_built_by_hand(environments):
    cfg = relaxsim.load_config(overrides={"hardware.clock": "30 ps"})
    machine = relaxsim.assemble(cfg)
    assert isinstance(machine, Assembly)
    net = relaxsim.build(cfg)
    hw = build_hardware(cfg.hardware, cfg.network.banks, cfg.network.hidden)
    assert machine.hardware == hw
    assert machine.network.param_shapes() == net.param_shapes()
    by_hand = hw.coupling(net.schedule, net.alpha, cfg.network.activation, net.dtype)
    for name in ("a", "c", "eps", "tr", "gaps"):
        np.testing.assert_array_equal(getattr(machine.coupling, name), getattr(by_hand, name))
    assert json.dumps(machine.figures, sort_keys=True) == json.dumps(
        hw.figures(net.schedule, net.banks, net.hidden, shape=machine.shape), sort_keys=True)
    assert machine.network_on_hardware.coupling is machine.coupling
    assert machine.cautions() == hw.cautions(by_hand)
    made = len(environments)
    machine.coupling, machine.figures, machine.inference_time_s  # asked again: nothing new
    assert len(environments) == made and machine.timing.runs == 4


def test_the_engines_take_the_machines_simulated_period(environments):
    cfg = relaxsim.load_config(overrides={"hardware.pipelining": "pipelined",
                                          "hardware.in_flight": 2})
    machine = relaxsim.assemble(cfg)
    train_engine, test_engine = engines_for(machine, seed=0)
    assert isinstance(train_engine, HardwareEngine) and train_engine is test_engine
    assert train_engine.inference_time_s == machine.figures["period_s"]
    # alone, the engine simulates the same period itself
    assert HardwareEngine(machine.network_on_hardware, machine.hardware,
                          np.random.default_rng(0)).inference_time_s == train_engine.inference_time_s


def test_ideal_engines_simulate_nothing(environments):
    machine = relaxsim.assemble(relaxsim.load_config(overrides={"hardware.mode": "ideal"}))
    train_engine, test_engine = engines_for(machine, seed=0)
    assert not isinstance(train_engine, HardwareEngine) and environments == []


def test_assemble_sizes_the_network_for_the_given_task_info():
    from relaxsim.data.tasks import TaskInfo

    machine = relaxsim.assemble(relaxsim.load_config(), TaskInfo(n_inputs=5, n_classes=3))
    assert machine.network.param_shapes()["W_in"] == (64, 5)
    assert machine.network.param_shapes()["W_out"] == (3, 64)


def test_a_timing_of_another_machine_or_schedule_is_refused():
    cfg = relaxsim.load_config()
    machine = relaxsim.assemble(cfg)
    other = relaxsim.assemble(cfg.replace({"network.schedule": "blocked"}))
    hw, net = machine.hardware, machine.network
    with pytest.raises(ValueError, match="another machine, schedule or bank count"):
        hw.figures(net.schedule, net.banks, net.hidden, timing=other.timing)
    with pytest.raises(ValueError, match="another schedule"):
        hw.coupling(net.schedule, net.alpha, "tanh", sim=other.timing.alone())


def test_lazy_registry_names_are_known_before_import_and_refuse_a_second_registration():
    from relaxsim.errors import UnknownNameError
    from relaxsim.registry import Registry

    reg = Registry("widget")
    reg.register_lazy("tasks", "relaxsim.data.tasks:TaskInfo")
    assert "tasks" in reg and reg.names() == ["tasks"]
    reg.check("tasks")
    with pytest.raises(UnknownNameError, match="unknown widget 'taks'; known: tasks; did you mean"):
        reg.check("taks")
    with pytest.raises(ValueError, match="widget 'tasks' is already registered"):
        reg.register("tasks", object())
    with pytest.raises(ValueError, match="widget 'tasks' is already registered"):
        reg.register_lazy("tasks", "x:y")
    from relaxsim.data.tasks import TaskInfo

    assert reg.get("tasks") is TaskInfo


def test_every_built_in_lazy_entry_resolves_to_what_its_module_defines():
    from relaxsim.data.tasks import TASKS
    from relaxsim.registry import OPTIMIZERS

    for registry in (TASKS, OPTIMIZERS):
        for name, target in registry._lazy.items():
            module, attr = target.split(":")
            obj = registry.get(name)
            assert obj.__module__ == module and obj.__name__ == attr
