"""Scans on a real Dask LocalCluster (2 worker processes, shared by the module): results stored
once per point, resumed after a killed worker and after a killed driver, the same answers as
``relaxsim.run`` alone, failed and corrupt points, the command line, an unreachable scheduler."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import tomli_w

distributed = pytest.importorskip("distributed")

import relaxsim  # noqa: E402
from relaxsim.cli.app import main  # noqa: E402
from relaxsim.errors import RelaxsimError  # noqa: E402
from relaxsim.scans.execute import scan  # noqa: E402
from relaxsim.scans.spec import load_spec  # noqa: E402
from relaxsim.scans.store import ScanWarning, Store  # noqa: E402

TIMEOUT_S = 120  # no test waits longer than this for a cluster, a scan or a subprocess
TINY = {"network": {"hidden": 8}, "training": {"epochs": 1}, "hardware": {"mode": "ideal"}}
SMALL = {"base": TINY, "grid": {"network.banks": [1, 2]}, "seeds": [0, 1]}
# about half a second per point, so that a kill lands while points are still running
SLOW = {"base": {"network": {"hidden": 8}, "training": {"epochs": 2, "batch_size": 1},
                 "hardware": {"mode": "ideal"}},
        "grid": {"network.banks": [1, 2]}, "seeds": [0, 1, 2, 3, 4]}


def write_spec(path: Path, data: dict) -> Path:
    path.write_text(tomli_w.dumps(data), encoding="utf-8")
    return path


def metrics(record: dict) -> dict:
    """A record's result without the wall time, which differs from run to run."""
    return {k: v for k, v in record["result"].items() if k != "seconds"}


def same_results(a: list[dict], b: list[dict]) -> bool:
    return ([(r["id"], r["status"], r["fields"], metrics(r)) for r in a]
            == [(r["id"], r["status"], r["fields"], metrics(r)) for r in b])


def point_files(root: Path) -> list[Path]:
    return sorted((root / "points").glob("*.json")) if (root / "points").is_dir() else []


