"""Fingerprints of fixed runs, to show that a restructuring leaves every result as it was.

    python -m relaxsim.validation.fingerprint [--quick] [--json FILE] [--compare FILE]

Runs the default experiment in ``hardware.mode = "ideal"`` and in the default ``hardware_aware``
mode, the timing model of the default machine (what ``relaxsim timing --json`` writes) and a small
scan store, and prints the sha256 of what each wrote: ``weights.npz``, ``result.json`` without its
wall-clock ``seconds`` and the ``relaxsim_version`` it records (:data:`IGNORED`), the timing
figures without the config, and the store's point records without them. Run it before a change (``--json before.json``) and after it
(``--compare before.json``): the exit status is 1 when a fingerprint differs, and the differing
ones are named. ``--quick`` trains 3 epochs instead of the default's 30 (same hashes before and
after as long as the code's results are the same).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path

QUICK_EPOCHS = 3
# What a run records that is not a result: its wall-clock time, and the version (a release
# changes it, not the results)
IGNORED = ("seconds", "relaxsim_version")


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _canonical(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode("utf-8")


def _without(d: dict, *keys: str) -> dict:
    return {k: v for k, v in d.items() if k not in keys}


def fingerprints(quick: bool = False, work: Path | None = None) -> dict[str, str]:
    """``{name: sha256}`` of the fixed runs (see the module's docstring)."""
    import relaxsim
    from relaxsim.hardware import build_hardware
    from relaxsim.schedules import resolve

    epochs = {"training.epochs": QUICK_EPOCHS} if quick else {}
    out: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="relaxsim-fingerprint-", dir=work) as tmp:
        tmp = Path(tmp)
        for mode in ("ideal", "hardware_aware"):
            run_dir = tmp / mode
            relaxsim.run(relaxsim.load_config(overrides={"hardware.mode": mode, **epochs}),
                         out=run_dir)
            out[f"run/{mode}/weights.npz"] = _sha((run_dir / "weights.npz").read_bytes())
            result = json.loads((run_dir / "result.json").read_text())
            out[f"run/{mode}/result.json-seconds"] = _sha(_canonical(_without(result,
                                                                               *IGNORED)))
        cfg = relaxsim.load_config()
        net = cfg.network
        hw = build_hardware(cfg.hardware, cfg.network.banks)
        schedule = resolve(net.schedule, net.banks, net.steps)
        out["timing/figures"] = _sha(_canonical(hw.figures(schedule, net.banks, net.hidden)))
        out["timing/coupling"] = _sha(_canonical(
            hw.coupling(schedule, net.alpha, net.activation).summary()))
        spec = {"base": {"network": {"hidden": 8}, "training": {"epochs": 2}},
                "grid": {"network.banks": [1, 2], "hardware.clock": ["auto", "40 ps"]}}
        results = relaxsim.scan(spec, out=tmp / "store", workers=1, quiet=True)
        records = sorted((_without(dict(r), *IGNORED) | {
            "result": _without(r.get("result", {}), *IGNORED)} for r in results),
            key=lambda r: r["id"])
        out["scan/records-seconds"] = _sha(_canonical(records))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m relaxsim.validation.fingerprint",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"train {QUICK_EPOCHS} epochs instead of the default's")
    parser.add_argument("--json", metavar="FILE", help="write the fingerprints to FILE")
    parser.add_argument("--compare", metavar="FILE",
                        help="compare with the fingerprints in FILE; exit 1 if any differs")
    args = parser.parse_args(argv)
    before = None
    if args.compare:
        try:
            before = json.loads(Path(args.compare).read_text())
        except (OSError, ValueError) as exc:
            print(f"fingerprint: error: --compare {args.compare!r}: cannot read ({exc})",
                  file=sys.stderr)
            return 2
    now = fingerprints(quick=args.quick)
    for name, digest in now.items():
        print(f"{digest}  {name}")
    if args.json:
        from relaxsim.io import write_json

        write_json(args.json, now)
    if before is None:
        return 0
    differ = [name for name in sorted(set(now) | set(before)) if now.get(name) != before.get(name)]
    if differ:
        print("fingerprint: differs: " + ", ".join(differ), file=sys.stderr)
        return 1
    print(f"fingerprint: all {len(now)} identical to {args.compare}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
