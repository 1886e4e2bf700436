"""``relaxsim tolerance``: how far may one hardware quantity go before the accuracy drops?

    relaxsim tolerance SPEC.toml [--out DIR] [--workers N] [--quiet]

Running it again with the same ``--out`` continues: what finished is not computed again.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def add_tolerance_command(sub) -> None:
    """Register ``relaxsim tolerance`` on the subcommand parsers ``sub`` of the main parser."""
    p = sub.add_parser("tolerance", help="sweep one hardware quantity and find how far it may go "
                                         "for the accuracy to drop at most a given amount")
    p.add_argument("spec", metavar="SPEC.toml", help="a tolerance spec (docs/tolerance.md)")
    p.add_argument("--out", help="the output directory (default: tolerance/<spec name>); "
                                 "running again with it continues the sweep")
    p.add_argument("--workers", type=int,
                   help="retrain mode: local worker processes (default: the cores)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_tolerance)


def cmd_tolerance(args: argparse.Namespace) -> int:
    from relaxsim.errors import RelaxsimError
    from relaxsim.scans.tolerance import (
        CURVE_CSV,
        CURVE_JSON,
        FIGURE,
        REPORT,
        default_out,
        describe_tolerance,
        load_tolerance_spec,
        tolerance,
    )

    if args.workers is not None and args.workers < 1:
        raise RelaxsimError(f"--workers: must be >= 1 (got {args.workers})")
    t0 = time.perf_counter()
    spec = load_tolerance_spec(args.spec)
    out = Path(args.out) if args.out else default_out(spec)
    result = tolerance(spec, out, workers=args.workers, quiet=args.quiet)
    tol = result["tolerance"]
    print(f"{spec.source}: {spec.field}, {spec.points} points, {spec.mode} mode, "
          f"{len(spec.seeds)} seed(s): {result.computed} computed, {result.reused} reused "
          f"in {time.perf_counter() - t0:.1f} s")
    print(f"  {describe_tolerance(spec, tol)}")
    print(f"  results  {out}/ ({CURVE_CSV}, {CURVE_JSON}, {FIGURE}, {REPORT})")
    return 0
