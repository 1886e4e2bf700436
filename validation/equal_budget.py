"""Study: the paper's claim at equal parameter budget, on the digits. ReLaX-Net (L_W = 2) against
the RNN (L_W = 1) and the DNN (L_W = L_T), each with the width N whose bank parameters
L_W (N^2 + N) come closest to the budget, trained on the default machine (hardware_aware) over
several seeds. Reported as measured: PASS when the ReLaX-Net mean test accuracy is at least both
others' at every budget, FAIL with the numbers when not. Nothing is tuned to make it pass.

Run as ``python -m relaxsim.validation.equal_budget [--quick] [--out DIR]``.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

from relaxsim.scans.spec import hidden_for

from .common import Check
from .common import main as _main

NAME = "equal_budget"
TITLE = "Equal parameter budget on the digits: ReLaX-Net against RNN and DNN"
QUICK = dict(budgets=(8320,), steps=4, seeds=(0, 1, 2), epochs=10)
FULL = dict(budgets=(8320, 33280), steps=8, seeds=(0, 1, 2, 3, 4), epochs=30)


def kinds(steps: int) -> list[tuple[str, int]]:
    return [("RNN", 1), ("ReLaX-Net", 2), ("DNN", steps)]


def check(quick: bool, out: Path) -> Check:
    import relaxsim
    from relaxsim.report import figures

    plan = QUICK if quick else FULL
    rows, verdicts, series = [], [], {}
    for budget in plan["budgets"]:
        means = {}
        for kind, banks in kinds(plan["steps"]):
            hidden = hidden_for(budget, banks)
            accs, res = [], None
            for seed in plan["seeds"]:
                cfg = relaxsim.load_config(overrides={
                    "network.hidden": hidden, "network.banks": banks,
                    "network.steps": plan["steps"], "training.epochs": plan["epochs"],
                    "training.seed": seed})
                res = relaxsim.run(cfg)
                accs.append(res["test_accuracy"])
            mean, std = statistics.fmean(accs), statistics.stdev(accs)
            means[kind] = mean
            series.setdefault(kind, []).append((res["params"]["banks"], mean, std, len(accs)))
            rows.append([budget, kind, banks, plan["steps"], hidden, res["params"]["banks"],
                         res["params"]["total"], f"{mean:.4f}", f"{std:.4f}",
                         " ".join(f"{a:.4f}" for a in accs)])
        ok = means["ReLaX-Net"] >= max(means["RNN"], means["DNN"])
        verdicts.append((budget, ok, means))
    passed = all(ok for _, ok, _ in verdicts)
    summary = "; ".join(
        f"budget {b:,}: ReLaX-Net {m['ReLaX-Net']:.4f}, RNN {m['RNN']:.4f}, DNN {m['DNN']:.4f} "
        f"({'ordering holds' if ok else 'ordering does NOT hold'})" for b, ok, m in verdicts)
    return Check(
        NAME, TITLE, passed,
        method=(f"relaxsim.run in-process on the digits, L_T = {plan['steps']}, "
                f"{plan['epochs']} epochs, default hardware_aware machine, seeds "
                f"{', '.join(map(str, plan['seeds']))}; N solved from L_W (N^2 + N) = budget; "
                "mean and sample standard deviation of the test accuracy over the seeds"),
        tolerance="none: PASS when the ReLaX-Net mean >= the RNN mean and >= the DNN mean "
                  "at every budget (no margin, no tuning)",
        summary=summary,
        head=["bank budget", "network", "L_W", "L_T", "N", "bank params", "total params",
              "mean test accuracy", "std", "per seed"], rows=rows,
        figure=figures.scaling(series),
        caption="Test accuracy against bank-parameter count at equal budget (mean ± std over "
                "seeds).")


if __name__ == "__main__":
    sys.exit(_main(sys.modules[__name__]))
