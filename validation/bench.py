"""Benchmark: relaxsim's training step against PyTorch and against the BLAS bound, side by side.

Run as ``relaxsim bench`` (``make bench``, ``python -m relaxsim.validation.bench``). Every ratio is
measured side by side in one run, the variants timed in alternation (these machines are shared and
noisy): times are the medians of the repeats, ratios the medians of the repeats' ratios (the two
sides of each ratio timed a second apart). Sections (``--only`` picks some):

- ``step``: a full training step (forward, backward, Adam) of the ideal network and of the network
  with every physical effect on (:mod:`relaxsim.validation.train_step`), for each N, batch and
  dtype, ``L_T = 8``, ``L_W = 4``; the same step in PyTorch (CPU, ``torch.set_num_threads`` equal to
  numba's threads) when torch is importable; and the BLAS bound: the matrix products the step
  needs, done with numpy (its BLAS limited to the same threads) on the same shapes. Ratios:
  ours / PyTorch (below 1: faster), bound / ours (1: at the bound), physics / ideal.
- ``kernels``: forward + backward of the numba kernels against their numpy twins; and one
  programming event of coherent photonic banks (:mod:`relaxsim.kernels.mesh`, ``L = 2`` banks at
  N = 64 and 128, every effect on), split into its SVD, mesh decomposition and rebuild, as ratios
  to numpy's SVD of the same banks and to the ideal training step (batch 256, float64).
- ``timing``: the SimPy timing model's events per second and its share of a training epoch.
- ``start``: cold start (the first ``relaxsim run`` on an empty numba cache: JIT compilation) and
  warm start (the next run, from numba's on-disk cache), as wall time of a one-epoch run of the
  default experiment in a fresh process; it bounds the time to the first epoch from above.
- ``memory``: peak resident memory of a training run on digits, and on SVHN-sized data (73,257
  training and 26,032 test images of random pixels written as the official ``.mat`` files; the
  real files are not needed: memory depends on the sizes only). ``--quick`` skips SVHN.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from relaxsim.errors import RelaxsimError
from relaxsim.io import write_json

SIZES = (16, 64, 128, 512)
BATCHES = (128, 256)
DTYPES = ("float32", "float64")
SECTIONS = ("step", "kernels", "timing", "start", "memory")
MAX_SIZE = 4096

STEPS = 8
BANKS = 4
INPUTS = 64
CLASSES = 10

# The figures the issue of record asks for (printed next to the measurements).
TARGET_VS_TORCH = 0.5     # ours / PyTorch at N <= 128
TARGET_BOUND = 0.6        # bound / ours at N = 512, batch 256
TARGET_PHYSICS = 1.5      # physics / ideal
TARGET_WARM_S = 3.0
TARGET_MEMORY_MB = {"digits": 500, "svhn": 2000}
EVENTS_TARGET = 200_000   # events per second the timing model must sustain


class BenchError(RelaxsimError, ValueError):
    """A bad benchmark option."""


def parse_list(text: str, field: str, kind, allowed=None) -> tuple:
    """``"16,64"`` -> ``(16, 64)``; one-line errors naming the option and the value."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise BenchError(f"{field}: must list at least one value (got {text!r})")
    out = []
    for item in items:
        if kind is int:
            try:
                value = int(item)
            except ValueError:
                raise BenchError(f"{field}: must be whole numbers (got {item!r})") from None
            if not 1 <= value <= MAX_SIZE:
                raise BenchError(f"{field}: must be between 1 and {MAX_SIZE} (got {value})")
        else:
            value = item
            if value not in allowed:
                raise BenchError(f"{field}: unknown value {value!r}; choose from "
                                 f"{', '.join(allowed)}")
        out.append(value)
    return tuple(dict.fromkeys(out))


# -- timing helpers -------------------------------------------------------------------------------

# Pause before each timed block: the threads of the previous variant's BLAS and thread pools
# busy-wait for a while after their last job (OpenBLAS about 0.1 s) and would take the cores
# from the next variant.
SETTLE_S = 0.25


BLOCK_S = 0.05  # each timed block runs a variant this long at least (3 calls at least)


