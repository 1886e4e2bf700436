"""Study: the paper's claims on MNIST-1D (Greydanus 2020), measured through scans. Three parts,
each a scan run on local Dask workers into a resumable store (``out/mnist1d_claims.scans/``), each
claim reported PASS or FAIL as measured, with nothing tuned to make it pass:

1. Equal budget: ReLaX-Net (L_W = 2 and 4) against the RNN (L_W = 1) and the DNN (L_W = L_T = 8)
   at equal bank budgets (8,320 and 33,280 bank parameters L_W (N^2 + N), N solved per L_W),
   static input on every step. PASS when the better ReLaX-Net's mean test accuracy is >= the
   RNN's and the DNN's at every budget; the significance of each difference (paired t-test over
   the same seeds, bootstrap 95 % interval of the mean difference) is reported beside it.
2. The (L_W, L_T) map at 8,320 bank parameters, L_T in 2, 4, 8 and L_W in 1, 2, 4, 8 with
   L_W <= L_T: "balanced is best", PASS when the best cell has 1 < L_W < L_T.
3. Sequence input (``task.chunk = 5``, L_T = 8), L_W in 1, 2, 4, 8 at 8,320: saturation, PASS
   when going from L_W = 4 to L_W = 8 gains less than one seed-to-seed standard deviation:
   ``mean(8) - mean(4) <= std(8)``. Whether the accuracy rises with L_W before it saturates is
   reported beside it (a curve that only falls "saturates" trivially, and the summary says so).

Machine: mode ``ideal`` (no device effects) for speed: the claims are about the architecture.
Training: Adam, lr 0.003, constant schedule, batch 32, 60 epochs, the best
validation epoch's weights tested; 10 seeds (``--quick``: 2 seeds, budget 8,320 only).

Run as ``python -m relaxsim.validation.mnist1d_claims [--quick] [--out DIR]``; killed, it
resumes from its stores.
"""

from __future__ import annotations

import math
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from .common import Check, write_png, write_rows
from .common import main as _main

NAME = "mnist1d_claims"
TITLE = "The paper's claims on MNIST-1D: equal budget, the (L_W, L_T) map, sequence saturation"

BANKS = (1, 2, 4, 8)          # L_W: RNN, ReLaX-Net, ReLaX-Net, DNN (at L_T = 8)
STEPS = 8                     # L_T of parts 1 and 3
RELAX = (2, 4)                # the ReLaX-Net widths compared in part 1
HEAT_BUDGET = 8320            # part 2 and part 3: the default experiment's bank budget
HEAT_STEPS = (2, 4, 8)
CHUNK = 5                     # part 3: 5 values per step, 40 / 5 = 8 steps
TOLERANCE = 0.1               # bank parameters within 10 % of the budget
TRAINING = {"lr": 0.003, "batch_size": 32, "schedule": "constant"}
QUICK = {"budgets": (8320,), "seeds": (0, 1), "epochs": 60}
FULL = {"budgets": (8320, 33280), "seeds": tuple(range(10)), "epochs": 60}
ALPHA = 0.05                  # significance level of the paired tests
BOOTSTRAP = 10_000            # resamples of the bootstrap interval
BOOTSTRAP_SEED = 0
LEVEL = 0.95
REFERENCE = {"logistic regression": 0.32, "MLP": 0.68, "CNN": 0.94, "GRU": 0.91}
PARTS = ("equal_budget", "heatmap", "sequence")


# -- the scans ------------------------------------------------------------------------------------

def base(epochs: int, sequence: bool = False) -> dict:
    """The config every point starts from (the budget family sets N, L_W and L_T)."""
    cfg = {"task": {"name": "mnist1d"},
           "network": {"input_injection": "sequence" if sequence else "every_step"},
           "training": {"epochs": epochs, **TRAINING},
           "hardware": {"mode": "ideal"}}
    if sequence:
        cfg["task"]["chunk"] = CHUNK
    return cfg


