"""Fault injection on searches (``validation/search_faults.py``, two cycles with real training):
the driver killed, a worker killed; after resuming, the requested number of trials, every trial
kept once. And the checker can fail: a duplicated trial, a result stored twice, a changed trial
are each found. A directory killed while it was made is not resumed yet (expected to fail)."""

from __future__ import annotations

import contextlib
import io
import json
import shutil

import pytest

pytest.importorskip("distributed")
pytest.importorskip("psutil")
pytest.importorskip("optuna")

from relaxsim.validation import search_faults  # noqa: E402
from relaxsim.validation.search_faults import Snapshot, check  # noqa: E402


@pytest.fixture(scope="module")
def script(tmp_path_factory):
    """Two cycles of the script (one driver, one worker kill), striking as soon as the first
    result is stored, not at a random moment: the trials take a fraction of a second each, and a
    test must not miss the running search. Its exit status, its directory and what it printed."""
    out = tmp_path_factory.mktemp("search-faults") / "run"
    printed = io.StringIO()
    mp = pytest.MonkeyPatch()
    mp.setattr(search_faults.Faults, "moment", lambda self, ref: (1, 0.0))
    try:
        with contextlib.redirect_stdout(printed):
            code = search_faults.main(["--cycles", "2", "--seed", "3", "--out", str(out)])
    finally:
        mp.undo()
    return code, out, printed.getvalue().splitlines()


def test_the_script_survives_a_driver_and_a_worker_kill(script):
    code, out, lines = script
    assert code == 0, lines
    assert lines[0].startswith("search_faults: seed 3, 2 cycles, 2 workers, 10 trials")
    assert lines[1].startswith("reference: 10 trials uninterrupted")
    cycles = [line for line in lines if line.startswith("cycle ")]
    assert sorted(line.split()[2] for line in cycles) == ["driver", "worker"], lines
    for line in cycles:
        assert f"  SIGKILL {line.split()[2]} " in line, lines
        assert "; every trial kept once (" in line and line.endswith(" s)"), lines
    assert lines[-1].startswith("2 kill-and-resume cycles survived, 2 kept every trial once "
                                "(1 driver, 1 worker; seed 3; ")
    logs = sorted(p.name for p in (out / "logs").iterdir())
    assert logs == ["cycle-01.txt", "cycle-02.txt", "reference.txt"]
    for n in (1, 2):
        rows = search_faults.read_rows(out / f"cycle-{n:02d}")
        assert [r["trial"] for r in rows] == list(range(10))
        # a trial killed before all its fields were chosen fails (the script checks that only
        # such a trial does); every other one completes
        assert all(r["state"] in ("complete", "fail") for r in rows)
        assert sum(r["state"] == "complete" for r in rows) >= 9
    assert not list(out.rglob("*.tmp")) and not list(out.rglob("study.journal.lock"))


def _copy(out, tmp_path):
    root = tmp_path / "c"
    shutil.copytree(out / "cycle-01", root)
    return root


def test_a_whole_search_passes_the_check(script, tmp_path):
    root = _copy(script[1], tmp_path)
    assert check(root, Snapshot([], {}), 10, None, {}) == []


def test_a_duplicated_trial_is_found(script, tmp_path):
    import optuna

    root = _copy(script[1], tmp_path)
    before = Snapshot.take(root)
    study = optuna.load_study(study_name=search_faults.STUDY_NAME,
                              storage=search_faults.study_storage(root))
    study.add_trial(study.trials[3])  # trial 3 told a second time, as trial 10
    problems = check(root, before, 10, 0, {})
    assert "11 trials, expected 10" in problems
    assert "front.json counts 10 trials, the study 11" in problems


def test_a_result_stored_twice_and_a_changed_trial_are_found(script, tmp_path):
    root = _copy(script[1], tmp_path)
    before = Snapshot.take(root)
    first = sorted((root / "points").glob("*.json"))[0]
    shutil.copy(first, root / "points" / "0123456789abcdef.json")
    problems = check(root, before, 10, 0, {})
    pid = first.stem
    assert f"0123456789abcdef.json holds the record of {pid}" in problems
    assert f"the result of {pid} is stored twice" in problems
    assert "the resume ran 0 trials but stored 1 new results" in problems

    root = _copy(script[1], tmp_path / "b")
    before = Snapshot.take(root)
    before.rows[2]["values"] = [v + 1 for v in before.rows[2]["values"]]
    assert check(root, before, 10, 0, {}) == [
        "trials told before the fault changed or lost: [2]"]
    record = json.loads(first.read_text())
    record["result"]["test_accuracy"] = 0.5
    known = {pid: search_faults.comparable(record)}
    assert check(_copy(script[1], tmp_path / "d"), Snapshot([], {}), 10, None, known) == [
        f"results differ from the same config's earlier result: ['{pid}']"]


def test_a_search_killed_while_its_directory_was_made_is_resumed(tmp_path):
    """The state a SIGKILL leaves inside ``attach``: an empty ``points/`` and the half-written
    temporary file of ``search.toml``. A scan store in this state is resumed
    (tests/test_faults.py); a search directory should be too."""
    from relaxsim.scans.search import search

    root = tmp_path / "s"
    (root / "points").mkdir(parents=True)
    (root / ".search.toml.x1y2.tmp").write_text("description = \"fault inj")

    def evaluate(cfg):
        return {"test_accuracy": cfg.training.lr,
                "hardware": {"energy_per_inference_j": 1e-12, "latency_s": 1e-9}}

    res = search(search_faults.SPEC, root, trials=2, evaluate=evaluate, write_outputs=False)
    assert len(res.trials) == 2