def time_side_by_side(cases: dict, repeats: int, inner: int | None = None,
                      samples: bool = False, settle=None) -> dict:
    """Median seconds per call of each ``name: function``, timed in alternation (with
    ``samples``: every repeat's figure, in order, for :func:`paired_ratio`).

    Each timed block follows a pause (:data:`SETTLE_S`; only before the names in ``settle``
    when given: the first of each family sharing a thread pool) and one untimed call (thread
    pools wake up, caches fill), then runs ``inner`` calls (default: enough for
    :data:`BLOCK_S`)."""
    calls = {}
    for name, fn in cases.items():  # warm up: JIT compilation, caches, allocator
        fn()
        t0 = time.perf_counter()
        fn()
        one = time.perf_counter() - t0
        calls[name] = inner or min(1000, max(3, int(BLOCK_S / max(one, 1e-9)) + 1))
    times = {name: [] for name in cases}
    for _ in range(repeats):
        for name, fn in cases.items():
            if settle is None or name in settle:
                time.sleep(SETTLE_S)
            fn()
            n = calls[name]
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            times[name].append((time.perf_counter() - t0) / n)
    return times if samples else {name: statistics.median(s) for name, s in times.items()}


def paired_ratio(times: dict, a: str, b: str) -> float:
    """``a / b`` as the median over the repeats of each repeat's ratio: the two blocks of a
    repeat ran a second apart, on the same machine, so a shared machine's slow and fast spells
    cancel out of each ratio instead of adding to the spread of either median."""
    return statistics.median(x / y for x, y in zip(times[a], times[b]))


# -- section: training step -----------------------------------------------------------------------

def torch_module():
    """torch, or None when it is not importable."""
    try:
        import torch
    except ImportError:
        return None
    return torch


def step_section(sizes, batches, dtypes, repeats: int, use_torch: bool) -> dict:
    import numba

    from relaxsim.kernels.threads import set_numpy_blas_threads, single_threaded_kernel_blas
    from relaxsim.validation.train_step import OursStep, TorchStep, blas_products

    # torch first: numba's OpenMP thread pool, once started, shares the GNU OpenMP runtime with
    # a PyTorch imported after it, which then runs about ten times slower (measured here)
    torch = torch_module() if use_torch else None
    threads = numba.get_num_threads()
    single_threaded_kernel_blas()
    set_numpy_blas_threads(threads)
    note = None
    if torch is None:
        note = ("PyTorch not importable: the PyTorch columns are skipped (install it with "
                "pip install 'relaxsim[bench]')" if use_torch else "PyTorch skipped (--no-torch)")
        print(note)
    else:
        torch.set_num_threads(threads)
    print(f"training step (forward, backward, Adam), L_T {STEPS}, L_W {BANKS}, {INPUTS} inputs, "
          f"{CLASSES} classes; {threads} threads for numba, PyTorch and the BLAS bound "
          f"({os.cpu_count()} cores); median of {repeats}")
    head = (f"{'dtype':>7} {'B':>4} {'N':>4} | {'ours ms':>8} {'torch ms':>9} {'bound ms':>9} | "
            f"{'phys ms':>8} {'torch ms':>9} | {'ours/torch':>10} {'phys/torch':>10} "
            f"{'bound/ours':>10} {'phys/ideal':>10} {'dflt/ideal':>10}")
    print(head)
    rows = []
    for dtype in dtypes:
        for B in batches:
            for N in sizes:
                cases = {"ours": OursStep(N, B, dtype, False), "physics": OursStep(N, B, dtype, True),
                         "default": OursStep(N, B, dtype, "default")}
                if torch is not None:
                    cases["torch"] = TorchStep(N, B, dtype, False)
                    cases["torch_physics"] = TorchStep(N, B, dtype, True)
                cases["bound"] = blas_products(N, B, dtype, False)
                cases["bound_physics"] = blas_products(N, B, dtype, True)
                # each family's two variants back to back (one thread pool: no pause
                # between them), so that their ratio compares blocks run 0.05 s apart
                times = time_side_by_side(cases, repeats, samples=True,
                                          settle={"ours", "torch", "bound"})
                t = {k: statistics.median(v) for k, v in times.items()}
                row = {"dtype": dtype, "batch": B, "N": N, "steps": STEPS, "banks": BANKS,
                       **{f"{k}_s": v for k, v in t.items()},
                       "bound_over_ours": paired_ratio(times, "bound", "ours"),
                       "bound_over_physics": paired_ratio(times, "bound_physics", "physics"),
                       "physics_over_ideal": paired_ratio(times, "physics", "ours"),
                       "default_over_ideal": paired_ratio(times, "default", "ours")}
                if torch is not None:
                    row["ours_over_torch"] = paired_ratio(times, "ours", "torch")
                    row["physics_over_torch_physics"] = paired_ratio(times, "physics",
                                                                     "torch_physics")
                rows.append(row)
                ms = {k: v * 1e3 for k, v in t.items()}
                print(f"{dtype:>7} {B:>4} {N:>4} | {_fmt(ms['ours'], 8, 3)} "
                      f"{_fmt(ms.get('torch'), 9, 3)} {_fmt(ms['bound'], 9, 3)} | "
                      f"{_fmt(ms['physics'], 8, 3)} {_fmt(ms.get('torch_physics'), 9, 3)} | "
                      f"{_fmt(row.get('ours_over_torch'), 10, 2)} "
                      f"{_fmt(row.get('physics_over_torch_physics'), 10, 2)} "
                      f"{_fmt(row['bound_over_ours'], 10, 2)} "
                      f"{_fmt(row['physics_over_ideal'], 10, 2)} "
                      f"{_fmt(row['default_over_ideal'], 10, 2)}", flush=True)
    summary = step_summary(rows, torch is not None)
    for line in summary["lines"]:
        print(line)
    return {"threads": threads, "torch": torch.__version__ if torch is not None else None,
            "note": note, "rows": rows, "summary": summary}


