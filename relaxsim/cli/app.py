"""The ``relaxsim`` command line.

Every error caused by bad input is printed on one line and exits with status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from relaxsim.cli.common import add_config_args, load_config_args, one_line_warnings
from relaxsim.errors import RelaxsimError


def cmd_run(args) -> int:
    from relaxsim.config import Config, network_kind
    from relaxsim.runner import resume, run

    if args.resume is not None:
        if args.out is not None or args.overwrite:
            flag = "--out" if args.out is not None else "--overwrite"
            raise RelaxsimError(f"--resume {args.resume!r}: cannot be combined with {flag} "
                                "(--resume continues the run in its own directory)")
        out = Path(args.resume)
        given = args.config is not None or bool(args.overrides)
        cfg = load_config_args(args) if given else None  # when given, it must be the checkpoint's config
        result = _interruptible(lambda: resume(out, quiet=args.quiet, cfg=cfg), out)
        cfg = Config(result["config"])  # the checkpoint's, validated when it was read
    else:
        cfg = load_config_args(args)
        out = Path(args.out) if args.out else _fresh_run_dir()
        result = _interruptible(  # run() holds out, then checks it, before loading anything
            lambda: run(cfg, out=out, quiet=args.quiet, overwrite=args.overwrite), out)
    net, p = cfg.network, result["params"]
    schedule = net.schedule if isinstance(net.schedule, str) else "explicit"
    lines = [
        f"{network_kind(net.banks, net.steps)} on {result['task']['name']}: N = {net.hidden}, "
        f"L_W = {net.banks}, L_T = {net.steps} ({schedule}), {net.activation}",
        f"  test accuracy   {result['test_accuracy']:.4f}",
        *_extra_test_lines(result),
        f"  val accuracy    {result['val_accuracy']:.4f} (best epoch {result['best_epoch']} "
        f"of {result['epochs']})",
        f"  train loss      {result['train_loss']:.4f}",
        _hardware_line(result["hardware"]),
        f"  parameters      banks {p['banks']:,} | input {p['input']:,} | "
        f"readout {p['readout']:,} | total {p['total']:,}",
        f"  time            {result['seconds']:.1f} s",
        f"  results         {out}/",
    ]
    print("\n".join(lines))
    return 0


def _extra_test_lines(result: dict) -> list[str]:
    """The summary lines of the optional result fields: the ideal machine's accuracy (deploy)
    and bits per character (text)."""
    lines = []
    if "test_accuracy_ideal" in result:
        lines.append(f"  ideal machine   {result['test_accuracy_ideal']:.4f} (test accuracy of "
                     "the same weights without device effects)")
    if "test_bits_per_char" in result:
        lines.append(f"  bits per char   {result['test_bits_per_char']:.4f} test | "
                     f"{result['val_bits_per_char']:.4f} val (best epoch)")
    return lines


def _interruptible(train, out: Path):
    """``train()``; on Ctrl-C, say where the checkpoint to resume from is, then stop."""
    from relaxsim.training.checkpoint import CHECKPOINT

    try:
        return train()
    except KeyboardInterrupt:
        if (out / CHECKPOINT).is_file():
            print(f"relaxsim: {out / CHECKPOINT} holds the last checkpoint; continue with "
                  f"relaxsim run --resume {str(out)!r}", file=sys.stderr)
        raise


def _hardware_line(hw: dict) -> str:
    from relaxsim.devices import format_quantity

    if hw["mode"] == "ideal":
        return "  hardware        ideal (no device effects)"
    energy = ""
    if "tops_per_w" in hw:
        energy = (f", {format_quantity(hw['energy_per_inference_j'], 'energy')} "
                  f"({hw['tops_per_w']:.3g} TOPS/W)")
    return (f"  hardware        {hw['mode']}: switch {hw['switch']}, weights {hw['weights']}, "
            f"active {hw['active']}; {format_quantity(hw['latency_s'], 'time')}{energy} per "
            "inference")


def _fresh_run_dir() -> Path:
    base = Path("runs") / time.strftime("%Y%m%d-%H%M%S")
    out, n = base, 1
    while out.exists():
        n += 1
        out = base.with_name(f"{base.name}-{n}")
    return out


def cmd_evaluate(args) -> int:
    from relaxsim.config import parse_assignment
    from relaxsim.io import check_output_path, write_json
    from relaxsim.training.evaluate import evaluate_run

    if args.json:  # before the work, not after it
        check_output_path("--json", args.json)
    overrides = dict(parse_assignment(text) for text in args.overrides)
    res = evaluate_run(args.run_dir, overrides, repeats=args.repeats, seed=args.seed)
    hw = res["hardware"]
    from relaxsim.devices import format_quantity

    print(f"{res['run']}: {res['split']} accuracy on {hw['switch']} / {hw['weights']} / "
          f"{hw['active']} (latency {format_quantity(hw['latency_s'], 'time')} per inference)")
    print(f"  overrides  {_overrides_text(res['overrides'])}")
    print(f"  hardware   {res['accuracy_mean']:.4f} +- {res['accuracy_std']:.4f} "
          f"over {res['repeats']} draws")
    print(f"  ideal      {res['accuracy_ideal']:.4f}")
    if args.json:
        write_json(args.json, res)
    return 0


def _overrides_text(overrides: dict) -> str:
    """``key = value, ...`` of the keys an evaluation changed (tables as dotted keys)."""
    def flat(key, value):
        if isinstance(value, dict):
            return [item for k, v in value.items() for item in flat(f"{key}.{k}", v)]
        return [f"{key} = {value}"]

    items = [item for key, value in overrides.items() for item in flat(key, value)]
    return ", ".join(items) if items else "none (the run's own config)"


def cmd_config(args) -> int:
    print(load_config_args(args).to_toml(), end="")
    return 0


def cmd_bench(args) -> int:
    from relaxsim.validation import bench

    return bench.run_from_args(args)


def build_parser() -> argparse.ArgumentParser:
    from relaxsim import __version__

    parser = argparse.ArgumentParser(
        prog="relaxsim", description="Hardware co-simulation of ReLaX-Net physical neural networks.")
    parser.add_argument("--version", action="version", version=f"relaxsim {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("run", help="train and evaluate one experiment")
    add_config_args(p)
    p.add_argument("--out", help="result directory (default: runs/<date>-<time>)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the results (or the checkpoint) of an earlier run in --out")
    p.add_argument("--resume", metavar="DIR",
                   help="continue the unfinished run in DIR from its checkpoint (with its "
                   "config; a config file or --set given too must match it)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("evaluate", help="evaluate a run's saved weights on (other) hardware")
    p.add_argument("run_dir", help="a directory written by relaxsim run")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="change the run's config, e.g. --set hardware.switch.rise_time='2 ns'")
    p.add_argument("--repeats", type=int, default=10,
                   help="independent programming and noise draws to average (default 10)")
    p.add_argument("--seed", type=int, default=0, help="seed of the draws")
    p.add_argument("--json", help="also write the figures to this JSON file")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("config", help="print the resolved config as TOML")
    add_config_args(p)
    p.set_defaults(func=cmd_config)

    p = sub.add_parser("bench", help="benchmark the training step against PyTorch and the BLAS "
                       "bound; timing model, start-up and memory")
    from relaxsim.validation.bench import add_arguments
    add_arguments(p)
    p.set_defaults(func=cmd_bench)
    from relaxsim.cli.data import add_data_command
    from relaxsim.cli.devices import add_devices_command
    from relaxsim.cli.report import add_report_command, add_validate_command
    from relaxsim.cli.scan import add_scan_command
    from relaxsim.cli.search import add_search_command
    from relaxsim.cli.timing import add_timing_command
    from relaxsim.cli.tolerance import add_tolerance_command

    for add_command in (add_timing_command, add_scan_command, add_devices_command,
                        add_data_command, add_report_command, add_validate_command,
                        add_tolerance_command, add_search_command):
        add_command(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:  # Ctrl-C anywhere, the imports of the parser's commands too, is one line and 130
        args = build_parser().parse_args(argv)
        with one_line_warnings():
            return args.func(args)
    except RelaxsimError as exc:
        print(f"relaxsim: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("relaxsim: interrupted", file=sys.stderr)
        return 130

