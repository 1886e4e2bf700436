"""Device preset files in scans are read as a run reads them: relative to the file that names
them, and their content is part of each point's config (so its id changes with the file)."""

from __future__ import annotations

import os
from pathlib import Path

import relaxsim
from relaxsim.scans.spec import config_id, load_spec

SWITCH = '''kind = "switch"
description = "a test switch"
rise_time = "{rise}"
extinction_ratio = "30 dB"
insertion_loss = "0 dB"
jitter = "0 s"
energy_per_switch = "0 J"
[sources]
rise_time = "assumed"
extinction_ratio = "assumed"
insertion_loss = "assumed"
jitter = "assumed"
energy_per_switch = "assumed"
'''


def write_switch(path: Path, rise: str = "3.5 ps") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(SWITCH.format(rise=rise))


def test_a_base_file_reads_its_preset_from_its_own_directory(tmp_path, monkeypatch):
    write_switch(tmp_path / "sub" / "my_sw.toml")
    (tmp_path / "sub" / "cfg.toml").write_text(
        '[network]\nhidden = 8\n[hardware.switch]\npreset = "my_sw.toml"\n')
    (tmp_path / "spec.toml").write_text('base = "sub/cfg.toml"\n[grid]\n"network.banks" = [1, 2]\n')
    monkeypatch.chdir(tmp_path)
    points = load_spec("spec.toml").expand()
    alone = relaxsim.load_config("sub/cfg.toml", {"network.banks": 2})
    assert points[1].id == config_id(alone)  # the same config as a run of the file, the same id
    assert points[1].config.hardware.device("switch").rise_time_s == 3.5e-12


def test_an_inline_preset_path_is_the_specs_directorys_from_anywhere(tmp_path, monkeypatch):
    write_switch(tmp_path / "specs" / "sub" / "my_sw.toml")
    (tmp_path / "specs" / "s.toml").write_text(
        '[base.hardware.switch]\npreset = "sub/my_sw.toml"\n[grid]\n"network.banks" = [1, 2]\n')
    monkeypatch.chdir(tmp_path)
    here = [p.id for p in load_spec("specs/s.toml").expand()]
    monkeypatch.chdir(tmp_path / "specs" / "sub")
    assert [p.id for p in load_spec(os.path.join("..", "s.toml")).expand()] == here


def test_a_changed_preset_file_gives_new_point_ids(tmp_path, monkeypatch):
    write_switch(tmp_path / "my_sw.toml")
    spec = tmp_path / "s.toml"
    spec.write_text('[grid]\n"hardware.switch.preset" = ["my_sw.toml", "eo_mzi"]\n')
    monkeypatch.chdir(tmp_path)
    before = [p.id for p in load_spec(spec).expand()]
    write_switch(tmp_path / "my_sw.toml", rise="900 ps")
    after = [p.id for p in load_spec(spec).expand()]
    assert before[0] != after[0] and before[1] == after[1]  # the library preset's stays