def _fmt(value, width: int, digits: int) -> str:
    return f"{'-':>{width}}" if value is None else f"{value:>{width}.{digits}f}"


def step_summary(rows: list[dict], have_torch: bool) -> dict:
    """The figures of record, worst case over the measured rows."""
    lines, out = [], {}
    small = [r for r in rows if r["N"] <= 128]
    if have_torch and small:
        worst = max(max(r["ours_over_torch"], r["physics_over_torch_physics"]) for r in small)
        out["worst_ours_over_torch_n128"] = worst
        lines.append(f"worst ours/PyTorch at N <= 128 (ideal and physics): {worst:.2f} "
                     f"(target <= {TARGET_VS_TORCH})")
    big = [r for r in rows if r["N"] == 512 and r["batch"] == 256]
    for r in big:
        key = f"bound_over_ours_n512_b256_{r['dtype']}"
        out[key] = r["bound_over_ours"]
        lines.append(f"bound/ours at N = 512, batch 256, {r['dtype']}: {r['bound_over_ours']:.2f} "
                     f"(target >= {TARGET_BOUND})")
    if rows:
        worst = max(r["physics_over_ideal"] for r in rows)
        out["worst_physics_over_ideal"] = worst
        lines.append(f"worst physics/ideal: {worst:.2f} (target <= {TARGET_PHYSICS})")
        worst = max(r["default_over_ideal"] for r in rows)
        out["worst_default_over_ideal"] = worst
        lines.append(f"worst default machine/ideal: {worst:.2f} (target <= {TARGET_PHYSICS})")
    out["lines"] = lines
    return out


# -- section: kernels against their numpy twins ---------------------------------------------------

def problem(N: int, B: int = 256, T: int = STEPS, L: int = BANKS, seed: int = 0):
    rng = np.random.default_rng(seed)
    params = {"W_in": rng.standard_normal((N, INPUTS)) / np.sqrt(INPUTS),
              "W": rng.standard_normal((L, N, N)) / np.sqrt(N), "b": np.zeros((L, N)),
              "W_out": rng.standard_normal((CLASSES, N)) / np.sqrt(N), "b_out": np.zeros(CLASSES)}
    sched = np.arange(T) % L
    return dict(params=params, X=rng.standard_normal((1, B, INPUTS)),
                slot=np.zeros(T, dtype=np.int64), sched=sched, prev=np.r_[sched[0], sched[:-1]],
                a=np.zeros(T), c=np.ones(T), eps=np.zeros(T), y=rng.integers(0, CLASSES, B))


