"""``relaxsim scan``: run a parameter scan, resume it, show its status, export its results.

    relaxsim scan SCAN.toml [--out DIR] [--workers N | --address tcp://HOST:8786] [--retry-failed]
                            [--save-weights]
    relaxsim scan SCAN.toml --address tls://HOST:8786 --tls-ca-file CA.pem --tls-cert CERT.pem
                            [--tls-key KEY.pem]      # a scheduler that speaks TLS
    relaxsim scan SCAN.toml --dry-run          # the points and their varied fields
    relaxsim scan DIR                          # resume the scan stored in DIR
    relaxsim scan DIR --status                 # done, failed, missing
    relaxsim scan DIR --export results.csv     # one row per point
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
import time
from pathlib import Path

from relaxsim.errors import RelaxsimError

DEFAULT_ROOT = Path("scans")


def add_scan_command(sub) -> None:
    """Register ``relaxsim scan`` on the subcommand parsers ``sub`` of the main parser."""
    p = sub.add_parser("scan", help="run a parameter scan on local workers or a Dask cluster")
    p.add_argument("target", metavar="SCAN.toml|DIR",
                   help="a scan spec, or a scan directory (resumes the scan stored there)")
    p.add_argument("--out", help=f"the results directory (default: {DEFAULT_ROOT}/<spec name>)")
    p.add_argument("--workers", type=int, help="local worker processes (default: the cores)")
    p.add_argument("--address", help="a Dask scheduler, e.g. tcp://HOST:8786, instead of local "
                                      "workers")
    add_tls_arguments(p)
    p.add_argument("--retry-failed", action="store_true", help="run failed points again")
    p.add_argument("--save-weights", action="store_true",
                   help="keep each point's weights as points/<id>.weights.npz (the store "
                        "remembers it)")
    p.add_argument("--dry-run", action="store_true", help="list the points, run nothing")
    p.add_argument("--status", action="store_true", help="count done, failed and missing points")
    p.add_argument("--export", metavar="CSV", help="write one row per point to CSV, run nothing")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_scan)


def cmd_scan(args: argparse.Namespace) -> int:
    from relaxsim.cli.common import one_line_warnings

    with one_line_warnings(Warning):  # a scan's (e.g. a corrupt result file), Dask's too
        return _cmd_scan(args)


def _cmd_scan(args) -> int:
    from relaxsim.scans.spec import expand, load_spec
    from relaxsim.scans.store import Store

    target = Path(args.target)
    if target.is_dir():
        if args.out and Path(args.out).resolve() != target.resolve():
            raise RelaxsimError(f"--out {args.out!r}: a scan directory is its own output; "
                                "leave --out out")
        store = Store(target)
        spec = store.spec()
    else:
        spec = load_spec(target)
        store = Store(args.out or DEFAULT_ROOT / target.stem)
    if args.workers is not None and args.workers < 1:
        raise RelaxsimError(f"--workers: must be >= 1 (got {args.workers})")
    if args.export:  # before any work
        from relaxsim.io import check_output_path

        check_output_path("--export", args.export)
    if args.workers is not None and args.address:
        raise RelaxsimError("--workers: the cluster at --address has its own workers; "
                            "give one of --workers and --address")
    security = tls_options(args)
    if args.save_weights and not spec.save_weights:
        spec = dataclasses.replace(spec, save_weights=True)
    points, duplicates = expand(spec)
    if args.dry_run or args.status or args.export:
        if args.dry_run:
            print(dry_run_table(spec, points, duplicates, store))
        if args.status:
            print(status_report(store, points, spec.save_weights))
        if args.export:
            n = export(store, points, args.export)
            print(f"wrote {n} rows to {args.export}")
        return 0
    return _run(args, spec, points, store, security)


TLS_FLAGS = (("--tls-ca-file", "tls_ca_file"), ("--tls-cert", "tls_cert"), ("--tls-key", "tls_key"))


def add_tls_arguments(p) -> None:
    """The ``--tls-*`` options of a command that takes ``--address`` (scan, search)."""
    p.add_argument("--tls-ca-file", metavar="PEM",
                   help="with a tls:// --address: the CA certificate that signed the cluster's "
                        "(default: Dask's distributed.comm.tls.ca-file)")
    p.add_argument("--tls-cert", metavar="PEM",
                   help="with a tls:// --address: this client's certificate (default: Dask's "
                        "distributed.comm.tls.client.cert)")
    p.add_argument("--tls-key", metavar="PEM",
                   help="with --tls-cert: its private key, unless it is in the cert file")


def tls_options(args):
    """The ``distributed.Security`` of the ``--tls-*`` options, or ``None`` when none is given;
    checked (the files too) before any work or connection."""
    given = [flag for flag, name in TLS_FLAGS if getattr(args, name, None) is not None]
    if not given:
        return None
    if not args.address:
        raise RelaxsimError(f"{given[0]}: for a cluster at --address; the local cluster makes "
                            "its own credentials")
    if args.tls_key is not None and args.tls_cert is None:
        raise RelaxsimError("--tls-key: the key of --tls-cert; give --tls-cert too")
    missing = [flag for flag, name in TLS_FLAGS[:2] if getattr(args, name) is None]
    if missing:
        raise RelaxsimError(f"{given[0]}: needs {' and '.join(missing)} too")
    from relaxsim.scans.execute import tls_security

    return tls_security(args.tls_ca_file, args.tls_cert, args.tls_key)


def _run(args, spec, points, store, security=None) -> int:
    from relaxsim.hardware import SETTLE_WARNING
    from relaxsim.scans.execute import default_workers, scan

    n = args.workers or default_workers()
    where = (f"the scheduler at {args.address}" if args.address else
             f"{n} local worker{'s' if n != 1 else ''}")
    print(f"scan: {len(points)} points, results in {store.root}/ (on {where})", flush=True)
    t0 = time.perf_counter()
    try:
        results = scan(spec, out=store.root, workers=args.workers, address=args.address,
                       retry_failed=args.retry_failed, save_weights=args.save_weights,
                       quiet=args.quiet, security=security)
    except KeyboardInterrupt:
        return interrupted(args, points, store)
    failed = results.failed
    print(f"scan: {len(results) - len(failed)} done, {len(failed)} failed "
          f"({results.computed} run now, {results.reused} stored before) in "
          f"{time.perf_counter() - t0:.1f} s")
    cautioned = sum(bool(r.get("result", {}).get("hardware", {}).get("warnings"))
                    for r in results)
    if cautioned:
        print(f"relaxsim: warning: {cautioned} of {len(results)} points ran on a machine whose "
              "clock leaves the switch or the active element unsettled by more than "
              f"{100 * SETTLE_WARNING:g} %; "
              f"`relaxsim report {store.root}` lists them", file=sys.stderr)
    if failed:
        print(f"scan: see `relaxsim scan {store.root} --status`; run again with --retry-failed "
              "to retry", file=sys.stderr)
        return 1
    return 0


def interrupted(args, points, store) -> int:
    """After Ctrl-C: one line on stderr with the points stored so far and the command that
    resumes the scan (the same one); the exit status of an interrupted command, 130."""
    stored = sum(map(store.holds, points))
    print(f"relaxsim: scan interrupted: {stored} of {len(points)} points stored in "
          f"{store.root}/; resume with `{resume_command(args, store)}`", file=sys.stderr)
    return 130


def resume_command(args, store) -> str:
    """The command that goes on with the scan in ``store``: the one given, with its --out."""
    target = Path(args.target)
    words = ["relaxsim", "scan", str(target)]
    if not target.is_dir():
        words += ["--out", str(store.root)]
    for flag, value in (("--workers", args.workers), ("--address", args.address),
                        *((flag, getattr(args, name, None)) for flag, name in TLS_FLAGS)):
        if value is not None:
            words += [flag, str(value)]
    words += [flag for flag, on in (("--retry-failed", args.retry_failed),
                                    ("--save-weights", args.save_weights), ("--quiet", args.quiet))
              if on]
    return shlex.join(words)


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]


def dry_run_table(spec, points, duplicates: int, store) -> str:
    from relaxsim.scans.spec import toml_value

    varied = list(dict.fromkeys(k for p in points for k in [*p.labels, *p.fields]))
    state = store.status(points, weights=spec.save_weights) if store.exists() else {}
    status_of = {p.id: s for s, pairs in state.items() for p, _ in pairs}
    head = [f"{spec.source}: {len(points)} points"
            + (f" ({duplicates} repeating an earlier point's config, dropped)" if duplicates
               else "")
            + (f"; varied: {', '.join(varied)}" if varied else "")]
    rows = [["#", "id", *varied] + (["stored"] if state else [])]
    for p in points:
        values = {**{k: str(v) for k, v in p.labels.items()},  # labels as they are
                  **{k: toml_value(v) for k, v in p.fields.items()}}  # fields as in TOML
        rows.append([str(p.index + 1), p.id, *[values.get(k, "") for k in varied]]
                    + ([status_of.get(p.id, "missing")] if state else []))
    return "\n".join(head + ["  " + line for line in _table(rows)])


def status_report(store, points, weights: bool = False) -> str:
    state = store.status(points, weights=weights)
    counts = ", ".join(f"{len(state[s])} {s}" for s in ("done", "failed", "missing"))
    lines = [f"{store.root}: {len(points)} points: {counts}"]
    if state["failed"]:
        lines.append("failed:")
        for point, record in state["failed"]:
            lines.append(f"  {point.id}  {point.describe()}: "
                         f"{record['error'].splitlines()[0] if record['error'] else '?'}")
    strays = store.strays(points)
    if strays:
        lines.append(f"{len(strays)} result files belong to no point of the spec "
                     f"(e.g. {strays[0].name})")
    return "\n".join(lines)


def export(store, points, path) -> int:
    from relaxsim.scans.store import export_csv

    state = store.status(points, then="exported as missing")
    by_id = {p.id: rec for pairs in state.values() for p, rec in pairs}
    records = [by_id[p.id] or {"id": p.id, "status": "missing", "fields": p.fields,
                               "labels": p.labels} for p in points]
    export_csv(records, path)
    return len(records)
