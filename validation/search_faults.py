"""Fault injection: a search killed and resumed again and again keeps every trial exactly once.

Run as ``python -m relaxsim.validation.search_faults [--cycles 10] [--seed S] [--workers 2]
[--out DIR]``.

One small search with real training (digits, N = 8, 1 epoch; NSGA-II over the weight element
and the learning rate; 10 trials, 2 local workers) runs uninterrupted with ``relaxsim search``:
the reference. Then each cycle starts the same search in a fresh directory and injects one fault,
the kinds taken in rounds of two in a shuffled order:

- ``driver``: SIGKILL the ``relaxsim search`` process at a random moment (after a random number
  of trial results 0..points-1 have been stored, plus a random delay of up to the fastest trial's
  time, at most 0.5 s); its worker processes must then exit on their own;
- ``worker``: SIGKILL one of its worker processes (children of the driver) at such a moment; the
  search must finish by itself, with no trial failed.

The study is read from its journal right after the fault, and then ``relaxsim search DIR``
resumes it (with the spec and ``--out`` when the kill came before ``search.toml`` was written)
until it exits 0. A cycle passes when:

- the study holds the requested number of trials, numbered 0..n-1, each once, none running; a
  trial may have failed only if it was asked but not given all its fields at the kill;
- every trial told before the kill is unchanged (state, config id, fields, objective values), and
  every trial asked but not told is finished under its own number with the fields it had;
- every result is stored once (``points/<id>.json`` holding that id), each complete trial's
  values are its stored record's, every stored record belongs to a trial; the records stored
  before the kill are left untouched (bytes and modification time), and the resume ran exactly
  as many trials as it added records (nothing evaluated twice);
- each record equals the one the same config gave in the reference or an earlier cycle (all but
  the wall-clock ``seconds``);
- no temporary file (``*.tmp``) and no journal lock (``study.journal.lock``) is left, the
  directory's lock (``.lock``) is free, and ``front.json`` counts every trial.

The random generator's seed is printed; the moments also depend on the machine's speed, so a
seed repeats the choices, not the exact interleaving. Exit status 1 on any failed cycle.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tomli_w

from relaxsim.scans.search import (
    JOURNAL_FILE,
    LOCK_FILE,
    SPEC_FILE,
    STUDY_NAME,
    load_search_spec,
    study_storage,
    trial_table,
)
from relaxsim.scans.store import flatten_metrics

from .scan_faults import TIMEOUT_S, alive, run_logged, stored, worker_pids

FAULTS = ("driver", "worker")
ORPHAN_WAIT_S = 20.0  # a killed driver's workers must be gone by then
MAX_DELAY_S = 0.5  # the random delay after the k-th stored result is at most this
ABANDONED = "abandoned before its fields were chosen"
SPEC = {
    "description": "fault injection: tiny, real training",
    "base": {"network": {"hidden": 8}, "training": {"epochs": 1}},
    "search": {
        "objectives": ["test_accuracy:max", "hardware.energy_per_inference_j:min"],
        "constraints": ["hardware.latency_s <= 1 us"],
        "trials": 10, "seed": 0, "sampler": "nsga2", "population": 4,
        "space": {"hardware.weights.preset": ["thermo_optic", "pcm", "mtj", "rram"],
                  "training.lr": {"low": 1e-3, "high": 1e-1, "log": True}}},
}
COUNTS = re.compile(r"\((\d+) run now, (\d+) from the store\)")


def comparable(record: dict) -> dict:
    """A record without the wall-clock time, which differs from run to run."""
    out = dict(record)
    if isinstance(record.get("result"), dict):
        out["result"] = {k: v for k, v in record["result"].items() if k != "seconds"}
    return out


def read_rows(root: Path) -> list[dict]:
    """The trials of the study stored in ``root`` (none when it has no journal or study yet),
    read without writing anything."""
    import optuna

    if not (root / JOURNAL_FILE).is_file():
        return []
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            study = optuna.load_study(study_name=STUDY_NAME, storage=study_storage(root))
        except KeyError:  # the journal holds no study yet
            return []
    return trial_table(study)


@dataclass
class Snapshot:
    """A search directory at one moment: its trials and its stored records' files."""

    rows: list[dict]
    points: dict[str, tuple[bytes, int]]  # file name -> (bytes, mtime in ns)

    @classmethod
    def take(cls, root: Path) -> Snapshot:
        points = {}
        if (root / "points").is_dir():
            for path in sorted((root / "points").glob("*.json")):
                points[path.name] = (path.read_bytes(), path.stat().st_mtime_ns)
        return cls(read_rows(root), points)

    def states(self) -> str:
        states = [r["state"] for r in self.rows]
        return (f"{states.count('complete') + states.count('fail')} told, "
                f"{states.count('running')} asked")


