"""``relaxsim search``: a multi-objective design-space search (Optuna) over config fields.

    relaxsim search SEARCH.toml [--out DIR] [--trials N] [--timeout SECONDS] [--seed S]
                                [--workers N | --address tcp://HOST:8786] [--quiet]
    relaxsim search DIR                  # resume the search stored in DIR
    relaxsim search DIR --status         # trials done, failed, running; the front's size
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from relaxsim.cli.scan import add_tls_arguments, tls_options
from relaxsim.errors import RelaxsimError

DEFAULT_ROOT = Path("search")


def add_search_command(sub) -> None:
    """Register ``relaxsim search`` on the subcommand parsers ``sub`` of the main parser."""
    p = sub.add_parser("search", help="search a design space for the Pareto front of objectives "
                                      "(Optuna, trials on Dask)")
    p.add_argument("target", metavar="SEARCH.toml|DIR",
                   help="a search spec, or a search directory (resumes the study stored there)")
    p.add_argument("--out", help=f"the results directory (default: {DEFAULT_ROOT}/<spec name>)")
    p.add_argument("--trials", type=int, help="trials in the study (default: the spec's)")
    p.add_argument("--timeout", type=float, metavar="SECONDS",
                   help="ask no new trial after this long (those running finish)")
    p.add_argument("--seed", type=int, help="the sampler's seed (default: the spec's)")
    p.add_argument("--workers", type=int, help="local worker processes (default: the cores)")
    p.add_argument("--address", help="a Dask scheduler, e.g. tcp://HOST:8786, instead of local "
                                     "workers")
    add_tls_arguments(p)
    p.add_argument("--status", action="store_true",
                   help="count trials done, failed and running, and the front; run nothing")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_search)


def cmd_search(args: argparse.Namespace) -> int:
    from relaxsim.cli.common import one_line_warnings

    with one_line_warnings(Warning):
        return _cmd_search(args)


def _cmd_search(args) -> int:
    from relaxsim.scans.search import SPEC_FILE, load_search_spec, search, status

    target = Path(args.target)
    if target.is_dir():
        if args.out and Path(args.out).resolve() != target.resolve():
            raise RelaxsimError(f"--out {args.out!r}: a search directory is its own output; "
                                "leave --out out")
        root = target
        if not (root / SPEC_FILE).is_file():
            raise RelaxsimError(f"{root}: not a search directory (no {SPEC_FILE}); run "
                                "`relaxsim search SEARCH.toml --out DIR` first")
        spec_source = root / SPEC_FILE
    else:
        root = Path(args.out) if args.out else DEFAULT_ROOT / target.stem
        spec_source = target
    if args.status:
        print(status_line(root, status(root)))
        return 0
    spec = load_search_spec(spec_source)  # every check before anything is written
    for flag, value, least in (("--trials", args.trials, 1), ("--workers", args.workers, 1)):
        if value is not None and value < least:
            raise RelaxsimError(f"{flag}: must be >= {least} (got {value})")
    if args.timeout is not None and not args.timeout > 0:
        raise RelaxsimError(f"--timeout: must be > 0 seconds (got {args.timeout:g})")
    if args.workers is not None and args.address:
        raise RelaxsimError("--workers: the cluster at --address has its own workers; "
                            "give one of --workers and --address")
    security = tls_options(args)
    total = args.trials or spec.trials
    print(f"search: {total} trials of {', '.join(f'{m}:{d}' for m, d in spec.objectives)}, "
          f"results in {root}/", flush=True)
    t0 = time.perf_counter()
    try:
        results = search(spec, root, trials=args.trials, timeout=args.timeout, seed=args.seed,
                         workers=args.workers, address=args.address, quiet=args.quiet,
                         security=security)
    except KeyboardInterrupt:
        import sys

        print(f"relaxsim: search interrupted; the study and the trials finished so far are "
              f"stored in {root}/; resume with `relaxsim search {root}`", file=sys.stderr)
        return 130
    c = results.counts
    print(f"search: {c['done']} done, {c['failed']} failed ({results.computed} run now, "
          f"{results.reused} from the store) in {time.perf_counter() - t0:.1f} s; Pareto "
          f"front of {c['front']} trial{'s' if c['front'] != 1 else ''} in {root}/front.csv")
    return 0


def status_line(root: Path, counts: dict) -> str:
    return (f"{root}: {counts['trials']} of {counts['target']} trials: {counts['done']} done "
            f"({counts['feasible']} meeting the constraints), {counts['failed']} failed, "
            f"{counts['running']} running; Pareto front of {counts['front']} trials")