def specs(plan: dict) -> dict[str, dict]:
    """The three scan specs (dicts of the TOML shape of ``examples/mnist1d_*.toml``)."""
    seeds, epochs = list(plan["seeds"]), plan["epochs"]
    return {
        "equal_budget": {
            "description": "MNIST-1D: ReLaX-Net vs RNN vs DNN at equal bank budget, static input",
            "seeds": seeds, "base": base(epochs),
            "budget": {"params": list(plan["budgets"]), "tolerance": TOLERANCE,
                       "banks": list(BANKS), "steps": [STEPS]}},
        "heatmap": {
            "description": "MNIST-1D: the (L_W, L_T) map at 8,320 bank parameters, static input",
            "seeds": seeds, "base": base(epochs),
            "budget": {"params": [HEAT_BUDGET], "tolerance": TOLERANCE,
                       "banks": list(BANKS), "steps": list(HEAT_STEPS)}},
        "sequence": {
            "description": "MNIST-1D, sequence input in chunks of 5 (L_T = 8): accuracy against "
                           "L_W at 8,320 bank parameters",
            "seeds": seeds, "base": base(epochs, sequence=True),
            "budget": {"params": [HEAT_BUDGET], "tolerance": TOLERANCE,
                       "banks": list(BANKS), "steps": [STEPS]}},
    }


def run_scans(plan: dict, root: Path, workers: int | None = None) -> dict[str, list[dict]]:
    """Every part's scan on one local cluster, each into its store ``root/<part>`` (finished
    points are read back, not run again). A failed point is an error."""
    from distributed import Client

    from relaxsim.scans.execute import local_cluster, scan

    cluster = local_cluster(workers)
    client = Client(cluster, timeout=30)
    try:
        results = {part: list(scan(spec, client=client, out=root / part))
                   for part, spec in specs(plan).items()}
    finally:
        client.close()
        cluster.close()
    failed = [(part, r) for part, recs in results.items() for r in recs
              if r["status"] != "done"]
    if failed:
        part, r = failed[0]
        raise RuntimeError(f"{len(failed)} scan points failed; first ({part}, "
                           f"{r['fields']}): {r.get('error')}")
    return results


def cells(records: list[dict]) -> dict[tuple[int, int, int], dict]:
    """The points grouped by (budget, L_T, L_W): N, bank parameters, network kind and the test
    accuracy per seed."""
    out: dict[tuple[int, int, int], dict] = {}
    for r in records:
        f, res = r["fields"], r["result"]
        key = (r["labels"]["budget"], f["network.steps"], f["network.banks"])
        cell = out.setdefault(key, {"hidden": f["network.hidden"], "kind": r["labels"]["kind"],
                                    "bank_params": res["params"]["banks"],
                                    "total_params": res["params"]["total"], "acc": {},
                                    "seconds": 0.0})
        cell["acc"][f["training.seed"]] = float(res["test_accuracy"])
        cell["seconds"] += float(res.get("seconds", 0.0))
    return out


# -- statistics -----------------------------------------------------------------------------------

