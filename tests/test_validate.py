"""``relaxsim validate``: a reduced set of checks passes and reports; a failing check exits 1."""

from __future__ import annotations

import json

import pytest

from relaxsim.cli.app import main
from relaxsim.validation import suite, timing
from relaxsim.validation.common import Check
from tests.test_report import parse


def test_validate_selected_checks_pass_and_report(tmp_path, capsys):
    out = tmp_path / "v"
    assert main(["validate", "--quick", "--only", "timing,kernels", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "PASS  Kernels against their numpy twins" in printed
    assert "2 of 2 checks pass" in printed
    page = parse(out / "report.html")
    assert "kernels-against-their-numpy-twins" in page.toc
    assert "Kernels against their numpy twins: PASS" in (out / "report.html").read_text()
    text = (out / "report.html").read_text()
    assert "tolerance" in text and "how it was measured" in text
    verdict = json.loads((out / "timing.json").read_text())
    assert verdict["status"] == "PASS" and (out / "timing.csv").is_file()
    assert (out / "report.md").is_file()


def test_a_failing_check_gives_exit_1(tmp_path, monkeypatch, capsys):
    def failing(quick, out):
        return Check("timing", timing.TITLE, False, method="made to fail", tolerance="< 1",
                     summary="measured 2", head=["x"], rows=[[2]])

    monkeypatch.setattr(timing, "check", failing)
    assert main(["validate", "--only", "timing", "--out", str(tmp_path)]) == 1
    assert "FAIL  Timing" in capsys.readouterr().out
    assert "measured 2" in (tmp_path / "report.html").read_text()


def test_a_crashing_check_is_a_failure_not_a_traceback(tmp_path, monkeypatch, capsys):
    def crash(quick, out):
        raise RuntimeError("boom")

    monkeypatch.setattr(timing, "check", crash)
    assert main(["validate", "--only", "timing", "--out", str(tmp_path)]) == 1
    assert "RuntimeError: boom" in capsys.readouterr().out


@pytest.mark.parametrize("only", ["gradient", ",", "timing,nope"])
def test_unknown_check_is_one_line_exit_2(only, tmp_path, capsys):
    assert main(["validate", "--only", only, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "choose from" in err


def test_every_study_is_registered_and_runnable_alone():
    for name in suite.STUDIES:
        mod = suite.study(name)
        assert mod.NAME == name and callable(mod.check) and mod.TITLE
