"""Fault injection: a scan killed and resumed again and again ends as the uninterrupted scan ends.

Run as ``python -m relaxsim.validation.scan_faults [--cycles 20] [--seed S] [--workers 2]
[--out DIR] [--address tcp://HOST:8786]``.

One small scan (8 points: ideal and hardware_aware machines, 4 seeds, N = 8, weights kept) runs
uninterrupted with ``relaxsim scan``: the reference. Then each cycle starts the same scan into a
fresh store and injects one fault, the kinds taken in rounds of three in a shuffled order (so
cycles 1-3, 4-6, ... each cover all three):

- ``driver``: SIGKILL the ``relaxsim scan`` process at a random moment (after a random number of
  points 0..7 have been stored, plus a random delay of up to one point's time, at most 0.5 s);
  its worker processes must then exit on their own;
- ``worker``: SIGKILL one of its worker processes (children of the driver) at such a moment; the
  scan must finish by itself;
- ``file``: in a copy of the finished reference store, damage one random finished point: its JSON
  truncated, or a block of it zeroed (what a crash leaves of unwritten blocks), or replaced by the
  half-written temporary file of a killed writer, or its weights file truncated.

and then runs ``relaxsim scan`` again on the store (``relaxsim scan DIR``; with the spec when the
kill came before the store existed) until it exits 0. A cycle passes when the store holds every
point exactly once (one ``<id>.json`` and one ``<id>.weights.npz`` per point, nothing else but
``.corrupt`` files kept for inspection, no temporary files), every record equals the reference's
(all but the wall-clock ``seconds``), every weights file has the reference's bytes, and the resume
ran exactly the points that were not whole before it (no point computed twice, whole files left
untouched). With ``--address``, the reference and the resumes run on that scheduler (faster: its
workers are warm); the killed scans always start their own local workers. The random generator's
seed is printed; the moments also depend on the machine's speed, so a seed repeats the choices,
not the exact interleaving. Exit status 1 on any mismatch.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tomli_w

from relaxsim.scans.spec import load_spec

FAULTS = ("driver", "worker", "file")
FILE_FAULTS = ("truncate", "zero_block", "temp_file", "truncate_weights")
WEIGHTS = ".weights.npz"
TIMEOUT_S = 300.0  # no scan, resume or wait takes longer than this
ORPHAN_WAIT_S = 20.0  # a killed driver's workers must be gone by then
MAX_DELAY_S = 0.5  # the random delay after the k-th point is at most this (or a point's time)
SPEC = {
    "description": "fault injection: small, weights kept",
    "save_weights": True,
    "base": {"network": {"hidden": 8}, "training": {"epochs": 2, "batch_size": 4}},
    "grid": {"hardware.mode": ["ideal", "hardware_aware"]},
    "seeds": [0, 1, 2, 3],
}
COUNTS = re.compile(r"\((\d+) run now, (\d+) stored before\)")


@dataclass
class Reference:
    """The uninterrupted scan: each point's record (without ``seconds``) and weights bytes."""

    records: dict[str, dict]
    weights: dict[str, bytes]
    point_s: float  # the shortest time a point took (the scale of the random delays)
    store: Path

    @classmethod
    def read(cls, store: Path) -> Reference:
        records, weights, seconds = {}, {}, []
        for path in sorted((store / "points").glob("*.json")):
            record = json.loads(path.read_text(encoding="utf-8"))
            seconds.append(record["result"]["seconds"])
            records[record["id"]] = comparable(record)
            weights[record["id"]] = path.with_name(record["id"] + WEIGHTS).read_bytes()
        return cls(records, weights, min(seconds), store)


@dataclass
class Cycle:
    """What one cycle did and found."""

    number: int
    kind: str
    fault: str = ""
    resumed: str = ""
    counts: tuple[int, int] | None = None  # the first resume's points run and kept
    completed: bool = False  # a resume exited 0
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def line(self, cycles: int) -> str:
        verdict = "identical" if not self.problems else "MISMATCH: " + "; ".join(self.problems)
        return (f"cycle {self.number:>2}/{cycles}  {self.kind:<6}  {self.fault}; {self.resumed}; "
                f"{verdict} ({self.seconds:.1f} s)")


def comparable(record: dict) -> dict:
    """A record without the wall-clock time, which differs from run to run."""
    out = dict(record)
    out["result"] = {k: v for k, v in record["result"].items() if k != "seconds"}
    return out


def scan_argv(target: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "relaxsim", "scan", str(target), "--quiet", *extra]