def check(root: Path, before: Snapshot, total: int, run_now: int | None,
          known: dict[str, dict]) -> list[str]:
    """What is wrong with the search directory ``root`` after the resume, given ``before``
    (the directory right after the fault), the requested number of trials, the resume's count
    of trials run, and the records known from earlier runs (config id -> comparable record;
    the new ones are added). Empty when nothing is."""
    problems = []
    try:
        rows = read_rows(root)
    except Exception as exc:  # noqa: BLE001  (a damaged journal is a finding)
        return [f"the study cannot be read: {type(exc).__name__}: {exc}"]
    numbers = [r["trial"] for r in rows]
    if len(rows) != total:
        problems.append(f"{len(rows)} trials, expected {total}")
    repeated = sorted({n for n in numbers if numbers.count(n) > 1})
    if repeated:
        problems.append(f"trial numbers repeated: {repeated}")
    lost = sorted(set(range(total)) - set(numbers))
    if lost:
        problems.append(f"trial numbers lost: {lost}")
    by_number = {r["trial"]: r for r in rows}
    running = [r["trial"] for r in rows if r["state"] == "running"]
    if running:
        problems.append(f"trials still running: {running}")
    asked = {r["trial"]: r for r in before.rows if r["state"] == "running"}
    for r in rows:
        if r["state"] == "fail" and not (r["trial"] in asked and ABANDONED in (r["error"] or "")):
            problems.append(f"trial {r['trial']} failed: {r['error']}")

    def key(r):
        return r["state"], r["id"], r["fields"], r["values"]

    changed = [r["trial"] for r in before.rows if r["state"] != "running"
               and (r["trial"] not in by_number or key(by_number[r["trial"]]) != key(r))]
    if changed:
        problems.append(f"trials told before the fault changed or lost: {changed}")
    moved = [n for n, r in asked.items() if n in by_number and r["fields"]
             and by_number[n]["state"] == "complete" and by_number[n]["fields"] != r["fields"]]
    if moved:
        problems.append(f"trials asked before the fault finished with other fields: {moved}")

    # the stored records: one file per result, each belonging to a trial, none rewritten
    records, points = {}, root / "points"
    for path in sorted(points.glob("*.json")) if points.is_dir() else []:
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            problems.append(f"{path.name}: unreadable ({exc})")
            continue
        pid = record.get("id")
        if path.name != f"{pid}.json":
            problems.append(f"{path.name} holds the record of {pid}")
        if pid in records:
            problems.append(f"the result of {pid} is stored twice")
        records[pid] = record
    ids = {r["id"] for r in rows if r["id"] is not None}
    orphans = sorted(set(records) - ids)
    if orphans:
        problems.append(f"stored results of no trial: {orphans}")
    spec = load_search_spec(root / SPEC_FILE)
    for r in rows:
        if r["state"] != "complete":
            continue
        record = records.get(r["id"])
        if record is None or record.get("status") != "done":
            problems.append(f"trial {r['trial']}: no stored result for {r['id']}")
            continue
        metrics = flatten_metrics(record["result"])
        if [metrics.get(m) for m, _ in spec.objectives] != r["values"]:
            problems.append(f"trial {r['trial']}: its values are not its stored result's")
    touched = [name for name, (data, mtime) in before.points.items()
               if not (points / name).is_file() or (points / name).read_bytes() != data
               or (points / name).stat().st_mtime_ns != mtime]
    if touched:
        problems.append(f"results stored before the fault written again or lost: {touched}")
    added = len(set(p.name for p in points.glob("*.json")) - set(before.points)) \
        if points.is_dir() else 0
    if run_now is not None and run_now != added:
        problems.append(f"the resume ran {run_now} trials but stored {added} new results")
    differ = []
    for pid, record in records.items():
        if pid in known and comparable(record) != known[pid]:
            differ.append(pid)
        known.setdefault(pid, comparable(record))
    if differ:
        problems.append(f"results differ from the same config's earlier result: {differ}")

    # nothing left behind
    temporaries = sorted(str(p.relative_to(root)) for p in root.rglob("*.tmp"))
    if temporaries:
        problems.append(f"temporary files left: {temporaries}")
    if (root / (JOURNAL_FILE + ".lock")).exists():
        problems.append(f"{JOURNAL_FILE}.lock left")
    if lock_held(root / LOCK_FILE):
        problems.append(f"{LOCK_FILE} still held")
    try:
        front = json.loads((root / "front.json").read_text(encoding="utf-8"))
        if front["trials"] != len(rows):
            problems.append(f"front.json counts {front['trials']} trials, the study "
                            f"{len(rows)}")
    except (OSError, ValueError, KeyError) as exc:
        problems.append(f"front.json: {exc}")
    return problems


def lock_held(path: Path) -> bool:
    """Whether some process holds the ``flock`` on ``path``."""
    try:
        import fcntl
    except ImportError:
        return False
    if not path.is_file():
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


