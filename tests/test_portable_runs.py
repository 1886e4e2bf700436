"""Run directories that evaluate anywhere, config paths read against the file that names them,
files that start with a byte-order mark, and the hint for a device field set on the hardware.

A device preset given as a file is kept inline in the resolved config (its content, with its
absolute path for the record), so a run directory needs no device file: it evaluates, runs again
and resumes from any working directory after the file is gone.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from relaxsim.cli.app import main
from relaxsim.config import load_config, validate
from relaxsim.devices import load_device
from relaxsim.errors import ConfigError
from relaxsim.runner import run
from relaxsim.scans.spec import load_spec
from relaxsim.training.checkpoint import CHECKPOINT, config_digest
from tests.conftest import interrupt_at

SWITCH = """\
kind = "switch"
description = "tape-out 7 MZI, measured"
rise_time = "20 ps"
extinction_ratio = inf          # a bare TOML inf: kept as "inf" so the config is valid JSON
jitter = "0.5 ps"

[sources]
rise_time = "wafer 3 measurement"
"""
FAST = ["--quiet", "--set", "training.epochs=2", "--set", "network.hidden=8",
        "--set", "hardware.mode=hardware_aware"]
BOM = "\ufeff"


def invoke(argv, capsys):
    capsys.readouterr()
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def device_file(directory: Path, name: str = "my_switch.toml", text: str = SWITCH) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def interrupted(argv, capsys) -> None:
    """Run the command line ``argv`` that :func:`interrupt_at` stops (a Ctrl-C)."""
    try:
        status, _, err = invoke(argv, capsys)
    except KeyboardInterrupt:
        return
    assert status != 0, err


# -- a run directory carries its devices ------------------------------------------------------


def test_run_dir_evaluates_elsewhere_after_its_device_file_is_deleted(tmp_path, monkeypatch,
                                                                       capsys):
    work, other = tmp_path / "work", tmp_path / "other"
    other.mkdir()
    path = device_file(work / "my devs")
    monkeypatch.chdir(work)
    status, _, err = invoke(["run", *FAST, "--out", "run",
                             "--set", "hardware.switch.preset=my devs/my_switch.toml"], capsys)
    assert status == 0, err
    saved = load_config(work / "run" / "config.toml").hardware.switch["preset"]
    assert saved["path"] == str(path)  # stored resolved, for the record
    assert saved["rise_time"] == "20 ps"
    assert saved["sources"] == {"rise_time": "wafer 3 measurement"}
    result = json.loads((work / "run" / "result.json").read_text())
    assert result["hardware"]["switch"] == "my_switch"

    shutil.rmtree(work / "my devs")
    monkeypatch.chdir(other)
    status, out, err = invoke(["evaluate", "../work/run", "--repeats", "2",
                               "--set", "hardware.switch.jitter=1 ps"], capsys)
    assert status == 0, err
    assert "my_switch" in out

    # the same config runs again, from anywhere, to the same bytes
    status, _, err = invoke(["run", "../work/run/config.toml", "--quiet", "--out", "again"],
                            capsys)
    assert status == 0, err
    for name in ("weights.npz", "config.toml"):
        assert (other / "again" / name).read_bytes() == (work / "run" / name).read_bytes()


def test_inline_device_is_the_device_of_its_file(tmp_path):
    path = device_file(tmp_path)
    cfg = load_config(overrides={"hardware.switch.preset": str(path),
                                 "hardware.switch.rise_time": "7 ps"})
    table = cfg.hardware.switch
    assert table["rise_time"] == "7 ps" and table["preset"]["path"] == str(path)
    assert table["preset"]["extinction_ratio"] == "inf"
    config_digest(cfg.to_dict())  # no infinite float: the checkpoint's JSON can hold it
    inline = load_device("switch", table, "hardware.switch")
    from_file = load_device("switch", {"preset": str(path), "rise_time": "7 ps"},
                            "hardware.switch")
    assert inline == from_file and inline.name == "my_switch"
    assert validate(cfg.to_dict()) == cfg  # validating it again changes nothing


def test_inline_device_errors_name_the_field(tmp_path):
    table = {"preset": {"path": str(tmp_path / "sw.toml"), "kind": "switch",
                        "rise_time": "-2 ps"}}
    with pytest.raises(ConfigError, match=r"^hardware\.switch\.preset\.rise_time: must be >= 0"):
        load_device("switch", table, "hardware.switch")
    table = {"preset": {"kind": "weight"}}
    with pytest.raises(ConfigError, match=r'^hardware\.switch\.preset\.kind: must be "switch"'):
        load_device("switch", table, "hardware.switch")


def test_library_presets_stay_names():
    cfg = load_config(overrides={"hardware.switch.preset": "mems"})
    assert cfg.hardware.switch == {"preset": "mems"}
    assert load_config().to_toml() == validate({}).to_toml()


def test_user_directory_preset_is_kept_inline(tmp_path, monkeypatch):
    path = device_file(tmp_path / "mine" / "switch", "fab7.toml")
    monkeypatch.setenv("RELAXSIM_DEVICES", str(tmp_path / "mine"))
    cfg = load_config(overrides={"hardware.switch.preset": "fab7"})
    assert cfg.hardware.switch["preset"]["path"] == str(path)
    monkeypatch.delenv("RELAXSIM_DEVICES")
    assert load_device("switch", cfg.hardware.switch).name == "fab7"


def test_resume_from_another_directory_after_the_device_file_is_deleted(tmp_path, monkeypatch,
                                                                         capsys):
    work, other = tmp_path / "work", tmp_path / "other"
    other.mkdir()
    device_file(work)
    monkeypatch.chdir(work)
    argv = ["run", *FAST, "--set", "training.epochs=3", "--set",
            "hardware.switch.preset=my_switch.toml"]
    status, _, err = invoke([*argv, "--out", "reference"], capsys)
    assert status == 0, err
    interrupt_at(monkeypatch, 2, 3)
    interrupted([*argv, "--out", "run"], capsys)
    monkeypatch.undo()
    assert (work / "run" / CHECKPOINT).is_file()
    (work / "my_switch.toml").unlink()
    monkeypatch.chdir(other)
    status, _, err = invoke(["run", "--quiet", "--resume", work / "run"], capsys)
    assert status == 0, err
    for name in ("weights.npz", "config.toml"):
        assert (work / "run" / name).read_bytes() == (work / "reference" / name).read_bytes()


def test_resume_of_a_checkpoint_that_names_its_device_by_path(tmp_path, monkeypatch, capsys):
    """A checkpoint written before devices were kept inline (a relative path, read from the
    current directory) resumes, with its config given again or not."""
    device_file(tmp_path / "my devs")
    monkeypatch.chdir(tmp_path)
    old = validate({"training": {"epochs": 3}, "network": {"hidden": 8},
                    "hardware": {"mode": "hardware_aware",
                                 "switch": {"preset": "my devs/my_switch.toml"}}})
    assert old.hardware.switch["preset"] == "my devs/my_switch.toml"
    interrupt_at(monkeypatch, 2, 3)
    with pytest.raises(KeyboardInterrupt):
        run(old, out=tmp_path / "run")
    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)
    given = ["--set", "training.epochs=3", "--set", "network.hidden=8",
             "--set", "hardware.mode=hardware_aware",
             "--set", "hardware.switch.preset=my devs/my_switch.toml"]
    shutil.copytree(tmp_path / "run", tmp_path / "run2")
    status, _, err = invoke(["run", "--quiet", "--resume", "run", *given], capsys)
    assert status == 0, err
    status, _, err = invoke(["run", "--quiet", "--resume", "run2"], capsys)
    assert status == 0, err
    assert (tmp_path / "run" / "weights.npz").read_bytes() == \
        (tmp_path / "run2" / "weights.npz").read_bytes()


# -- paths in a config file are read against the file -----------------------------------------


def test_config_file_preset_is_relative_to_the_file(tmp_path, monkeypatch):
    a = tmp_path / "A"
    path = device_file(a)
    (a / "exp.toml").write_text('[hardware.switch]\npreset = "my_switch.toml"\n')
    for cwd in (tmp_path, a, tmp_path / "elsewhere"):
        cwd.mkdir(exist_ok=True)
        monkeypatch.chdir(cwd)
        config = Path("A/exp.toml") if cwd == tmp_path else a / "exp.toml"
        cfg = load_config(config)
        assert cfg.hardware.switch["preset"]["path"] == str(path)
        assert load_device("switch", cfg.hardware.switch).rise_time_s == pytest.approx(20e-12)


def test_config_file_preset_in_the_current_directory_is_still_found(tmp_path, monkeypatch):
    """Configs (and run directories) written before paths were read against their file name
    them relative to the directory they were used from: found there when not beside the file."""
    path = device_file(tmp_path / "my devs")
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "exp.toml").write_text(
        '[hardware.switch]\npreset = "my devs/my_switch.toml"\n')
    monkeypatch.chdir(tmp_path)
    assert load_config("runs/exp.toml").hardware.switch["preset"]["path"] == str(path)


# -- a byte-order mark is skipped -------------------------------------------------------------


def test_config_preset_and_scan_spec_with_a_byte_order_mark(tmp_path, capsys):
    device_file(tmp_path, text=BOM + SWITCH)
    (tmp_path / "exp.toml").write_text(
        BOM + '[network]\nhidden = 8\n\n[hardware.switch]\npreset = "my_switch.toml"\n',
        encoding="utf-8")
    cfg = load_config(tmp_path / "exp.toml")
    assert cfg.network.hidden == 8 and cfg.hardware.switch["preset"]["rise_time"] == "20 ps"
    (tmp_path / "scan.toml").write_text(BOM + 'seeds = [0, 1]\n[base.network]\nhidden = 8\n',
                                        encoding="utf-8")
    assert len(load_spec(tmp_path / "scan.toml").expand()) == 2
    status, out, err = invoke(["config", tmp_path / "exp.toml"], capsys)
    assert status == 0, err


# -- did you mean ----------------------------------------------------------------------------


@pytest.mark.parametrize("key, hint", [
    ("rise_time", "did you mean 'hardware.switch.rise_time'?"),
    ("risetime", "did you mean 'hardware.switch.rise_time'?"),
    ("read_noise", "did you mean 'hardware.weights.read_noise'?"),
    ("drift_tme", "did you mean 'hardware.drift_time'?"),
    ("preset", "did you mean one of 'hardware.switch.preset', 'hardware.weights.preset', "
               "'hardware.active.preset', 'hardware.io.preset', 'hardware.digital.preset'?"),
])
def test_hardware_key_hint_searches_the_device_fields(key, hint, capsys):
    status, out, err = invoke(["run", "--set", f"hardware.{key}=3"], capsys)
    assert status == 2 and out == ""
    assert err == f"relaxsim: error: hardware.{key}: unknown key; {hint}\n"


def test_a_differing_inline_preset_is_named_by_its_file():
    from relaxsim.devices.library import inline_preset
    from relaxsim.training.checkpoint import _show, first_difference

    path = str(Path(__file__).resolve().parents[1] / "devices" / "presets" / "switch" / "mems.toml")
    inline = {"hardware": {"switch": {"preset": inline_preset("switch", path)}}}
    named = {"hardware": {"switch": {"preset": "eo_mzi"}}}
    key, a, b = first_difference(inline, named)
    assert (key, _show(a), _show(b)) == ("hardware.switch.preset",
                                        f"the preset file {path!r}", "'eo_mzi'")
