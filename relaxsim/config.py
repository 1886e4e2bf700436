"""Experiment configuration: a TOML file, ``--set`` overrides and the built-in default, validated.

A :class:`Config` is frozen, fully resolved data: every key of the schema present, every value
checked. It is built once by :func:`load_config` and never changes; ``cfg.network.hidden`` and
``cfg["network.hidden"]`` both read it. Every problem is reported as
``section.key: must be ... (got ...)`` through :class:`~relaxsim.errors.ConfigError`.
"""

from __future__ import annotations

import copy
import difflib
import math
import os
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Mapping

import tomli_w

from relaxsim.devices.units import parse_quantity
from relaxsim.errors import ConfigError, RelaxsimError
from relaxsim.io import expand_home
from relaxsim.io import read_toml as _read_toml
from relaxsim.registry import closest


@dataclass(frozen=True)
class Key:
    """One config key: its kind (``int``, ``float``, ``str``, ``schedule``), checks and meaning."""

    kind: str
    doc: str
    # returns None for a good value, else the requirement it breaks (or (requirement, hint))
    check: Callable[[Any], str | tuple[str, str] | None] | None = None


def _at_least(lo):
    return lambda v: None if v >= lo else f"must be >= {lo}"


def _positive(v):
    return None if math.isfinite(v) and v > 0 else "must be a finite number > 0"


def _fraction(lo_open=False):
    def check(v):
        ok = math.isfinite(v) and (0 < v < 1 if lo_open else 0 <= v < 1)
        return None if ok else f"must be in {'(0' if lo_open else '[0'}, 1)"
    return check


def _one_of(*choices):
    return lambda v: (None if v in choices else
                      (f"must be one of {', '.join(choices)}", closest(v, choices)[2:]))


# How inferences share the machine: one in flight at a time, or a pipelined stream.
PIPELINING = ("sequential", "pipelined")

SCHEMA: dict[str, dict[str, Key]] = {
    "network": {
        "hidden": Key("int", "hidden width N (units per bank)", _at_least(1)),
        "banks": Key("int", "number of physical weight banks L_W", _at_least(1)),
        "steps": Key("int", "number of steps L_T (effective depth)", _at_least(1)),
        "schedule": Key("schedule", "bank per step: 'cyclic', 'blocked' or a list of bank indices"),
        "alpha": Key("float", "leak: h_{t+1} = alpha h_t + f(u_t)", _fraction()),
        "activation": Key("str", "activation function (see `relaxsim.activations.ACTIVATIONS`)"),
        "input_injection": Key("str", "where the input enters: every_step, first_step or sequence",
                               _one_of("every_step", "first_step", "sequence")),
        "dtype": Key("str", "floating-point type of the kernels", _one_of("float64", "float32")),
        "init": Key("str", "initial banks: normal (variance 1/N), orthogonal, or identity",
                    _one_of("normal", "orthogonal", "identity")),
    },
    "training": {
        "epochs": Key("int", "passes over the training split", _at_least(1)),
        "batch_size": Key("int", "samples per minibatch", _at_least(1)),
        "lr": Key("float", "learning rate", _positive),
        "optimizer": Key("str", "adam or sgd"),
        "momentum": Key("float", "momentum of sgd (0: plain gradient descent)", _fraction()),
        "seed": Key("int", "seed of initialisation and shuffling", _at_least(0)),
        "checkpoint_every": Key("int", "epochs between checkpoints of a run with an output "
                                "directory (0: none)", _at_least(0)),
        "clip_norm": Key("limit", "largest global gradient norm: larger gradients are scaled "
                         "down to it ('inf': no clipping)"),
        "schedule": Key("str", "learning rate over training: constant, or cosine (decay to 0 "
                        "after the warm-up)", _one_of("constant", "cosine")),
        "warmup": Key("int", "epochs of linear warm-up of the learning rate (0: none)",
                      _at_least(0)),
        "weight_decay": Key("float", "decoupled weight decay of the weight matrices per step, "
                            "times the learning rate (0: none)",
                            lambda v: None if math.isfinite(v) and v >= 0 else "must be >= 0"),
    },
    "task": {
        "name": Key("str", "task (see `relaxsim.data.tasks.TASKS`)"),
        "path": Key("str", "directory or file of the task's data ('' for the built-in location)"),
        "val_fraction": Key("float", "share of the data held out for validation", _fraction(True)),
        "test_fraction": Key("float", "share of the data held out for testing", _fraction(True)),
        "split_seed": Key("int", "seed of the train/validation/test split", _at_least(0)),
        "color": Key("str", "svhn: 'rgb' (3 channels) or 'gray' (luma)", _one_of("rgb", "gray")),
        "downsample": Key("int", "svhn: average k x k pixel blocks (1: full 32x32 resolution)",
                          lambda v: None if v in (1, 2, 4) else "must be one of 1, 2, 4"),
        "projection": Key("str", "svhn: fixed map to fewer inputs: none, random or pca",
                          _one_of("none", "random", "pca")),
        "projected_inputs": Key("int", "svhn: inputs after the projection", _at_least(1)),
        "train_set": Key("str", "svhn: training images: 'train' or 'train+extra'",
                         _one_of("train", "train+extra")),
        "text_fraction": Key("float", "shakespeare: share of the text used, from its start",
                             lambda v: None if math.isfinite(v) and 0 < v <= 1
                             else "must be in (0, 1]"),
        "chunk": Key("int", "mnist1d with sequence input: values per step (L_T = 40 / chunk)",
                     _at_least(1)),
        "shuffle_seq": Key("bool", "mnist1d: the published variant with the 40 positions "
                           "shuffled (one fixed permutation)"),
        "label": Key("str", "arrays from a CSV file: the label column's name"),
    },
}