def wait_for(condition, what: str, timeout_s: float = TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


@pytest.fixture(scope="module")
def reference(client, tmp_path_factory):
    """The SLOW scan, uninterrupted."""
    return scan(SLOW, client, out=tmp_path_factory.mktemp("reference"))


def test_workers_run_one_numba_thread(client):
    assert set(client.run(lambda: os.environ.get("NUMBA_NUM_THREADS")).values()) == {"1"}
    assert set(client.run(lambda: __import__("numba").get_num_threads()).values()) == {1}


def test_scan_stores_every_point_once_and_a_rerun_skips_them(client, tmp_path):
    out = tmp_path / "s"
    first = scan(SMALL, client, out=out)
    assert (first.computed, first.reused) == (4, 0)
    assert [r["status"] for r in first] == ["done"] * 4
    assert [r["fields"] for r in first] == [
        {"network.banks": b, "training.seed": s} for b in (1, 2) for s in (0, 1)]
    ids = [p.id for p in load_spec(SMALL).expand()]
    assert [p.stem for p in point_files(out)] == sorted(ids)
    assert load_spec(out / "scan.toml").to_dict() == load_spec(SMALL).to_dict()
    stored = json.loads((out / "points" / f"{ids[0]}.json").read_text())
    assert stored == first[0]
    again = scan(SMALL, client, out=out)
    assert (again.computed, again.reused) == (0, 4) and again == first


def test_a_point_gives_the_same_answer_alone_and_in_scans(client, tmp_path, capsys):
    point = load_spec(SMALL).expand()[3]
    alone = relaxsim.run(point.config)
    in_scan = scan(SMALL, client)[3]  # no store: the records come straight from the workers
    assert in_scan["id"] == point.id
    assert {k: v for k, v in alone.items() if k != "seconds"} == metrics(in_scan)
    # relaxsim run on the command line, and a scan through --address (the cluster path)
    assert main(["run", "--out", str(tmp_path / "run"), "--quiet",
                 "--set", "network.hidden=8", "--set", "training.epochs=1",
                 "--set", 'hardware.mode="ideal"', "--set", "network.banks=2",
                 "--set", "training.seed=1"]) == 0
    cli_run = json.loads((tmp_path / "run" / "result.json").read_text())
    assert {k: v for k, v in cli_run.items() if k != "seconds"} == metrics(in_scan)
    spec = write_spec(tmp_path / "small.toml", SMALL)
    assert main(["scan", str(spec), "--out", str(tmp_path / "c"), "--quiet",
                 "--address", client.scheduler.address]) == 0
    on_cluster = json.loads((tmp_path / "c" / "points" / f"{point.id}.json").read_text())
    assert metrics(on_cluster) == metrics(in_scan)
    assert capsys.readouterr().out.splitlines()[-1].startswith(
        "scan: 4 done, 0 failed (4 run now, 0 stored before) in ")


def test_failed_point_is_stored_and_retried_only_when_asked(client, tmp_path):
    spec = {"base": TINY, "points": [{}, {"task.name": "svhn",
                                          "task.path": str(tmp_path / "no-svhn")}]}
    out = tmp_path / "s"
    first = scan(spec, client, out=out)
    good, bad = first
    assert good["status"] == "done" and bad["status"] == "failed"
    assert bad["error"].startswith("DataError: task.path: SVHN files")
    assert "Traceback" in bad["traceback"] and bad["config"]["task"]["name"] == "svhn"
    assert first.failed == [bad]
    assert scan(spec, client, out=out).computed == 0
    retried = scan(spec, client, out=out, retry_failed=True)
    assert (retried.computed, retried.reused) == (1, 1)
    assert main(["scan", str(out), "--status"]) == 0


def test_failed_points_on_the_command_line(client, tmp_path, capsys):
    spec = write_spec(tmp_path / "f.toml", {"base": TINY, "points": [
        {"task.name": "svhn", "task.path": str(tmp_path / "no-svhn")}]})
    out = tmp_path / "s"
    assert main(["scan", str(spec), "--out", str(out), "--quiet",
                 "--address", client.scheduler.address]) == 1
    assert "--retry-failed" in capsys.readouterr().err
    assert main(["scan", str(out), "--status"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"{out}: 1 points: 0 done, 1 failed, 0 missing"
    assert lines[2].endswith("task.name = \"svhn\", task.path = "
                             f"\"{tmp_path / 'no-svhn'}\": DataError: task.path: SVHN files "
                             f"train_32x32.mat, test_32x32.mat not found in "
                             f"'{tmp_path / 'no-svhn'}'; get them with `relaxsim data download "
                             "svhn` or set task.path to the directory holding them")


def test_corrupt_result_is_recomputed_with_a_warning(client, tmp_path):
    out = tmp_path / "s"
    first = scan(SMALL, client, out=out)
    victim = out / "points" / f"{first[2]['id']}.json"
    victim.write_text(victim.read_text()[:100])
    with pytest.warns(ScanWarning, match="corrupt result file .*; it will be recomputed"):
        again = scan(SMALL, client, out=out)
    assert (again.computed, again.reused) == (1, 3)
    assert same_results(again, first)
    assert victim.with_name(victim.name + ".corrupt").read_text() == json.dumps(first[2],
                                                                            indent=2)[:100]


def test_killed_worker_scan_finishes_each_point_once(client, reference, tmp_path):
    out = tmp_path / "s"
    box: dict = {}
    runner = threading.Thread(target=lambda: box.update(results=scan(SLOW, client, out=out)))
    runner.start()
    try:
        wait_for(lambda: len(point_files(out)) >= 2, "two stored points")
        busy = [addr for addr, keys in client.processing().items() if keys]
        pids = client.run(os.getpid)
        victim = pids[busy[0] if busy else next(iter(pids))]
        os.kill(victim, signal.SIGKILL)
    finally:
        runner.join(TIMEOUT_S)
    assert not runner.is_alive(), "the scan did not finish after a worker was killed"
    results = box["results"]
    assert [r["status"] for r in results] == ["done"] * 10
    assert len(point_files(out)) == 10 and not list((out / "points").glob(".*.tmp"))
    assert same_results(results, reference)
    client.wait_for_workers(2, timeout=TIMEOUT_S)
    assert victim not in client.run(os.getpid).values()  # the killed worker was replaced


def test_killed_driver_scan_resumes_to_the_same_results(client, reference, tmp_path, capsys):
    spec = write_spec(tmp_path / "slow.toml", SLOW)
    out = tmp_path / "s"
    driver = subprocess.Popen(
        [sys.executable, "-m", "relaxsim", "scan", str(spec), "--out", str(out),
         "--workers", "2", "--quiet"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for(lambda: len(point_files(out)) >= 3 or driver.poll() is not None,
                 "three points stored by the driver")
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait(TIMEOUT_S)
    finally:
        try:  # the killed driver's own worker processes, started in its session
            os.killpg(driver.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    before = {p.name: p.stat().st_mtime_ns for p in point_files(out)}
    assert 3 <= len(before) < 10, f"the driver was killed after {len(before)} of 10 points"
    assert main(["scan", str(out), "--quiet", "--address", client.scheduler.address]) == 0
    assert f"({10 - len(before)} run now, {len(before)} stored before)" in capsys.readouterr().out
    after = point_files(out)
    assert len(after) == 10 and not list((out / "points").glob(".*.tmp"))
    assert {p.name: p.stat().st_mtime_ns for p in after if p.name in before} == before
    results = scan(SLOW, client, out=out)
    assert results.computed == 0 and same_results(results, reference)


def test_store_of_another_scan_is_refused(client, tmp_path, capsys):
    out = tmp_path / "s"
    scan(SMALL, client, out=out)
    other = {**SMALL, "base": {**TINY, "training": {"epochs": 2}}}
    with pytest.raises(RelaxsimError, match="holds another scan"):
        scan(other, client, out=out)
    more = {**SMALL, "seeds": [0, 1, 2]}  # an extension: every stored point still in it
    results = scan(more, client, out=out)
    assert (results.computed, results.reused) == (2, 4)


def test_export_has_a_row_per_point_with_fields_and_metrics(client, tmp_path, capsys):
    import csv

    out = tmp_path / "s"
    results = scan(SMALL, client, out=out)
    assert main(["scan", str(out), "--export", str(tmp_path / "r.csv")]) == 0
    rows = list(csv.DictReader((tmp_path / "r.csv").open()))
    assert len(rows) == 4
    assert {"id", "status", "network.banks", "training.seed", "test_accuracy", "params.total",
            "hardware.latency_s", "seconds"} <= set(rows[0])
    for row, rec in zip(rows, results):
        assert row["id"] == rec["id"] and float(row["val_loss"]) == rec["result"]["val_loss"]
    results.to_csv(tmp_path / "api.csv")
    assert (tmp_path / "api.csv").read_text() == (tmp_path / "r.csv").read_text()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_scheduler_is_one_line_after_the_connect_timeout(tmp_path, capsys):
    """The driver gives up after its connection timeout (5 s, named in the message) instead of
    hanging; no wall time is asserted here."""
    spec = write_spec(tmp_path / "small.toml", SMALL)
    address = f"tcp://127.0.0.1:{_free_port()}"
    assert main(["scan", str(spec), "--out", str(tmp_path / "s"), "--address", address]) == 2
    err = capsys.readouterr().err
    assert err == (f"relaxsim: error: --address {address}: no Dask scheduler answered within "
                   "5 s; start one with `dask scheduler`, or leave --address out for local "
                   "workers\n")
    assert not (tmp_path / "s").exists()
    assert main(["scan", str(spec), "--address", "tcp://127.0.0.1"]) == 2
    assert "not a scheduler address" in capsys.readouterr().err


def test_store_api_reads_what_the_scan_wrote(client, tmp_path):
    out = tmp_path / "s"
    results = scan(SMALL, client, out=out)
    store = Store(out)
    state = store.status(store.spec().expand())
    assert [len(state[k]) for k in ("done", "failed", "missing")] == [4, 0, 0]
    assert [rec for _, rec in state["done"]] == list(results)


def test_mnist1d_with_the_new_training_keys_is_the_same_alone_and_in_a_scan(client, tmp_path):
    """MNIST-1D in sequence chunks with clipping, a cosine schedule, warm-up, weight decay and
    orthogonal banks: a point's result is the same alone and on the cluster."""
    base = {"network": {"hidden": 8, "input_injection": "sequence", "steps": 8,
                        "init": "orthogonal"},
            "training": {"epochs": 2, "clip_norm": 1.0, "schedule": "cosine", "warmup": 1,
                         "weight_decay": 0.01},
            "task": {"name": "mnist1d", "chunk": 5, "path": str(tmp_path / "data")},
            "hardware": {"mode": "ideal"}}
    spec = {"base": base, "grid": {"network.banks": [2]}, "seeds": [0]}
    (point,) = load_spec(spec).expand()
    alone = relaxsim.run(point.config)
    (in_scan,) = scan(spec, client)
    assert {k: v for k, v in alone.items() if k != "seconds"} == metrics(in_scan)
