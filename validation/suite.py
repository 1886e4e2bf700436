"""All validation studies in turn, and their report: what ``relaxsim validate`` does.

Run as ``python -m relaxsim.validation.suite [--quick] [--out DIR] [--only a,b]``.
"""

from __future__ import annotations

import argparse
import importlib
import platform
import sys
import time
import traceback
from pathlib import Path

from relaxsim.errors import RelaxsimError

from .common import Check, save, timed

# name -> module of relaxsim.validation, in report order
STUDIES = ("gradients", "kernels", "ideal_limit", "timing", "determinism", "leak", "power",
           "wear", "equal_budget", "mnist1d_claims")


def study(name: str):
    return importlib.import_module(f"relaxsim.validation.{name}")


def select(only: str | None) -> list[str]:
    """The studies named in ``only`` (comma-separated), in report order; all when ``None``."""
    if not only:
        return list(STUDIES)
    names = [n.strip() for n in only.split(",") if n.strip()]
    unknown = [n for n in names if n not in STUDIES]
    if unknown or not names:
        what = repr(unknown[0]) if unknown else "(none)"
        raise RelaxsimError(f"--only {only!r}: unknown check {what}; "
                            f"choose from {', '.join(STUDIES)}")
    return [n for n in STUDIES if n in names]


def run_checks(names: list[str], quick: bool, out: Path, echo=print) -> list[Check]:
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for name in names:
        mod = study(name)
        try:
            result = timed(mod, quick, out)
        except Exception as exc:  # noqa: BLE001  (a crashing check is a failed check)
            result = save(Check(name, mod.TITLE, False, method="(the check raised an error)",
                                tolerance="-", summary=f"{type(exc).__name__}: {exc}",
                                head=["traceback"],
                                rows=[[line] for line in traceback.format_exc().splitlines()]),
                          out)
        if echo:
            echo(f"{result.status}  {result.title}: {result.summary} ({result.seconds:.1f} s)")
        results.append(result)
    return results


def document(results: list[Check], quick: bool, seconds: float):
    from relaxsim import __version__
    from relaxsim.report.document import Document

    failed = [r for r in results if not r.passed]
    doc = Document(f"relaxsim validation{' (quick)' if quick else ''}")
    s = doc.section("Summary")
    s.text(f"{len(results) - len(failed)} of {len(results)} checks pass"
           + (f"; failing: {', '.join(r.name for r in failed)}" if failed else "")
           + f". Wall time {seconds:.1f} s; relaxsim {__version__}, Python "
           f"{platform.python_version()} on {platform.machine()}.")
    s.table(["check", "result", "measured", "time"],
            [[r.title, r.status, r.summary, f"{r.seconds:.1f} s"] for r in results])
    for r in results:
        s = doc.section(r.title, status=r.status)
        s.table(["item", "value"], [["result", r.status], ["measured", r.summary],
                           ["tolerance", r.tolerance], ["how it was measured", r.method],
                           ["data files", ", ".join(r.files)], ["time", f"{r.seconds:.1f} s"]])
        if r.rows:
            s.table(r.head, r.rows)
        if r.figure is not None:
            s.figure(r.name, r.figure, r.caption or r.title)
    return doc


def validate(quick: bool = False, out: str | Path = "validation-report",
             only: str | None = None, echo=print) -> tuple[list[Check], Path]:
    names = select(only)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise RelaxsimError(f"--out {str(out)!r}: is a file, not a directory")
    t0 = time.perf_counter()
    results = run_checks(names, quick, out, echo)
    html_path, _ = document(results, quick, time.perf_counter() - t0).write(out / "report.html")
    return results, html_path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m relaxsim.validation.suite")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", default="validation-report")
    p.add_argument("--only")
    args = p.parse_args(argv)
    results, html_path = validate(args.quick, args.out, args.only)
    print(f"report: {html_path}")
    return 0 if all(r.passed for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