SCHEMA["hardware"] = {
    "mode": Key("str", "ideal (no hardware effects), hardware_aware (effects in training and "
                "evaluation) or deploy (train ideal, test on hardware)",
                _one_of("ideal", "hardware_aware", "deploy")),
    "clock": Key("clock", "step clock: 'auto' (each step waits until switch and active element "
                 "have settled) or a period such as '100 ps'"),
    "propagation_time": Key("auto_time", "T_MM: propagation of the signal through a bank, or "
                            "'auto': through a mesh's 2 N + 1 columns of MZIs (mzi_length x "
                            "group_index / c each)"),
    "settle_tolerance": Key("float", "auto clock: residual switch leak and carry-over a step "
                            "waits for", _fraction(True)),
    "drift_time": Key("time", "hardware time between programming the banks and testing"),
    "update_every": Key("int", "hardware_aware training: program the banks every this many "
                        "batches", _at_least(1)),
    "readout_time": Key("time", "readout after the last step"),
    "pipelining": Key("str", "sequential (one inference in flight) or pipelined",
                      _one_of(*PIPELINING)),
    "in_flight": Key("int", "pipelined: inferences in flight (each holds an active element)",
                     _at_least(1)),
    "program_banks": Key("str", "programming the banks: parallel, serial (one after another) "
                         "or row_serial (one after another, each row by row)",
                         _one_of("parallel", "serial", "row_serial")),
    "jitter_draws": Key("str", "switch timing jitter drawn once per batch (all its samples see "
                        "one draw: unbiased, one product per step) or per sample (each "
                        "inference its own: a product per bank whose share differs on every "
                        "switching step)", _one_of("batch", "sample")),
    "signal": Key("str", "signal domain: auto (the weight element's), coherent (fields add), "
                  "incoherent (powers add) or electrical (voltages settle as amplitudes)",
                  _one_of("auto", "coherent", "incoherent", "electrical")),
    "leak_phase": Key("str", "coherent: phase of a leaked path relative to the selected one, "
                      "in_phase (worst case) or random (fixed per path, from training.seed)",
                      _one_of("in_phase", "random")),
    "switch_topology": Key("str", "routing switch: star (one 1 x L_W device) or tree "
                           "(ceil(log2 L_W) levels of 1 x 2 stages)", _one_of("star", "tree")),
    "mux": Key("str", "collecting side: switch (a mirrored switch) or combiner (passive, "
               "10 log10(L_W) dB)", _one_of("switch", "combiner")),
    "laser_power": Key("power", "optical power per channel at the laser; with the losses it sets "
                       "the received power and the noise of 'auto' noise fields"),
    "coupling_loss": Key("loss", "fibre-to-chip and waveguide loss on a channel's path, total"),
    "input_bits": Key("bits", "DAC of the inputs injected at each step: bits, or inf (none)"),
    "readout_bits": Key("bits", "ADC at the readout: bits, or inf (none)"),
    "input_layer": Key("str", "the input layer W_in: digital (computed by hardware.digital, "
                       "injected through DACs and modulators) or bank (a slow weight bank of its "
                       "own, the inputs injected through DACs and modulators)",
                       _one_of("digital", "bank")),
    "utilisation": Key("float", "share of the time the machine runs inferences at its throughput "
                       "(the static power is paid all the time: the static energy per inference "
                       "is divided by it)",
                       lambda v: None if math.isfinite(v) and 0 < v <= 1 else "must be in (0, 1]"),
    "switch": Key("device", "the fast switches: a table with preset = NAME and field overrides"),
    "weights": Key("device", "the slow weight elements: preset = NAME and field overrides"),
    "active": Key("device", "the fast active elements: preset = NAME and field overrides"),
    "io": Key("device", "the machine's edge (laser, modulators, DACs, ADCs): preset = NAME and "
              "field overrides"),
    "digital": Key("device", "the digital processor (digital input layer, readout layer, "
                   "training's gradients): preset = NAME and field overrides"),
}

