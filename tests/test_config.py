"""Behaviour of ``relaxsim.config``: loading, merging, freezing, round trips and every bad input.

``BAD_INPUTS`` is shared with ``test_cli.py``, which feeds the same inputs to the command line.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import pytest

import relaxsim
from relaxsim.config import Config, load_config, parse_assignment, parse_value
from relaxsim.errors import ConfigError, RelaxsimError, UnknownNameError


def default_toml() -> dict:
    text = resources.files("relaxsim").joinpath("default.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


# -- one bad input ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Bad:
    """One bad input and the error it must raise.

    ``overrides`` are ``{"section.key": value}`` with Python values; ``toml`` is the text of a
    config file (``file = "missing"`` or ``"dir"`` for a path that is not a readable file).
    ``stage`` is ``"load"`` when :func:`load_config` raises, ``"build"`` when only
    :func:`relaxsim.build` does. ``field`` is the :attr:`ConfigError.field` expected.
    """

    id: str
    exc: type
    fragments: tuple[str, ...]
    overrides: dict = field(default_factory=dict)
    toml: str | None = None
    file: str | None = None  # None, "toml", "missing", "dir"
    field: str | None = None
    stage: str = "load"

    def path(self, tmp: Path) -> Path | None:
        """Create what the input needs under ``tmp`` and return the config path to pass."""
        if self.toml is not None:
            p = tmp / "exp.toml"
            p.write_text(self.toml, encoding="utf-8")
            return p
        if self.file == "missing":
            return tmp / "missing.toml"
        if self.file == "dir":
            p = tmp / "adir.toml"
            p.mkdir()
            return p
        return None


def _cfg(id, exc, fragments, field=None, **kw):
    if isinstance(fragments, str):
        fragments = (fragments,)
    return pytest.param(Bad(id, exc, tuple(fragments), field=field, **kw), id=id)


CE, UE, RE = ConfigError, UnknownNameError, RelaxsimError

BAD_INPUTS = [
    # names
    _cfg("unknown-key-close", CE,
         "network.hiden: unknown key; did you mean 'network.hidden'?", "network.hiden",
         overrides={"network.hiden": 64}),
    _cfg("unknown-key-in-file", CE,
         "training.learning_rate: unknown key", "training.learning_rate",
         toml="[training]\nlearning_rate = 0.1\n"),
    _cfg("unknown-section-close", CE,
         "netwrk: unknown section; did you mean 'network'?", "netwrk",
         overrides={"netwrk.hidden": 8}),
    _cfg("unknown-section-far", CE,
         "devices: unknown section; known: network, training, task", "devices",
         overrides={"devices.kind": "mzi"}),
    # types
    _cfg("hidden-string", CE, "network.hidden: must be an integer (got 'abc')", "network.hidden",
         overrides={"network.hidden": "abc"}),
    _cfg("hidden-string-in-file", CE, "network.hidden: must be an integer (got 'abc')",
         "network.hidden", toml='[network]\nhidden = "abc"\n'),
    _cfg("hidden-float", CE, "network.hidden: must be an integer (got 2.5)", "network.hidden",
         overrides={"network.hidden": 2.5}),
    _cfg("hidden-bool", CE, "network.hidden: must be an integer (got true)", "network.hidden",
         overrides={"network.hidden": True}),
    _cfg("lr-string", CE, "training.lr: must be a number (got 'fast')", "training.lr",
         overrides={"training.lr": "fast"}),
    _cfg("path-int", CE, "task.path: must be a string (got 3)", "task.path",
         overrides={"task.path": 3}),
    # ranges
    _cfg("hidden-0", CE, "network.hidden: must be >= 1 (got 0)", "network.hidden",
         overrides={"network.hidden": 0}),
    _cfg("banks-0", CE, "network.banks: must be >= 1 (got 0)", "network.banks",
         overrides={"network.banks": 0}),
    _cfg("steps-0", CE, "network.steps: must be >= 1 (got 0)", "network.steps",
         overrides={"network.steps": 0}),
    _cfg("lr-0", CE, "training.lr: must be a finite number > 0 (got 0)", "training.lr",
         overrides={"training.lr": 0}),
    _cfg("lr-negative", CE, "training.lr: must be a finite number > 0 (got -0.001)",
         "training.lr", overrides={"training.lr": -1e-3}),
    _cfg("lr-nan", CE, "training.lr: must be a finite number > 0 (got nan)", "training.lr",
         overrides={"training.lr": math.nan}),
    _cfg("lr-inf", CE, "training.lr: must be a finite number > 0 (got inf)", "training.lr",
         overrides={"training.lr": math.inf}),
    _cfg("alpha-1", CE, "network.alpha: must be in [0, 1) (got 1.0)", "network.alpha",
         overrides={"network.alpha": 1.0}),
    _cfg("alpha-negative", CE, "network.alpha: must be in [0, 1) (got -0.1)", "network.alpha",
         overrides={"network.alpha": -0.1}),
    _cfg("momentum-1", CE, "training.momentum: must be in [0, 1) (got 1.0)", "training.momentum",
         overrides={"training.momentum": 1.0}),
    _cfg("batch-size-0", CE, "training.batch_size: must be >= 1 (got 0)", "training.batch_size",
         overrides={"training.batch_size": 0}),
    _cfg("epochs-0", CE, "training.epochs: must be >= 1 (got 0)", "training.epochs",
         overrides={"training.epochs": 0}),
    _cfg("seed-negative", CE, "training.seed: must be >= 0 (got -1)", "training.seed",
         overrides={"training.seed": -1}),
    _cfg("val-fraction-0", CE, "task.val_fraction: must be in (0, 1) (got 0.0)",
         "task.val_fraction", overrides={"task.val_fraction": 0.0}),
    _cfg("fractions-sum-1", CE,
         "task.test_fraction: must leave data for training: "
         "task.val_fraction + task.test_fraction < 1 (got 0.5 + 0.5)", "task.test_fraction",
         overrides={"task.val_fraction": 0.5, "task.test_fraction": 0.5}),
    # schedules
    _cfg("banks-gt-steps-cyclic", CE,
         "network.banks: must be <= network.steps for the cyclic schedule (got 8 > 4)",
         "network.banks", overrides={"network.banks": 8, "network.steps": 4}),
    _cfg("banks-gt-steps-blocked", CE,
         "network.banks: must be <= network.steps for the blocked schedule (got 8 > 4)",
         "network.banks",
         overrides={"network.banks": 8, "network.steps": 4, "network.schedule": "blocked"}),
    _cfg("schedule-unknown", UE,
         "network.schedule: unknown schedule 'zigzag'; known: blocked, cyclic",
         overrides={"network.schedule": "zigzag"}),
    _cfg("schedule-close", UE, "unknown schedule 'cyclick'; known: blocked, cyclic; "
         "did you mean 'cyclic'?", overrides={"network.schedule": "cyclick"}),
    _cfg("schedule-wrong-length", CE,
         "network.schedule: must list one bank per step, network.steps = 4 (got 3 entries)",
         "network.schedule", overrides={"network.schedule": [0, 1, 0]}),
    _cfg("schedule-bank-out-of-range", CE,
         "network.schedule: entries must be bank indices in 0..1 (got 2)", "network.schedule",
         overrides={"network.schedule": [0, 1, 2, 0]}),
    _cfg("schedule-bank-negative", CE,
         "network.schedule: entries must be bank indices in 0..1 (got -1)", "network.schedule",
         overrides={"network.schedule": [0, 1, -1, 0]}),
    _cfg("schedule-bank-unused", CE,
         "network.schedule: must use every one of the 2 banks "
         "(got bank 1 never used in [0, 0, 0, 0])", "network.schedule",
         overrides={"network.schedule": [0, 0, 0, 0]}),
    # Only the field and the value: the wording ("must be one of blocked, cyclic or a list of bank
    # indices") does not say that the entries must be integers (reported).
    _cfg("schedule-non-integer", CE, "network.schedule: entries must be integer bank indices (got 0.5 in [0, 1, 0.5, 1])",
         "network.schedule", overrides={"network.schedule": [0, 1, 0.5, 1]}),
    _cfg("schedule-number", CE,
         "network.schedule: must be a schedule name or a list of bank indices (got 3)",
         "network.schedule", overrides={"network.schedule": 3}),
    # registry names and choices
    _cfg("activation-unknown", UE,
         "network.activation: unknown activation 'tanhh'; known: relu, saturable_absorber, sigmoid, "
         "sin2, soa, tanh; "
         "did you mean 'tanh'?", overrides={"network.activation": "tanhh"}),
    _cfg("optimizer-unknown", UE,
         "training.optimizer: unknown optimizer 'adamw'; known: adam, sgd",
         overrides={"training.optimizer": "adamw"}),
    _cfg("task-unknown", UE, "task.name: unknown task 'mnist'; known: arrays, digits, mnist1d, shakespeare, svhn; "
         "did you mean 'mnist1d'?",
         overrides={"task.name": "mnist"}),
    _cfg("dtype-unknown", CE, "network.dtype: must be one of float64, float32 (got 'float16'); did you mean 'float64'?",
         "network.dtype", overrides={"network.dtype": "float16"}),
    _cfg("input-injection-unknown", CE,
         "network.input_injection: must be one of every_step, first_step, sequence "
         "(got 'every')", "network.input_injection",
         overrides={"network.input_injection": "every"}),
    _cfg("input-injection-sequence-on-digits", CE,
         ("network.input_injection: 'sequence' needs a task whose samples are sequences",
          "task.name = 'digits'"), "network.input_injection",
         overrides={"network.input_injection": "sequence"}, stage="build"),
    # files
    _cfg("section-as-value", CE, "network: must be a table of keys (got 3)", "network",
         toml="network = 3\n"),
    _cfg("override-into-value", CE, "network: is a value, not a table (got 3)", "network",
         toml="network = 3\n", overrides={"network.hidden": 8}),
    _cfg("file-missing", RE, ("config file '", "missing.toml': not found"), file="missing"),
    _cfg("file-is-directory", RE, "adir.toml': is a directory, not a TOML file", file="dir"),
    _cfg("file-invalid-toml", RE, ("exp.toml': invalid TOML (", "line 1"),
         toml="[network\nhidden = 8\n"),
]


@pytest.mark.parametrize("bad", BAD_INPUTS)
def test_bad_input_raises_with_message(bad: Bad, tmp_path):
    path = bad.path(tmp_path)
    if bad.stage == "build":
        cfg = load_config(path, dict(bad.overrides))  # valid on its own
        with pytest.raises(RelaxsimError) as info:
            relaxsim.build(cfg)
    else:
        with pytest.raises(RelaxsimError) as info:
            load_config(path, dict(bad.overrides))
    err = info.value
    assert type(err) is bad.exc
    message = str(err)
    for fragment in bad.fragments:
        assert fragment in message
    assert "\n" not in message
    if bad.field is not None:
        assert err.field == bad.field
        assert message.startswith(f"{bad.field}: ")


def test_error_classes_are_also_builtin_errors():
    assert issubclass(ConfigError, ValueError) and issubclass(ConfigError, RelaxsimError)
    assert issubclass(UnknownNameError, KeyError) and issubclass(UnknownNameError, RelaxsimError)
    with pytest.raises(ValueError):
        load_config(overrides={"network.hidden": 0})
    with pytest.raises(KeyError) as info:
        load_config(overrides={"training.optimizer": "adamw"})
    assert not str(info.value).startswith(("'", '"'))  # not quoted like a plain KeyError


# -- loading and merging ---------------------------------------------------------------------


def test_load_config_without_arguments_is_the_builtin_default():
    cfg = load_config()
    assert isinstance(cfg, Config)
    assert cfg.to_dict() == default_toml()
    assert cfg.network.hidden == 64 and cfg.network.banks == 2 and cfg.network.steps == 4
    assert cfg.network.schedule == "cyclic"
    assert cfg.task.name == "digits"
    assert load_config() == load_config()


def test_load_config_merges_file_over_default(tmp_path):
    path = tmp_path / "exp.toml"
    path.write_text('[network]\nhidden = 16\nactivation = "relu"\n\n[training]\nlr = 1\n',
                    encoding="utf-8")
    cfg = load_config(path)
    expected = default_toml()
    expected["network"].update(hidden=16, activation="relu")
    expected["training"]["lr"] = 1.0
    assert cfg.to_dict() == expected
    assert isinstance(cfg.training.lr, float)  # an int is accepted where a float is expected
    assert load_config(str(path)) == cfg  # str and Path alike


def test_overrides_apply_over_default_and_file(tmp_path):
    assert load_config(overrides={"network.banks": 1}).network.banks == 1
    path = tmp_path / "exp.toml"
    path.write_text("[network]\nhidden = 16\nbanks = 4\n", encoding="utf-8")
    cfg = load_config(path, {"network.banks": 1, "training.epochs": 3})
    assert (cfg.network.hidden, cfg.network.banks, cfg.training.epochs) == (16, 1, 3)
    others = load_config().to_dict()
    got = cfg.to_dict()
    for section in got:
        for key in got[section]:
            if f"{section}.{key}" not in ("network.hidden", "network.banks", "training.epochs"):
                assert got[section][key] == others[section][key]


def test_overrides_dict_is_not_modified():
    overrides = {"network.banks": 1, "network.schedule": [0, 0, 0, 0]}
    load_config(overrides=overrides)
    assert overrides == {"network.banks": 1, "network.schedule": [0, 0, 0, 0]}


def test_explicit_schedule_is_accepted():
    cfg = load_config(overrides={"network.schedule": [0, 1, 1, 0]})
    assert list(cfg.network.schedule) == [0, 1, 1, 0]


# -- the Config object -----------------------------------------------------------------------


def test_config_is_frozen():
    cfg = load_config()
    with pytest.raises(AttributeError, match="frozen"):
        cfg.network = None
    with pytest.raises(AttributeError, match="frozen"):
        cfg.network.hidden = 3
    with pytest.raises(AttributeError, match="frozen"):
        cfg.extra = 1
    with pytest.raises(TypeError):
        cfg["network"]["hidden"] = 3
    data = cfg.to_dict()  # a copy: changing it changes nothing
    data["network"]["hidden"] = 3
    data["network"]["schedule"] = [0, 1]
    assert cfg.network.hidden == 64 and cfg.network.schedule == "cyclic"


def test_explicit_schedule_cannot_be_changed_through_to_dict():
    cfg = load_config(overrides={"network.schedule": [0, 1, 1, 0]})
    cfg.to_dict()["network"]["schedule"].append(1)
    assert list(cfg.network.schedule) == [0, 1, 1, 0]


def test_attribute_and_dotted_key_agree():
    cfg = load_config(overrides={"network.hidden": 12, "network.schedule": [1, 0, 0, 1]})
    assert cfg.network.hidden == cfg["network.hidden"] == cfg["network"]["hidden"] == 12
    for section, keys in cfg.to_dict().items():
        for key, value in keys.items():
            assert getattr(getattr(cfg, section), key) == cfg[f"{section}.{key}"] == value
    with pytest.raises(AttributeError):
        cfg.network.nope
    with pytest.raises(AttributeError):
        cfg.nope
    with pytest.raises(KeyError):
        cfg["network.nope"]


def test_to_toml_round_trips(tmp_path):
    cfg = load_config(overrides={
        "network.hidden": 7, "network.banks": 3, "network.steps": 5,
        "network.schedule": [0, 1, 2, 2, 1], "network.alpha": 0.25,
        "network.activation": "sigmoid", "network.dtype": "float32",
        "network.input_injection": "first_step", "training.lr": 1e-3,
        "training.optimizer": "sgd", "training.momentum": 0.9, "task.path": "data/dir",
    })
    path = tmp_path / "saved.toml"
    path.write_text(cfg.to_toml(), encoding="utf-8")
    again = load_config(path)
    assert again == cfg
    assert again.to_dict() == cfg.to_dict()
    assert hash(again) == hash(cfg)
    assert again.to_toml() == cfg.to_toml()
    assert load_config() != cfg


def test_default_round_trips(tmp_path):
    path = tmp_path / "default.toml"
    path.write_text(load_config().to_toml(), encoding="utf-8")
    assert load_config(path) == load_config()


def test_replace_gives_a_new_validated_config():
    cfg = load_config()
    new = cfg.replace({"network.hidden": 8, "training.epochs": 2})
    assert (new.network.hidden, new.training.epochs) == (8, 2)
    assert (cfg.network.hidden, cfg.training.epochs) == (64, 30)  # the original is unchanged
    assert new == load_config(overrides={"network.hidden": 8, "training.epochs": 2})
    assert cfg.replace({}) == cfg
    with pytest.raises(ConfigError, match=r"network\.hidden: must be >= 1 \(got 0\)"):
        cfg.replace({"network.hidden": 0})
    with pytest.raises(ConfigError, match="unknown key"):
        cfg.replace({"network.hiden": 8})


def test_replace_keeps_earlier_changes():
    cfg = load_config(overrides={"network.hidden": 8})
    assert cfg.replace({"network.banks": 1}).network.hidden == 8


# -- --set values ----------------------------------------------------------------------------


@pytest.mark.parametrize("text, value", [
    ("digits", "digits"),
    ("2", 2),
    ("1e-3", 0.001),
    ("0.5", 0.5),
    ("[0,1,0]", [0, 1, 0]),
    ("200 ps", "200 ps"),
    ("true", True),
    ("false", False),
    ('"quoted"', "quoted"),
    ("inf", math.inf),
])
def test_parse_value(text, value):
    got = parse_value(text)
    assert got == value
    assert type(got) is type(value)


def test_parse_value_nan():
    assert math.isnan(parse_value("nan"))


@pytest.mark.parametrize("text, expected", [
    ("network.hidden=8", ("network.hidden", 8)),
    ("  network.hidden = 8  ", ("network.hidden", 8)),
    ("task.name=digits", ("task.name", "digits")),
    ("network.schedule=[0, 1, 1, 0]", ("network.schedule", [0, 1, 1, 0])),
    ("task.path=a=b", ("task.path", "a=b")),
])
def test_parse_assignment(text, expected):
    assert parse_assignment(text) == expected


@pytest.mark.parametrize("text", [
    "network.hidden",  # no "="
    "hidden=8",  # no section
    "=8",
    "network.=8",
    ".hidden=8",
    "",
])
def test_parse_assignment_rejects(text):
    with pytest.raises(RelaxsimError) as info:
        parse_assignment(text)
    message = str(info.value)
    assert "expected section.key=value" in message
    assert f"--set {text!r}" in message


# -- regressions: huge numbers, copying and pickling -------------------------------------


def test_huge_integer_for_a_float_key_is_a_config_error():
    with pytest.raises(ConfigError, match=r"training\.lr: "):
        load_config(overrides={"training.lr": 10**400})


@pytest.mark.parametrize("how", ["copy", "deepcopy", "pickle"])
def test_config_can_be_copied_and_pickled(how):
    import copy
    import pickle

    cfg = load_config(overrides={"network.schedule": [0, 1, 1, 0]})
    clone = {"copy": copy.copy, "deepcopy": copy.deepcopy,
             "pickle": lambda c: pickle.loads(pickle.dumps(c))}[how](cfg)
    assert clone == cfg


def test_sections_hold_times_parsed_in_seconds_and_devices_as_records():
    from relaxsim.devices.records import Switch

    cfg = load_config(overrides={"hardware.clock": "30 ps", "hardware.drift_time": "1 h",
                                 "hardware.readout_time": 2e-11})
    hw = cfg.hardware
    assert hw.clock == "30 ps"  # as written: what result.json and config.toml record
    assert hw.seconds("clock") == pytest.approx(30e-12, rel=1e-15)
    assert hw.seconds("drift_time") == 3600.0
    assert hw.seconds("readout_time") == 2e-11
    assert load_config().hardware.seconds("clock") is None  # auto
    assert isinstance(hw.device("switch"), Switch) and hw.device("switch") is hw.device("switch")
    with pytest.raises(KeyError, match="hardware.mode: not a time setting"):
        hw.seconds("mode")
    with pytest.raises(KeyError, match="hardware.clock: not a device table"):
        hw.device("clock")
