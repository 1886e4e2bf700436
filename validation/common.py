"""What every validation study returns, and how a study runs alone from the command line.

A study is a module with ``NAME``, ``TITLE`` and ``check(quick: bool, out: Path) -> Check``; it
writes its data (CSV or JSON, and a PNG figure when it has one) into ``out`` as ``<NAME>.*``.
``python -m relaxsim.validation.<NAME> [--quick] [--out DIR]`` runs one study and prints its
verdict.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from relaxsim.io import atomic_open, write_json, write_text


@dataclass
class Check:
    """The verdict of one study, with what was measured, how, and against which tolerance."""

    name: str
    title: str
    passed: bool
    method: str                      # how it was measured
    tolerance: str                   # the bound and where it comes from
    summary: str                     # the measured numbers in one sentence
    head: list[str] = field(default_factory=list)
    rows: list[list] = field(default_factory=list)
    figure: bytes | None = None
    caption: str = ""
    files: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def status(self) -> str:
        return "PASS" if self.passed else "FAIL"


def write_rows(out: Path, name: str, head: list[str], rows: list[list]) -> str:
    """The table as ``out/<name>.csv``; returns the file name."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(head)
    writer.writerows(rows)
    write_text(out / f"{name}.csv", buf.getvalue())
    return f"{name}.csv"


def write_png(out: Path, name: str, png: bytes) -> str:
    with atomic_open(out / f"{name}.png", "wb") as fh:
        fh.write(png)
    return f"{name}.png"


def save(check: Check, out: Path, extra: dict | None = None) -> Check:
    """Write the study's table (CSV), figure (PNG) and verdict (JSON) into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    files = [write_rows(out, check.name, check.head, check.rows)] if check.rows else []
    if check.figure is not None:
        files.append(write_png(out, check.name, check.figure))
    write_json(out / f"{check.name}.json", {
        "name": check.name, "status": check.status, "summary": check.summary,
        "method": check.method, "tolerance": check.tolerance, "head": check.head,
        "rows": check.rows, "seconds": check.seconds, **(extra or {})})
    check.files = files + [f"{check.name}.json"]
    return check


def timed(study, quick: bool, out: Path) -> Check:
    t0 = time.perf_counter()
    result = study.check(quick, out)
    result.seconds = time.perf_counter() - t0
    return save(result, out)


def main(study, argv=None) -> int:
    p = argparse.ArgumentParser(prog=f"python -m relaxsim.validation.{study.NAME}",
                                description=study.TITLE)
    p.add_argument("--quick", action="store_true", help="the reduced version of the study")
    p.add_argument("--out", default=f"validation-{study.NAME}", help="directory for its data")
    args = p.parse_args(argv)
    result = timed(study, args.quick, Path(args.out))
    print(f"{result.status}  {result.title}: {result.summary} (tolerance: {result.tolerance}; "
          f"{result.seconds:.1f} s; data in {args.out}/)")
    return 0 if result.passed else 1


if __name__ == "__main__":
    sys.exit("run a study, e.g. python -m relaxsim.validation.gradients")