DEFAULT_CONFIG = "default.toml"
# the device tables of the hardware section, and the kind of device each holds
DEVICE_KINDS = {"switch": "switch", "weights": "weight", "active": "active", "io": "io",
                "digital": "digital"}
TIME_KINDS = ("time", "positive_time", "clock", "auto_time")  # the kinds of key that hold a time
AUTO_TIMES = ("clock", "auto_time")  # time kinds that also take "auto"


def _describe(value: Any) -> str:
    """A value as a user wrote it in TOML: strings quoted, booleans lower case, tables inline."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{k} = {_describe(v)}" for k, v in value.items()) + " }"
    return repr(value) if isinstance(value, str) else str(value)


def seconds_of(field: str, value: Any, positive: bool = False) -> float:
    """A time setting (``"10 ps"`` or a number of seconds) in seconds, checked finite and >= 0
    (> 0 with ``positive``)."""
    seconds = parse_quantity(value, "time", field)
    if not seconds >= 0 or math.isinf(seconds) or (positive and seconds == 0):
        raise ConfigError(field, "must be a finite time " + (
            ("> 0 or 'auto'" if field.endswith(("clock", "propagation_time")) else "> 0")
            if positive else ">= 0"), _describe(value))
    return seconds


# Kinds of key that hold a quantity other than a time, and what each allows.
QUANTITY_KINDS = {"power": "a power > 0 such as '1 mW'", "loss": "a loss >= 0 dB such as '3 dB'",
                  "bits": "a whole number of bits from 1 to 32, or 'inf' (no converter)"}


def quantity_of(field: str, kind: str, value: Any) -> float:
    """A ``power`` (W, > 0), ``loss`` (dB, >= 0) or ``bits`` (>= 1 whole, or inf) setting in SI
    units; one-line errors naming the field and what is allowed."""
    if kind == "bits":
        if value == "inf" or (isinstance(value, float) and value == math.inf):
            return math.inf
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 32:
            raise ConfigError(field, "must be " + QUANTITY_KINDS[kind], _describe(value))
        return float(value)
    number = parse_quantity(value, "power" if kind == "power" else "db", field)
    bad = (not math.isfinite(number) or number < 0 or (kind == "power" and number == 0))
    if bad:
        raise ConfigError(field, "must be " + QUANTITY_KINDS[kind], _describe(value))
    return number


def _coerce(field: str, kind: str, value: Any) -> Any:
    """Check the type of ``value`` for ``kind``; ints are accepted where floats are expected."""
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(field, "must be an integer", _describe(value))
        return value
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(field, "must be a number", _describe(value))
        try:
            return float(value)
        except OverflowError:
            raise ConfigError(field, "must be a finite number",
                              f"an integer of {len(str(value))} digits") from None
    if kind == "str":
        if not isinstance(value, str):
            raise ConfigError(field, "must be a string", _describe(value))
        return value
    if kind == "limit":  # a number > 0, or "inf" (kept as a string: result.json is JSON)
        if value == "inf" or (isinstance(value, float) and value == math.inf):
            return "inf"
        if (isinstance(value, bool) or not isinstance(value, (int, float))
                or not (math.isfinite(value) and value > 0)):
            raise ConfigError(field, "must be a number > 0, or 'inf' (none)", _describe(value))
        return float(value)
    if kind == "bool":
        if not isinstance(value, bool):
            raise ConfigError(field, "must be true or false", _describe(value))
        return value
    if kind in TIME_KINDS:
        if kind in AUTO_TIMES and value == "auto":
            return value
        seconds_of(field, value, positive=kind != "time")
        return value  # kept as written ("10 ps"); Section.seconds holds it parsed
    if kind in QUANTITY_KINDS:
        quantity_of(field, kind, value)
        return value  # kept as written ("1 mW"); Section.quantity parses it
    if kind == "device":
        if isinstance(value, str):  # shorthand: switch = "eo_mzi"
            value = {"preset": value}
        if not isinstance(value, Mapping):
            raise ConfigError(field, 'must be a table such as { preset = "ideal" }',
                              _describe(value))
        return dict(value)
    if kind == "schedule":
        if isinstance(value, str):
            return value
        if isinstance(value, (list, tuple)):
            return list(value)
        raise ConfigError(field, "must be a schedule name or a list of bank indices",
                          _describe(value))
    raise AssertionError(kind)


def _frozen(self, *args):
    raise AttributeError("Config is frozen; use load_config(..., overrides=...) for a new one")


class Section(Mapping):
    """One validated section of a :class:`Config`, read by attribute or by key.

    Values read as written (``cfg.hardware.clock == "30 ps"``: what ``result.json`` and
    ``config.toml`` record); the parsed ones in SI units through :meth:`seconds` (times, parsed
    once when the section is made) and :meth:`device` (device tables as records, loaded once)."""

    def __init__(self, name: str, values: dict[str, Any]):
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_values", MappingProxyType(dict(values)))
        keys = SCHEMA.get(name, {})
        object.__setattr__(self, "_seconds", MappingProxyType({
            key: (None if keys[key].kind in AUTO_TIMES and value == "auto" else
                  seconds_of(f"{name}.{key}", value, positive=keys[key].kind != "time"))
            for key, value in values.items() if key in keys and keys[key].kind in TIME_KINDS}))
        object.__setattr__(self, "_devices", {})

    def seconds(self, key: str) -> float | None:
        """The time setting ``key`` in seconds (``None`` for an ``auto`` clock)."""
        try:
            return self._seconds[key]
        except KeyError:
            raise KeyError(f"{self._name}.{key}: not a time setting") from None

    def quantity(self, key: str) -> float:
        """The power, loss or bits setting ``key`` in SI units (W, dB, bits; inf: none)."""
        kind = SCHEMA.get(self._name, {}).get(key)
        if kind is None or kind.kind not in QUANTITY_KINDS:
            raise KeyError(f"{self._name}.{key}: not a power, loss or bits setting")
        return quantity_of(f"{self._name}.{key}", kind.kind, self._values[key])

    def device(self, key: str):
        """The device table ``key`` (``switch``, ``weights``, ``active``) as its record
        (:func:`relaxsim.devices.load_device`), loaded when first asked for."""
        if key not in self._devices:
            from relaxsim.devices import load_device

            if key not in DEVICE_KINDS or key not in self._values:
                raise KeyError(f"{self._name}.{key}: not a device table")
            self._devices[key] = load_device(DEVICE_KINDS[key], self._values[key],
                                             f"{self._name}.{key}")
        return self._devices[key]

    def __getattr__(self, key: str) -> Any:
        if key.startswith("_"):
            raise AttributeError(key)
        try:
            return self._values[key]
        except KeyError:
            raise AttributeError(f"{self._name}.{key}") from None

    __setattr__ = __delattr__ = _frozen

    def __reduce__(self):
        return Section, (self._name, dict(self._values))

    def __getitem__(self, key):
        return self._values[key]

    def __iter__(self):
        return iter(self._values)

    def __len__(self):
        return len(self._values)

    def __repr__(self):
        return f"Section({self._name!r}, {dict(self._values)!r})"


class Config(Mapping):
    """A frozen, validated experiment configuration."""

    def __init__(self, data: Mapping[str, Mapping[str, Any]]):
        sections = {name: Section(name, values) for name, values in data.items()}
        object.__setattr__(self, "_sections", MappingProxyType(sections))

    def __getattr__(self, name: str) -> Section:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._sections[name]
        except KeyError:
            raise AttributeError(name) from None

    __setattr__ = __delattr__ = _frozen

    def __reduce__(self):
        return Config, (self.to_dict(),)

    def __getitem__(self, key: str):
        if "." in key:
            section, name = key.split(".", 1)
            return self._sections[section][name]
        return self._sections[key]

    def __iter__(self):
        return iter(self._sections)

    def __len__(self):
        return len(self._sections)

    def __eq__(self, other):
        return isinstance(other, Config) and self.to_dict() == other.to_dict()

    def __hash__(self):
        return hash(self.to_toml())

    def __repr__(self):
        return f"Config({self.to_dict()!r})"

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """A plain nested ``dict`` (deep copy), as saved in ``result.json``."""
        return {name: copy.deepcopy(dict(sec)) for name, sec in self._sections.items()}

    def to_toml(self) -> str:
        return tomli_w.dumps(self.to_dict())

    def replace(self, overrides: Mapping[str, Any]) -> "Config":
        """A new validated config with ``overrides`` (``{"section.key": value}``) applied."""
        return validate(apply_overrides(self.to_dict(), overrides))


def default_dict() -> dict[str, dict[str, Any]]:
    """The built-in default experiment as a plain dict."""
    text = resources.files("relaxsim").joinpath(DEFAULT_CONFIG).read_text(encoding="utf-8")
    return tomllib.loads(text)


def read_toml(path: str | Path) -> dict[str, Any]:
    """Read a config file, turning every way it can fail into a one-line error. A device preset
    given as a relative file path is made absolute against the file's directory (a path not
    found there but in the current directory, where configs were read from before, against the
    current directory: :func:`anchor_presets`)."""
    return anchor_presets(_read_toml(path, "config file"), Path(path).parent, fallback=Path.cwd())


def parse_value(text: str) -> Any:
    """Read a ``--set`` value as TOML when it parses as TOML, else as a plain string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def parse_assignment(text: str) -> tuple[str, Any]:
    """Split ``section.key=value`` into the dotted key and the parsed value."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or "." not in key or not all(key.split(".")):
        raise RelaxsimError(f"--set {text!r}: expected section.key=value")
    return key, parse_value(value.strip())


def apply_overrides(data: dict[str, Any], overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """Set each dotted key of ``overrides`` in the nested dict ``data`` (modified and returned)."""
    for dotted, value in (overrides or {}).items():
        parts = dotted.split(".")
        node = data
        for depth, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(".".join(parts[: depth + 1]), "is a value, not a table",
                                  _describe(child))
            node = child
        node[parts[-1]] = value
    return data


def validate(data: Mapping[str, Any], base: Mapping[str, Any] | None = None) -> Config:
    """Merge ``data`` over ``base`` (the default experiment), check everything, return a Config."""
    merged = default_dict() if base is None else copy.deepcopy(dict(base))
    for section, values in data.items():
        if section not in SCHEMA:
            raise ConfigError(section, "unknown section", hint=_hint(section, SCHEMA))
        if not isinstance(values, Mapping):
            raise ConfigError(section, "must be a table of keys", _describe(values))
        for key, value in values.items():
            if key not in SCHEMA[section]:
                raise ConfigError(f"{section}.{key}", "unknown key", hint=key_hint(section, key))
            target = merged.setdefault(section, {})
            if (SCHEMA[section][key].kind == "device" and isinstance(value, Mapping)
                    and "preset" not in value and isinstance(target.get(key), Mapping)):
                value = {**target[key], **value}  # a field override keeps the current preset
            target[key] = value
    _apply_task_defaults(merged, data)
    resolved: dict[str, dict[str, Any]] = {}
    for section, keys in SCHEMA.items():
        resolved[section] = {}
        for key, spec in keys.items():
            field = f"{section}.{key}"
            if key not in merged.get(section, {}):
                raise ConfigError(field, "is missing")
            raw = merged[section][key]
            value = _coerce(field, spec.kind, raw)
            if spec.check is not None and (problem := spec.check(value)):
                requirement, hint = problem if isinstance(problem, tuple) else (problem, "")
                raise ConfigError(field, requirement, _describe(raw), hint)
            resolved[section][key] = value
    cfg = Config(resolved)
    _check_together(resolved, cfg.hardware)  # the section's parsed times and devices, kept
    return cfg


def _apply_task_defaults(merged: dict, given: Mapping[str, Any]) -> None:
    """Settings a task needs (e.g. sequence input for text), where the user did not choose."""
    from relaxsim.data.tasks import TASKS

    name = merged.get("task", {}).get("name")
    if not isinstance(name, str) or name not in TASKS:
        return  # reported by the checks
    for dotted, value in getattr(TASKS.get(name), "defaults", {}).items():
        section, key = dotted.split(".")
        if key not in (given.get(section) or {}):
            merged.setdefault(section, {})[key] = value


def _hint(name: str, choices) -> str:
    hint = closest(name, choices).removeprefix("; ")
    return hint or f"known: {', '.join(choices)}"


def key_hint(section: str, key: str) -> str:
    """The hint for the unknown key ``section.key``, among the keys of the section and, in the
    hardware section, the fields of its device tables (``hardware.rise_time``:
    ``hardware.switch.rise_time``): the keys whose last part is ``key`` first, then those whose
    last part is closest to it, then the closest dotted name; else the section's keys."""
    from relaxsim.devices import RECORDS

    names = [f"{section}.{k}" for k in SCHEMA[section]]
    fields = [f"{section}.{table}.{k}" for table, kind in DEVICE_KINDS.items()
              for k in ["preset", *RECORDS[kind].keys()]] if section == "hardware" else []
    last = {name: name.rsplit(".", 1)[1] for name in names + fields}
    for part in (key, *difflib.get_close_matches(key, sorted(set(last.values())), n=1)):
        same = [name for name, end in last.items() if end == part]
        if same:
            return (f"did you mean {same[0]!r}?" if len(same) == 1 else
                    f"did you mean one of {', '.join(repr(name) for name in same)}?")
    return closest(f"{section}.{key}", names + fields).removeprefix("; ") or (
        f"known: {', '.join(names)}")


