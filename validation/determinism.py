"""Study: determinism. Two runs of the same config and seed write the same bytes of
``weights.npz`` (and the same metrics); a third with another seed differs (so the comparison can
see a difference at all).

Run as ``python -m relaxsim.validation.determinism [--quick] [--out DIR]``.
"""

from __future__ import annotations

import hashlib
import sys
import tempfile
from pathlib import Path

from .common import Check
from .common import main as _main

NAME = "determinism"
TITLE = "Determinism: same seed, same bytes"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check(quick: bool, out: Path) -> Check:
    import relaxsim

    epochs = 2 if quick else 10
    overrides = {"network.hidden": 16, "training.epochs": epochs}  # default machine, hardware_aware
    rows, digests = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i, seed in enumerate((0, 0, 1)):
            cfg = relaxsim.load_config(overrides={**overrides, "training.seed": seed})
            res = relaxsim.run(cfg, out=Path(tmp) / f"run{i}")
            digests.append(sha256(Path(tmp) / f"run{i}" / "weights.npz"))
            rows.append([f"run {i + 1}", seed, digests[-1][:16],
                         f"{res['test_accuracy']:.4f}", f"{res['test_loss']:.12f}"])
    same = digests[0] == digests[1]
    differs = digests[0] != digests[2]
    return Check(
        NAME, TITLE, same and differs,
        method=(f"relaxsim.run three times on the digits (N = 16, {epochs} epochs, the default "
                "hardware_aware machine), seeds 0, 0 and 1; sha256 of each weights.npz"),
        tolerance="identical bytes for the same seed; different bytes for another seed",
        summary=(f"seed 0 twice: {'same' if same else 'DIFFERENT'} bytes; seed 1: "
                 f"{'different' if differs else 'the SAME'} bytes"),
        head=["run", "seed", "sha256 of weights.npz (first 16 hex)", "test accuracy",
              "test loss"], rows=rows)


if __name__ == "__main__":
    sys.exit(_main(sys.modules[__name__]))
