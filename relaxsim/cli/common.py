"""What the commands share: the config arguments and how warnings are printed."""

from __future__ import annotations

import argparse
import sys
import warnings
from contextlib import contextmanager


def add_config_args(p: argparse.ArgumentParser) -> None:
    """The config file argument and ``--set KEY=VALUE`` overrides of a command."""
    p.add_argument("config", nargs="?", help="TOML config file (default: the built-in experiment)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config key, e.g. --set network.banks=1 (repeatable)")


def load_config_args(args):
    """The validated config that a command's config argument and ``--set`` overrides give."""
    from relaxsim.config import load_config, parse_assignment

    overrides = dict(parse_assignment(text) for text in args.overrides)
    return load_config(args.config, overrides)


@contextmanager
def one_line_warnings(category: type[Warning] | None = None):
    """Warnings of ``category`` (default: :class:`relaxsim.errors.RelaxsimWarning`) printed as
    ``relaxsim: warning: message`` on stderr, every time; others as Python prints them."""
    from relaxsim.errors import RelaxsimWarning

    category = category or RelaxsimWarning
    shown = warnings.showwarning

    def show(message, cat, filename, lineno, file=None, line=None):
        if issubclass(cat, category):
            print(f"relaxsim: {getattr(cat, 'LABEL', 'warning: ')}{message}", file=sys.stderr)
        else:
            shown(message, cat, filename, lineno, file, line)

    with warnings.catch_warnings():
        warnings.simplefilter("always", category)
        warnings.showwarning = show
        yield