def _check_together(cfg: dict[str, dict[str, Any]], hw: Section) -> None:
    """Checks that involve several keys, and names that live in registries."""
    # Imported here: the registries import this module's errors, not the other way round.
    from relaxsim.activations import ACTIVATIONS
    from relaxsim.data.tasks import TASKS
    from relaxsim.registry import OPTIMIZERS
    from relaxsim.schedules import resolve

    net, train, task = cfg["network"], cfg["training"], cfg["task"]
    ACTIVATIONS.get(net["activation"], field="network.activation")
    OPTIMIZERS.check(train["optimizer"], field="training.optimizer")
    task_kind = TASKS.get(task["name"], field="task.name")
    _check_memory(cfg, task_kind)  # before anything is built at the config's sizes
    resolve(net["schedule"], net["banks"], net["steps"])
    if train["warmup"] > train["epochs"]:
        raise ConfigError("training.warmup", "must not be longer than training.epochs",
                          f"{train['warmup']} > {train['epochs']}")
    if task["val_fraction"] + task["test_fraction"] >= 1:
        raise ConfigError("task.test_fraction", "must leave data for training: "
                          "task.val_fraction + task.test_fraction < 1",
                          f"{task['val_fraction']} + {task['test_fraction']}")
    hwc = cfg["hardware"]
    clock = hw.seconds("clock")
    t_mm = hw.seconds("propagation_time")
    if t_mm is None:  # through the mesh: it needs one, with its geometry
        t_mm = hw.device("weights").mesh_propagation_time_s(net["hidden"],
                                                            "hardware.propagation_time")
    if clock is not None and clock <= t_mm:
        raise ConfigError("hardware.clock", "must be longer than hardware.propagation_time",
                          f"{hwc['clock']} <= {hwc['propagation_time']}"
                          + (f" ({t_mm:.4g} s through the mesh)"
                             if hwc["propagation_time"] == "auto" else ""))
    switch = hw.device("switch")
    if clock is not None and switch.jitter_s >= clock:
        raise ConfigError("hardware.switch.jitter", "must be smaller than hardware.clock",
                          f"{switch.jitter_s:g} s >= {hwc['clock']}")
    for key in DEVICE_KINDS:
        hw.device(key)
    if hasattr(task_kind, "check"):  # the task's own checks (e.g. shakespeare needs sequence input)
        task_kind.check(cfg)