def numba_step(p):
    from relaxsim.kernels import passes as kernels

    Z, tape = kernels.forward(p["params"], p["X"], p["slot"], p["sched"], p["prev"], p["a"],
                              p["c"], p["eps"], 0)
    _, gZ = kernels.loss(Z, p["y"])
    return kernels.backward(p["params"], tape, gZ)


def numpy_step(p):
    args = (p["params"], p["X"], p["slot"], p["sched"], p["prev"], p["a"], p["c"], p["eps"], 0)
    from relaxsim.kernels import reference

    Z, H, U = reference.forward(*args)
    _, gZ = reference.loss(Z, p["y"])
    return reference.backward(*args, H, U, gZ)


def kernels_section(sizes, repeats: int) -> dict:
    print(f"\nkernels against their numpy twins: forward + backward, batch 256, float64, "
          f"median of {repeats}")
    print(f"{'N':>5} {'numba ms':>10} {'numpy ms':>10} {'numpy/numba':>12}")
    rows = []
    for N in sizes:
        p = problem(N)
        times = time_side_by_side({"numba": lambda p=p: numba_step(p),
                                   "numpy": lambda p=p: numpy_step(p)}, repeats, samples=True)
        t = {k: statistics.median(v) for k, v in times.items()}
        ratio = paired_ratio(times, "numpy", "numba")
        rows.append({"N": N, "batch": 256, "numba_s": t["numba"], "numpy_s": t["numpy"],
                     "numpy_over_numba": ratio})
        print(f"{N:>5} {t['numba'] * 1e3:>10.3f} {t['numpy'] * 1e3:>10.3f} {ratio:>12.2f}",
              flush=True)
    return {"rows": rows}


# -- kernels: programming coherent meshes ---------------------------------------------------------

MESH_SIZES = (64, 128)
MESH_BANKS = 2
# every effect of a mesh on: 8-bit phase drivers, noise, thermal crosstalk, coupler imbalance, loss
MESH_EFFECTS = dict(phase_bits=8.0, phase_noise=0.01, crosstalk=0.01, imbalance=0.01,
                    loss_db=0.05)


def mesh_cases(N: int, L: int = MESH_BANKS, seed: int = 0) -> dict:
    """Timed calls of one programming event of ``L`` banks of ``N x N`` (spectral norm 1): the
    whole event and its stages (SVD, decomposition of the ``2 L`` meshes, rebuild with every
    effect and the read-out products), and numpy's SVD of the same banks."""
    from relaxsim.kernels import mesh

    rng = np.random.default_rng(seed)
    W = rng.standard_normal((L, N, N))
    W /= np.linalg.norm(W, 2, axis=(1, 2))[:, None, None]
    U, s, Vt = mesh.bank_svd(W)
    Q = np.empty((2 * L, N, N))
    Q[0::2], Q[1::2] = U, Vt
    theta, phi, psi = mesh.decompose_stack(Q)
    key = np.uint64(1)
    return {"program": lambda: mesh.program_banks(W, 1.0, key=key, **MESH_EFFECTS),
            "svd": lambda: mesh.bank_svd(W),
            "decompose": lambda: mesh.decompose_stack(Q),
            "rebuild": lambda: mesh.realise(theta, phi, psi, s, key=key, **MESH_EFFECTS),
            "numpy_svd": lambda: np.linalg.svd(W)}


