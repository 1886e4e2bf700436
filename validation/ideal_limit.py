"""Study: the ideal limit. Training with ``hardware.mode = "hardware_aware"`` on machines whose
every device is the ``ideal`` preset must give the ideal network's results (losses and trained
weights) to 1e-12: the device physics vanishes where it should.

Run as ``python -m relaxsim.validation.ideal_limit [--quick] [--out DIR]``.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

from .common import Check
from .common import main as _main

NAME = "ideal_limit"
TITLE = "Ideal-limit recovery"
IDEAL_TOL = 1e-12  # docs/hardware.md's promise: with every device ideal, the ideal results to 1e-12
IDEAL_DEVICES = {f"hardware.{k}.preset": "ideal" for k in ("switch", "weights", "active")}
CASES = [  # (label, overrides)
    ("ReLaX-Net L_W = 2, L_T = 4, tanh", {}),
    ("RNN L_W = 1, L_T = 4, sigmoid, alpha 0.3",
     {"network.banks": 1, "network.activation": "sigmoid", "network.alpha": 0.3}),
    ("DNN L_W = 4, L_T = 4, relu", {"network.banks": 4, "network.activation": "relu"}),
]


def run_pair(overrides: dict, epochs: int, tmp: Path):
    import relaxsim

    base = {"network.hidden": 16, "training.epochs": epochs, **overrides}
    results, weights = [], []
    for i, hw in enumerate(({"hardware.mode": "ideal"},
                            {"hardware.mode": "hardware_aware", **IDEAL_DEVICES})):
        out = tmp / f"run{i}"
        results.append(relaxsim.run(relaxsim.load_config(overrides={**base, **hw}), out=out))
        with np.load(out / "weights.npz") as z:
            weights.append({k: z[k] for k in z.files})
    return results, weights


def check(quick: bool, out: Path) -> Check:
    epochs = 2 if quick else 5
    rows, worst = [], 0.0
    for label, overrides in CASES[:2] if quick else CASES:
        with tempfile.TemporaryDirectory() as tmp:
            (ideal, aware), (w0, w1) = run_pair(overrides, epochs, Path(tmp))
        dw = max(float(np.max(np.abs(w0[k] - w1[k]))) for k in w0)
        dl = max(abs(ideal[k] - aware[k]) for k in ("test_loss", "val_loss", "train_loss"))
        da = abs(ideal["test_accuracy"] - aware["test_accuracy"])
        worst = max(worst, dw, dl, da)
        rows.append([label, epochs, f"{ideal['test_loss']:.12f}", f"{aware['test_loss']:.12f}",
                     f"{dl:.1e}", f"{dw:.1e}", f"{da:.1e}"])
    return Check(
        NAME, TITLE, worst <= IDEAL_TOL,
        method=("relaxsim.run on the digits (N = 16) twice per case, mode ideal and mode "
                "hardware_aware with the ideal switch, weights and active presets; the largest "
                "difference of the train, validation and test losses, of any trained weight "
                "(weights.npz) and of the test accuracy"),
        tolerance=f"<= {IDEAL_TOL:g} absolute (docs/hardware.md's promise)",
        summary=f"largest difference {worst:.1e} over {len(rows)} networks",
        head=["network", "epochs", "test loss ideal", "test loss hardware_aware",
              "max loss difference", "max weight difference", "accuracy difference"],
        rows=rows)


if __name__ == "__main__":
    sys.exit(_main(sys.modules[__name__]))