# Bytes the timing model and the schedule hold per step of an inference (lists of bank indices
# and event times), and per inference in flight (its active element and switch as SimPy
# resources: about 700 bytes measured); lower bounds, like the rest of the estimate.
STEP_OVERHEAD_BYTES = 128
SLOT_BYTES = 512
# Arrays of the parameters' shapes an optimizer keeps (Adam: two moments; SGD: a velocity).
OPTIMIZER_COPIES = {"adam": 2, "sgd": 1}


def physical_memory_bytes() -> int | None:
    """The machine's physical memory, or None where the system does not tell."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, OSError, ValueError):
        return None


def training_memory_bytes(cfg: Mapping[str, Mapping[str, Any]], task_kind=None) -> dict:
    """A lower bound on the memory a run of ``cfg`` needs, by the field that sets each part.

    Parameters (``L_W (N^2 + N) + N D + C (N + 1)`` floats, held with their gradients, the best
    copy and the optimizer's state), the forward tape of a minibatch (states and derivatives,
    ``(2 L_T + 1) x B x N`` floats, ``B`` at most the training split), the schedule and the
    timing model. Sizes the task cannot tell without reading its data count as 1.
    """
    net, train, hwc = cfg["network"], cfg["training"], cfg["hardware"]
    N, L, T = net["hidden"], net["banks"], net["steps"]
    n_inputs, n_classes, n_train = getattr(task_kind, "min_sizes", lambda _: (1, 1, 1))(
        Section("task", cfg["task"]))
    word = 4 if net["dtype"] == "float32" else 8
    copies = 3 + OPTIMIZER_COPIES.get(train["optimizer"], 0)
    params = copies * word * (L * (N * N + N) + N * n_inputs + n_classes * (N + 1))
    tape = word * (2 * T + 1) * min(train["batch_size"], n_train) * N
    parts = {"network.hidden": 0, "network.banks": 0, "network.steps": STEP_OVERHEAD_BYTES * T}
    parts["network.hidden" if N * N >= L else "network.banks"] += params
    parts["network.steps" if T >= N else "network.hidden"] += tape
    if hwc["pipelining"] == "pipelined":
        parts["hardware.in_flight"] = SLOT_BYTES * hwc["in_flight"]
    return parts


def _check_memory(cfg: dict[str, dict[str, Any]], task_kind) -> None:
    """Refuse sizes whose training cannot fit in the machine's memory, before allocating."""
    available = physical_memory_bytes()
    if not available:
        return
    parts = training_memory_bytes(cfg, task_kind)
    needed = sum(parts.values())
    if needed > available:
        field = max(parts, key=parts.get)
        section, key = field.split(".")
        gib = f"{needed / 2**30:.3g}" if needed < 10**300 else "more than 1e+290"
        raise ConfigError(field, f"must be small enough for the run to fit in memory: it needs "
                          f"at least {gib} GiB, the machine has {available / 2**30:.3g} GiB",
                          cfg[section][key])