def mesh_section(repeats: int) -> dict:
    import numba

    from relaxsim.kernels.threads import set_numpy_blas_threads, single_threaded_kernel_blas
    from relaxsim.validation.train_step import OursStep

    threads = numba.get_num_threads()
    single_threaded_kernel_blas()
    set_numpy_blas_threads(threads)
    print(f"\nprogramming coherent meshes: {MESH_BANKS} banks, every effect on "
          f"({', '.join(f'{k} {v:g}' for k, v in MESH_EFFECTS.items())}), float64; against "
          f"numpy's SVD of the banks and the ideal training step (batch 256, float64); "
          f"{threads} threads, median of {repeats}")
    print(f"{'N':>5} {'event ms':>9} {'svd ms':>8} {'decomp ms':>10} {'rebuild ms':>11} | "
          f"{'np svd ms':>10} {'step ms':>8} | {'event/np svd':>12} {'event/step':>10}")
    rows = []
    for N in MESH_SIZES:
        cases = mesh_cases(N)
        cases["step"] = OursStep(N, 256, "float64", False)
        # the numba family back to back; numpy's SVD and the step after a pause each
        times = time_side_by_side(cases, repeats, samples=True,
                                  settle={"program", "numpy_svd", "step"})
        t = {k: statistics.median(v) for k, v in times.items()}
        row = {"N": N, "banks": MESH_BANKS, **{f"{k}_s": v for k, v in t.items()},
               "program_over_numpy_svd": paired_ratio(times, "program", "numpy_svd"),
               "program_over_step": paired_ratio(times, "program", "step")}
        rows.append(row)
        ms = {k: v * 1e3 for k, v in t.items()}
        print(f"{N:>5} {ms['program']:>9.3f} {ms['svd']:>8.3f} {ms['decompose']:>10.3f} "
              f"{ms['rebuild']:>11.3f} | {ms['numpy_svd']:>10.3f} {ms['step']:>8.3f} | "
              f"{row['program_over_numpy_svd']:>12.2f} {row['program_over_step']:>10.2f}",
              flush=True)
    return {"threads": threads, "effects": MESH_EFFECTS, "rows": rows}


# -- section: the timing model --------------------------------------------------------------------

def timing_events_per_second(n: int, repeats: int) -> dict:
    """Events per second of the SimPy model: a stream of ``n`` inferences of the default machine,
    pipelined with 4 in flight, trace off; median of ``repeats``."""
    import relaxsim
    from relaxsim.hardware import build_hardware
    from relaxsim.schedules import resolve
    from relaxsim.timing import simulate

    cfg = relaxsim.load_config(overrides={"hardware.pipelining": "pipelined",
                                          "hardware.in_flight": 4})
    net = cfg.network
    spec = build_hardware(cfg.hardware, cfg.network.banks).timing_spec(
        resolve(net.schedule, net.banks, net.steps), net.banks)
    simulate(spec, n=100, record=False)  # warm up
    rates, events = [], 0
    for _ in range(repeats):
        t0 = time.perf_counter()
        sim = simulate(spec, n=n, record=False)
        rates.append(sim.events / (time.perf_counter() - t0))
        events = sim.events
    return {"inferences": n, "events": events, "events_per_s": statistics.median(rates)}


def timing_share_of_epoch(repeats: int) -> dict:
    """Seconds of the timing simulation a run does once (coupling arrays and
    ``Hardware.figures``) against one epoch of training the default experiment (its second
    epoch: the first compiles), sequential and pipelined (4 in flight)."""
    import relaxsim
    from relaxsim.data.tasks import load_task
    from relaxsim.training.engine import engines_for
    from relaxsim.training.loop import train

    cfg = relaxsim.load_config(overrides={"training.epochs": 2})
    data = load_task(cfg)
    out = {}
    for label, overrides in (("sequential", {}), ("pipelined", {
            "hardware.pipelining": "pipelined", "hardware.in_flight": 4})):
        variant = cfg.replace(overrides)
        samples = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            machine = relaxsim.assemble(variant, data.info)
            machine.coupling, machine.figures  # every simulation a run makes
            samples.append(time.perf_counter() - t0)
        out[f"timing_{label}_s"] = statistics.median(samples)
    machine = relaxsim.assemble(cfg, data.info)
    net, engines = machine.network, engines_for(machine, cfg.training.seed)
    trained = train(cfg, net, data, quiet=True, engines=(engines[0], engines[0]))
    out["epoch_s"] = trained.metrics[-1]["seconds"]
    for label in ("sequential", "pipelined"):
        out[f"share_{label}"] = out[f"timing_{label}_s"] / out["epoch_s"]
    return out


