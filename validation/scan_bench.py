"""Benchmark: the same scan of 8 equal points on 1 and on 2 local workers; prints the speed-up.

Run as ``python -m relaxsim.validation.scan_bench [--points 8] [--epochs 20] [--repeats 3]``.
The points differ only in their seed, so they cost the same (about 0.7 s each: N = 64, 20 epochs
on the digits, ideal hardware). Both clusters are started and warmed up (every worker imports
relaxsim and loads the compiled kernels by running a tiny point) before any clock starts, so the
figure is the scan itself: submitting, running and storing the points. The two are timed in
alternation, ``--repeats`` times (the machines are shared and noisy); reported are the medians and
their ratio. Target: at least 1.7x on 2 workers.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time

from relaxsim.io import write_json

HIDDEN = 64
WARM = {"network": {"hidden": 8}, "training": {"epochs": 1}, "hardware": {"mode": "ideal"}}


def spec(points: int, epochs: int) -> dict:
    """``points`` configs that differ only in their seed."""
    return {"base": {"network": {"hidden": HIDDEN}, "training": {"epochs": epochs},
                     "hardware": {"mode": "ideal"}},
            "seeds": list(range(points))}


def _warm_up() -> None:
    from relaxsim.config import validate
    from relaxsim.scans.execute import run_point

    run_point(validate(WARM))


def time_scan(client, points: int, epochs: int) -> float:
    """Wall time of the scan on ``client``, into a fresh store."""
    from relaxsim.scans.execute import scan

    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        results = scan(spec(points, epochs), client=client, out=out)
        seconds = time.perf_counter() - t0
    failed = results.failed
    if failed:
        raise SystemExit(f"scan_bench: {len(failed)} points failed: {failed[0]['error']}")
    return seconds


def main(points: int = 8, epochs: int = 20, repeats: int = 3,
         json_path: str | None = None) -> int:
    from distributed import Client

    from relaxsim.scans.execute import local_cluster

    logging.getLogger("distributed").setLevel(logging.ERROR)  # closing a cluster talks a lot
    print(f"scan of {points} equal points (N = {HIDDEN}, {epochs} epochs, ideal hardware, "
          f"digits) on warmed-up local clusters, {repeats} repeats in alternation", flush=True)
    times: dict[int, list[float]] = {1: [], 2: []}
    with local_cluster(1) as c1, Client(c1, timeout=60) as one, \
            local_cluster(2) as c2, Client(c2, timeout=60) as two:
        for workers, client in ((1, one), (2, two)):
            client.wait_for_workers(workers, timeout=60)
            client.run(_warm_up)
        for _ in range(repeats):
            for workers, client in ((1, one), (2, two)):
                times[workers].append(time_scan(client, points, epochs))
    t1, t2 = statistics.median(times[1]), statistics.median(times[2])
    print(f"  1 worker    {t1:7.2f} s  (runs: {', '.join(f'{t:.2f}' for t in times[1])})")
    print(f"  2 workers   {t2:7.2f} s  (runs: {', '.join(f'{t:.2f}' for t in times[2])})")
    print(f"  speed-up    {t1 / t2:7.2f}x  (target >= 1.7x)")
    if json_path:
        write_json(json_path, {"points": points, "epochs": epochs, "one_worker_s": times[1],
                               "two_workers_s": times[2], "speedup": t1 / t2})
    return 0


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", help="also write the figures to this JSON file")
    a = ap.parse_args()
    sys.exit(main(a.points, a.epochs, a.repeats, a.json))
