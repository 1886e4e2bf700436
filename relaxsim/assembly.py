"""One assembly step: a resolved config turned into the things that run.

    a = relaxsim.assemble(cfg)          # or assemble(cfg, info) with a loaded task's TaskInfo
    a.network                           # the ideal network, sized for the task
    a.hardware                          # the machine (devices, clock, modes)
    a.timing                            # its SimPy simulations, each run once (MachineTiming)
    a.coupling                          # per-step coupling of timing into the physics
    a.network_on_hardware               # the network on that coupling
    a.figures                           # latency, period, throughput, utilisation, energy
    a.cautions(settling=True)           # the machine's warnings, one line each

Every caller that needs a network on its machine (a run, the evaluation of saved weights, the
timing command, the report, the validation studies, the benchmark) builds it here, so that a new
device effect is wired in one place. The timing model runs once per (architecture, pipelining
mode) the caller asks for and never again for the same answer (:class:`MachineTiming`): a default
run simulates the ReLaX-Net machine, a reprogrammed bank and an unrolled DNN, one stream each.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from relaxsim.config import Config
from relaxsim.data.tasks import TaskInfo
from relaxsim.data.tasks import task_info as tasks_info
from relaxsim.energy import Shape
from relaxsim.hardware import Coupling, Hardware, MachineTiming, build_hardware
from relaxsim.model import Network, build
from relaxsim.schedules import resolve


@dataclass(frozen=True, eq=False)
class Assembly:
    """A network on its machine, as one config describes them (built by :func:`assemble`).

    The machine's answers (:attr:`timing`, :attr:`coupling`, :attr:`figures`) need the config
    only; the network (:attr:`network`) also the task's sizes, read when first asked for (the
    timing command never reads a task's data)."""

    config: Config
    hardware: Hardware
    schedule: np.ndarray
    timing: MachineTiming
    task: TaskInfo | None = None

    @cached_property
    def info(self) -> TaskInfo:
        """The task's sizes: the :class:`TaskInfo` given to :func:`assemble`, else the task's
        own (cheap for the built-in tasks but Shakespeare, whose alphabet is read)."""
        return task_info(self.config) if self.task is None else self.task

    @cached_property
    def network(self) -> Network:
        """The ideal network, sized for the task (:func:`relaxsim.model.build`)."""
        return build(self.config, self.info)

    @cached_property
    def coupling(self) -> Coupling:
        """Per-step coupling arrays of the machine for the network's schedule, from the timing
        model's inference alone (:meth:`Hardware.coupling`)."""
        net = self.config.network
        return self.hardware.coupling(self.schedule, net.alpha, net.activation,
                                      np.dtype(net.dtype), sim=self.timing.alone(),
                                      banks=net.banks, seed=self.config.training.seed)

    def coupling_summary(self) -> dict:
        """The coupling as ``result.json`` and ``timing --json`` hold it
        (:meth:`Coupling.summary`), with the power budget: ``received_power_w`` and ``snr`` at the
        detector (``None`` for an electrical machine) and the whole ``budget``, and the noise the
        network sees (``element_noise``, ``detector_noise``, and the converters' quantisation
        noise relative to their full scales)."""
        hw = self.hardware
        budget = None if hw.budget is None else hw.budget.summary()
        return {**self.coupling.summary(),
                "received_power_w": None if budget is None else budget["received_power_w"],
                "snr": None if budget is None else budget["snr"],
                "element_noise": hw.element_sigma, "detector_noise": hw.detector_sigma,
                "input_quantisation_noise": hw.quantisation_noise(hw.input_bits),
                "readout_quantisation_noise": hw.quantisation_noise(hw.readout_bits),
                "budget": budget}

    @cached_property
    def network_on_hardware(self) -> Network:
        """The network with the machine's coupling (what hardware modes train and test)."""
        return self.network.on(self.coupling)

    @cached_property
    def figures(self) -> dict:
        """Latency, period, throughput, utilisation and energy of the machine, against a
        reprogrammed bank and an unrolled DNN (:meth:`Hardware.figures`)."""
        return self.hardware.figures(self.schedule, self.config.network.banks,
                                     self.config.network.hidden, timing=self.timing,
                                     shape=self.shape)

    @cached_property
    def shape(self) -> Shape:
        """The network's shape as the energy accounting counts it (:mod:`relaxsim.energy`)."""
        net, info = self.config.network, self.info
        return Shape(hidden=net.hidden, inputs=info.n_inputs, classes=info.n_classes,
                     schedule=tuple(int(k) for k in self.schedule), banks=net.banks,
                     injection=net.input_injection)

    def training_cost(self, samples: float, batches: float, writes: float,
                      device_writes: float | None = None) -> dict:
        """Hardware time and energy of training on this machine (:func:`relaxsim.energy.training`):
        ``samples`` forward passes, ``batches`` optimizer steps, ``writes`` programming events
        (``device_writes``: the device writes counted, when the element wears out)."""
        from relaxsim.energy import training

        figures = self.figures
        return training(self.hardware, self.shape, samples=samples, batches=batches,
                        writes=writes, params=self.network.param_counts()["total"],
                        period_s=figures["period_s"],
                        inference=figures["architectures"]["relaxnet"],
                        device_writes=device_writes)

    def training_per_sample(self) -> dict:
        """:meth:`training_cost` of one training sample, a programming event amortised over
        the ``batch_size x update_every`` samples between two."""
        batch = self.config.training.batch_size
        every = self.hardware.update_every
        return self.training_cost(1.0, 1.0 / batch, 1.0 / (batch * every))

    @property
    def inference_time_s(self) -> float:
        """Hardware time per inference in a stream (the steady-state period), s."""
        return self.timing.period()

    def cautions(self, settling: bool = True) -> list[str]:
        """The machine's warnings for this network (:meth:`Hardware.cautions`)."""
        return self.hardware.cautions(self.coupling, settling=settling)


def task_info(cfg: Config) -> TaskInfo:
    """What the network needs to know of ``cfg``'s task, without reading its data."""
    return tasks_info(cfg)


def assemble(cfg: Config, info: TaskInfo | None = None) -> Assembly:
    """The network, the machine, its timing and coupling that ``cfg`` describes, sized for its
    task (or for ``info``, the :class:`~relaxsim.data.tasks.TaskInfo` of data already loaded).

    Nothing is simulated or built until it is asked for: the coupling runs the timing model's
    inference alone, :attr:`Assembly.figures` the three architectures' streams; each at most
    once."""
    net = cfg.network
    schedule = resolve(net.schedule, net.banks, net.steps)
    hardware = build_hardware(cfg.hardware, net.banks, net.hidden)
    return Assembly(config=cfg, hardware=hardware, schedule=schedule,
                    timing=MachineTiming(hardware, schedule, net.banks), task=info)
