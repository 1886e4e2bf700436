"""Study: kill and resume. A training killed at random moments (SIGKILL: no clean-up of any
kind, possibly in the middle of a checkpoint or result write) and resumed each time until it
finishes ends with the same bytes as one never interrupted.

Run as ``python -m relaxsim.validation.resume_faults [--cycles N] [--max-kills K] [--seed S]``.

One small training (N = 16, 60 epochs, PCM weights in the loop, banks reprogrammed every 5
batches) runs uninterrupted in a subprocess, twice: the first warms numba's cache up, the second
is the reference and its wall time ``T`` the scale of the kills. Then, N times: the
same ``relaxsim run --out DIR`` starts in a subprocess and is SIGKILLed at a moment drawn
uniformly from ``[0, T)``; then ``relaxsim run --resume DIR`` (or the fresh run again when the
kill came before the first checkpoint), itself killed at a uniform moment, up to K kills, until a
process finishes. Each final ``weights.npz`` and ``config.toml`` must be byte-identical to the
uninterrupted run's, and ``metrics.csv`` and ``result.json`` identical but for the wall-clock
``seconds``; the directory must hold the four result files and nothing else. Prints one line per
cycle and the summary ``N kill-and-resume cycles, M identical``; exits 1 on any mismatch.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

OVERRIDES = ["network.hidden=16", "training.epochs=60", 'hardware.weights.preset="pcm"',
             "hardware.update_every=5"]
RESULT_FILES = {"result.json", "weights.npz", "metrics.csv", "config.toml"}
CHECKPOINT = "checkpoint.npz"


def fresh_argv(directory: Path) -> list[str]:
    sets = [arg for key in OVERRIDES for arg in ("--set", key)]
    return [sys.executable, "-m", "relaxsim", "run", "--out", str(directory), "--quiet", *sets]


def resume_argv(directory: Path) -> list[str]:
    return [sys.executable, "-m", "relaxsim", "run", "--resume", str(directory), "--quiet"]


def temporaries(directory: Path) -> set[str]:
    """Temporary files of atomic writes (left only by a process killed inside one)."""
    return {p.name for p in directory.glob(".*.tmp")} if directory.is_dir() else set()


def comparable(directory: Path) -> dict | str:
    """The results without wall-clock seconds, or what is wrong with the directory."""
    names = {p.name for p in directory.iterdir()}
    if names != RESULT_FILES:
        return f"files {sorted(names)}"
    result = json.loads((directory / "result.json").read_text(encoding="utf-8"))
    result.pop("seconds")
    rows = list(csv.DictReader(io.StringIO((directory / "metrics.csv").read_text("utf-8"))))
    for row in rows:
        row.pop("seconds")
    return {"weights.npz": (directory / "weights.npz").read_bytes(),
            "config.toml": (directory / "config.toml").read_bytes(),
            "metrics": rows, "result": result}


def run_once(argv: list[str], env: dict, kill_after_s: float | None) -> tuple[bool, str]:
    """Start ``argv``; SIGKILL it after ``kill_after_s`` unless it ended. ``(killed, stderr)``."""
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=err)
        try:
            proc.wait(timeout=kill_after_s)
            killed = False
        except subprocess.TimeoutExpired:
            proc.kill()  # SIGKILL
            proc.wait()
            killed = True
        err.seek(0)
        text = err.read().decode("utf-8", "replace").strip()
    if not killed and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[3:])}: exit {proc.returncode}: {text}")
    return killed, text


def cycle(directory: Path, env: dict, scale_s: float, max_kills: int,
          rng: random.Random) -> dict:
    """Kill-and-resume one training in ``directory`` until it finishes."""
    kills = in_write = resumes = 0
    argv = fresh_argv(directory)
    while True:
        before = temporaries(directory)
        kill_after = rng.uniform(0.0, scale_s) if kills < max_kills else None
        killed, _ = run_once(argv, env, kill_after)
        if not killed:
            break
        kills += 1
        in_write += bool(temporaries(directory) - before)  # the kill landed inside a write
        if (directory / CHECKPOINT).is_file():
            argv = resume_argv(directory)
            resumes += 1
        elif (directory / "result.json").is_file():
            break  # killed after the results were complete, before it exited
        else:  # killed before the first checkpoint: start again
            argv = fresh_argv(directory)
    return {"kills": kills, "in_write": in_write, "resumes": resumes}


def source_digest() -> str:
    """sha256 over relaxsim's source files: a study is void if the code changed during it."""
    import relaxsim

    digest = hashlib.sha256()
    for path in sorted(Path(relaxsim.__file__).parent.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m relaxsim.validation.resume_faults",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=int, default=20, help="kill-and-resume cycles (20)")
    parser.add_argument("--max-kills", type=int, default=4,
                        help="kills per cycle at most; then a process runs to the end (4)")
    parser.add_argument("--seed", type=int, default=None, help="seed of the kill moments")
    args = parser.parse_args(argv)
    if args.cycles < 1 or args.max_kills < 1:
        parser.error("--cycles and --max-kills must be >= 1")
    rng = random.Random(args.seed)
    env = {**os.environ, "PYTHONWARNINGS": "ignore",
           "NUMBA_NUM_THREADS": os.environ.get("NUMBA_NUM_THREADS", "1")}
    source = source_digest()
    with tempfile.TemporaryDirectory(prefix="resume_faults.") as tmp:
        tmp = Path(tmp)
        # Twice: the first may compile or load numba's cache; the second sets the time scale.
        for name in ("warm-up", "reference"):
            t0 = time.perf_counter()
            run_once(fresh_argv(tmp / name), env, None)
            scale_s = time.perf_counter() - t0
        reference = comparable(tmp / "reference")
        if comparable(tmp / "warm-up") != reference:  # not this study's business, but say so
            print("note: the warm-up run differs from the reference (when it compiled the "
                  "kernels, numba's freshly compiled code and its cache do not give the same "
                  "bits)")
        print(f"uninterrupted run: {scale_s:.2f} s; kills drawn uniformly from [0, "
              f"{scale_s:.2f} s) after each start, at most {args.max_kills} per cycle")
        identical = kills = in_write = resumes = 0
        for i in range(1, args.cycles + 1):
            directory = tmp / f"cycle{i}"
            stats = cycle(directory, env, scale_s, args.max_kills, rng)
            got = comparable(directory)
            same = got == reference
            identical += same
            kills += stats["kills"]
            in_write += stats["in_write"]
            resumes += stats["resumes"]
            verdict = "identical" if same else "MISMATCH" + (
                f" ({got})" if isinstance(got, str) else "")
            print(f"cycle {i:3d}: {stats['kills']} kills ({stats['in_write']} inside a write), "
                  f"{stats['resumes']} resumes: {verdict}", flush=True)
            if not same:  # keep the evidence
                kept = Path(f"resume_faults-cycle{i}").resolve()
                shutil.copytree(directory, kept, dirs_exist_ok=True)
                print(f"  kept in {kept}")
    if source_digest() != source:
        print("relaxsim's source files changed during the study: the runs are not comparable; "
              "run it again", file=sys.stderr)
        return 1
    print(f"{args.cycles} kill-and-resume cycles, {identical} identical "
          f"({kills} kills, {resumes} resumes, {in_write} kills inside a write)")
    return 0 if identical == args.cycles else 1


if __name__ == "__main__":
    sys.exit(main())