def timing_section(quick: bool) -> dict:
    n = 2_000 if quick else 20_000
    ev = timing_events_per_second(n, repeats=1 if quick else 3)
    print(f"\ntiming model (SimPy): {ev['events']:,} events of {n:,} pipelined inferences: "
          f"{ev['events_per_s']:,.0f} events/s ({ev['events_per_s'] / EVENTS_TARGET:.2f} x the "
          f"target of {EVENTS_TARGET:,})")
    share = timing_share_of_epoch(repeats=3 if quick else 7)
    print(f"timing simulation of a run (coupling + figures): "
          f"{share['timing_sequential_s'] * 1e3:.2f} ms sequential, "
          f"{share['timing_pipelined_s'] * 1e3:.2f} ms pipelined (4 in flight); "
          f"one training epoch of the default experiment {share['epoch_s']:.2f} s: "
          f"{100 * share['share_sequential']:.2f} % and {100 * share['share_pipelined']:.2f} %")
    return {**ev, "events_target": EVENTS_TARGET, **share}


# -- sections: start-up and memory, measured on fresh processes -----------------------------------

# Runs relaxsim in a grandchild and reports its peak memory: a process forked from this one
# starts with this process's pages (the benchmark's, hundreds of MB once torch is loaded), and
# Linux keeps that peak across exec; a small launcher process forks the measured one instead.
_LAUNCHER = """
import json, os, subprocess, sys
proc = subprocess.Popen([sys.executable, "-m", "relaxsim", *sys.argv[1:]],
                        stdout=subprocess.DEVNULL)
_, status, usage = os.wait4(proc.pid, 0)
print(json.dumps({"rc": os.waitstatus_to_exitcode(status), "maxrss_kb": usage.ru_maxrss}))
"""


def run_child(args: list[str], env: dict | None = None, cwd: str | None = None) -> dict:
    """Run ``python -m relaxsim ARGS`` in a fresh process: wall seconds and peak resident
    memory. A failed run raises with the last line it wrote on stderr."""
    import json

    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", _LAUNCHER, *args], env=env, cwd=cwd,
                         capture_output=True, text=True)
    wall = time.perf_counter() - t0
    lines = out.stdout.strip().splitlines()
    report = json.loads(lines[-1]) if out.returncode == 0 and lines else {"rc": out.returncode}
    if report["rc"] != 0:
        last = (out.stderr.strip().splitlines() or ["(no message)"])[-1]
        raise RuntimeError(f"relaxsim {' '.join(args)} failed ({report['rc']}): {last}")
    return {"seconds": wall, "peak_rss_mb": report["maxrss_kb"] / 1024.0}


