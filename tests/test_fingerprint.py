"""``python -m relaxsim.validation.fingerprint``: hashes of fixed runs, and the comparison that
shows a restructuring changed no result."""

from __future__ import annotations

import json
import re

import relaxsim.validation.fingerprint as fingerprint


def test_fingerprints_of_the_fixed_runs(tmp_path):
    found = fingerprint.fingerprints(quick=True, work=tmp_path)
    assert sorted(found) == sorted([
        "run/ideal/weights.npz", "run/ideal/result.json-seconds",
        "run/hardware_aware/weights.npz", "run/hardware_aware/result.json-seconds",
        "timing/figures", "timing/coupling", "scan/records-seconds"])
    assert all(re.fullmatch("[0-9a-f]{64}", digest) for digest in found.values())
    assert found["run/ideal/weights.npz"] != found["run/hardware_aware/weights.npz"]
    assert list(tmp_path.iterdir()) == []  # its work directory is removed


def test_the_fingerprints_are_the_same_every_time_and_for_any_version(tmp_path, monkeypatch):
    import relaxsim.runner

    found = fingerprint.fingerprints(quick=True, work=tmp_path)
    monkeypatch.setattr(relaxsim.runner, "__version__", "9.9.9")  # the runs record it
    assert fingerprint.fingerprints(quick=True, work=tmp_path) == found


def test_compare_names_what_differs(tmp_path, monkeypatch, capsys):
    now = {"run/ideal/weights.npz": "a" * 64, "timing/figures": "b" * 64}
    monkeypatch.setattr(fingerprint, "fingerprints", lambda quick=False: dict(now))
    before = tmp_path / "before.json"
    assert fingerprint.main(["--json", str(before)]) == 0
    assert json.loads(before.read_text()) == now
    assert fingerprint.main(["--compare", str(before)]) == 0
    assert "all 2 identical" in capsys.readouterr().out
    now["timing/figures"] = "c" * 64
    assert fingerprint.main(["--compare", str(before)]) == 1
    assert capsys.readouterr().err == "fingerprint: differs: timing/figures\n"
    assert fingerprint.main(["--compare", str(tmp_path / "missing.json")]) == 2
