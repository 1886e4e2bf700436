"""``relaxsim report`` and ``relaxsim validate``.

    relaxsim report DIR [--out report.html]
    relaxsim validate [--quick] [--out DIR] [--only gradients,timing,...]
"""

from __future__ import annotations

import time


def add_report_command(sub) -> None:
    """Register ``relaxsim report`` on the subcommand parsers ``sub`` of the main parser."""
    p = sub.add_parser("report", help="a self-contained HTML report (and Markdown twin) of a run "
                                      "directory or a scan store")
    p.add_argument("dir", help="a directory written by relaxsim run, a scan store, a search or "
                               "a tolerance study")
    p.add_argument("--metric", metavar="FIELD",
                   help="a store's result field to draw against --against (default "
                        "test_accuracy), e.g. hardware.energy_per_inference_j")
    p.add_argument("--against", metavar="FIELD",
                   help="a field the points vary, e.g. hardware.switch.rise_time (default: the "
                        "first numeric one)")
    p.add_argument("--front", metavar="M1:max,M2:min",
                   help="the Pareto front of two result fields, e.g. "
                        "test_accuracy:max,hardware.energy_per_inference_j:min")
    p.add_argument("--out", metavar="HTML",
                   help="the HTML file (default DIR/report.html); the .md twin and its "
                        "<stem>_figures/ go beside it")
    p.set_defaults(func=cmd_report)


def add_validate_command(sub) -> None:
    """Register ``relaxsim validate``."""
    from relaxsim.validation.suite import STUDIES

    p = sub.add_parser("validate", help="check gradients, kernels, ideal limit, timing, "
                                        "determinism and the equal-budget claim; exit 1 on a FAIL")
    p.add_argument("--quick", action="store_true", help="small studies (under 5 minutes)")
    p.add_argument("--out", default="validation-report", metavar="DIR",
                   help="directory for report.html, report.md and each check's data "
                        "(default: validation-report)")
    p.add_argument("--only", metavar="CHECKS",
                   help="comma-separated subset of: " + ", ".join(STUDIES))
    p.set_defaults(func=cmd_validate)


def cmd_report(args) -> int:
    from relaxsim.report.document import write_report

    front = None if args.front is None else [m.strip() for m in args.front.split(",")]
    html_path, md_path = write_report(args.dir, args.out, args.metric, args.against, front)
    print(f"report: {html_path} (Markdown: {md_path})")
    return 0


def cmd_validate(args) -> int:
    from relaxsim.validation.suite import validate

    t0 = time.perf_counter()
    results, html_path = validate(args.quick, args.out, args.only)
    failed = [r.name for r in results if not r.passed]
    print(f"{len(results) - len(failed)} of {len(results)} checks pass"
          + (f" (FAIL: {', '.join(failed)})" if failed else "")
          + f" in {time.perf_counter() - t0:.1f} s; report: {html_path}")
    return 1 if failed else 0
