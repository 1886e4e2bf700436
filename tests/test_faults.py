"""Fault injection on scans that keep their weights (``validation/scan_faults.py``, a few cycles):
the driver killed, a worker killed, damaged and half-written files; after resuming, every point
once, with the uninterrupted scan's records and weights bytes. Also: one driver per store, weights
kept only when asked. The resumes run on one shared 2-process cluster (``--address``); the killed
scans start their own local workers, as ``relaxsim scan`` does. The cycles check everything
themselves (see ``Faults.check``); the tests assert that they ran and found nothing."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import threading
import time

import pytest

distributed = pytest.importorskip("distributed")
psutil = pytest.importorskip("psutil")

from relaxsim.cli.app import main  # noqa: E402
from relaxsim.errors import RelaxsimError  # noqa: E402
from relaxsim.scans.execute import local_cluster, scan  # noqa: E402
from relaxsim.scans.spec import load_spec  # noqa: E402
from relaxsim.scans.store import ScanWarning, Store  # noqa: E402
from relaxsim.validation.scan_faults import FILE_FAULTS, Faults, Reference  # noqa: E402
from tests.conftest import tls_args  # noqa: E402

TIMEOUT_S = 120
# 4 points, a fraction of a second each once a worker is warm; weights kept
SPEC = {"save_weights": True,
        "base": {"network": {"hidden": 8}, "training": {"epochs": 2, "batch_size": 8}},
        "grid": {"hardware.mode": ["ideal", "hardware_aware"]}, "seeds": [0, 1]}


@pytest.fixture(scope="module")
def faults(client, tmp_path_factory):
    """The cycles' machinery, resuming on the shared cluster, and the uninterrupted scan."""
    root = tmp_path_factory.mktemp("faults")
    f = Faults(root, seed=7, workers=2,
               resume=["--address", client.scheduler.address, *tls_args(client, root)],
               spec=SPEC)
    scan(f.spec_path, client, out=root / "reference")
    return f, Reference.read(root / "reference")


def test_reference_keeps_weights_written_before_their_json(faults):
    f, ref = faults
    points = f.root / "reference" / "points"
    assert sorted(p.name for p in points.iterdir()) == sorted(
        f"{pid}{ext}" for pid in ref.records for ext in (".json", ".weights.npz"))
    for pid in ref.records:
        record = json.loads((points / f"{pid}.json").read_text())
        assert record["weights_sha256"] == hashlib.sha256(ref.weights[pid]).hexdigest()
        # the JSON marks the point done, so it must not be older than its weights
        assert ((points / f"{pid}.json").stat().st_mtime_ns
                >= (points / f"{pid}.weights.npz").stat().st_mtime_ns)


def test_damaged_and_half_written_files_are_recomputed_and_nothing_else(faults):
    f, ref = faults
    assert len(FILE_FAULTS) == len(ref.records)  # one point of each kind of damage
    cycle = f.cycle(1, ref, "file", damage=list(FILE_FAULTS))
    assert cycle.completed and not cycle.problems, cycle.line(1)
    assert cycle.counts == (len(ref.records), 0)
    corrupt = sorted(p.name.split(".", 1)[1] for p in (f.root / "cycle-01" / "points").glob(
        "*.corrupt"))
    assert corrupt == ["json.corrupt", "json.corrupt", "weights.npz.corrupt"]