def network_kind(banks: int, steps: int) -> str:
    """What the literature calls a network with these sizes."""
    if banks == 1 and steps > 1:
        return "RNN"
    if banks == steps:
        return "DNN"
    return "ReLaX-Net"


def load_config(path: str | Path | None = None,
                overrides: Mapping[str, Any] | None = None) -> Config:
    """Load a config: the default experiment, updated by the TOML file at ``path`` (if given), then
    by ``overrides`` (``{"network.banks": 2}``); validated and :func:`self_contained`.

    A device preset given as a relative file path is read from the directory of the config file
    that names it (see :func:`read_toml`), or from the current directory when ``overrides``
    names it."""
    data = read_toml(path) if path is not None else {}
    return self_contained(validate(apply_overrides(data, anchor_overrides(overrides))))


def anchor_overrides(overrides: Mapping[str, Any] | None, root: Path | None = None
                     ) -> dict[str, Any]:
    """``overrides`` (``{"section.key": value}``) with their relative preset file paths made
    absolute against ``root`` (default: the current directory; :func:`anchor_presets`)."""
    anchored = {}
    root = Path.cwd() if root is None else root
    for dotted, value in (overrides or {}).items():  # each as a nested table, then back
        node = anchor_presets(apply_overrides({}, {dotted: copy.deepcopy(value)}), root)
        for part in dotted.split("."):
            node = node[part]
        anchored[dotted] = node
    return anchored