def run_logged(argv: list[str], log: Path) -> tuple[int, str]:
    """Run a ``relaxsim`` command (a scan, a search) to the end, in a session of its own; its
    exit status and output (also kept in ``log``)."""
    with open(log, "a", encoding="utf-8") as fh:
        fh.write("$ " + " ".join(argv[1:]) + "\n")
        fh.flush()
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              timeout=TIMEOUT_S, start_new_session=True)
        fh.write(proc.stdout)
    return proc.returncode, proc.stdout


def stored(store: Path) -> int:
    """Results stored in a scan store or a search directory (its ``points/``)."""
    points = store / "points"
    return len(list(points.glob("*.json"))) if points.is_dir() else 0


def worker_pids(driver: int) -> list[int]:
    """The driver's worker processes: its children but multiprocessing's resource tracker."""
    import psutil

    pids = []
    try:
        for child in psutil.Process(driver).children(recursive=True):
            try:
                if "resource_tracker" not in " ".join(child.cmdline()):
                    pids.append(child.pid)
            except psutil.Error:  # gone meanwhile
                pass
    except psutil.NoSuchProcess:
        pass
    return pids


def alive(pids: list[int]) -> list[int]:
    import psutil

    out = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                out.append(pid)
        except psutil.NoSuchProcess:
            pass
    return out