def start_section(workdir: Path) -> dict:
    """Cold and warm start of ``relaxsim run`` (one epoch of the default experiment), on a numba
    cache of its own (so neither the user's cache nor this process's compilations count)."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(workdir / "numba-cache"))
    args = ["run", "--quiet", "--set", "training.epochs=1"]
    cold = run_child(args + ["--out", str(workdir / "cold")], env)
    warm = run_child(args + ["--out", str(workdir / "warm")], env)
    print(f"\nstart: one-epoch run of the default experiment in a fresh process: cold (empty "
          f"numba cache, compiling) {cold['seconds']:.1f} s, warm (numba's on-disk cache) "
          f"{warm['seconds']:.1f} s (target < {TARGET_WARM_S:.0f} s to the first epoch)")
    return {"cold_s": cold["seconds"], "warm_s": warm["seconds"], "target_warm_s": TARGET_WARM_S}


def write_svhn_like(path: Path, n_train: int = 73_257, n_test: int = 26_032) -> None:
    """SVHN-sized ``train_32x32.mat`` and ``test_32x32.mat`` of random pixels and labels, in the
    official layout (X: 32 x 32 x 3 x n uint8, y: n x 1 with 10 for the digit 0)."""
    from scipy.io import savemat

    rng = np.random.default_rng(0)
    path.mkdir(parents=True, exist_ok=True)
    for name, n in (("train_32x32.mat", n_train), ("test_32x32.mat", n_test)):
        X = rng.integers(0, 256, size=(32, 32, 3, n), dtype=np.uint8)
        y = rng.integers(1, 11, size=(n, 1)).astype(np.uint8)
        savemat(path / name, {"X": X, "y": y})


def memory_section(workdir: Path, quick: bool) -> dict:
    print()
    out = {}
    digits = run_child(["run", "--quiet", "--set", "training.epochs=2",
                        "--out", str(workdir / "mem-digits")])
    out["digits_peak_mb"] = digits["peak_rss_mb"]
    print(f"memory: peak resident memory of a digits training run {digits['peak_rss_mb']:.0f} MB "
          f"(target < {TARGET_MEMORY_MB['digits']} MB)")
    if quick:
        print("memory: SVHN-sized run skipped (--quick)")
        out["svhn_peak_mb"] = None
        return out
    data = workdir / "svhn"
    write_svhn_like(data)
    svhn = run_child(["run", "--quiet", "--set", "task.name=svhn", "--set", f"task.path={data}",
                      "--set", "training.epochs=1", "--out", str(workdir / "mem-svhn")])
    out["svhn_peak_mb"] = svhn["peak_rss_mb"]
    out["svhn_seconds"] = svhn["seconds"]
    print(f"memory: peak resident memory of an SVHN-sized training run (73,257 training images, "
          f"3,072 inputs, one epoch) {svhn['peak_rss_mb']:.0f} MB "
          f"(target < {TARGET_MEMORY_MB['svhn']} MB)")
    return out


# -- main -----------------------------------------------------------------------------------------

def main(quick: bool = False, json_path: str | None = None, sizes=SIZES, batches=None,
         dtypes=DTYPES, only=SECTIONS, repeats: int | None = None, use_torch: bool = True) -> int:
    repeats = repeats or (3 if quick else 7)
    batches = batches or ((256,) if quick else BATCHES)
    report = {"benchmark": "relaxsim", "cores": os.cpu_count(), "machine": platform.machine(),
              "python": sys.version.split()[0], "numpy": np.__version__, "repeats": repeats,
              "quick": quick}
    if "step" in only:
        report["step"] = step_section(sizes, batches, dtypes, repeats, use_torch)
    if "kernels" in only:
        report["kernels"] = kernels_section(sizes, repeats)
        report["mesh"] = mesh_section(repeats)
    if "timing" in only:
        report["timing"] = timing_section(quick)
    with tempfile.TemporaryDirectory(prefix="relaxsim-bench-") as tmp:
        if "start" in only:
            report["start"] = start_section(Path(tmp))
        if "memory" in only:
            report["memory"] = memory_section(Path(tmp), quick)
    if json_path:
        write_json(json_path, report)
        print(f"\nwrote {json_path}")
    return 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true",
                   help="3 repeats, batch 256 only, no SVHN memory run")
    p.add_argument("--json", help="also write the measurements to this JSON file")
    p.add_argument("--sizes", default=",".join(map(str, SIZES)),
                   help="hidden sizes N of the step table (default 16,64,128,512)")
    p.add_argument("--batches", help="batch sizes (default 128,256; --quick: 256)")
    p.add_argument("--dtypes", default=",".join(DTYPES), help="float32 and/or float64")
    p.add_argument("--only", default=",".join(SECTIONS),
                   help=f"sections to run, of {', '.join(SECTIONS)} (default: all)")
    p.add_argument("--repeats", type=int, help="timed repeats per figure (median taken)")
    p.add_argument("--no-torch", action="store_true", help="skip PyTorch even if importable")


def run_from_args(args) -> int:
    from relaxsim.io import check_output_path

    if args.repeats is not None and args.repeats < 1:
        raise BenchError(f"--repeats: must be at least 1 (got {args.repeats})")
    if args.json:  # before the work, not after it
        check_output_path("--json", args.json)
    return main(quick=args.quick, json_path=args.json,
                sizes=parse_list(args.sizes, "--sizes", int),
                batches=parse_list(args.batches, "--batches", int) if args.batches else None,
                dtypes=parse_list(args.dtypes, "--dtypes", str, DTYPES),
                only=parse_list(args.only, "--only", str, SECTIONS),
                repeats=args.repeats, use_torch=not args.no_torch)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    try:
        sys.exit(run_from_args(parser.parse_args()))
    except RelaxsimError as err:
        print(f"relaxsim bench: {err}", file=sys.stderr)
        sys.exit(2)