def mean_std(values) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    values = [float(v) for v in values]
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def bootstrap_ci(diff, resamples: int = BOOTSTRAP, seed: int = BOOTSTRAP_SEED,
                 level: float = LEVEL) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``diff``: ``resamples`` resamples with
    replacement drawn by ``numpy.random.default_rng(seed)``."""
    d = np.asarray(diff, dtype=np.float64)
    idx = np.random.default_rng(seed).integers(0, d.size, size=(resamples, d.size))
    means = d[idx].mean(axis=1)
    tail = (1.0 - level) / 2.0
    lo, hi = np.quantile(means, [tail, 1.0 - tail])
    return float(lo), float(hi)


def paired(a, b, resamples: int = BOOTSTRAP, seed: int = BOOTSTRAP_SEED) -> dict:
    """``a`` against ``b``, paired by position (the same seeds): the mean difference ``a - b``,
    the paired t-test (``scipy.stats.ttest_rel``, two-sided, as scipy gives it: differences
    all equal and non-zero give t = +-inf and p = 0, all zero give NaN) and the bootstrap interval of the mean difference."""
    from scipy.stats import ttest_rel

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or a.size < 2:
        raise ValueError("paired: two equal-length sequences of at least 2 values")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # constant differences
        t, p = ttest_rel(a, b)
    lo, hi = bootstrap_ci(a - b, resamples, seed)
    return {"n": int(a.size), "diff": float(np.mean(a - b)), "t": float(t), "p": float(p),
            "ci_low": lo, "ci_high": hi,
            "significant": bool(np.isfinite(p) and p < ALPHA)}


def accuracies(cell: dict, seeds) -> list[float]:
    return [cell["acc"][s] for s in seeds]


# -- the three claims -----------------------------------------------------------------------------

def equal_budget(found: dict, plan: dict) -> tuple[list[dict], list[dict], list[dict]]:
    """Per budget: the means, the claim, and the paired tests of each ReLaX-Net against the RNN
    and the DNN."""
    seeds, verdicts, tests, rows = plan["seeds"], [], [], []
    for budget in plan["budgets"]:
        acc = {lw: accuracies(found[budget, STEPS, lw], seeds) for lw in BANKS}
        means = {lw: mean_std(a) for lw, a in acc.items()}
        for lw in BANKS:
            c = found[budget, STEPS, lw]
            rows.append({"part": "1 equal budget", "budget": budget, "steps": STEPS,
                         "banks": lw, "kind": c["kind"], "hidden": c["hidden"],
                         "bank_params": c["bank_params"], "mean": means[lw][0],
                         "std": means[lw][1], "acc": acc[lw]})
        best = max(RELAX, key=lambda lw: means[lw][0])
        for lw in RELAX:
            for other, label in ((1, "RNN"), (STEPS, "DNN")):
                tests.append({"part": "1 equal budget", "budget": budget,
                              "a": f"ReLaX-Net L_W = {lw}", "b": f"{label} L_W = {other}",
                              "best": lw == best, **paired(acc[lw], acc[other])})
        ok = means[best][0] >= means[1][0] and means[best][0] >= means[STEPS][0]
        sig = [t for t in tests if t["budget"] == budget and t["best"]]
        verdicts.append({"budget": budget, "passed": ok, "best": best,
                         "relax": means[best][0], "rnn": means[1][0], "dnn": means[STEPS][0],
                         "significant": {t["b"].split()[0]: t["significant"] for t in sig},
                         "p": {t["b"].split()[0]: t["p"] for t in sig}})
    return verdicts, tests, rows


def heatmap(found: dict, plan: dict) -> tuple[dict, list[dict]]:
    """The mean per (L_T, L_W) cell at :data:`HEAT_BUDGET`; the best cell and the claim."""
    seeds, rows = plan["seeds"], []
    for steps in HEAT_STEPS:
        for lw in BANKS:
            if lw > steps:
                continue
            c = found[HEAT_BUDGET, steps, lw]
            acc = accuracies(c, seeds)
            m, s = mean_std(acc)
            rows.append({"part": "2 heat map", "budget": HEAT_BUDGET, "steps": steps,
                         "banks": lw, "kind": c["kind"], "hidden": c["hidden"],
                         "bank_params": c["bank_params"], "mean": m, "std": s, "acc": acc})
    best = max(rows, key=lambda r: r["mean"])
    verdict = {"passed": 1 < best["banks"] < best["steps"], "best": best,
               "balanced_best": max((r for r in rows if 1 < r["banks"] < r["steps"]),
                                    key=lambda r: r["mean"])}
    return verdict, rows


def sequence(found: dict, plan: dict) -> tuple[dict, list[dict], list[dict]]:
    """Accuracy against L_W with sequence input; the saturation claim and its paired tests."""
    seeds, rows = plan["seeds"], []
    acc = {lw: accuracies(found[HEAT_BUDGET, STEPS, lw], seeds) for lw in BANKS}
    means = {lw: mean_std(a) for lw, a in acc.items()}
    for lw in BANKS:
        c = found[HEAT_BUDGET, STEPS, lw]
        rows.append({"part": "3 sequence", "budget": HEAT_BUDGET, "steps": STEPS, "banks": lw,
                     "kind": c["kind"], "hidden": c["hidden"], "bank_params": c["bank_params"],
                     "mean": means[lw][0], "std": means[lw][1], "acc": acc[lw]})
    gain = means[8][0] - means[4][0]
    rises = max(means[2][0], means[4][0]) > means[1][0]
    tests = [{"part": "3 sequence", "budget": HEAT_BUDGET, "a": f"L_W = {a}", "b": f"L_W = {b}",
              "best": False, **paired(acc[a], acc[b])} for a, b in ((8, 4), (4, 1), (2, 1))]
    verdict = {"passed": gain <= means[8][1], "gain": gain, "std8": means[8][1],
               "rises": rises, "means": {lw: m for lw, (m, _) in means.items()}}
    return verdict, rows, tests


# -- figures --------------------------------------------------------------------------------------

def _figure(width: float, panels: int = 1):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, 4.0), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, panels)
    return fig, (list(axes) if panels > 1 else [axes])


def _png(fig) -> bytes:
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return buf.getvalue()


def _draw_equal(ax, rows: list[dict]) -> None:
    budgets = sorted({r["budget"] for r in rows})
    for i, budget in enumerate(budgets):
        sel = [r for r in rows if r["budget"] == budget]
        x = np.arange(len(sel)) + (i - (len(budgets) - 1) / 2) * 0.18
        ax.errorbar(x, [r["mean"] for r in sel], yerr=[r["std"] for r in sel], fmt="o",
                    capsize=4, color=f"C{i}", label=f"{budget:,} bank params")
        for xi, r in zip(x, sel):
            ax.scatter([xi] * len(r["acc"]), r["acc"], s=6, color=f"C{i}", alpha=0.35)
    kinds = [r for r in rows if r["budget"] == budgets[0]]
    ax.set_xticks(range(len(kinds)), [f"L_W = {r['banks']}\n{r['kind']}" for r in kinds],
                  fontsize=8)
    for (name, acc), style in zip(REFERENCE.items(), (":", "--", "-.", "-")):
        ax.axhline(acc, color="0.5", linestyle=style, linewidth=0.8)
        ax.annotate(f"{name} {acc:.0%}", (0.01, acc), xycoords=("axes fraction", "data"),
                    fontsize=7, color="0.35", va="bottom")
    ax.set_ylim(0.25, 1.0)
    ax.set_ylabel("test accuracy")
    ax.set_title(f"1. equal budget, static input, L_T = {STEPS}", fontsize=9)
    ax.legend(fontsize=7, loc="upper right")
    ax.grid(axis="y", linewidth=0.3)


def _draw_heat(ax, rows: list[dict]) -> None:
    grid = np.full((len(HEAT_STEPS), len(BANKS)), np.nan)
    for r in rows:
        grid[HEAT_STEPS.index(r["steps"]), BANKS.index(r["banks"])] = r["mean"]
    image = ax.imshow(grid, cmap="viridis", origin="lower", aspect="auto")
    ax.figure.colorbar(image, ax=ax, label="mean test accuracy")
    best = max(rows, key=lambda r: r["mean"])
    lo, hi = np.nanmin(grid), np.nanmax(grid)
    for r in rows:
        i, j = HEAT_STEPS.index(r["steps"]), BANKS.index(r["banks"])
        bright = (r["mean"] - lo) / (hi - lo or 1.0) > 0.6
        ax.text(j, i, f"{r['mean']:.3f}\n± {r['std']:.3f}\nN = {r['hidden']}", ha="center",
                va="center", fontsize=7, color="black" if bright else "white",
                fontweight="bold" if r is best else "normal")
    ax.set_xticks(range(len(BANKS)), [str(b) for b in BANKS])
    ax.set_yticks(range(len(HEAT_STEPS)), [str(s) for s in HEAT_STEPS])
    ax.set_xlabel("L_W (weight banks)")
    ax.set_ylabel("L_T (steps)")
    ax.set_title(f"2. {HEAT_BUDGET:,} bank params, static input (bold: best)", fontsize=9)


def _draw_sequence(ax, rows: list[dict], static: list[dict]) -> None:
    for sel, label, color in ((rows, f"sequence input, chunks of {CHUNK}", "C2"),
                              (static, "static input", "C0")):
        if not sel:
            continue
        ax.errorbar([r["banks"] for r in sel], [r["mean"] for r in sel],
                    yerr=[r["std"] for r in sel], marker="o", capsize=4, color=color,
                    label=label)
    ax.set_xscale("log", base=2)
    ax.set_xticks(list(BANKS), [str(b) for b in BANKS])
    ax.set_xlabel("L_W (weight banks)")
    ax.set_ylabel("test accuracy")
    ax.set_title(f"3. {HEAT_BUDGET:,} bank params, L_T = {STEPS}", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(linewidth=0.3)


def figures(eq_rows, heat_rows, seq_rows) -> dict[str, bytes]:
    """The three panels side by side (the study's figure) and each alone."""
    static = [r for r in eq_rows if r["budget"] == HEAT_BUDGET]
    out = {}
    fig, axes = _figure(15.0, 3)
    _draw_equal(axes[0], eq_rows)
    _draw_heat(axes[1], heat_rows)
    _draw_sequence(axes[2], seq_rows, static)
    out[NAME] = _png(fig)
    for name, draw, width in (("equal_budget", lambda ax: _draw_equal(ax, eq_rows), 6.0),
                              ("heatmap", lambda ax: _draw_heat(ax, heat_rows), 6.0),
                              ("sequence", lambda ax: _draw_sequence(ax, seq_rows, static),
                               5.5)):
        fig, (ax,) = _figure(width)
        draw(ax)
        out[f"{NAME}.{name}"] = _png(fig)
    return out


# -- the check ------------------------------------------------------------------------------------

def _pct(x: float) -> str:
    return f"{x:.4f}"


def _p(p: float) -> str:
    return "n/a" if not math.isfinite(p) else f"{p:.3g}"


def check(quick: bool, out: Path, workers: int | None = None) -> Check:
    plan = QUICK if quick else FULL
    out = Path(out)
    store = out / f"{NAME}.scans" / ("quick" if quick else "full")
    t0 = time.perf_counter()
    results = run_scans(plan, store, workers)
    wall = time.perf_counter() - t0
    found = {part: cells(recs) for part, recs in results.items()}
    worker_s = {part: sum(c["seconds"] for c in f.values()) for part, f in found.items()}
    points = {part: len(recs) for part, recs in results.items()}

    eq, eq_tests, eq_rows = equal_budget(found["equal_budget"], plan)
    heat, heat_rows = heatmap(found["heatmap"], plan)
    seq, seq_rows, seq_tests = sequence(found["sequence"], plan)

    claim1 = all(v["passed"] for v in eq)
    claims = {"equal budget": claim1, "balanced is best": heat["passed"],
              "sequence saturation": seq["passed"]}
    head = ["part", "bank budget", "L_T", "L_W", "network", "N", "bank params",
            "mean test accuracy", "std", "seeds", "per seed"]
    rows = [[r["part"], r["budget"], r["steps"], r["banks"], r["kind"], r["hidden"],
             r["bank_params"], _pct(r["mean"]), _pct(r["std"]), len(r["acc"]),
             " ".join(f"{a:.3f}" for a in r["acc"])] for r in eq_rows + heat_rows + seq_rows]
    tests = eq_tests + seq_tests
    out.mkdir(parents=True, exist_ok=True)
    write_rows(out, f"{NAME}.paired",
               ["part", "bank budget", "a", "b", "seeds", "mean difference a - b", "t",
                "p (paired t-test)", "bootstrap 95% CI low", "bootstrap 95% CI high",
                f"significant (p < {ALPHA:g})"],
               [[t["part"], t["budget"], t["a"], t["b"], t["n"], f"{t['diff']:+.4f}",
                 f"{t['t']:.3f}", _p(t["p"]), f"{t['ci_low']:+.4f}", f"{t['ci_high']:+.4f}",
                 "yes" if t["significant"] else "no"] for t in tests])
    figs = figures(eq_rows, heat_rows, seq_rows)
    for name, png in figs.items():
        if name != NAME:
            write_png(out, name, png)

    parts = []
    for v in eq:
        sig = ", ".join(f"vs {k} p = {_p(v['p'][k])}"
                        f"{' (significant)' if v['significant'][k] else ' (not significant)'}"
                        for k in ("RNN", "DNN"))
        parts.append(f"budget {v['budget']:,}: ReLaX-Net (L_W = {v['best']}) "
                     f"{v['relax']:.4f}, RNN {v['rnn']:.4f}, DNN {v['dnn']:.4f}, {sig}")
    b = heat["best"]
    summary = (
        f"1 equal budget {'PASS' if claim1 else 'FAIL'} ({'; '.join(parts)}). "
        f"2 balanced is best {'PASS' if heat['passed'] else 'FAIL'} (best cell L_W = "
        f"{b['banks']}, L_T = {b['steps']}: {b['mean']:.4f}; best balanced L_W = "
        f"{heat['balanced_best']['banks']}, L_T = {heat['balanced_best']['steps']}: "
        f"{heat['balanced_best']['mean']:.4f}). "
        f"3 sequence saturation {'PASS' if seq['passed'] else 'FAIL'} ("
        + ", ".join(f"L_W = {lw}: {m:.4f}" for lw, m in seq["means"].items())
        + f"; L_W 4 -> 8 gains {seq['gain']:+.4f} against std {seq['std8']:.4f}; "
        + ("accuracy rises with L_W before it saturates" if seq["rises"] else
           "accuracy never rises above L_W = 1: saturation only trivially") + "). "
        f"{sum(points.values())} points, {wall:.0f} s wall, "
        f"{sum(worker_s.values()):.0f} s of worker time.")
    return Check(
        NAME, TITLE, all(claims.values()),
        method=(f"three scans (relaxsim.scan on a local Dask cluster, stores in "
                f"{store.relative_to(out)}/: resumable) on MNIST-1D (4,000 / 1,000 split, "
                f"validation carved from training), mode ideal, Adam lr {TRAINING['lr']}, "
                f"batch {TRAINING['batch_size']}, constant schedule, {plan['epochs']} epochs, "
                f"best validation epoch tested, seeds "
                f"{', '.join(map(str, plan['seeds']))}; N solved from L_W (N^2 + N) = budget "
                f"within {TOLERANCE:.0%}; mean and sample std over the seeds; paired tests "
                f"over the same seeds: scipy.stats.ttest_rel (two-sided) and a percentile "
                f"bootstrap 95% CI of the mean difference ({BOOTSTRAP:,} resamples, numpy "
                f"seed {BOOTSTRAP_SEED}) in {NAME}.paired.csv. Published references "
                f"(Greydanus 2020): "
                + ", ".join(f"{k} {v:.0%}" for k, v in REFERENCE.items())
                + f". Points per part: {points}; worker seconds per part: "
                + ", ".join(f"{k} {v:.0f}" for k, v in worker_s.items())),
        tolerance=("none, each claim as measured: (1) the better ReLaX-Net (L_W = 2 or 4) mean "
                   ">= the RNN and DNN means at every budget, significance reported beside; "
                   "(2) the best (L_W, L_T) cell has 1 < L_W < L_T; (3) mean(L_W = 8) - "
                   "mean(L_W = 4) <= std(L_W = 8) with sequence input"),
        summary=summary, head=head, rows=rows, figure=figs[NAME],
        caption=("Left: test accuracy at equal bank budget (mean ± std over seeds, dots: seeds; "
                 "grey lines: published references). Middle: mean test accuracy per (L_W, L_T) "
                 f"at {HEAT_BUDGET:,} bank parameters. Right: accuracy against L_W with sequence "
                 "input (chunks of 5) and with static input."))


if __name__ == "__main__":
    sys.exit(_main(sys.modules[__name__]))