def anchor_presets(data: dict[str, Any], root: Path, fallback: Path | None = None
                   ) -> dict[str, Any]:
    """Make each device preset of ``data`` (a config as read, before validation) that is a
    relative file path absolute, against ``root``; with ``fallback``, a file found there but not
    under ``root`` is taken from there. ``data`` is changed and returned."""
    from relaxsim.devices.library import is_preset_path

    def anchored(preset, field):
        if not isinstance(preset, str) or not is_preset_path(preset):
            return preset
        path = expand_home(preset, field)
        if not path.is_absolute() and fallback is not None and not (root / path).exists() \
                and (fallback / path).exists():
            return os.path.abspath(fallback / path)
        return os.path.abspath(root / path)

    hardware = data.get("hardware")
    for key in DEVICE_KINDS:
        if not isinstance(hardware, dict) or key not in hardware:
            continue
        table = hardware[key]
        if isinstance(table, str):
            hardware[key] = anchored(table, f"hardware.{key}")
        elif isinstance(table, dict) and "preset" in table:
            table["preset"] = anchored(table["preset"], f"hardware.{key}.preset")
    return data


def self_contained(cfg: Config) -> Config:
    """``cfg`` with every device preset that is not in the library (a file, or a name found in a
    user directory) inline: the file's content, with its absolute path for the record
    (:func:`relaxsim.devices.library.inline_preset`), so that the config needs no device file
    to be read again. A config whose presets are library names is returned as it is."""
    from relaxsim.devices.library import inline_preset

    data = cfg.to_dict()
    changed = False
    for key, kind in DEVICE_KINDS.items():
        table = data["hardware"][key]
        preset = inline_preset(kind, table.get("preset"), f"hardware.{key}")
        if preset is not table.get("preset"):
            table["preset"] = preset
            changed = True
    return validate(data) if changed else cfg