class Faults:
    """Runs the cycles: ``resume`` is how a store is scanned again (local workers by default)."""

    def __init__(self, root: Path, seed: int, workers: int, resume: list[str] | None = None,
                 spec: dict | None = None):
        self.root = root
        self.rng = np.random.default_rng(seed)
        self.workers = workers
        self.resume_args = resume or ["--workers", str(workers)]
        self.spec_path = root / "faults.toml"
        self.spec_path.write_text(tomli_w.dumps(spec or SPEC), encoding="utf-8")
        self.points = len(load_spec(self.spec_path).expand())
        self.logs = root / "logs"
        self.logs.mkdir(exist_ok=True)
        self.order: list[str] = []

    def reference(self) -> Reference:
        store = self.root / "reference"
        code, out = run_logged(scan_argv(self.spec_path, "--out", str(store), *self.resume_args),
                             self.logs / "reference.txt")
        if code != 0:
            raise SystemExit(f"scan_faults: the reference scan failed:\n{out}")
        return Reference.read(store)

    def next_kind(self) -> str:
        if not self.order:
            self.order = [str(k) for k in self.rng.permutation(FAULTS)]
        return self.order.pop(0)

    def cycle(self, number: int, ref: Reference, kind: str | None = None,
              moment: tuple[int, float] | None = None, damage: list[str] | None = None
              ) -> Cycle:
        """One fault (``kind``, else the next in turn) and the resumes after it. ``moment``
        (points stored, delay) pins when a kill strikes; ``damage`` (names of FILE_FAULTS) the
        file faults, one point each (else one of them, at random)."""
        t0 = time.perf_counter()
        cycle = Cycle(number, kind or self.next_kind())
        store = self.root / f"cycle-{number:02d}"
        log = self.logs / f"cycle-{number:02d}.txt"
        if cycle.kind == "file":
            shutil.copytree(ref.store, store)
            victims = self.rng.permutation(sorted(ref.records))
            hows = damage or [str(self.rng.choice(FILE_FAULTS))]
            faults = [self.damage(store, str(pid), how) for pid, how in zip(victims, hows)]
            cycle.fault = "; ".join(text for text, _ in faults)
            expect_corrupt = sum(n for _, n in faults)
        else:
            self.killed_scan(store, ref, cycle, log, moment or self.moment(ref))
            expect_corrupt = 0
        whole = self.whole_points(store, ref)
        mtimes = {pid: self.mtimes(store, pid) for pid in whole}
        self.resume(store, ref, cycle, log, expected=(len(ref.records) - len(whole), len(whole)))
        cycle.problems += self.check(store, ref, whole, mtimes, expect_corrupt)
        cycle.seconds = time.perf_counter() - t0
        return cycle

    # -- the faults ---------------------------------------------------------------------------

    def moment(self, ref: Reference) -> tuple[int, float]:
        """After how many stored points, and how long after that, the fault strikes: up to the
        fastest point's time (capped: a reference whose workers compiled the kernels took
        seconds per point, a scan finding them in numba's cache takes a fraction of one)."""
        delay = self.rng.uniform(0, min(ref.point_s, MAX_DELAY_S))
        return int(self.rng.integers(0, len(ref.records))), float(delay)

    def killed_scan(self, store: Path, ref: Reference, cycle: Cycle, log: Path,
                    moment: tuple[int, float]) -> None:
        """Start the scan into ``store`` and kill its driver or one of its workers."""
        after, delay = moment
        with open(log, "a", encoding="utf-8") as fh:
            argv = scan_argv(self.spec_path, "--out", str(store), "--workers", str(self.workers))
            fh.write("$ " + " ".join(argv[1:]) + "\n")
            fh.flush()
            t0 = time.monotonic()
            driver = subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT,
                                      start_new_session=True)
            try:
                self._strike(driver, store, cycle, after, delay, t0)
                code = driver.wait(TIMEOUT_S)
                if cycle.kind == "worker" and code != 0:  # a dead worker is replaced
                    cycle.problems.append(f"the scan stopped (exit status {code}) after a "
                                          "worker was killed")
            finally:
                if driver.poll() is None:  # only when something above went wrong
                    os.killpg(driver.pid, signal.SIGKILL)
                    driver.wait()

    def _strike(self, driver, store, cycle, after, delay, t0) -> None:
        deadline = t0 + TIMEOUT_S
        while stored(store) < after and driver.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(delay)
        victims = []
        if cycle.kind == "worker":  # the cluster may still be starting: wait for a worker
            while not (victims := worker_pids(driver.pid)) and driver.poll() is None:
                time.sleep(0.01)
        at, done = time.monotonic() - t0, stored(store)
        if driver.poll() is not None:
            cycle.fault = (f"MISSED: the scan finished ({done} points) before the moment "
                           f"({after} points + {delay:.2f} s)")
            return
        if cycle.kind == "driver":
            workers = worker_pids(driver.pid)
            os.kill(driver.pid, signal.SIGKILL)
            driver.wait(TIMEOUT_S)
            cycle.fault = (f"SIGKILL driver at {at:.2f} s ({done} of "
                           f"{self.points} points stored)")
            left = self._orphans(workers)
            if left:
                cycle.problems.append(f"{len(left)} worker processes outlived the driver by "
                                      f"{ORPHAN_WAIT_S:g} s")
        else:
            victim = int(self.rng.choice(victims))
            os.kill(victim, signal.SIGKILL)
            cycle.fault = (f"SIGKILL worker {victim} at {at:.2f} s ({done} of "
                           f"{self.points} points stored)")

    def _orphans(self, pids: list[int]) -> list[int]:
        """Wait for a killed driver's workers to exit by themselves; kill any left over."""
        deadline = time.monotonic() + ORPHAN_WAIT_S
        while alive(pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        left = alive(pids)
        for pid in left:
            os.kill(pid, signal.SIGKILL)
        return left

    def damage(self, store: Path, pid: str, how: str) -> tuple[str, int]:
        """Damage point ``pid`` of ``store`` as ``how`` says; what was done, and the number of
        .corrupt files that it should leave."""
        path = store / "points" / (pid + (WEIGHTS if how == "truncate_weights" else ".json"))
        data = path.read_bytes()
        if how in ("truncate", "truncate_weights"):
            # at least the closing brace (or the zip directory) goes: a whole file stays whole
            keep = int(self.rng.integers(0, len(data) - 2))
            path.write_bytes(data[:keep])
            return f"{path.name} truncated to {keep} of {len(data)} bytes", 1
        if how == "zero_block":
            start = int(self.rng.integers(0, len(data)))
            size = int(self.rng.integers(1, min(4096, len(data) - start) + 1))
            path.write_bytes(data[:start] + bytes(size) + data[start + size:])
            return f"{path.name}: bytes {start}..{start + size - 1} zeroed", 1
        # a writer killed before its rename: no JSON, a part of it in its temporary file
        keep = int(self.rng.integers(0, len(data)))
        tmp = path.with_name(f".{path.name}.k1ll3d.tmp")
        tmp.write_bytes(data[:keep])
        path.unlink()
        return f"{path.name} replaced by a half-written {tmp.name} ({keep} bytes)", 0

    # -- resume and check ---------------------------------------------------------------------

    def resume(self, store: Path, ref: Reference, cycle: Cycle, log: Path,
               expected: tuple[int, int]) -> None:
        """Scan ``store`` again until it exits 0 (at most 3 times)."""
        runs = []
        for _ in range(3):
            target = store if (store / "scan.toml").is_file() else None
            argv = (scan_argv(store, *self.resume_args) if target else
                    scan_argv(self.spec_path, "--out", str(store), *self.resume_args))
            code, out = run_logged(argv, log)
            found = COUNTS.search(out)
            runs.append(tuple(map(int, found.groups())) if found else None)
            if code == 0:
                cycle.completed = True
                break
        else:
            cycle.problems.append(f"the resume failed 3 times (see {log})")
        first = cycle.counts = runs[0]
        cycle.resumed = (f"resumed: {first[0]} run, {first[1]} kept" if first else "resumed")
        if len(runs) > 1:
            cycle.resumed += f" ({len(runs)} attempts)"
        if first != expected:
            cycle.problems.append(f"the resume ran {first} (run, kept), expected {expected}")

    def whole_points(self, store: Path, ref: Reference) -> set[str]:
        """The points whose JSON and weights are whole: they equal the reference's."""
        whole = set()
        for pid in ref.records:
            try:
                record = json.loads((store / "points" / f"{pid}.json").read_text("utf-8"))
                weights = (store / "points" / f"{pid}{WEIGHTS}").read_bytes()
                if comparable(record) == ref.records[pid] and weights == ref.weights[pid]:
                    whole.add(pid)
            except (OSError, ValueError, KeyError, TypeError, AttributeError):
                pass
        return whole

    @staticmethod
    def mtimes(store: Path, pid: str) -> tuple[int, int]:
        points = store / "points"
        return ((points / f"{pid}.json").stat().st_mtime_ns,
                (points / f"{pid}{WEIGHTS}").stat().st_mtime_ns)

    def check(self, store: Path, ref: Reference, whole: set[str], mtimes: dict,
              expect_corrupt: int) -> list[str]:
        problems = []
        names = {p.name for p in (store / "points").iterdir()}
        expected = {f"{pid}{ext}" for pid in ref.records for ext in (".json", WEIGHTS)}
        corrupt = {n for n in names if n.endswith(".corrupt")}
        if names - corrupt != expected:
            extra, missing = sorted(names - corrupt - expected), sorted(expected - names)
            problems.append(f"files: extra {extra}, missing {missing}")
        if len(corrupt) != expect_corrupt:
            problems.append(f"{len(corrupt)} .corrupt files, expected {expect_corrupt}")
        temporaries = [p.name for p in store.rglob("*.tmp")]
        if temporaries:
            problems.append(f"temporary files left: {temporaries}")
        now_whole = self.whole_points(store, ref)
        if now_whole != set(ref.records):
            problems.append(f"{len(ref.records) - len(now_whole)} points differ from the "
                            "reference")
        touched = [pid for pid in whole if self.mtimes(store, pid) != mtimes[pid]]
        if touched:
            problems.append(f"{len(touched)} whole points were written again")
        return problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m relaxsim.validation.scan_faults",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--cycles", type=int, default=20, help="kill-and-resume cycles (default 20)")
    ap.add_argument("--seed", type=int, help="of the random choices (default: from the clock)")
    ap.add_argument("--workers", type=int, default=2, help="local worker processes (default 2)")
    ap.add_argument("--out", help="keep the stores and logs here (default: a temporary "
                                  "directory, removed at the end)")
    ap.add_argument("--address", help="run the reference and the resumes on this Dask scheduler")
    ap.add_argument("--tls", nargs=3, metavar=("CA", "CERT", "KEY"),
                    help="with a tls:// --address: the CA, certificate and key files the scans "
                         "connect with (relaxsim scan --tls-ca-file, --tls-cert, --tls-key)")
    args = ap.parse_args(argv)
    if args.cycles < 1 or args.workers < 1:
        ap.error("--cycles and --workers must be >= 1")
    seed = args.seed if args.seed is not None else int(time.time()) % 100_000
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="scan-faults-") as tmp:
        root = Path(args.out) if args.out else Path(tmp)
        if root.is_dir() and any(root.iterdir()):
            ap.error(f"--out {str(root)!r}: not empty; choose a new directory")
        root.mkdir(parents=True, exist_ok=True)
        tls = ([] if not args.tls else ["--tls-ca-file", args.tls[0], "--tls-cert",
                                         args.tls[1], "--tls-key", args.tls[2]])
        faults = Faults(root, seed, args.workers,
                        ["--address", args.address, *tls] if args.address else None)
        print(f"scan_faults: seed {seed}, {args.cycles} cycles, {args.workers} workers, "
              f"{faults.points} points; stores and logs in {root}"
              + (f"; resumes on {args.address}" if args.address else ""), flush=True)
        ref = faults.reference()
        print(f"reference: {len(ref.records)} points uninterrupted (the fastest took "
              f"{ref.point_s:.2f} s)", flush=True)
        cycles = []
        for n in range(1, args.cycles + 1):
            cycles.append(faults.cycle(n, ref))
            print(cycles[-1].line(args.cycles), flush=True)
    survived = sum(c.completed for c in cycles)
    identical = sum(not c.problems for c in cycles)
    missed = sum(c.fault.startswith("MISSED") for c in cycles)
    kinds = ", ".join(f"{sum(c.kind == k for c in cycles)} {k}" for k in FAULTS)
    print(f"{survived} kill-and-resume cycles survived, {identical} identical ({kinds}"
          + (f"; {missed} faults came after the scan had finished" if missed else "")
          + f"; seed {seed}; {time.perf_counter() - t0:.0f} s)")
    return 0 if identical == survived == len(cycles) else 1


if __name__ == "__main__":
    sys.exit(main())