@dataclass
class Cycle:
    """What one cycle did and found."""

    number: int
    kind: str
    fault: str = ""
    resumed: str = ""
    counts: tuple[int, int] | None = None  # the first resume's trials run and told from store
    completed: bool = False  # a resume exited 0
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def line(self, cycles: int) -> str:
        verdict = ("every trial kept once" if not self.problems
                   else "FAILED: " + "; ".join(self.problems))
        return (f"cycle {self.number:>2}/{cycles}  {self.kind:<6}  {self.fault}; {self.resumed}; "
                f"{verdict} ({self.seconds:.1f} s)")


def search_argv(target: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "relaxsim", "search", str(target), "--quiet", *extra]


@dataclass
class Reference:
    """The uninterrupted search: its records by config id (without ``seconds``)."""

    records: dict[str, dict]
    trial_s: float  # the fastest trial's time (the scale of the random delays)
    points: int

    @classmethod
    def read(cls, root: Path) -> Reference:
        records, seconds = {}, []
        for path in sorted((root / "points").glob("*.json")):
            record = json.loads(path.read_text(encoding="utf-8"))
            seconds.append(record["result"]["seconds"])
            records[record["id"]] = comparable(record)
        return cls(records, min(seconds), len(records))


class Faults:
    """Runs the cycles."""

    def __init__(self, root: Path, seed: int, workers: int, spec: dict | None = None):
        self.root = root
        self.rng = np.random.default_rng(seed)
        self.workers = workers
        self.spec_path = root / "faults.toml"
        self.spec_path.write_text(tomli_w.dumps(spec or SPEC), encoding="utf-8")
        self.trials = load_search_spec(self.spec_path).trials
        self.logs = root / "logs"
        self.logs.mkdir(exist_ok=True)
        self.order: list[str] = []
        self.known: dict[str, dict] = {}

    def reference(self) -> Reference:
        out = self.root / "reference"
        code, text = run_logged(search_argv(self.spec_path, "--out", str(out), "--workers",
                                            str(self.workers)), self.logs / "reference.txt")
        if code != 0:
            raise SystemExit(f"search_faults: the reference search failed:\n{text}")
        ref = Reference.read(out)
        problems = check(out, Snapshot([], {}), self.trials, None, self.known)
        if problems:
            raise SystemExit("search_faults: the reference search: " + "; ".join(problems))
        return ref

    def next_kind(self) -> str:
        if not self.order:
            self.order = [str(k) for k in self.rng.permutation(FAULTS)]
        return self.order.pop(0)

    def moment(self, ref: Reference) -> tuple[int, float]:
        """After how many stored results, and how long after that, the fault strikes."""
        delay = self.rng.uniform(0, min(ref.trial_s, MAX_DELAY_S))
        return int(self.rng.integers(0, ref.points)), float(delay)

    def cycle(self, number: int, ref: Reference, kind: str | None = None,
              moment: tuple[int, float] | None = None) -> Cycle:
        """One fault (``kind``, else the next in turn) and the resumes after it; ``moment``
        (results stored, delay) pins when the kill strikes."""
        t0 = time.perf_counter()
        cycle = Cycle(number, kind or self.next_kind())
        out = self.root / f"cycle-{number:02d}"
        log = self.logs / f"cycle-{number:02d}.txt"
        self.killed_search(out, cycle, log, moment or self.moment(ref))
        try:
            before = Snapshot.take(out)
        except Exception as exc:  # noqa: BLE001  (a journal the kill left unreadable)
            cycle.problems.append(f"the study cannot be read after the fault: {exc}")
            before = Snapshot([], {})
        cycle.fault += f"; study: {before.states()}"
        self.resume(out, cycle, log)
        cycle.problems += check(out, before, self.trials,
                                cycle.counts[0] if cycle.counts else None, self.known)
        cycle.seconds = time.perf_counter() - t0
        return cycle

    def killed_search(self, out: Path, cycle: Cycle, log: Path,
                      moment: tuple[int, float]) -> None:
        """Start the search in ``out`` and kill its driver or one of its workers."""
        after, delay = moment
        with open(log, "a", encoding="utf-8") as fh:
            argv = search_argv(self.spec_path, "--out", str(out), "--workers", str(self.workers))
            fh.write("$ " + " ".join(argv[1:]) + "\n")
            fh.flush()
            t0 = time.monotonic()
            driver = subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT,
                                      start_new_session=True)
            try:
                self._strike(driver, out, cycle, after, delay, t0)
                code = driver.wait(TIMEOUT_S)
                if cycle.kind == "worker" and code != 0:  # a dead worker is replaced
                    cycle.problems.append(f"the search stopped (exit status {code}) after a "
                                          "worker was killed")
            finally:
                if driver.poll() is None:  # only when something above went wrong
                    os.killpg(driver.pid, signal.SIGKILL)
                    driver.wait()

    def _strike(self, driver, out, cycle, after, delay, t0) -> None:
        deadline = t0 + TIMEOUT_S
        while stored(out) < after and driver.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(delay)
        victims = []
        if cycle.kind == "worker":  # the cluster may still be starting: wait for a worker
            while not (victims := worker_pids(driver.pid)) and driver.poll() is None:
                time.sleep(0.01)
        at, done = time.monotonic() - t0, stored(out)
        if driver.poll() is not None:
            cycle.fault = (f"MISSED: the search finished ({done} results) before the moment "
                           f"({after} results + {delay:.2f} s)")
            return
        if cycle.kind == "driver":
            workers = worker_pids(driver.pid)
            os.kill(driver.pid, signal.SIGKILL)
            driver.wait(TIMEOUT_S)
            cycle.fault = f"SIGKILL driver at {at:.2f} s ({done} results stored)"
            left = self._orphans(workers)
            if left:
                cycle.problems.append(f"{len(left)} worker processes outlived the driver by "
                                      f"{ORPHAN_WAIT_S:g} s")
        else:
            victim = int(self.rng.choice(victims))
            os.kill(victim, signal.SIGKILL)
            cycle.fault = f"SIGKILL worker {victim} at {at:.2f} s ({done} results stored)"

    def _orphans(self, pids: list[int]) -> list[int]:
        """Wait for a killed driver's workers to exit by themselves; kill any left over."""
        deadline = time.monotonic() + ORPHAN_WAIT_S
        while alive(pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        left = alive(pids)
        for pid in left:
            os.kill(pid, signal.SIGKILL)
        return left

    def resume(self, out: Path, cycle: Cycle, log: Path) -> None:
        """``relaxsim search DIR`` until it exits 0 (at most 3 times)."""
        runs = []
        for _ in range(3):
            argv = (search_argv(out, "--workers", str(self.workers))
                    if (out / SPEC_FILE).is_file() else
                    search_argv(self.spec_path, "--out", str(out), "--workers",
                                str(self.workers)))
            code, text = run_logged(argv, log)
            found = COUNTS.search(text)
            runs.append(tuple(map(int, found.groups())) if found else None)
            if code == 0:
                cycle.completed = True
                break
        else:
            cycle.problems.append(f"the resume failed 3 times (see {log})")
        first = cycle.counts = runs[0]
        cycle.resumed = (f"resumed: {first[0]} run, {first[1]} from the store" if first
                         else "resumed")
        if len(runs) > 1:
            cycle.resumed += f" ({len(runs)} attempts)"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m relaxsim.validation.search_faults",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--cycles", type=int, default=10, help="kill-and-resume cycles (default 10)")
    ap.add_argument("--seed", type=int, help="of the random choices (default: from the clock)")
    ap.add_argument("--workers", type=int, default=2, help="local worker processes (default 2)")
    ap.add_argument("--out", help="keep the searches and logs here (default: a temporary "
                                  "directory, removed at the end)")
    args = ap.parse_args(argv)
    if args.cycles < 1 or args.workers < 1:
        ap.error("--cycles and --workers must be >= 1")
    seed = args.seed if args.seed is not None else int(time.time()) % 100_000
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="search-faults-") as tmp:
        root = Path(args.out) if args.out else Path(tmp)
        if root.is_dir() and any(root.iterdir()):
            ap.error(f"--out {str(root)!r}: not empty; choose a new directory")
        root.mkdir(parents=True, exist_ok=True)
        faults = Faults(root, seed, args.workers)
        print(f"search_faults: seed {seed}, {args.cycles} cycles, {args.workers} workers, "
              f"{faults.trials} trials; searches and logs in {root}", flush=True)
        ref = faults.reference()
        print(f"reference: {faults.trials} trials uninterrupted, {ref.points} results stored "
              f"(the fastest took {ref.trial_s:.2f} s)", flush=True)
        cycles = []
        for n in range(1, args.cycles + 1):
            cycles.append(faults.cycle(n, ref))
            print(cycles[-1].line(args.cycles), flush=True)
    survived = sum(c.completed for c in cycles)
    kept = sum(not c.problems for c in cycles)
    missed = sum(c.fault.startswith("MISSED") for c in cycles)
    kinds = ", ".join(f"{sum(c.kind == k for c in cycles)} {k}" for k in FAULTS)
    print(f"{survived} kill-and-resume cycles survived, {kept} kept every trial once ({kinds}"
          + (f"; {missed} faults came after the search had finished" if missed else "")
          + f"; seed {seed}; {time.perf_counter() - t0:.0f} s)")
    return 0 if kept == survived == len(cycles) else 1


if __name__ == "__main__":
    sys.exit(main())