def test_the_script_survives_one_fault_of_each_kind(faults, capsys, monkeypatch):
    """Three cycles of the script, resuming on the shared cluster: the kinds come in a shuffled
    round, so one each (seed 6: driver, worker, file). The kills strike 0.1 s after the first
    stored point, not at a random moment: a test must not miss the running scan."""
    from relaxsim.validation import scan_faults

    f, ref = faults
    monkeypatch.setattr(scan_faults, "SPEC", SPEC)
    monkeypatch.setattr(scan_faults.Faults, "reference", lambda self: _copy(ref, self.root))
    monkeypatch.setattr(scan_faults.Faults, "moment", lambda self, ref: (1, 0.1))
    out = f.root / "script"
    tls = f.resume_args[3::2]  # the CA, certificate and key files
    assert scan_faults.main(["--cycles", "3", "--seed", "6", "--out", str(out),
                             "--address", f.resume_args[1], "--tls", *tls]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("scan_faults: seed 6, 3 cycles, 2 workers, 4 points")
    cycles = [line for line in lines if line.startswith("cycle ")]
    assert [line.split()[2] for line in cycles] == ["driver", "worker", "file"]
    assert all(line.endswith("s)") and "; identical (" in line for line in cycles), cycles
    assert "SIGKILL driver" in cycles[0] and "SIGKILL worker" in cycles[1]
    assert "resumed: 0 run, 4 kept" in cycles[1]  # the scan finished itself
    assert lines[-1].startswith("3 kill-and-resume cycles survived, 3 identical "
                                "(1 driver, 1 worker, 1 file; seed 6; ")
    assert not list(out.rglob("*.tmp"))


def _copy(ref: Reference, root):
    shutil.copytree(ref.store, root / "reference")
    return Reference.read(root / "reference")


def test_a_second_driver_on_a_running_store_is_refused(tmp_path, capsys):
    spec = load_spec(SPEC)
    store = Store(tmp_path / "s")
    with store.session(spec, spec.expand()):
        assert main(["scan", str(tmp_path / "s"), "--quiet"]) == 2
        err = capsys.readouterr().err
        assert err == (f"relaxsim: error: {tmp_path / 's'}: a scan is running in this store "
                       f"(pid {os.getpid()} on {os.uname().nodename}); wait for it to finish, "
                       "or choose another --out\n")
    assert main(["scan", str(tmp_path / "s"), "--status"]) == 0  # reading needs no lock
    assert capsys.readouterr().out.startswith(f"{tmp_path / 's'}: 4 points: 0 done")


def test_weights_need_a_store_and_are_kept_only_when_asked(client, tmp_path):
    with pytest.raises(RelaxsimError, match="save_weights: the weights are kept in a store"):
        scan(SPEC, client)
    plain = {**SPEC, "save_weights": False, "seeds": [0]}
    first = scan(plain, client, out=tmp_path / "s")
    assert not list((tmp_path / "s" / "points").glob("*.npz"))
    assert all("weights_sha256" not in r for r in first)
    # asked later (the CLI's --save-weights): the points without weights run again
    with pytest.warns(ScanWarning, match="stored without its weights"):
        again = scan(plain, client, out=tmp_path / "s", save_weights=True)
    assert (again.computed, again.reused) == (2, 0)
    assert load_spec(tmp_path / "s" / "scan.toml").save_weights  # the store remembers
    assert [{k: v for k, v in r["result"].items() if k != "seconds"} for r in again] == [
        {k: v for k, v in r["result"].items() if k != "seconds"} for r in first]
    assert len(list((tmp_path / "s" / "points").glob("*.weights.npz"))) == 2


def test_a_worker_killed_while_the_local_cluster_starts_does_not_stop_the_scan():
    """The first worker process is killed as soon as it exists: the start fails (Nanny failed
    to start) and is tried again."""
    me = psutil.Process()
    killed: list[int] = []

    def kill_first_worker():
        deadline = time.monotonic() + TIMEOUT_S
        while not killed and time.monotonic() < deadline:
            for child in me.children():
                try:
                    if "resource_tracker" not in " ".join(child.cmdline()):
                        os.kill(child.pid, signal.SIGKILL)
                        killed.append(child.pid)
                        return
                except psutil.Error:
                    pass
            time.sleep(0.005)

    killer = threading.Thread(target=kill_first_worker, daemon=True)
    killer.start()
    with local_cluster(2) as cluster, distributed.Client(cluster, timeout=TIMEOUT_S) as c:
        killer.join(TIMEOUT_S)
        assert killed and len(c.scheduler_info()["workers"]) == 2
        assert killed[0] not in c.run(os.getpid).values()


def test_a_store_killed_while_it_was_created_is_resumed(tmp_path):
    """Killed between making the directory and writing scan.toml: an empty points directory and
    a temporary file are not "another directory"."""
    spec = load_spec(SPEC)
    root = tmp_path / "s"
    (root / "points").mkdir(parents=True)
    (root / ".scan.toml.x1y2.tmp").write_text("save_weights = tr")
    with Store(root).session(spec, spec.expand()):
        pass
    assert sorted(p.name for p in root.iterdir()) == [".lock", "points", "scan.toml"]
    (tmp_path / "t" / "points").mkdir(parents=True)
    (tmp_path / "t" / "points" / "x.json").write_text("{}")
    with pytest.raises(RelaxsimError, match="not empty and not a scan directory"):
        Store(tmp_path / "t").attach(spec, spec.expand())
