"""Paths that cannot be used: one line naming the option or field, exit status 2, nothing made."""

from __future__ import annotations

import pytest

from relaxsim.cli.app import main

SPEC = '[base.network]\nhidden = 8\n[base.training]\nepochs = 1\n[grid]\n"network.banks" = [1, 2]\n'


@pytest.mark.parametrize("argv", [["run", "--out", "afile/sub"],
                                  ["scan", "s.toml", "--out", "afile/sub"]])
def test_an_output_directory_under_a_file_is_one_line(tmp_path, monkeypatch, capsys, argv):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("")
    (tmp_path / "s.toml").write_text(SPEC)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == ("relaxsim: error: --out 'afile/sub': cannot create the "
                                    "directory (Not a directory)")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "s.toml"]


@pytest.mark.parametrize("value, field", [
    ('"~no-such-user-here/x.toml"', "hardware.switch"),
    ('{preset = "~no-such-user-here/x.toml"}', "hardware.switch.preset"),
])
def test_a_preset_in_an_unknown_users_home_is_one_line(capsys, value, field):
    assert main(["config", "--set", f"hardware.switch={value}"]) == 2
    assert capsys.readouterr().err == (
        f"relaxsim: error: {field}: names the home directory of a user this system does not "
        "know (got '~no-such-user-here/x.toml')\n")
